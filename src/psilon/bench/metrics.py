"""Benchmark metrics: one place that says how a prediction is scored.

Regression is scored by RMSE (primary), MAE and R^2; classification by log loss (primary;
multiclass cross-entropy) and accuracy. Lower is better for every primary metric, so
ranks and model selection on a validation set use the primary metric directly.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, r2_score, root_mean_squared_error

__all__ = ["PRIMARY_METRIC", "evaluate", "predict_for_metrics", "primary_score"]

#: The metric a task type is ranked and tuned by (lower is better).
PRIMARY_METRIC: dict[str, str] = {"regression": "rmse", "binary": "log_loss", "multiclass": "log_loss"}


def predict_for_metrics(predictor, X, task: str, n_classes: int | None = None) -> np.ndarray:
    """Predictions to score: values ``(n,)`` for regression, probabilities ``(n, n_classes)`` otherwise.

    Classifier probability columns follow ``predictor.classes_`` (integer labels
    ``0..n_classes-1``); classes missing from the training data get probability 0.
    """
    if task == "regression":
        return np.asarray(predictor.predict(X), dtype=float).reshape(-1)
    proba = np.asarray(predictor.predict_proba(X), dtype=float)
    classes = np.asarray(getattr(predictor, "classes_", np.arange(proba.shape[1]))).astype(int)
    n_classes = int(max(n_classes or 0, classes.max() + 1))
    full = np.zeros((proba.shape[0], n_classes))
    full[:, classes] = proba
    return full


def evaluate(y_true, prediction: np.ndarray, task: str, *, scale: float = 1.0) -> dict[str, float]:
    """Metrics of ``prediction`` (from :func:`predict_for_metrics`) against ``y_true``.

    For regression, ``scale`` multiplies the errors (to report them in the target's
    original units when the model was fitted on a scaled target).
    """
    y_true = np.asarray(y_true)
    if task == "regression":
        return {
            "rmse": float(root_mean_squared_error(y_true, prediction) * scale),
            "mae": float(mean_absolute_error(y_true, prediction) * scale),
            "r2": float(r2_score(y_true, prediction)),
        }
    labels = np.arange(prediction.shape[1])
    proba = np.clip(prediction, 1e-15, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    return {
        "log_loss": float(log_loss(y_true, proba, labels=labels)),
        "accuracy": float(accuracy_score(y_true, labels[prediction.argmax(axis=1)])),
    }


def primary_score(predictor, X, y, task: str, n_classes: int | None = None) -> float:
    """The primary metric (lower is better) of ``predictor`` on ``(X, y)``."""
    return evaluate(y, predict_for_metrics(predictor, X, task, n_classes), task)[PRIMARY_METRIC[task]]
