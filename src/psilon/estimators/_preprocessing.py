"""Preprocessing of the estimators: features (default pipeline, its frozen form, the final
numeric matrix) and the robust target scaling."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

__all__ = ["FrozenPreprocessor", "default_preprocessor", "robust_target_scaling", "transform_features"]

MISSING = "__missing__"


# --------------------------------------------------------------------------- target scaling
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


# --------------------------------------------------------------------------- default pipeline
def categories_as_str(X):
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
            ("as_str", FunctionTransformer(categories_as_str, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING, keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


def default_preprocessor(X) -> ColumnTransformer:
    """The default preprocessing for ``X`` (unfitted).

    Numeric columns: standardization, then missing values set to 0 (the mean) with a
    missing-indicator column per feature that had missing values at fit. Other columns (strings, categories, booleans; DataFrames only): one-hot, with
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
    ``columns``, ``positions`` and ``by_name``; ``num`` also ``mean``, ``scale``,
    ``indicators``; ``cat`` also ``categories``.
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

    @staticmethod
    def _columns(X, part: dict):
        if isinstance(X, pd.DataFrame):
            return X[part["columns"]] if part["by_name"] else X.iloc[:, part["positions"]]
        return np.asarray(X)[:, part["positions"]]

    def transform(self, X):
        num, cat = self.state["num"], self.state["cat"]
        blocks = []
        if num is not None:
            values = np.asarray(self._columns(X, num), dtype=np.float64)
            z = (values - np.asarray(num["mean"])) / np.asarray(num["scale"])
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
        "mean": np.nan_to_num(scale.mean_, nan=0.0).tolist(),
        "scale": np.nan_to_num(scale.scale_, nan=1.0).tolist(),
        "indicators": imp.indicator_.features_.tolist() if imp.indicator_ is not None else [],
    }


def _categorical_state(pipe: Pipeline) -> dict:
    return {"categories": [[str(v) for v in cats] for cats in pipe.named_steps["onehot"].categories_]}


# --------------------------------------------------------------------------- model input
def transform_features(preprocessor, X) -> np.ndarray:
    """The network's input: ``X`` through the fitted ``preprocessor`` (or as is for ``None``), float32."""
    Z = preprocessor.transform(X) if preprocessor is not None else X
    if hasattr(Z, "toarray"):
        Z = Z.toarray()
    # C order whatever the preprocessor returned: the network's matrix products round
    # differently for other memory layouts, and the fitted and the loaded estimator must agree.
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    if Z.ndim != 2:
        raise ValueError(f"the preprocessor must return a 2-d array, got shape {Z.shape}")
    if not np.all(np.isfinite(Z)):
        raise ValueError("X contains inf (or the preprocessor left NaN/inf); replace infinite values before fit/predict")
    return Z
