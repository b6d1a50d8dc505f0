"""The benchmark's model registry.

Every entry of :data:`MODELS` is a :class:`ModelEntry` whose ``fit`` takes
``(X_train, y_train, X_val, y_val, task, params)`` and returns a :class:`FitResult`:
a fitted predictor (``predict``; ``predict_proba`` for classification) plus what the
report needs (selected hyper-parameters, validation path, near-sparsity, Lipschitz
bound, training curves when the model has them).

Conventions shared by all entries:

- inputs are already preprocessed by the protocol (standardized float features;
  scaled float target for regression; integer labels ``0..K-1`` for classification);
- ``task`` is ``"regression"``, ``"binary"`` or ``"multiclass"``;
- ``params`` are the protocol's parameters for the model plus ``random_state`` (the
  split's seed), injected by the runner;
- hyper-parameters are tuned on ``(X_val, y_val)`` with the primary metric of
  :mod:`psilon.bench.metrics` (RMSE / log loss), as in the paper: every candidate is
  fitted on the training rows only, the best one is kept (no refit);
- a model whose optional dependency is missing raises :class:`ModelUnavailableError`
  (the runner records the task as skipped, with the reason).

The PSiLON entries (``psilon-net``, ``psilon-resnet``, ``standard-net``) use
``psilon.PSiLONRegressor`` / ``psilon.PSiLONClassifier``; see :func:`fit_psilon` for the
exact interface they expect.

The ``deep-resnet`` entry is the deep ablation's CReLU ResNet (paper notes P1.8), trained
with :func:`psilon.train.lambda_path`; its seven normalization variants are the values of
its ``variant`` parameter (:data:`ABLATION_VARIANTS`), see :func:`fit_deep_resnet`.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import ParameterGrid

from psilon.bench.metrics import primary_score

__all__ = ["ABLATION_VARIANTS", "MODELS", "FitResult", "ModelEntry", "ModelUnavailableError", "curve_records", "fit_psilon", "get_model"]


class ModelUnavailableError(RuntimeError):
    """The model cannot run here (an optional package is missing); the message says which."""


@dataclass
class FitResult:
    """A fitted predictor and what the report records about it.

    ``selected``: the chosen hyper-parameters; ``path``: one record per candidate with
    its validation score (``val_score``, lower is better); ``curves``: long-format
    records ``{"lambda", "step", "value"}`` of validation loss against step.
    """

    predictor: Any
    selected: dict[str, Any] = field(default_factory=dict)
    path: list[dict[str, Any]] = field(default_factory=list)
    near_sparsity: float | None = None
    lipschitz_bound: float | None = None
    curves: list[dict[str, float]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


FitFunction = Callable[[Any, Any, Any, Any, str, Mapping[str, Any]], FitResult]


@dataclass(frozen=True)
class ModelEntry:
    """A named model: its ``fit`` function, a one-line description and what it imports.

    ``requires`` lists optional modules (``"pytabkit"``) or module attributes (``"module:attr"``).
    ``device``: the model trains with PyTorch and takes a ``device`` parameter, which the
    runner sets from ``psilon bench --device`` (an execution choice, not part of the task key).
    ``checkpoints``: the model can save partial work in a ``checkpoint_dir`` parameter,
    which the runner sets to a folder of the task's own (not part of the task key either).
    """

    name: str
    fit: FitFunction
    description: str
    requires: tuple[str, ...] = ()
    device: bool = False
    checkpoints: bool = False

    def unavailable_reason(self) -> str | None:
        """Why this model cannot run here, or ``None`` when it can."""
        for requirement in self.requires:
            module, _, attribute = requirement.partition(":")
            try:
                imported = importlib.import_module(module)
                if attribute:
                    getattr(imported, attribute)
            except (ImportError, AttributeError) as exc:
                return f"{self.name} needs {requirement!r}, which is not importable here ({exc})"
        return None


def _is_classification(task: str) -> bool:
    if task not in ("regression", "binary", "multiclass"):
        raise ValueError(f"task must be 'regression', 'binary' or 'multiclass', not {task!r}")
    return task != "regression"


def _n_classes(y_train, y_val) -> int:
    return int(max(np.max(y_train), np.max(y_val))) + 1


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]


def _tune(
    make: Callable[..., Any], grid: Mapping[str, list], X_train, y_train, X_val, y_val, task: str,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> FitResult:
    """Fit ``make(**candidate)`` for every candidate of ``grid``; keep the best on validation."""
    n_classes = _n_classes(y_train, y_val) if _is_classification(task) else None
    best, best_score, best_params, path = None, np.inf, {}, []
    for candidate in ParameterGrid({k: _as_list(v) for k, v in grid.items()}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            from sklearn.exceptions import ConvergenceWarning

            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model = make(**candidate).fit(X_train, y_train, **(fit_kwargs or {}))
        score = primary_score(model, X_val, y_val, task, n_classes)
        path.append({**candidate, "val_score": score})
        if best is None or score < best_score:
            best, best_score, best_params = model, score, candidate
    return FitResult(best, selected=dict(best_params), path=path)


def _split_params(params: Mapping[str, Any], tuned: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[dict, dict, int | None]:
    params = dict(params)
    seed = params.pop("random_state", None)
    unknown = set(params) - set(tuned) - set(allowed)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))}; accepted: {', '.join(tuned + allowed)}")
    return {k: params[k] for k in tuned if k in params}, {k: params[k] for k in allowed if k in params}, seed


# --------------------------------------------------------------------------- baselines


def fit_linear(X_train, y_train, X_val, y_val, task, params) -> FitResult:
    """Ridge (regression) or logistic regression with ``C = 1 / alpha``, ``alphas`` tuned on validation."""
    from sklearn.linear_model import LogisticRegression, Ridge

    grid, fixed, seed = _split_params(params, (), ("alphas", "max_iter"))
    alphas = _as_list(fixed.get("alphas", [1.0]))
    if _is_classification(task):
        max_iter = fixed.get("max_iter", 2000)
        make = lambda alpha: LogisticRegression(C=1.0 / alpha, max_iter=max_iter)  # noqa: E731
    else:
        make = lambda alpha: Ridge(alpha=alpha)  # noqa: E731
    return _tune(make, {"alpha": alphas}, X_train, y_train, X_val, y_val, task)


def fit_random_forest(X_train, y_train, X_val, y_val, task, params) -> FitResult:
    """Random forest (``n_jobs=1`` inside a task), ``min_samples_leaf`` tuned on validation."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    grid, fixed, seed = _split_params(params, ("min_samples_leaf",), ("n_estimators", "max_features"))
    cls = RandomForestClassifier if _is_classification(task) else RandomForestRegressor
    make = partial(cls, n_jobs=1, random_state=seed, **fixed)
    return _tune(make, grid, X_train, y_train, X_val, y_val, task)


