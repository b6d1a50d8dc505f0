"""scikit-learn estimators over the lambda path: :class:`PSiLONRegressor`, :class:`PSiLONClassifier`.

Like ``LassoCV``, one ``fit`` trains the whole lambda grid (all lambdas as members of one
stacked network, see :func:`psilon.train.lambda_path`) and selects the lambda with the
lowest validation loss (MSE on the scaled target / log loss):

* ``eval_set=(X_val, y_val)`` given to ``fit``: train on all of ``X``, validate there;
* ``selection='holdout'``: a random ``validation_fraction`` of ``X`` (stratified for
  classifiers) validates; the selected member (trained on the rest) is kept, no refit;
* ``selection='cv'``: ``cv`` folds x lambdas members in one run; the lambda with the
  lowest mean validation loss is refitted on all of ``X``.

Preprocessing (default, from scikit-learn parts, fitted on all of ``X`` given to fit):
numeric columns are standardized, then missing values set to 0 (the mean) with a missing
indicator column per feature that had missing values at fit; other columns (strings,
categories, booleans; DataFrames only) are one-hot encoded with missing values as their
own category and unseen categories encoded as all zeros. ``preprocessor=`` replaces it
(any scikit-learn transformer producing numbers) or ``'passthrough'`` turns it off.

Regression targets are scaled as in the paper, ``(y - median) / (IQR / 2)`` (IQR 0 ->
scale 1), and mapped back at predict. ``lipschitz_bound_`` is in units of the prediction
(regression) or of the logits (classification), with respect to the l_inf norm of the
*preprocessed* features.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, LabelEncoder, OneHotEncoder, StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

import psilon.nn as _nn
from psilon.pathnorm import lipschitz_bound
from psilon.train import PAPER_LAMBDAS, lambda_path

__all__ = ["PSiLONClassifier", "PSiLONRegressor"]

_FORMAT = "psilon.estimator"
_FORMAT_VERSION = 1
_MISSING = "__missing__"


# --------------------------------------------------------------------------- preprocessing
def _categories_as_str(X):
    """Categorical values as strings, missing values (None, NaN, pd.NA) as ``np.nan``."""
    frame = pd.DataFrame(X)
    out = frame.astype(object).where(frame.notna(), np.nan)
    return out.map(lambda v: v if isinstance(v, float) and math.isnan(v) else str(v)).to_numpy(dtype=object)


def _numeric_pipeline() -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("impute", SimpleImputer(strategy="constant", fill_value=0.0, add_indicator=True, keep_empty_features=True)),
        ]
    )


def _categorical_pipeline() -> Pipeline:
    return Pipeline(
        [
            ("as_str", FunctionTransformer(_categories_as_str, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="constant", fill_value=_MISSING, keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


def default_preprocessor(X) -> ColumnTransformer:
    """The default preprocessing for ``X`` (unfitted): see the module docstring."""
    if isinstance(X, pd.DataFrame):
        numeric = list(X.select_dtypes(include="number").columns)
        other = [c for c in X.columns if c not in set(numeric)]
    else:
        numeric, other = list(range(np.shape(X)[1])), []
    parts = [("num", _numeric_pipeline(), numeric)]
    if other:
        parts.append(("cat", _categorical_pipeline(), other))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


class _FrozenPreprocessor:
    """The fitted default preprocessing as plain data (what :meth:`save` stores).

    ``transform`` reproduces the fitted :func:`default_preprocessor` exactly.
    """

    def __init__(self, state: dict) -> None:
        self.state = state

    @classmethod
    def from_fitted(cls, ct: ColumnTransformer) -> _FrozenPreprocessor:
        names_in = list(getattr(ct, "feature_names_in_", []))
        state: dict = {"num": None, "cat": None, "names_out": [str(n) for n in ct.get_feature_names_out()]}
        for name, pipe, cols in ct.transformers_:
            if name not in ("num", "cat") or not len(cols):
                continue
            by_name = bool(names_in) and not isinstance(cols[0], (int, np.integer))
            part = {
                "columns": [_plain(c) for c in cols],
                "positions": [names_in.index(c) for c in cols] if by_name else [int(c) for c in cols],
                "by_name": by_name,
            }
            if name == "num":
                scale, imp = pipe.named_steps["scale"], pipe.named_steps["impute"]
                part["mean"] = np.nan_to_num(scale.mean_, nan=0.0).tolist()
                part["scale"] = np.nan_to_num(scale.scale_, nan=1.0).tolist()
                part["indicators"] = imp.indicator_.features_.tolist() if imp.indicator_ is not None else []
            else:
                enc = pipe.named_steps["onehot"]
                part["categories"] = [[str(v) for v in cats] for cats in enc.categories_]
            state[name] = part
        return cls(state)

    @staticmethod
    def _columns(X, part: dict):
        if isinstance(X, pd.DataFrame):
            return X[part["columns"]] if part["by_name"] else X.iloc[:, part["positions"]]
        return np.asarray(X)[:, part["positions"]]

    def transform(self, X):
        blocks = []
        num, cat = self.state["num"], self.state["cat"]
        n = len(X)
        if num is not None:
            values = np.asarray(self._columns(X, num), dtype=np.float64)
            z = (values - np.asarray(num["mean"])) / np.asarray(num["scale"])
            missing = np.isnan(values)
            blocks.append(np.where(missing, 0.0, z))
            if num["indicators"]:
                blocks.append(missing[:, num["indicators"]].astype(np.float64))
        if cat is not None:
            values = _categories_as_str(self._columns(X, cat))
            for j, cats in enumerate(cat["categories"]):
                col = np.array([_MISSING if isinstance(v, float) else v for v in values[:, j]], dtype=object)
                blocks.append((col[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float64))
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0))

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.state["names_out"], dtype=object)


def _plain(value):
    """JSON-able scalar (numpy scalars -> Python)."""
    return value.item() if isinstance(value, np.generic) else value


# --------------------------------------------------------------------------- base
class _PSiLONBase(BaseEstimator):
    """Shared parameters, fitting and persistence of the two estimators."""

    _loss_kind = "regression"

    def __init__(
        self,
        *,
        model="psilon",
        architecture="mlp",
        width=128,
        depth=3,
        lambdas=None,
        selection="holdout",
        validation_fraction=0.2,
        cv=5,
        max_steps=2000,
        epochs=None,
        batch_size=400,
        learning_rate=2e-3,
        eval_every=None,
        restore="final",
        patience=None,
        prune=False,
        preprocessor=None,
        random_state=None,
        verbose=False,
    ):
        self.model = model
        self.architecture = architecture
        self.width = width
        self.depth = depth
        self.lambdas = lambdas
        self.selection = selection
        self.validation_fraction = validation_fraction
        self.cv = cv
        self.max_steps = max_steps
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.eval_every = eval_every
        self.restore = restore
        self.patience = patience
        self.prune = prune
        self.preprocessor = preprocessor
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.preprocessor is None
        return tags

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> np.ndarray:
        name = type(self).__name__
        choices = {
            "model": ("psilon", "standard"),
            "architecture": ("mlp", "resnet"),
            "selection": ("holdout", "cv"),
            "restore": ("final", "best"),
        }
        for param, allowed in choices.items():
            if getattr(self, param) not in allowed:
                raise ValueError(f"{name}: {param} must be one of {allowed}, got {getattr(self, param)!r}")
        for param, low in (("width", 1), ("depth", 2), ("batch_size", 1), ("cv", 2)):
            value = getattr(self, param)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
                raise ValueError(f"{name}: {param} must be an integer >= {low}, got {value!r}")
        if self.epochs is None:
            if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, Integral) or self.max_steps < 1:
                raise ValueError(f"{name}: max_steps must be a positive integer, got {self.max_steps!r}")
        elif isinstance(self.epochs, bool) or not isinstance(self.epochs, Integral) or self.epochs < 1:
            raise ValueError(f"{name}: epochs must be a positive integer or None, got {self.epochs!r}")
        if not isinstance(self.learning_rate, Real) or not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"{name}: learning_rate must be a positive number, got {self.learning_rate!r}")
        if not isinstance(self.validation_fraction, Real) or not 0 < self.validation_fraction < 1:
            raise ValueError(f"{name}: validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if not (self.prune is None or isinstance(self.prune, (bool, Integral))) or (
            not isinstance(self.prune, bool) and self.prune is not None and self.prune < 0
        ):
            raise ValueError(f"{name}: prune must be False, True (last 20% of steps) or a number of steps, got {self.prune!r}")
        grid = PAPER_LAMBDAS if self.lambdas is None else self.lambdas
        try:
            grid = np.atleast_1d(np.asarray(grid, dtype=float)).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: lambdas must be a positive number or a sequence of them, got {self.lambdas!r}") from None
        if grid.size == 0 or not np.all(np.isfinite(grid)) or not np.all(grid > 0):
            raise ValueError(f"{name}: lambdas must be positive finite numbers, got {grid.tolist()}")
        return grid

    def _validate_X(self, X, *, reset: bool):
        name = type(self).__name__
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if X.shape[1] == 0:
                raise ValueError(f"{name}: X has 0 features; at least 1 is required")
            if X.shape[0] == 0:
                raise ValueError(f"{name}: X is empty (0 samples); at least 1 sample is required")
            return X
        allow_nan = not (isinstance(self.preprocessor, str) and self.preprocessor == "passthrough")
        return validate_data(
            self, X, reset=reset, dtype="numeric", ensure_all_finite="allow-nan" if allow_nan else True,
            accept_sparse=False,
        )

    def _transform(self, X) -> np.ndarray:
        Z = self.preprocessor_.transform(X) if self.preprocessor_ is not None else X
        if hasattr(Z, "toarray"):
            Z = Z.toarray()
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2:
            raise ValueError(f"the preprocessor must return a 2-d array, got shape {Z.shape}")
        if not np.all(np.isfinite(Z)):
            raise ValueError(
                "X contains inf (or the preprocessor left NaN/inf); replace infinite values before fit/predict"
            )
        return Z

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y_enc: np.ndarray, loss: str, out_features: int, eval_set):
        grid = self._check_params()
        rs = check_random_state(self.random_state)
        seed = int(rs.randint(0, 2**31 - 1))
        n = len(y_enc)

        if self.preprocessor is None:
            pre = default_preprocessor(X)
        elif isinstance(self.preprocessor, str) and self.preprocessor == "passthrough":
            pre = None
        else:
            pre = clone(self.preprocessor)
        if pre is not None:
            pre.fit(X)
        self.preprocessor_ = pre
        Z = self._transform(X)
        self.n_preprocessed_features_ = Z.shape[1]
        if Z.shape[1] == 0:
            raise ValueError(f"{type(self).__name__}: preprocessing produced 0 features")

        # Which rows train and validate.
        folds = None
        val_data = None
        train_rows = np.arange(n)
        stratify = y_enc.reshape(-1).astype(np.int64) if loss != "mse" else None
        if eval_set is not None:
            if not (isinstance(eval_set, (tuple, list)) and len(eval_set) == 2):
                raise ValueError("eval_set must be a pair (X_val, y_val)")
            Xv = self._validate_X(eval_set[0], reset=False)
            yv = self._encode_eval_y(eval_set[1])
            if len(yv) != _num_rows(Xv):
                raise ValueError(f"eval_set: X_val has {_num_rows(Xv)} rows but y_val has {len(yv)}")
            val_data = (self._transform(Xv), yv)
        elif self.selection == "holdout":
            if n < 2:
                raise ValueError(f"{type(self).__name__}: selection='holdout' needs at least 2 samples, got {n} sample")
            strat = stratify if stratify is not None and np.bincount(stratify).min() >= 2 else None
            n_val = max(1, int(round(self.validation_fraction * n)))
            if strat is not None:
                n_val = max(n_val, int(np.unique(strat).size))
            n_val = min(n_val, n - 1)
            try:
                train_rows, val_rows = train_test_split(np.arange(n), test_size=n_val, random_state=rs, stratify=strat)
            except ValueError:
                train_rows, val_rows = train_test_split(np.arange(n), test_size=n_val, random_state=rs)
            val_data = (Z[val_rows], y_enc[val_rows])
        else:
            if n < self.cv:
                raise ValueError(f"{type(self).__name__}: selection='cv' with cv={self.cv} needs at least {self.cv} samples")
            if stratify is not None and np.bincount(stratify).min() >= self.cv:
                splitter = StratifiedKFold(self.cv, shuffle=True, random_state=rs)
            else:
                splitter = KFold(self.cv, shuffle=True, random_state=rs)
            folds = list(splitter.split(Z, stratify if stratify is not None else np.zeros(n)))

        n_train = len(train_rows) if folds is None else min(len(f[0]) for f in folds)
        steps = self._n_steps(n_train)
        prune_steps = self._prune_steps(steps)
        common = dict(
            loss=loss, model=self.model, architecture=self.architecture, width=self.width, depth=self.depth,
            out_features=out_features, seed=seed, max_steps=steps, batch_size=self.batch_size,
            learning_rate=float(self.learning_rate), eval_every=self.eval_every, prune_steps=prune_steps,
            verbose=bool(self.verbose),
        )
        restore = dict(restore=self.restore, patience=self.patience)
        if folds is None:
            result = lambda_path(
                Z[train_rows], y_enc[train_rows], lambdas=grid, val_data=val_data, **restore, **common
            )
        else:
            result = lambda_path(Z, y_enc, lambdas=grid, folds=folds, **restore, **common)
        self._select(result, grid, folds is not None)
        if folds is not None:
            refit = lambda_path(Z, y_enc, lambdas=self.lambda_, restore="final", **common)
            if refit.status[0] != "ok":
                raise RuntimeError(
                    f"{type(self).__name__}: the refit with lambda={self.lambda_:g} on all data diverged; "
                    "try a smaller learning_rate"
                )
            module = refit.net.member(0)
        else:
            module = result.net.member(self._best_member)
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self.module_ = module
        self.n_steps_ = result.steps
        self.diverged_ = result.diverged
        self._set_module_attributes(prune_steps > 0)
        return self

    def _n_steps(self, n_train: int) -> int:
        if self.epochs is None:
            return int(self.max_steps)
        per_epoch = max(1, n_train // min(self.batch_size, n_train))
        return int(self.epochs) * per_epoch

    def _prune_steps(self, steps: int) -> int:
        if self.prune is None or self.prune is False:
            return 0
        if self.prune is True:
            return max(1, int(round(0.2 * steps)))
        return min(int(self.prune), steps)

    def _output_scale(self) -> np.ndarray:
        return np.ones(1)

    def _select(self, result, grid: np.ndarray, is_cv: bool) -> None:
        from psilon.sparsity import near_sparsity

        k_l = grid.size
        n_folds = result.net.n_members // k_l
        val = result.val_loss.reshape(n_folds, k_l)
        status = np.asarray(result.status, dtype=object).reshape(n_folds, k_l)
        ok = ~(status == "diverged").any(0)
        score = np.where(ok, val.mean(0), np.nan)
        with torch.no_grad():
            ns = near_sparsity(result.net)["overall"].reshape(n_folds, k_l).double().numpy().mean(0)
            lip = lipschitz_bound(result.net).double().numpy() * self._output_scale()[None, :]
            lip = lip.max(-1).reshape(n_folds, k_l).mean(0)
        path = pd.DataFrame(
            {
                "val_loss": score,
                "near_sparsity": np.where(ok, ns, np.nan),
                "lipschitz_bound": np.where(ok, lip, np.nan),
                "status": ["diverged" if not o else ("early_stopped" if (s == "early_stopped").any() else "ok") for o, s in zip(ok, status.T)],
                "kept_step": result.kept_step.reshape(n_folds, k_l).min(0),
            },
            index=pd.Index(grid, name="lambda"),
        )
        if is_cv:
            path.insert(1, "val_loss_std", np.where(ok, val.std(0), np.nan))
        if not np.isfinite(score).any():
            raise RuntimeError(
                f"{type(self).__name__}: every lambda diverged (loss NaN/inf): {result.diverged}; "
                "try a smaller learning_rate or check the inputs"
            )
        best = int(np.nanargmin(score))
        path["selected"] = np.arange(k_l) == best
        self.path_ = path
        self.lambda_ = float(grid[best])
        self._best_member = best
        hist = result.history
        if len(hist):
            wide = hist.pivot_table(index="step", columns="lambda", values="val_loss", aggfunc="mean")
            wide.columns = pd.Index(wide.columns.astype(float), name="lambda")
            self.history_ = wide
        else:
            self.history_ = pd.DataFrame(index=pd.Index([], name="step"))

    def _set_module_attributes(self, pruned: bool) -> None:
        from psilon.sparsity import compact, near_sparsity

        with torch.no_grad():
            lip = lipschitz_bound(self.module_).double().numpy() * self._output_scale()
            self.near_sparsity_ = float(near_sparsity(self.module_)["overall"])
        self.lipschitz_bound_ = float(lip[0]) if lip.size == 1 else lip
        if pruned:
            _, features = compact(self.module_)
            idx = np.asarray(features, dtype=int).reshape(-1)
            self.selected_features_ = self._feature_names_out()[idx]

    def _feature_names_out(self) -> np.ndarray:
        if self.preprocessor_ is not None and hasattr(self.preprocessor_, "get_feature_names_out"):
            try:
                return np.asarray(self.preprocessor_.get_feature_names_out(), dtype=object)
            except (AttributeError, ValueError, TypeError):
                pass
        return np.asarray([f"x{i}" for i in range(self.n_preprocessed_features_)], dtype=object)

    # ------------------------------------------------------------------ predict
    def _raw_predict(self, X) -> np.ndarray:
        check_is_fitted(self, "module_")
        X = self._validate_X(X, reset=False)
        # Float64 evaluation: predictions do not depend on the batch composition (float32
        # matmuls round differently for different batch sizes).
        Z = torch.from_numpy(self._transform(X).astype(np.float64))
        module = copy.deepcopy(self.module_).double()
        outs = []
        with torch.no_grad():
            for s in range(0, Z.shape[0], 8192):
                outs.append(module(Z[s : s + 8192]))
        return torch.cat(outs).double().numpy() if outs else np.zeros((0, self.module_.out_features))

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the fitted estimator to ``path`` (a ``torch.save`` file of plain data).

        Stores the module's weights as tensors and everything else (parameters, the
        fitted default preprocessing, classes, target scaling, ``path_``, ``history_``)
        as JSON. Only the default preprocessing (or ``'passthrough'``) can be saved this
        way; with a custom ``preprocessor`` use pickle/joblib (trusted files only).
        """
        check_is_fitted(self, "module_")
        name = type(self).__name__
        if self.preprocessor is None:
            pre_state = _FrozenPreprocessor.from_fitted(self.preprocessor_).state if isinstance(
                self.preprocessor_, ColumnTransformer
            ) else self.preprocessor_.state
        elif isinstance(self.preprocessor, str) and self.preprocessor == "passthrough":
            pre_state = None
        else:
            raise ValueError(
                f"{name}.save supports the default preprocessing or preprocessor='passthrough'; this estimator "
                "has a custom preprocessor: use joblib.dump (load only files you trust), or put the "
                "preprocessor in a Pipeline and save the estimator with preprocessor='passthrough'"
            )
        params = self.get_params(deep=False)
        params["lambdas"] = None if self.lambdas is None else np.atleast_1d(np.asarray(self.lambdas, dtype=float)).tolist()
        params["preprocessor"] = self.preprocessor
        if params["random_state"] is not None and not isinstance(params["random_state"], Integral):
            params["random_state"] = None  # a RandomState object is not data
        meta = {
            "class": name,
            "params": {k: _plain(v) for k, v in params.items()},
            "module_class": type(self.module_).__name__,
            "module_config": self.module_.config(),
            "preprocessor": pre_state,
            "n_features_in_": int(self.n_features_in_),
            "feature_names_in_": None if not hasattr(self, "feature_names_in_") else [str(c) for c in self.feature_names_in_],
            "n_preprocessed_features_": int(self.n_preprocessed_features_),
            "lambda_": self.lambda_,
            "n_steps_": int(self.n_steps_),
            "path_": _frame_to_split(self.path_.reset_index()),
            "history_": _frame_to_split(self.history_.reset_index()),
            "selected_features_": None if not hasattr(self, "selected_features_") else [str(s) for s in self.selected_features_],
            "extra": self._extra_state(),
        }
        payload = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "meta": json.dumps(meta),
            "state": {k: v.detach().clone() for k, v in self.module_.state_dict().items()},
        }
        torch.save(payload, os.fspath(path))

    @classmethod
    def load(cls, path):
        """Read an estimator written by :meth:`save`.

        Uses ``torch.load(weights_only=True)``: only tensors and plain containers are
        accepted, so a file carrying pickled objects (code) is refused with a ValueError.
        """
        try:
            payload = torch.load(os.fspath(path), weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            raise ValueError(
                f"refusing to load {path!s}: it is not a plain-data psilon file (it holds pickled objects, "
                f"which could run code). Details: {exc}"
            ) from None
        if not (isinstance(payload, dict) and payload.get("format") == _FORMAT):
            raise ValueError(f"{path!s} is not a psilon estimator file (no '{_FORMAT}' header)")
        if payload.get("version") != _FORMAT_VERSION:
            raise ValueError(f"{path!s} has format version {payload.get('version')}, this psilon reads {_FORMAT_VERSION}")
        meta = json.loads(payload["meta"])
        if meta["class"] != cls.__name__:
            raise ValueError(f"{path!s} holds a {meta['class']}; load it with {meta['class']}.load")
        est = cls(**meta["params"])
        module_cls = meta["module_class"]
        if module_cls not in ("PSiLONNet", "PSiLONResNet", "StandardNet", "WeightNormNet"):
            raise ValueError(f"{path!s}: unknown module class {module_cls!r}")
        config = dict(meta["module_config"])
        module = getattr(_nn, module_cls)(config.pop("in_features"), config.pop("out_features"), **config)
        module.load_state_dict(payload["state"])
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        est.module_ = module
        est.preprocessor_ = None if meta["preprocessor"] is None else _FrozenPreprocessor(meta["preprocessor"])
        est.n_features_in_ = meta["n_features_in_"]
        if meta["feature_names_in_"] is not None:
            est.feature_names_in_ = np.asarray(meta["feature_names_in_"], dtype=object)
        est.n_preprocessed_features_ = meta["n_preprocessed_features_"]
        est.lambda_ = meta["lambda_"]
        est.n_steps_ = meta["n_steps_"]
        est.diverged_ = []
        est.path_ = _frame_from_split(meta["path_"]).set_index("lambda")
        hist = _frame_from_split(meta["history_"])
        est.history_ = hist.set_index("step") if "step" in hist.columns else hist
        if len(est.history_.columns):
            est.history_.columns = pd.Index(est.history_.columns.astype(float), name="lambda")
        if meta["selected_features_"] is not None:
            est.selected_features_ = np.asarray(meta["selected_features_"], dtype=object)
        est._restore_extra(meta["extra"])
        est._set_module_attributes(False)
        return est


def _frame_to_split(frame: pd.DataFrame) -> dict:
    data = frame.to_dict(orient="split")
    return {"columns": [_plain(c) for c in data["columns"]], "data": [[_plain(v) for v in row] for row in data["data"]]}


def _frame_from_split(data: dict) -> pd.DataFrame:
    return pd.DataFrame(data["data"], columns=data["columns"])


def _num_rows(X) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


# --------------------------------------------------------------------------- regressor
class PSiLONRegressor(RegressorMixin, _PSiLONBase):
    """PSiLON Net / ResNet regression over a lambda path with validation selection.

    Parameters (keyword-only; defaults follow the paper's recipe except ``width=128`` and
    ``max_steps=2000``, chosen for speed; ``width=500, max_steps=5000`` is the paper's):

    model : ``'psilon'`` (PSiLON Net / ResNet) or ``'standard'`` (the StandardNet baseline).
    architecture : ``'mlp'`` or ``'resnet'`` (CReLU residual blocks).
    width, depth : hidden width and number of weight layers.
    lambdas : positive float or grid; default the paper's 13 values 5e-5 ... 5e-1.
    selection : ``'holdout'`` (``validation_fraction``) or ``'cv'`` (``cv`` folds, trained
        as members together with the lambdas, then a refit on all data).
    max_steps / epochs : optimizer steps, or epochs (``epochs * (n_train // batch)`` steps).
    batch_size, learning_rate : minibatch size, Adam's peak learning rate (one-cycle).
    eval_every : steps between validations (default ``max_steps // 100``).
    restore : ``'final'`` (paper) or ``'best'`` validation state per lambda.
    patience : early stopping per lambda after that many evaluations without improvement.
    prune : ``False``; ``True`` prunes over the last 20% of steps; an int: that many steps.
    preprocessor : ``None`` (default preprocessing), ``'passthrough'``, or a transformer.
    random_state : seed of the split, the initial weights and the batches.
    verbose : show a progress bar over steps.

    Fitted attributes: ``lambda_``, ``path_`` (DataFrame indexed by lambda: ``val_loss``
    (MSE of the scaled target), ``near_sparsity``, ``lipschitz_bound``, ``status``, ...),
    ``history_`` (validation loss, index step, one column per lambda), ``module_`` (the
    selected ``members=None`` torch network), ``lipschitz_bound_``, ``near_sparsity_``,
    ``n_features_in_``, ``feature_names_in_``, ``preprocessor_``, ``y_center_``,
    ``y_scale_``, ``n_steps_``, ``diverged_`` and, with ``prune``, ``selected_features_``
    (names of the preprocessed features the pruned network uses).
    """

    def fit(self, X, y, *, eval_set=None):
        """Fit the lambda path on ``X, y`` and select ``lambda_`` (see the module docstring)."""
        X = self._validate_X(X, reset=True)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        y = check_array(y, ensure_2d=False, dtype="numeric", ensure_all_finite=True, input_name="y")
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] == 0):
            raise ValueError(f"y must be 1-d or 2-d (n, targets), got shape {y.shape}")
        if len(y) != _num_rows(X):
            raise ValueError(f"X has {_num_rows(X)} samples but y has {len(y)}")
        self._y_ndim = y.ndim
        y2 = y.reshape(len(y), -1).astype(np.float64)
        center = np.median(y2, axis=0)
        q75, q25 = np.percentile(y2, [75, 25], axis=0)
        scale = (q75 - q25) / 2.0
        scale = np.where(scale > 0, scale, 1.0)
        self.y_center_, self.y_scale_ = center, scale
        y_enc = ((y2 - center) / scale).astype(np.float32)
        return self._fit(X, y_enc, "mse", y2.shape[1], eval_set)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _encode_eval_y(self, y):
        y = check_array(y, ensure_2d=False, dtype="numeric", ensure_all_finite=True, input_name="y_val")
        return ((y.reshape(len(y), -1) - self.y_center_) / self.y_scale_).astype(np.float32)

    def _output_scale(self) -> np.ndarray:
        return np.asarray(self.y_scale_, dtype=float).reshape(-1)

    def predict(self, X):
        """Predictions ``(n,)`` (or ``(n, targets)`` for a 2-d ``y``) in the units of ``y``."""
        out = self._raw_predict(X) * self.y_scale_ + self.y_center_
        return out.ravel() if self._y_ndim == 1 else out

    def _extra_state(self) -> dict:
        return {"y_center": self.y_center_.tolist(), "y_scale": self.y_scale_.tolist(), "y_ndim": self._y_ndim}

    def _restore_extra(self, extra: dict) -> None:
        self.y_center_ = np.asarray(extra["y_center"], dtype=float)
        self.y_scale_ = np.asarray(extra["y_scale"], dtype=float)
        self._y_ndim = int(extra["y_ndim"])


