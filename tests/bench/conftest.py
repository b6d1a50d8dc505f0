"""Fixtures of the bench tests (the data folder fixture is in tests/conftest.py)."""

import pytest


TINY_PROTOCOL = {
    "name": "tiny",
    "description": "two bundled sets, two cheap baselines",
    "datasets": ["sklearn:diabetes", "sklearn:breast_cancer"],
    "models": [
        {"label": "linear", "entry": "linear", "params": {"alphas": [0.1, 1.0, 10.0]}},
        {"label": "random-forest", "entry": "random-forest", "params": {"n_estimators": 20, "min_samples_leaf": [4, 16]}},
    ],
    "split": {"kind": "shuffle", "seeds": [0, 1], "row_cap": None, "n_train": 0.6},
}


@pytest.fixture
def tiny_protocol():
    """A protocol of 8 quick tasks (2 datasets x 2 seeds x 2 baselines)."""
    from psilon.bench.protocols import Protocol

    return Protocol.from_dict(TINY_PROTOCOL)


@pytest.fixture(autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread, as the runner uses inside a task (OpenMP oversubscription on a
    shared 2-core machine makes gradient boosting many times slower)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