def fit_hist_gb(X_train, y_train, X_val, y_val, task, params) -> FitResult:
    """HistGradientBoosting, ``learning_rate`` (and optionally ``max_leaf_nodes``) tuned on validation.

    ``early_stopping=True`` stops boosting on the task's validation set (the one the
    networks select lambda on), not on a slice of the training rows: ``max_iter`` is then
    an upper bound. Without it, 500 iterations on 2,000 rows overfit the probabilities
    (magic: validation log loss 0.41 at learning rate 0.03, 0.34 early-stopped).
    """
    import inspect

    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    grid, fixed, seed = _split_params(
        params, ("learning_rate", "max_leaf_nodes"), ("max_iter", "early_stopping", "n_iter_no_change")
    )
    cls = HistGradientBoostingClassifier if _is_classification(task) else HistGradientBoostingRegressor
    fit_kwargs = None
    if fixed.get("early_stopping") is True:
        if "X_val" not in inspect.signature(cls.fit).parameters:
            import sklearn

            raise ValueError(
                f"hist-gb with early_stopping=true stops on the validation set, which needs a scikit-learn whose "
                f"HistGradientBoosting fit accepts X_val (this is {sklearn.__version__}): upgrade scikit-learn"
            )
        fit_kwargs = {"X_val": X_val, "y_val": y_val}
    make = partial(cls, random_state=seed, **fixed)
    return _tune(make, grid, X_train, y_train, X_val, y_val, task, fit_kwargs)


