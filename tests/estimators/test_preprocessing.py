"""Target scaling (one function for estimators and bench) and the default feature preprocessing."""

import warnings

import numpy as np
import pandas as pd
import pytest

from psilon import PSiLONRegressor
from psilon.estimators import robust_target_scaling

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
