"""Suite-wide settings and fixtures.

Torch's intra-op thread pool spins when the machine is busy; for the small networks
of the test suite one thread is both faster and far more predictable.

``data_dir``: the real datasets (PMLB and UCI copies) are read at run time from
``$PSILON_DATA_DIR``, else from ``../shared/data`` beside the repository; tests that need
them skip with the reason when neither exists.
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


@pytest.fixture
def data_dir() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip(f"no data folder: set PSILON_DATA_DIR or provide {REPO.parent / 'shared' / 'data'}")
    return path
