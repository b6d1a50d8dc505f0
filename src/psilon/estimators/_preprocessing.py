"""Preprocessing of the estimators: features (default pipeline, its frozen form, the final
numeric matrix) and the robust target scaling.

Numeric columns are divided by a power of two per column before they are standardized:
``x / 2**e`` with ``max |x| < 2**e``. Dividing by a power of two is exact in floating
point, so ordinary data gives bit for bit the plain standardization, while values such as
``1e200`` or ``1e-200`` (whose squares overflow or underflow) are standardized correctly
instead of turning into NaN and then into "missing" values.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted

__all__ = ["FrozenPreprocessor", "default_preprocessor", "robust_target_scaling", "transform_features"]

MISSING = "__missing__"
_FLOAT32_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- exact rescaling
def column_exponents(values: np.ndarray) -> np.ndarray:
    """Per column of a 2-d float array the ``e`` with ``max |finite value| < 2**e`` (0 if none is nonzero)."""
    if values.shape[0] == 0:
        return np.zeros(values.shape[1], dtype=int)
    magnitude = np.where(np.isfinite(values), np.abs(values), 0.0)
    return np.frexp(magnitude.max(axis=0))[1].astype(int)


def robust_target_scaling(y):
    """``(center, scale)`` of a regression target, per column: median and IQR / 2.

    A column whose IQR is 0 falls back to its standard deviation, then to 1. Computed on
    ``y / 2**e`` (an exact rescaling), so huge or tiny targets neither overflow nor
    underflow. ``y`` 1-d gives two floats, 2-d ``(n, outputs)`` two arrays of ``outputs``.
    The scaled target is ``(y - center) / scale``.
    """
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[0] == 0:
        raise ValueError(f"robust_target_scaling: y must be 1-d or 2-d with at least 1 row, got shape {arr.shape}")
    cols = arr.reshape(arr.shape[0], -1)
    if not np.all(np.isfinite(cols)):
        raise ValueError("robust_target_scaling: y contains NaN or infinity")
    exponent = column_exponents(cols)
    scaled = np.ldexp(cols, -exponent)
    q25, median, q75 = np.percentile(scaled, [25, 50, 75], axis=0)
    half_iqr = (q75 - q25) / 2
    spread = np.where(half_iqr > 0, half_iqr, scaled.std(axis=0))
    scale = np.ldexp(spread, exponent)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    center = np.ldexp(median, exponent)
    if arr.ndim == 1:
        return float(center[0]), float(scale[0])
    return center, scale


# --------------------------------------------------------------------------- numeric columns
def numeric_values(X) -> np.ndarray:
    """The numeric columns of ``X`` as a 2-d float64 array; missing values (None, pd.NA) as NaN."""
    if isinstance(X, pd.DataFrame):
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    return check_array(X, dtype=np.float64, ensure_all_finite=False, ensure_min_samples=0)


def reject_infinity(values: np.ndarray, columns) -> None:
    """A ValueError naming the first infinite value of ``values`` (columns named by ``columns``)."""
    rows, cols = np.nonzero(np.isinf(values))
    if rows.size:
        raise ValueError(
            f"X contains infinity (column {columns[cols[0]]!r}, row {rows[0]}); replace infinite values "
            "(NaN marks a missing value)"
        )


def standardize(values: np.ndarray, exponent, mean, scale, columns) -> np.ndarray:
    """``(values / 2**exponent - mean) / scale``; NaN stays NaN, infinity is an error.

    ``columns`` name the columns in the error messages.
    """
    reject_infinity(values, columns)
    with np.errstate(over="ignore", invalid="ignore"):
        z = (np.ldexp(values, -np.asarray(exponent, dtype=int)) - np.asarray(mean)) / np.asarray(scale)
    big_rows, big_cols = np.nonzero(np.isinf(z))
    if big_rows.size:
        j = big_cols[0]
        raise ValueError(
            f"X column {columns[j]!r} holds {values[big_rows[0], j]!r} (row {big_rows[0]}), too large for the "
            "scaling fitted on the training data: the standardized value overflows"
        )
    return z


class ScaledStandardizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardization of numeric columns after an exact power-of-two rescaling (see the module docstring).

    Fitted attributes: ``exponent_``, ``mean_`` and ``scale_`` (of the rescaled columns;
    an all-missing column gets mean 0 and scale 1), ``n_features_in_``.
    """

    def fit(self, X, y=None):
        values = numeric_values(X)
        self.n_features_in_ = values.shape[1]
        self.columns_ = list(X.columns) if isinstance(X, pd.DataFrame) else list(range(values.shape[1]))
        reject_infinity(values, self.columns_)
        self.exponent_ = column_exponents(values)
        scaler = StandardScaler().fit(np.ldexp(values, -self.exponent_))
        self.mean_ = np.nan_to_num(scaler.mean_, nan=0.0)
        self.scale_ = np.nan_to_num(scaler.scale_, nan=1.0)
        return self

    def transform(self, X):
        check_is_fitted(self, "scale_")
        values = numeric_values(X)
        if values.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {values.shape[1]} numeric columns, the scaling was fitted on {self.n_features_in_}")
        return standardize(values, self.exponent_, self.mean_, self.scale_, self.columns_)


