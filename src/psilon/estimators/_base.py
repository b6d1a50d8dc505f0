"""The estimator shared by :class:`PSiLONRegressor` and :class:`PSiLONClassifier`: parameters, ``fit``
over the lambda path, raw predictions and persistence.

A subclass encodes its targets and calls :meth:`_PSiLONBase._fit`; it provides
``_encode_eval_y`` (``eval_set`` targets), ``_extra_state`` / ``_restore_extra`` (what
``save`` stores beyond the shared state) and may override ``_output_scale`` (units of
the network's outputs in the units of the predictions).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from psilon.estimators._certificates import CertificatesMixin, module_feature_path_norms, warn_refit_budget
from psilon.estimators._inputs import check_eval_set, num_rows, validate_features
from psilon.estimators._params import FitParams, check_params
from psilon.estimators._persistence import load_estimator, save_estimator
from psilon.estimators._preprocessing import default_preprocessor, transform_features
from psilon.estimators._selection import frozen, history_frame, lambda_path_frame, module_certificates, used_features
from psilon.estimators._splits import ValidationPlan, cv_plan, eval_set_plan, holdout_plan
from psilon.train import SuccessiveHalving, lambda_path

__all__ = ["_PSiLONBase"]

_PREDICT_CHUNK = 8192


class _PSiLONBase(CertificatesMixin, BaseEstimator):
    """Shared parameters, fitting and persistence of the two estimators."""

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
        max_steps="auto",
        epochs=None,
        batch_size=400,
        learning_rate=1e-2,
        length_lr_scale=5.0,
        init="paper",
        eval_every=None,
        restore="auto",
        patience="auto",
        monitor="objective",
        halving=False,
        prune=False,
        path="independent",
        checkpoint_dir=None,
        lr_step_every=1,
        final_div_factor=1e4,
        preprocessor=None,
        device="auto",
        random_state=None,
        verbose=False,
        lipschitz_max=None,
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
        self.length_lr_scale = length_lr_scale
        self.init = init
        self.eval_every = eval_every
        self.restore = restore
        self.patience = patience
        self.monitor = monitor
        self.halving = halving
        self.prune = prune
        self.path = path
        self.checkpoint_dir = checkpoint_dir
        self.lr_step_every = lr_step_every
        self.final_div_factor = final_div_factor
        self.preprocessor = preprocessor
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.lipschitz_max = lipschitz_max

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.preprocessor is None
        return tags

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> FitParams:
        return check_params(self.get_params(deep=False), owner=type(self).__name__)

    def _validate_X(self, X, *, reset: bool):
        return validate_features(self, X, reset=reset)

    def _transform(self, X) -> np.ndarray:
        return transform_features(self.preprocessor_, X)

    # ------------------------------------------------------------------ hooks of the subclasses
    def _output_scale(self) -> np.ndarray:
        return np.ones(1)

    def _encode_eval_y(self, y) -> np.ndarray:
        raise NotImplementedError

    def _extra_state(self) -> dict:
        raise NotImplementedError

    def _restore_extra(self, extra: dict) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y_enc: np.ndarray, loss: str, out_features: int, eval_set):
        """Fit on validated ``X`` and encoded targets ``y_enc`` (float scaled targets / 0-1 / class ids)."""
        params = self._check_params()
        rs = check_random_state(self.random_state)
        seed = int(rs.randint(0, 2**31 - 1))
        Z = self._fit_preprocessor(X)
        plan = self._validation_plan(Z, y_enc, loss, eval_set, params, rs)
        steps = params.n_steps(plan.n_train)
        prune_steps = params.prune_steps(steps)
        common = dict(
            loss=loss, model=params.model, architecture=params.architecture, width=params.width,
            depth=params.depth, out_features=out_features, seed=seed, max_steps=steps,
            prune_steps=prune_steps, **params.train_options(),
        )
        restore = dict(restore=params.restore, patience=params.patience,
                       callbacks=[SuccessiveHalving()] if params.halving else [])
        if plan.folds is None:
            rows = plan.train_rows
            result = lambda_path(Z[rows], y_enc[rows], lambdas=params.lambdas, val_data=plan.val_data,
                                 checkpoint=params.checkpoint_dir, **restore, **common)
        else:
            result = lambda_path(Z, y_enc, lambdas=params.lambdas, folds=plan.folds, checkpoint=params.checkpoint_dir,
                                 **restore, **common)
        self._select(result, params.lambdas, is_cv=plan.folds is not None, lipschitz_max=params.lipschitz_max)
        if plan.folds is None:
            module = result.net.member(int(np.flatnonzero(self.path_["selected"])[0]))
        else:
            module = self._refit(Z, y_enc, common)
        self.n_steps_ = result.steps
        self.diverged_ = result.diverged
        self._set_fitted_module(module, pruned=prune_steps > 0)
        warn_refit_budget(self, params.lipschitz_max)
        return self

    def _fit_preprocessor(self, X) -> np.ndarray:
        """Fit ``preprocessor_`` on ``X``; the network's input."""
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
        return Z

    def _validation_plan(self, Z, y_enc, loss: str, eval_set, params: FitParams, rs) -> ValidationPlan:
        owner = type(self).__name__
        stratify = y_enc.reshape(-1).astype(np.int64) if loss != "mse" else None
        if eval_set is not None:
            X_val, y_val = check_eval_set(eval_set)
            X_val = self._validate_X(X_val, reset=False)
            y_val = self._encode_eval_y(y_val)
            if len(y_val) != num_rows(X_val):
                raise ValueError(f"eval_set: X_val has {num_rows(X_val)} rows but y_val has {len(y_val)}")
            return eval_set_plan(len(y_enc), (self._transform(X_val), y_val))
        if params.selection == "holdout":
            return holdout_plan(Z, y_enc, fraction=params.validation_fraction, stratify=stratify, rs=rs, owner=owner)
        return cv_plan(len(y_enc), cv=params.cv, stratify=stratify, rs=rs, owner=owner)

    def _select(self, result, grid: np.ndarray, *, is_cv: bool, lipschitz_max: float | None = None) -> None:
        """``path_``, ``lambda_`` and ``history_`` from the lambda path's result."""
        self.path_, best = lambda_path_frame(
            result, grid, is_cv=is_cv, output_scale=self._output_scale(), owner=type(self).__name__,
            lipschitz_max=lipschitz_max,
        )
        self.lambda_ = float(grid[best])
        self.history_ = history_frame(result)

    def _refit(self, Z, y_enc, common: dict):
        """The selected lambda trained on all rows (after CV)."""
        refit = lambda_path(Z, y_enc, lambdas=self.lambda_, restore="final", **common)
        if refit.status[0] != "ok":
            raise RuntimeError(
                f"{type(self).__name__}: the refit with lambda={self.lambda_:g} on all data diverged; "
                "try a smaller learning_rate"
            )
        return refit.net.member(0)

    def _set_fitted_module(self, module, *, pruned: bool) -> None:
        """``module_`` and its certificates (``lipschitz_bound_``, ``near_sparsity_``, ``selected_features_``)."""
        self.module_ = frozen(module)
        self.lipschitz_bound_, self.near_sparsity_ = module_certificates(self.module_, self._output_scale())
        self.feature_path_norms_ = module_feature_path_norms(self.module_)
        if pruned:
            self.selected_features_ = used_features(self.module_, self._feature_names_out())

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
        with torch.no_grad():
            outs = [module(Z[s : s + _PREDICT_CHUNK]) for s in range(0, Z.shape[0], _PREDICT_CHUNK)]
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
        save_estimator(self, path)

    @classmethod
    def load(cls, path):
        """Read an estimator written by :meth:`save`.

        Uses ``torch.load(weights_only=True)``: only tensors and plain containers are
        accepted, so a file carrying pickled objects (code) is refused with a ValueError.
        A file that cannot be read or decoded (truncated, empty, another format, broken
        meta data) gives ``ValueError("<path> is not a valid psilon model file (<reason>)")``.
        """
        return load_estimator(cls, path)
