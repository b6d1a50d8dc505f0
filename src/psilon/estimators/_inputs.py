"""Checks of the data given to the estimators: ``X`` (scikit-learn's feature-name rules), regression
targets, class labels and ``eval_set``. Each raises a ValueError naming the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, column_or_1d, validate_data

__all__ = ["check_eval_set", "check_labels", "check_regression_targets", "num_rows", "validate_features"]


def num_rows(X) -> int:
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _is_passthrough(preprocessor) -> bool:
    return isinstance(preprocessor, str) and preprocessor == "passthrough"


def validate_features(est, X, *, reset: bool):
    """``X`` checked against (``reset=False``) or recorded in (``reset=True``) the estimator.

    DataFrames stay DataFrames (their columns may be of any type). scikit-learn's rule on
    feature names applies: names given must match those seen at fit; an array given to an
    estimator fitted on a DataFrame draws scikit-learn's warning and is read as the fitted
    columns in order (a DataFrame with those names), so the fitted and the loaded
    estimator treat it the same way.
    """
    owner = type(est).__name__
    if isinstance(X, pd.DataFrame):
        validate_data(est, X, reset=reset, skip_check_array=True)
        if X.shape[1] == 0:
            raise ValueError(f"{owner}: X has 0 features; at least 1 is required")
        if X.shape[0] == 0:
            raise ValueError(f"{owner}: X is empty (0 samples); at least 1 sample is required")
        return X
    if not reset and hasattr(est, "feature_names_in_"):
        values = validate_data(est, X, reset=False, dtype=None, ensure_all_finite=False, accept_sparse=False)
        return pd.DataFrame(values, columns=est.feature_names_in_)
    finite = True if _is_passthrough(est.preprocessor) else "allow-nan"
    return validate_data(est, X, reset=reset, dtype="numeric", ensure_all_finite=finite, accept_sparse=False)


def check_regression_targets(y, n: int | None, *, owner: str, name: str = "y") -> np.ndarray:
    """A finite numeric 1-d ``(n,)`` or 2-d ``(n, outputs)`` target."""
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None")
    y = check_array(y, ensure_2d=False, dtype="numeric", ensure_all_finite=True, input_name=name)
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] == 0):
        raise ValueError(f"{name} must be 1-d or 2-d (n, targets), got shape {y.shape}")
    if n is not None and len(y) != n:
        raise ValueError(f"X has {n} samples but {name} has {len(y)}")
    return y


def check_labels(y, n: int | None, *, owner: str, name: str = "y") -> np.ndarray:
    """Class labels as a 1-d array: no missing label, one comparable type (all strings, all numbers)."""
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None")
    y_arr = np.asarray(y)
    if y_arr.dtype.kind == "f" and np.isnan(y_arr).any():
        raise ValueError(f"{name} contains NaN; drop or label those samples first")
    y = column_or_1d(y, warn=True)
    if y.dtype.kind == "O":
        missing = np.flatnonzero(pd.isna(y))
        if missing.size:
            raise ValueError(
                f"{name} contains missing labels (None/NaN) at rows {missing[:5].tolist()}; drop or label those "
                "samples first"
            )
        try:
            np.unique(y)
        except TypeError:
            kinds = sorted({type(v).__name__ for v in y})
            raise ValueError(f"{name} mixes label types that cannot be ordered ({', '.join(kinds)}); use one type") from None
    check_classification_targets(y)
    if n is not None and len(y) != n:
        raise ValueError(f"X has {n} samples but {name} has {len(y)}")
    return y


def check_eval_set(eval_set):
    """``(X_val, y_val)`` as a pair."""
    if not (isinstance(eval_set, (tuple, list)) and len(eval_set) == 2):
        raise ValueError("eval_set must be a pair (X_val, y_val)")
    return eval_set