# --------------------------------------------------------------------------- default pipeline
def categories_as_str(X):
    """Categorical values as strings, missing values (None, NaN, pd.NA) as ``np.nan``."""
    frame = pd.DataFrame(X)
    out = frame.astype(object).where(frame.notna(), np.nan)
    return out.map(lambda v: v if isinstance(v, float) and math.isnan(v) else str(v)).to_numpy(dtype=object)


def _numeric_pipeline() -> Pipeline:
    return Pipeline(
        [
            ("scale", ScaledStandardizer()),
            ("impute", SimpleImputer(strategy="constant", fill_value=0.0, add_indicator=True, keep_empty_features=True)),
        ]
    )


def _categorical_pipeline() -> Pipeline:
    return Pipeline(
        [
            ("as_str", FunctionTransformer(categories_as_str, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING, keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


def default_preprocessor(X) -> ColumnTransformer:
    """The default preprocessing for ``X`` (unfitted).

    Numeric columns: exact power-of-two rescaling and standardization, then missing values
    set to 0 (the mean) with a missing-indicator column per feature that had missing values
    at fit. Other columns (strings, categories, booleans; DataFrames only): one-hot, with
    missing values as their own category and unseen categories encoded as all zeros.
    """
    if isinstance(X, pd.DataFrame):
        numeric = list(X.select_dtypes(include="number").columns)
        other = [c for c in X.columns if c not in set(numeric)]
    else:
        numeric, other = list(range(np.shape(X)[1])), []
    parts = [("num", _numeric_pipeline(), numeric)]
    if other:
        parts.append(("cat", _categorical_pipeline(), other))
    return ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)


# --------------------------------------------------------------------------- frozen form
def plain(value):
    """JSON-able scalar (numpy scalars -> Python)."""
    return value.item() if isinstance(value, np.generic) else value


class FrozenPreprocessor:
    """The fitted default preprocessing as plain data (what ``save`` stores).

    ``transform`` reproduces the fitted :func:`default_preprocessor` exactly. ``state``
    holds ``names_out`` and the parts ``num`` / ``cat`` (``None`` when absent), each with
    ``columns``, ``positions`` and ``by_name``; ``num`` also ``exponent``, ``mean``,
    ``scale``, ``indicators``; ``cat`` also ``categories``.
    """

    def __init__(self, state: dict) -> None:
        self.state = state

    @classmethod
    def from_fitted(cls, ct: ColumnTransformer) -> FrozenPreprocessor:
        names_in = list(getattr(ct, "feature_names_in_", []))
        state: dict = {"num": None, "cat": None, "names_out": [str(n) for n in ct.get_feature_names_out()]}
        for name, pipe, cols in ct.transformers_:
            if name not in ("num", "cat") or not len(cols):
                continue
            by_name = bool(names_in) and not isinstance(cols[0], (int, np.integer))
            part = {
                "columns": [plain(c) for c in cols],
                "positions": [names_in.index(c) for c in cols] if by_name else [int(c) for c in cols],
                "by_name": by_name,
            }
            state[name] = {**part, **(_numeric_state(pipe) if name == "num" else _categorical_state(pipe))}
        return cls(state)

    @classmethod
    def from_state(cls, state: dict) -> FrozenPreprocessor:
        """Check a stored state (a file written by an older psilon lacks ``exponent``: 0)."""
        names_out, num, cat = state["names_out"], state["num"], state["cat"]
        if num is not None:
            n = len(num["columns"])
            num = {"exponent": [0] * n, **num}
            if not (len(num["positions"]) == len(num["mean"]) == len(num["scale"]) == len(num["exponent"]) == n):
                raise ValueError("the numeric preprocessing state has inconsistent lengths")
        if cat is not None and not len(cat["positions"]) == len(cat["categories"]) == len(cat["columns"]):
            raise ValueError("the categorical preprocessing state has inconsistent lengths")
        return cls({"names_out": list(names_out), "num": num, "cat": cat})

    @staticmethod
    def _columns(X, part: dict):
        if isinstance(X, pd.DataFrame):
            return X[part["columns"]] if part["by_name"] else X.iloc[:, part["positions"]]
        return np.asarray(X)[:, part["positions"]]

    def transform(self, X):
        num, cat = self.state["num"], self.state["cat"]
        blocks = []
        if num is not None:
            values = numeric_values(self._columns(X, num))
            z = standardize(values, num["exponent"], num["mean"], num["scale"], num["columns"])
            missing = np.isnan(values)
            blocks.append(np.where(missing, 0.0, z))
            if num["indicators"]:
                blocks.append(missing[:, num["indicators"]].astype(np.float64))
        if cat is not None:
            values = categories_as_str(self._columns(X, cat))
            for j, cats in enumerate(cat["categories"]):
                col = np.array([MISSING if isinstance(v, float) else v for v in values[:, j]], dtype=object)
                blocks.append((col[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float64))
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(X), 0))

    def get_feature_names_out(self, input_features=None):
        return np.asarray(self.state["names_out"], dtype=object)


def _numeric_state(pipe: Pipeline) -> dict:
    scale, imp = pipe.named_steps["scale"], pipe.named_steps["impute"]
    return {
        "exponent": scale.exponent_.tolist(),
        "mean": scale.mean_.tolist(),
        "scale": scale.scale_.tolist(),
        "indicators": imp.indicator_.features_.tolist() if imp.indicator_ is not None else [],
    }


def _categorical_state(pipe: Pipeline) -> dict:
    return {"categories": [[str(v) for v in cats] for cats in pipe.named_steps["onehot"].categories_]}


# --------------------------------------------------------------------------- model input
def transform_features(preprocessor, X) -> np.ndarray:
    """The network's input: ``X`` through the fitted ``preprocessor`` (or as is for ``None``), float32.

    Raises a ValueError for non-numeric, NaN or infinite results and for values beyond the
    float32 range.
    """
    Z = preprocessor.transform(X) if preprocessor is not None else X
    if hasattr(Z, "toarray"):
        Z = Z.toarray()
    try:
        Z = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the preprocessed X is not numeric ({exc}); without preprocessing X must be numeric") from None
    if Z.ndim != 2:
        raise ValueError(f"the preprocessor must return a 2-d array, got shape {Z.shape}")
    if not np.all(np.isfinite(Z)):
        raise ValueError(
            "X contains NaN or inf after preprocessing; replace infinite values (and, without the default "
            "preprocessing, missing values) before fit/predict"
        )
    biggest = float(np.abs(Z).max()) if Z.size else 0.0
    if biggest > _FLOAT32_MAX:
        raise ValueError(
            f"X holds values too large for the model: {biggest:.3g} after preprocessing, beyond the float32 "
            "range the network computes in (the training data were on a much smaller scale)"
        )
    # C order whatever the preprocessor returned: the network's matrix products round
    # differently for other memory layouts, and the fitted and the loaded estimator must agree.
    return np.ascontiguousarray(Z, dtype=np.float32)
