"""Property-based tests over the estimators' inputs, and bit-for-bit determinism.

Whatever ``X`` / ``y`` look like (shapes, dtypes, NaN / inf, huge values, categorical
levels, label types), ``fit`` either raises a clear ValueError / TypeError (raised by
psilon, or naming the problem) or gives a model whose predictions are finite. On
learnable data the model beats a constant predictor. Cheap settings keep each example
to a fraction of a second.
"""

import os
import traceback
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from psilon import PSiLONClassifier, PSiLONRegressor

TINY = dict(width=8, depth=2, lambdas=(1e-3, 1e-1), max_steps=30, batch_size=16, learning_rate=3e-2,
            eval_every=10, random_state=0)
#: TINY with a budget that learns a one-feature signal (test_learnable_data_beat_a_constant_predictor).
LEARNS = {**TINY, "max_steps": 100}
SETTINGS = settings(max_examples=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROBLEM_WORDS = ("NaN", "nan", "inf", "sample", "feature", "class", "label", "too large", "numeric", " X ", " y ",
                 "string", "float")
SPECIAL = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e250, "tiny": 1e-250}


# --------------------------------------------------------------------------- strategies
@st.composite
def float_column(draw, n):
    values = np.asarray(draw(st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n)), dtype=np.float64)
    pattern = draw(st.sampled_from(["plain", "plain", "nan", "inf", "-inf", "huge", "tiny", "constant", "all-nan"]))
    if pattern in ("huge", "tiny"):
        values = values * SPECIAL[pattern]
    elif pattern == "constant":
        values[:] = values[0] if n else 0.0
    elif pattern == "all-nan":
        values[:] = np.nan
    elif pattern != "plain" and n:
        rows = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=max(1, n // 3)))
        values[rows] = SPECIAL[pattern]
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    with np.errstate(over="ignore", under="ignore"):
        return values.astype(dtype), pattern


@st.composite
def numeric_column(draw, n):
    kind = draw(st.sampled_from(["float", "float", "int64", "int8", "bool"]))
    if kind == "float":
        values, pattern = draw(float_column(n))
        event(f"numeric column: {values.dtype} {pattern}")
        return values
    event(f"numeric column: {kind}")
    if kind == "bool":
        return np.asarray(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    bound = 100 if kind == "int8" else 10**12
    return np.asarray(draw(st.lists(st.integers(-bound, bound), min_size=n, max_size=n)), dtype=kind)


@st.composite
def frame_column(draw, n):
    kind = draw(st.sampled_from(["numeric", "numeric", "category", "object", "bool", "Int64"]))
    event(f"frame column: {kind}")
    if kind == "numeric":
        return draw(numeric_column(n))
    levels = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "1", ""]), min_size=1, max_size=4, unique=True))
    cells = st.one_of(st.sampled_from(levels), st.none()) if draw(st.booleans()) else st.sampled_from(levels)
    values = draw(st.lists(cells, min_size=n, max_size=n))
    if kind == "category":
        return pd.Categorical(values, categories=levels + ["unused"])
    if kind == "object":
        return np.asarray(values, dtype=object)
    if kind == "bool":
        return pd.array([None if v is None else v in ("a", "c") for v in values], dtype="boolean")
    return pd.array([None if v is None else len(v) for v in values], dtype="Int64")


@st.composite
def features(draw, n=None):
    n = draw(st.one_of(st.integers(0, 8), st.integers(9, 30), st.integers(9, 30))) if n is None else n
    d = draw(st.integers(1, 4))
    if draw(st.booleans()):
        event("X: DataFrame")
        return pd.DataFrame({f"c{j}": draw(frame_column(n)) for j in range(d)})
    event("X: array")
    with np.errstate(over="ignore"):
        return np.column_stack([draw(numeric_column(n)) for _ in range(d)]) if n else np.zeros((0, d))


@st.composite
def labels(draw, n):
    kind = draw(st.sampled_from(["int", "str", "bool"]))
    pool = {"int": [3, -1, 10], "str": ["x", "y", "z"], "bool": [False, True]}[kind]
    k = draw(st.sampled_from([1] + [2, 3][: len(pool) - 1] * 3))
    y = np.asarray([pool[draw(st.integers(0, k - 1))] for _ in range(n)])
    if n and draw(st.sampled_from([False] * 5 + [True])):
        y = y.astype(object)
        y[draw(st.integers(0, n - 1))] = None
        kind += " with None"
    event(f"labels: {kind}")
    return y


@st.composite
def targets(draw, n):
    y = np.asarray(draw(st.lists(st.floats(-1e6, 1e6), min_size=n, max_size=n)), dtype=np.float64)
    if n and draw(st.sampled_from([False] * 5 + [True])):
        y[draw(st.integers(0, n - 1))] = np.nan
        event("targets: with NaN")
    return y


