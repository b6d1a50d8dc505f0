"""Fixtures of the bench tests (the data folder fixture is in tests/conftest.py)."""

from pathlib import Path

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


@pytest.fixture
def bad_out_folders(tmp_path):
    """--out values that cannot be an output folder: an existing file, a path below a file,
    a path in /sys (creating a folder there fails even for root)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    return {"file": a_file, "below-file": a_file / "sub", "sys": Path("/sys/psilon-out")}


@pytest.fixture
def assert_one_line_error():
    """Check that a command's stderr is one error line naming ``path``, without a traceback."""

    def check(err: str, path) -> None:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert str(path) in lines[0] and "error" in lines[0], err

    return check
