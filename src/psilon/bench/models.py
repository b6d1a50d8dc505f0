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

__all__ = ["MODELS", "FitResult", "ModelEntry", "ModelUnavailableError", "curve_records", "fit_psilon", "get_model"]


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
    """

    name: str
    fit: FitFunction
    description: str
    requires: tuple[str, ...] = ()

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


def fit_psilon(X_train, y_train, X_val, y_val, task, params, *, variant: str) -> FitResult:
    """PSiLON Net / PSiLON ResNet / StandardNet through psilon's scikit-learn estimators.

    Builds ``PSiLONRegressor(**kwargs)`` (``PSiLONClassifier`` for classification) with
    ``kwargs`` = the protocol's params (``width``, ``depth``, ``lambdas``, ``max_steps``,
    ``batch_size``, ``selection="holdout"``, ``architecture``), the variant's settings
    (``architecture="mlp"|"resnet"``; StandardNet adds ``model="standard"``) and
    ``random_state``; then calls ``fit(X_train, y_train, eval_set=(X_val, y_val))``.

    Read back with defaults: ``lambda_`` (selected lambda), ``path_`` (DataFrame of the
    validation score per lambda), ``lipschitz_bound_``, ``near_sparsity_`` and
    ``history_`` (validation loss against step per lambda; see :func:`curve_records`).
    """
    from psilon.estimators import PSiLONClassifier, PSiLONRegressor  # bench sits above estimators

    kwargs = {**dict(params), **_PSILON_VARIANTS[variant]}
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
        )
        for name in _PSILON_VARIANTS
    )
}


def get_model(name: str) -> ModelEntry:
    """The registry entry ``name``, or a ValueError listing the known entries."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None