# --------------------------------------------------------------------------- helpers
def _assert_clear_error(exc: BaseException) -> None:
    last = traceback.extract_tb(exc.__traceback__)[-1]
    in_psilon = f"{os.sep}psilon{os.sep}" in last.filename
    message = f" {exc} "
    assert in_psilon or any(w in message for w in PROBLEM_WORDS), (
        f"unclear {type(exc).__name__} from {last.filename}:{last.lineno}: {exc}"
    )
    event(f"outcome: {type(exc).__name__} raised in {'psilon' if in_psilon else 'a dependency, naming the problem'}")


def _fit_or_clear_error(est, X, y):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy / sklearn chatter about the odd values is not the point
            return est.fit(X, y)
    except (ValueError, TypeError) as exc:
        _assert_clear_error(exc)
        return None


# --------------------------------------------------------------------------- properties
@SETTINGS
@given(data=st.data())
def test_regressor_fits_any_input_or_raises_a_clear_error(data):
    X = data.draw(features())
    y = data.draw(targets(len(X)))
    model = _fit_or_clear_error(PSiLONRegressor(**TINY), X, y)
    if model is None:
        return
    event("outcome: fitted")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = model.predict(X)
    assert pred.shape == (len(X),) and np.all(np.isfinite(pred))


@SETTINGS
@given(data=st.data())
def test_classifier_fits_any_input_or_raises_a_clear_error(data):
    X = data.draw(features())
    y = data.draw(labels(len(X)))
    model = _fit_or_clear_error(PSiLONClassifier(**TINY), X, y)
    if model is None:
        return
    event("outcome: fitted")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba = model.predict_proba(X)
        pred = model.predict(X)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1.0)
    assert set(pred.tolist()) <= set(y.tolist())


@st.composite
def learnable(draw):
    """``(X, signal)``: a DataFrame or array of 60-100 rows whose column 0 carries the signal."""
    n = draw(st.integers(60, 100))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    signal = rng.normal(size=n) * draw(st.sampled_from([1.0, 1e-100, 1e100]))
    noise = draw(features(n))
    if isinstance(noise, pd.DataFrame):
        return pd.concat([pd.DataFrame({"signal": signal}), noise], axis=1), signal
    return np.column_stack([signal, noise.astype(np.float64)]), signal


def _finite_noise(X):
    values = X.select_dtypes("number").to_numpy(dtype=float, na_value=0.0) if isinstance(X, pd.DataFrame) else X
    return np.all(np.isfinite(values))


@SETTINGS
@given(data=st.data())
def test_learnable_data_beat_a_constant_predictor(data):
    X, signal = data.draw(learnable())
    if not _finite_noise(X):
        return  # infinite noise columns are an input error, covered above
    slope = data.draw(st.sampled_from([-3.0, 0.5, 20.0]))
    y = slope * signal / np.abs(signal).max() + data.draw(st.floats(-1e3, 1e3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 100 steps: 30 (TINY) spend most of the one-cycle warm-up at a small learning rate, and on a
        # weak signal (slope 0.5, 65 rows) the network had not moved off the mean (R^2 -0.005; 0.88 at 100)
        reg = PSiLONRegressor(**LEARNS).fit(X, y)
        assert reg.score(X, y) > 0.0  # the best constant has R^2 = 0
        label = np.where(signal > np.median(signal), "high", "low")
        clf = PSiLONClassifier(**LEARNS).fit(X, label)
        assert clf.score(X, label) > max(np.mean(label == "high"), np.mean(label == "low"))


# --------------------------------------------------------------------------- determinism
def _mixed_frame(n=80, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n) * 1e200,
                       "c": pd.Categorical(rng.choice(["u", "v", "w"], size=n))})
    df.loc[::5, "a"] = np.nan
    return df, df["b"].to_numpy() / 1e200 + (df["c"] == "u").to_numpy()


@pytest.mark.parametrize("selection", ["holdout", "cv"])
def test_same_random_state_gives_bit_identical_predictions(selection):
    df, y = _mixed_frame()
    params = {**TINY, "selection": selection, "cv": 2, "random_state": 7, "prune": 5}
    first = PSiLONRegressor(**params).fit(df, y).predict(df)
    second = PSiLONRegressor(**params).fit(df, y).predict(df)
    np.testing.assert_array_equal(first, second)
    labels = np.where(y > np.median(y), "hi", "lo")
    p1 = PSiLONClassifier(**params).fit(df, labels).predict_proba(df)
    p2 = PSiLONClassifier(**params).fit(df, labels).predict_proba(df)
    np.testing.assert_array_equal(p1, p2)