def fit_mlp(X_train, y_train, X_val, y_val, task, params) -> FitResult:
    """scikit-learn MLP (Adam), L2 penalty ``alpha`` tuned on validation."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    grid, fixed, seed = _split_params(params, ("alpha",), ("hidden_layer_sizes", "max_iter", "learning_rate_init"))
    if "hidden_layer_sizes" in fixed:
        fixed["hidden_layer_sizes"] = tuple(_as_list(fixed["hidden_layer_sizes"]))
    cls = MLPClassifier if _is_classification(task) else MLPRegressor
    make = partial(cls, random_state=seed, **fixed)
    return _tune(make, grid, X_train, y_train, X_val, y_val, task)


def fit_pytabkit(X_train, y_train, X_val, y_val, task, params, *, family: str) -> FitResult:
    """pytabkit's ``<family>_Regressor`` / ``<family>_Classifier`` (tuned defaults), early-stopped on validation."""
    try:
        import pytabkit
    except ImportError:
        raise ModelUnavailableError(
            f"{family} needs the optional package 'pytabkit' (install psilon[peers])"
        ) from None
    kwargs = dict(params)
    seed = kwargs.pop("random_state", None)
    kwargs.setdefault("n_threads", 1)
    cls = getattr(pytabkit, f"{family}_{'Classifier' if _is_classification(task) else 'Regressor'}")
    model = cls(random_state=seed, **kwargs)
    model.fit(np.asarray(X_train), np.asarray(y_train), X_val=np.asarray(X_val), y_val=np.asarray(y_val))
    return FitResult(model, selected={})


# --------------------------------------------------------------------------- PSiLON

#: What the PSiLON entries pass to the estimator: everything from the protocol's params,
#: plus these per-entry settings.
_PSILON_VARIANTS: dict[str, dict[str, Any]] = {
    "psilon-net": {"architecture": "mlp"},
    "psilon-resnet": {"architecture": "resnet"},
    "standard-net": {"architecture": "mlp", "model": "standard"},
}


#: The paper's recipe (P1.7), under every PSiLON entry unless the protocol's params say
#: otherwise: the estimators' defaults are psilon's faster recipe, and the committed
#: paper-recipe stores must stay reproducible with their task parameters unchanged.
PAPER_RECIPE: dict[str, Any] = {
    "init": "paper", "learning_rate": 2e-3, "length_lr_scale": 1.0, "restore": "final", "patience": None,
    "max_steps": 5000,
    # early stopping compared the validation data loss before ``monitor`` existed: the rows
    # whose params set restore='best' or patience but no monitor were made that way
    "monitor": "data",
}


def fit_psilon(X_train, y_train, X_val, y_val, task, params, *, variant: str) -> FitResult:
    """PSiLON Net / PSiLON ResNet / StandardNet through psilon's scikit-learn estimators.

    Builds ``PSiLONRegressor(**kwargs)`` (``PSiLONClassifier`` for classification) with
    ``kwargs`` = :data:`PAPER_RECIPE` overridden by the protocol's params (``width``, ``depth``, ``lambdas``, ``max_steps``,
    ``batch_size``, ``selection="holdout"``, ``architecture``), the variant's settings
    (``architecture="mlp"|"resnet"``; StandardNet adds ``model="standard"``) and
    ``random_state``; then calls ``fit(X_train, y_train, eval_set=(X_val, y_val))``. The runner
    passes ``checkpoint_dir`` (a folder of the task's own): a killed task resumes there.

    Read back with defaults: ``lambda_`` (selected lambda), ``path_`` (DataFrame of the
    validation score per lambda), ``lipschitz_bound_``, ``near_sparsity_`` and
    ``history_`` (validation loss against step per lambda; see :func:`curve_records`).
    """
    from psilon.estimators import PSiLONClassifier, PSiLONRegressor  # bench sits above estimators

    kwargs = {**PAPER_RECIPE, **dict(params), **_PSILON_VARIANTS[variant]}
    cls = PSiLONClassifier if _is_classification(task) else PSiLONRegressor
    model = cls(**kwargs)
    model.fit(X_train, y_train, eval_set=(X_val, y_val))
    lam = getattr(model, "lambda_", None)
    path = getattr(model, "path_", None)
    return FitResult(
        model,
        selected={} if lam is None else {"lambda": _scalar(lam)},
        path=_frame_records(path),
        near_sparsity=_scalar(getattr(model, "near_sparsity_", None)),
        lipschitz_bound=_scalar(getattr(model, "lipschitz_bound_", None)),
        curves=curve_records(getattr(model, "history_", None)),
    )


