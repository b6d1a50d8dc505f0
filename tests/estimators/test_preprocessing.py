"""Target scaling (one function for estimators and bench) and the default feature preprocessing."""

import warnings

import numpy as np
import pandas as pd
import pytest

from psilon import PSiLONRegressor
from psilon.estimators import default_preprocessor, robust_target_scaling
from psilon.estimators._preprocessing import FrozenPreprocessor

FAST = dict(width=8, depth=3, lambdas=(1e-4, 1e-1), max_steps=40, batch_size=32, learning_rate=2e-2,
            eval_every=20, random_state=0)


# --------------------------------------------------------------------------- target scaling
def test_robust_target_scaling_is_median_and_half_iqr_per_column():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(50, 3)) * [1.0, 10.0, 1e-3] + [0.0, 5.0, -2.0]
    center, scale = robust_target_scaling(y)
    q25, q50, q75 = np.percentile(y, [25, 50, 75], axis=0)
    np.testing.assert_array_equal(center, q50)
    np.testing.assert_array_equal(scale, (q75 - q25) / 2)
    c1, s1 = robust_target_scaling(y[:, 1])
    assert isinstance(c1, float) and isinstance(s1, float)
    assert (c1, s1) == (center[1], scale[1])


def test_robust_target_scaling_falls_back_to_the_std_then_to_one():
    spiky = np.r_[np.zeros(20), 4.0]  # IQR 0
    constant = np.full(21, 3.0)
    center, scale = robust_target_scaling(np.c_[spiky, constant])
    np.testing.assert_array_equal(center, [0.0, 3.0])
    np.testing.assert_array_equal(scale, [np.std(spiky), 1.0])


@pytest.mark.parametrize("factor", [1e300, 1e-300])
def test_robust_target_scaling_of_huge_and_tiny_targets(factor):
    y = np.random.default_rng(1).normal(size=40)
    center, scale = robust_target_scaling(y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / underflow on the way
        big_center, big_scale = robust_target_scaling(y * factor)
    assert big_center == pytest.approx(center * factor, rel=1e-12)
    assert big_scale == pytest.approx(scale * factor, rel=1e-12)


def test_robust_target_scaling_rejects_bad_targets():
    for bad, match in ((np.array([1.0, np.nan]), "NaN"), (np.zeros(0), "at least 1 row"), (np.zeros((2, 2, 2)), "1-d or 2-d")):
        with pytest.raises(ValueError, match=match):
            robust_target_scaling(bad)


def test_estimator_and_bench_share_the_target_scaling():
    from psilon.bench.protocols import Protocol
    from psilon.bench.runner import prepare_split
    from psilon.datasets import Dataset

    rng = np.random.default_rng(0)
    y = np.where(rng.uniform(size=60) < 0.85, 2.0, rng.normal(size=60))  # IQR 0 on most splits
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    ds = Dataset("sklearn:diabetes", "sklearn", X, pd.Series(y), "regression")
    protocol = Protocol.from_dict({
        "name": "t", "description": "", "datasets": ["sklearn:diabetes"],
        "models": [{"label": "linear", "entry": "linear", "params": {"alphas": [1.0]}}],
        "split": {"kind": "shuffle", "seeds": [0], "row_cap": None, "n_train": 0.6},
    })
    task = protocol.tasks()[0]
    train = task.split.split(ds, task.split_id)[0]
    data = prepare_split(task, ds)
    assert (data.target_center, data.target_scale) == robust_target_scaling(y[train])
    model = PSiLONRegressor(**FAST).fit(X.iloc[train], y[train])
    assert (float(model.y_center_[0]), float(model.y_scale_[0])) == robust_target_scaling(y[train])


# --------------------------------------------------------------------------- huge / tiny features (issue 13)
def _linear_data():
    X = np.random.default_rng(0).normal(size=(120, 4))
    return X, X[:, 0] - X[:, 1]


@pytest.mark.parametrize("factor", [1e200, 1e-200])
def test_huge_or_tiny_inputs_are_standardized_not_imputed(factor, tmp_path):
    """Regression (issue 13): StandardScaler overflowed to NaN on 1e200 (underflowed to a zero
    variance on 1e-200), every value then became "missing" and R^2 fell to 0."""
    X, y = _linear_data()
    reference = PSiLONRegressor(**FAST).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = PSiLONRegressor(**FAST).fit(X * factor, y)
        pred = model.predict(X * factor)
    assert model.n_preprocessed_features_ == 4  # no missing-indicator columns: nothing was missing
    np.testing.assert_allclose(model.preprocessor_.transform(X * factor), reference.preprocessor_.transform(X),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pred, reference.predict(X), rtol=1e-6, atol=1e-9)
    assert model.score(X * factor, y) > 0.3
    model.save(tmp_path / "m.pt")
    np.testing.assert_array_equal(PSiLONRegressor.load(tmp_path / "m.pt").predict(X * factor), pred)


def test_mixed_magnitudes_in_one_frame_keep_every_column():
    X, y = _linear_data()
    df = pd.DataFrame({"huge": X[:, 0] * 1e250, "tiny": X[:, 1] * 1e-250, "plain": X[:, 2], "d": X[:, 3]})
    df.loc[::10, "plain"] = np.nan  # a genuinely missing value is still marked as missing
    model = PSiLONRegressor(**FAST).fit(df, y)
    names = list(model.preprocessor_.get_feature_names_out())
    assert names == ["huge", "tiny", "plain", "d", "missingindicator_plain"]
    Z = model.preprocessor_.transform(df)
    np.testing.assert_array_equal(Z[:, -1], df["plain"].isna().to_numpy())
    assert model.score(df, y) > 0.3


def test_values_too_large_for_the_fitted_scaling_are_refused(tmp_path):
    """A model fitted on ordinary values gets 1e200 at predict: a clear error, never "missing"."""
    X, y = _linear_data()
    model = PSiLONRegressor(**FAST).fit(X, y)
    model.save(tmp_path / "m.pt")
    loaded = PSiLONRegressor.load(tmp_path / "m.pt")
    for est in (model, loaded):
        with pytest.raises(ValueError, match="too large"):
            est.predict(X * 1e200)
        with pytest.raises(ValueError, match="too large"):
            est.predict(X * 1e300)


def test_infinity_in_a_dataframe_is_an_error_naming_the_column():
    X, y = _linear_data()
    df = pd.DataFrame(X, columns=list("abcd"))
    df.loc[3, "c"] = np.inf
    with pytest.raises(ValueError, match="infinity.*'c'"):
        PSiLONRegressor(**FAST).fit(df, y)


def test_frozen_preprocessor_matches_on_extreme_values():
    X, _ = _linear_data()
    df = pd.DataFrame({"a": X[:, 0] * 1e250, "b": X[:, 1] * 1e-250, "c": X[:, 2]})
    df.loc[::7, "b"] = np.nan
    ct = default_preprocessor(df).fit(df)
    frozen = FrozenPreprocessor.from_fitted(ct)
    np.testing.assert_array_equal(frozen.transform(df), ct.transform(df))