# --------------------------------------------------------------------------- classifier
class PSiLONClassifier(ClassifierMixin, _PSiLONBase):
    """PSiLON Net / ResNet classification (binary: one logit, BCE; multiclass: softmax).

    Same parameters and fitted attributes as :class:`PSiLONRegressor` (``val_loss`` is the
    validation log loss; ``lipschitz_bound_`` bounds the logits), plus ``classes_``.
    Labels may be any hashable values (strings, integers, booleans).
    """

    def fit(self, X, y, *, eval_set=None):
        """Fit the lambda path on ``X, y`` and select ``lambda_`` (see the module docstring)."""
        X = self._validate_X(X, reset=True)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        y_arr = np.asarray(y)
        if y_arr.dtype.kind == "f" and np.isnan(y_arr).any():
            raise ValueError("y contains NaN; drop or label those samples first")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if len(y) != _num_rows(X):
            raise ValueError(f"X has {_num_rows(X)} samples but y has {len(y)}")
        enc = LabelEncoder().fit(y)
        self.classes_ = enc.classes_
        if self.classes_.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, but the data contains "
                f"only one class: {self.classes_[0]!r}"
            )
        y_int = enc.transform(y)
        self._encoder = enc
        if self.classes_.size == 2:
            return self._fit(X, y_int.astype(np.float32).reshape(-1, 1), "bce", 1, eval_set)
        return self._fit(X, y_int.astype(np.int64), "ce", self.classes_.size, eval_set)

    def _encode_eval_y(self, y):
        y = column_or_1d(y, warn=True)
        unknown = set(np.unique(y).tolist()) - set(self.classes_.tolist())
        if unknown:
            raise ValueError(f"eval_set y has labels not seen in y: {sorted(map(str, unknown))}")
        y_int = np.searchsorted(self.classes_, y) if self.classes_.dtype.kind != "O" else LabelEncoder().fit(
            self.classes_
        ).transform(y)
        if self.classes_.size == 2:
            return y_int.astype(np.float32).reshape(-1, 1)
        return y_int.astype(np.int64)

    def predict_proba(self, X):
        """Class probabilities ``(n, n_classes)`` in the order of ``classes_``."""
        logits = torch.from_numpy(self._raw_predict(X))
        if self.classes_.size == 2:
            p = torch.sigmoid(logits[:, 0])
            return torch.stack([1 - p, p], dim=1).numpy()
        return torch.softmax(logits, dim=1).numpy()

    def decision_function(self, X):
        """Logits: ``(n,)`` for binary problems, ``(n, n_classes)`` otherwise."""
        logits = self._raw_predict(X)
        return logits[:, 0] if self.classes_.size == 2 else logits

    def predict(self, X):
        """Most probable class per sample."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def _extra_state(self) -> dict:
        kind = self.classes_.dtype.kind
        return {"classes": [_plain(c) for c in self.classes_], "classes_kind": kind, "classes_dtype": str(self.classes_.dtype)}

    def _restore_extra(self, extra: dict) -> None:
        kind = extra["classes_kind"]
        if kind in "biufU":
            self.classes_ = np.asarray(extra["classes"], dtype=np.dtype(extra["classes_dtype"]))
        else:
            self.classes_ = np.asarray(extra["classes"], dtype=object)
