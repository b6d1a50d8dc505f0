"""The ``max_steps='auto'`` budget: ``clip(500 epochs, 1000, 2000)`` steps at the estimators' batch."""

import numpy as np
import pytest

from psilon import PSiLONRegressor
from psilon.estimators._params import auto_steps


@pytest.mark.parametrize(
    ("n_train", "batch", "steps"),
    [
        (50, 400, 1000),  # one (short) batch per epoch: the 1,000-step floor
        (799, 400, 1000),  # 1 batch: 500 epochs < floor
        (800, 400, 1000),  # 2 batches: exactly the floor
        (1200, 400, 1500),  # 3 batches: 500 epochs
        (1600, 400, 2000),  # 4 batches: the cap
        (1_000_000, 400, 2000),
        (1000, 100, 2000),
        (1000, 1000, 1000),
    ],
)
def test_auto_budget_is_500_epochs_within_1000_and_2000_steps(n_train, batch, steps):
    assert auto_steps(n_train, batch) == steps


def test_a_default_fit_without_early_stopping_runs_the_auto_budget():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(75, 3))
    y = X[:, 0] - X[:, 1]
    # 60 training rows (validation_fraction=0.2) at batch 20: 3 batches per epoch -> 1,500 steps.
    est = PSiLONRegressor(width=4, depth=2, lambdas=1e-3, batch_size=20, patience=None, random_state=0)
    est.fit(X, y)
    assert est.n_steps_ == 1500 == auto_steps(60, 20)
