"""Suite-wide settings and fixtures.

Torch's intra-op thread pool spins when the machine is busy; for the small networks
of the test suite one thread is both faster and far more predictable.

``data_dir``: the real datasets (PMLB and UCI copies) are read at run time from
``$PSILON_DATA_DIR``, else from ``../shared/data`` beside the repository; tests that need
them skip with the reason when neither exists. ``real_dataset``: the same folder as a
loader by name (session-scoped, so module-scoped fixtures can use it).
"""

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    given = os.environ.get("PSILON_DATA_DIR")
    path = Path(given) if given else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


def _data_dir_or_skip() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip(f"no data folder: set PSILON_DATA_DIR or provide {REPO.parent / 'shared' / 'data'}")
    return path


@pytest.fixture
def data_dir() -> Path:
    return _data_dir_or_skip()


@pytest.fixture(scope="session")
def real_dataset():
    """``real_dataset(name)``: a dataset of the data folder (``psilon.datasets.load_dataset``);
    the calling test skips when there is no folder."""
    from psilon.datasets import load_dataset

    return lambda name: load_dataset(name, _data_dir_or_skip())