def _scalar(value):
    if value is None:
        return None
    value = np.asarray(value)
    return float(value) if value.size == 1 else value.astype(float).tolist()


def _frame_records(frame) -> list[dict[str, Any]]:
    if frame is None:
        return []
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if isinstance(frame, pd.DataFrame):
        if frame.index.name is not None or not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()
        return [{str(k): _json_value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    return [dict(r) for r in frame]


def _json_value(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


_VALUE_COLUMNS = ("val_loss", "validation_loss", "loss", "val_score", "score", "value")


def curve_records(history) -> list[dict[str, float]] | None:
    """Normalize training curves to records ``{"lambda", "step", "value"}``.

    Accepts ``None``; a long DataFrame with ``lambda`` and ``step`` columns and a value
    column (one of ``val_loss``, ``validation_loss``, ``loss``, ``val_score``, ``score``,
    ``value``); a wide DataFrame (index: step, one column per lambda; missing values are
    dropped), as psilon's estimators give in ``history_``; or a dict
    ``{lambda: values}`` (values a sequence indexed by step, or a Series indexed by step).
    """
    if history is None:
        return None
    records: list[dict[str, float]] = []
    if isinstance(history, pd.DataFrame):
        frame = history.reset_index() if "step" not in history.columns and history.index.name == "step" else history
        if {"lambda", "step"} <= set(frame.columns):
            value = next((c for c in _VALUE_COLUMNS if c in frame.columns), None)
            if value is None:
                raise ValueError(f"history_ has no value column; expected one of {_VALUE_COLUMNS}")
            for lam, step, val in frame[["lambda", "step", value]].itertuples(index=False):
                records.append({"lambda": float(lam), "step": int(step), "value": float(val)})
            return records
        history = {col: history[col] for col in history.columns}
    if isinstance(history, Mapping):
        for lam, values in history.items():
            series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=float).reshape(-1))
            for step, val in series.dropna().items():
                records.append({"lambda": float(lam), "step": int(step), "value": float(val)})
        return records
    raise ValueError(f"cannot read training curves from a {type(history).__name__}")


# --------------------------------------------------------------------------- deep ablation

#: The deep ablation's variants (P1.8) as options of one CReLU ResNet family:
#: ``model`` of :func:`psilon.train.build_network`, its ``network`` options, and whether
#: the directions are projected onto the unit L1 sphere before every step.
ABLATION_VARIANTS: dict[str, dict[str, Any]] = {
    "psilon": {"name": "PSiLON", "model": "psilon",
               "network": {"norm": "l1", "shared": True, "penalty": "path", "bound": "improved"}},
    "l1-ib": {"name": "L1-IB", "model": "psilon",
              "network": {"norm": "l1", "shared": False, "penalty": "path", "bound": "improved"}},
    "l2-ib": {"name": "L2-IB", "model": "psilon",
              "network": {"norm": "l2", "shared": False, "penalty": "path", "bound": "improved"}},
    "l1-ob": {"name": "L1-OB", "model": "psilon",
              "network": {"norm": "l1", "shared": False, "penalty": "path", "bound": "original"}},
    "l2-ob": {"name": "L2-OB", "model": "psilon",
              "network": {"norm": "l2", "shared": False, "penalty": "path", "bound": "original"}},
    "standard": {"name": "Standard", "model": "standard", "network": {"norm": "l2", "shared": False, "penalty": "squared"}},
    "projected": {"name": "Projected PSiLON", "model": "psilon", "projected": True,
                  "network": {"norm": "l1", "shared": True, "penalty": "path", "bound": "improved"}},
}

_DEEP_FIXED = ("variant", "lambdas", "width", "depth", "epochs", "batch_size", "learning_rate", "eval_every_epochs",
               "prune_epochs", "restore", "warmup", "div_factor", "final_div_factor", "device")


@dataclass(frozen=True)
class _DeepRecipe:
    """The checked parameters of a ``deep-resnet`` fit, and the steps they give."""

    variant: str
    lambdas: list[float]
    steps_per_epoch: int
    train: dict[str, Any]
    build: dict[str, Any]


def _deep_recipe(params: Mapping[str, Any], n_train: int) -> _DeepRecipe:
    _, p, seed = _split_params(params, (), _DEEP_FIXED)
    variant = p.get("variant")
    if variant not in ABLATION_VARIANTS:
        raise ValueError(f"deep-resnet needs variant= one of {', '.join(ABLATION_VARIANTS)}, not {variant!r}")
    spec = ABLATION_VARIANTS[variant]
    if "lambdas" not in p or "epochs" not in p:
        raise ValueError("deep-resnet needs 'lambdas' (one or more) and 'epochs'")
    batch = int(p.get("batch_size", 200))
    steps_per_epoch = -(-n_train // min(batch, n_train))
    epochs, prune_epochs = int(p["epochs"]), int(p.get("prune_epochs", 0))
    if epochs < 1 or not 0 <= prune_epochs <= epochs:
        raise ValueError(f"deep-resnet needs epochs >= 1 and 0 <= prune_epochs <= epochs, got {epochs} and {prune_epochs}")
    if prune_epochs and spec["network"]["norm"] != "l1":
        raise ValueError(f"prune_epochs needs an L1 variant (pruning projects onto the L1 sphere); {variant} is L2")
    lr = float(p.get("learning_rate", 2e-2))
    train = {
        "max_steps": epochs * steps_per_epoch,
        "batch_size": batch,
        "learning_rate": lr,
        "warmup": float(p.get("warmup", 0.2)),
        "div_factor": float(p.get("div_factor", 20.0)),
        # the reference's OneCycle ends near 5e-5: final_div_factor = (lr / 1e-4) / 10 (P1.7)
        "final_div_factor": float(p.get("final_div_factor", max(lr / 1e-4 / 10, 1.0))),
        "lr_step_every": steps_per_epoch,
        "eval_every": int(p.get("eval_every_epochs", 5)) * steps_per_epoch,
        "restore": p.get("restore", "final"),
        "projected": bool(spec.get("projected", False)),
        "prune_steps": prune_epochs * steps_per_epoch,
        "device": p.get("device", "cpu"),
    }
    build = {"model": spec["model"], "architecture": "resnet", "width": int(p.get("width", 500)),
             "depth": int(p.get("depth", 12)), "network": dict(spec["network"]),
             "seed": 0 if seed is None else int(seed)}
    return _DeepRecipe(variant, [float(v) for v in _as_list(p["lambdas"])], steps_per_epoch, train, build)


class NetworkClassifier:
    """A trained ``members=None`` psilon network as a classifier: ``predict_proba`` / ``predict``."""

    def __init__(self, net, n_classes: int, batch_size: int = 2048) -> None:
        self.net = net.eval()
        self.classes_ = np.arange(n_classes)
        self.batch_size = batch_size

    def predict_proba(self, X) -> np.ndarray:
        import torch

        X = np.asarray(X, dtype=np.float32)
        with torch.no_grad():
            parts = [torch.softmax(self.net(torch.from_numpy(X[i : i + self.batch_size])), dim=-1).double().numpy()
                     for i in range(0, len(X), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.classes_)))

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _selected_member(result) -> int:
    """The member with the lowest validation loss of its kept state (diverged members never)."""
    val = np.asarray(result.val_loss, dtype=float)
    ok = np.isfinite(val) & np.array([s != "diverged" for s in result.status])
    if not ok.any():
        raise RuntimeError(f"every member diverged (lambdas {result.lambdas.tolist()}); lower the learning rate")
    return int(np.flatnonzero(ok)[np.argmin(val[ok])])


def fit_deep_resnet(X_train, y_train, X_val, y_val, task, params) -> FitResult:
    """The deep ablation's CReLU ResNet (P1.8): one stacked run over ``lambdas``, the best member kept.

    ``params``: ``variant`` (a key of :data:`ABLATION_VARIANTS`), ``lambdas`` (one value, or
    a grid trained as members of one run), ``width``, ``depth`` (weight layers: 10 blocks
    = 12), ``epochs``, ``batch_size`` (200), ``learning_rate`` (2e-2), ``eval_every_epochs``
    (5), ``prune_epochs`` (0: pruning over the last epochs, L1 variants only), ``restore``
    (``'final'``), ``warmup``/``div_factor``/``final_div_factor`` of the one-cycle schedule
    (default: 20% warm-up from lr/20, ending near 5e-5), ``device``; ``random_state``
    seeds the initial weights and batches. The schedule advances once per epoch, as in
    the reference code. Loss: cross-entropy on logits; the member with the lowest final
    validation loss is selected. Records near-sparsity, exact sparsity, the Lipschitz
    bound (max over outputs), steps and ms per step, and every member's validation loss.
    """
    import time

    from psilon.pathnorm import lipschitz_bound
    from psilon.sparsity import exact_sparsity, near_sparsity
    from psilon.train import lambda_path

    if not _is_classification(task):
        raise ValueError("deep-resnet is a classifier (cross-entropy); this task is a regression")
    recipe = _deep_recipe(params, len(y_train))
    n_classes = _n_classes(y_train, y_val)
    started = time.perf_counter()
    result = lambda_path(np.asarray(X_train, dtype=np.float32), np.asarray(y_train, dtype=np.int64),
                         lambdas=recipe.lambdas, loss="ce", out_features=n_classes, init="paper",
                         val_data=(np.asarray(X_val, dtype=np.float32), np.asarray(y_val, dtype=np.int64)),
                         **recipe.build, **recipe.train)
    seconds = time.perf_counter() - started
    k = _selected_member(result)
    net = result.net.member(k)
    members_ns = np.atleast_1d(near_sparsity(result.net)["overall"].numpy())
    bound = lipschitz_bound(net).detach().numpy()
    path = [{"lambda": float(lam), "val_score": float(v), "status": st, "near_sparsity": float(ns)}
            for lam, v, st, ns in zip(result.lambdas, result.val_loss, result.status, members_ns)]
    extra = {
        "variant": recipe.variant,
        "exact_sparsity": float(exact_sparsity(net)["overall"]),
        "pruned": recipe.train["prune_steps"] > 0,
        "lipschitz_bound_per_output": bound.astype(float).tolist(),
        "steps": int(result.steps),
        "steps_per_epoch": recipe.steps_per_epoch,
        "ms_per_step": 1000.0 * seconds / max(result.steps, 1),
        "members": len(recipe.lambdas),
    }
    return FitResult(
        NetworkClassifier(net, n_classes),
        selected={"lambda": float(result.lambdas[k])},
        path=path,
        near_sparsity=float(members_ns[k]),
        lipschitz_bound=float(bound.max()),
        curves=curve_records(result.history[["lambda", "step", "val_loss"]]),
        extra=extra,
    )


# --------------------------------------------------------------------------- registry

MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry("linear", fit_linear, "Ridge / logistic regression (C = 1/alpha), alpha tuned on validation"),
        ModelEntry("random-forest", fit_random_forest, "Random forest, min_samples_leaf tuned on validation"),
        ModelEntry("hist-gb", fit_hist_gb, "HistGradientBoosting, learning rate tuned on validation"),
        ModelEntry("mlp", fit_mlp, "scikit-learn MLP, L2 alpha tuned on validation"),
        ModelEntry("realmlp-td", partial(fit_pytabkit, family="RealMLP_TD"), "pytabkit RealMLP-TD", ("pytabkit",)),
        ModelEntry("tabm-d", partial(fit_pytabkit, family="TabM_D"), "pytabkit TabM-D", ("pytabkit",)),
    )
    + tuple(
        ModelEntry(
            name,
            partial(fit_psilon, variant=name),
            f"{name} via psilon's estimators (lambda path)",
            device=True,
            checkpoints=True,
        )
        for name in _PSILON_VARIANTS
    )
    + (
        ModelEntry(
            "deep-resnet",
            fit_deep_resnet,
            "deep ablation CReLU ResNet (P1.8); variant= psilon, l1-ib, l2-ib, l1-ob, l2-ob, standard, projected",
            device=True,
        ),
    )
}


def get_model(name: str) -> ModelEntry:
    """The registry entry ``name``, or a ValueError listing the known entries."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None
