"""Issue 13 item 1: a run-away learning rate gives a clear error, never a silent bad model."""

import warnings

import numpy as np
import pytest

from psilon import PSiLONClassifier, PSiLONRegressor


@pytest.mark.parametrize("lr", [1e3, 1e6])
@pytest.mark.parametrize("cls", [PSiLONRegressor, PSiLONClassifier])
def test_runaway_learning_rate_is_an_error_suggesting_a_smaller_one(cls, lr):
    X = np.random.default_rng(0).normal(size=(120, 4))
    y = X[:, 0] - X[:, 1]
    target = y if cls is PSiLONRegressor else y > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(RuntimeError, match="smaller learning_rate"):
            cls(width=8, max_steps=100, random_state=0, learning_rate=lr).fit(X, target)


def test_a_healthy_fit_on_the_same_data_is_good_and_silent():
    X = np.random.default_rng(0).normal(size=(120, 4))
    y = X[:, 0] - X[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        m = PSiLONRegressor(width=8, max_steps=100, random_state=0).fit(X, y)
    assert m.diverged_ == [] and m.score(X, y) > 0.5  # lr 1e3 gave R^2 = -17 with no word
