"""Locate the shared data folder for the dataset tests: $PSILON_DATA_DIR, else the repo's ../shared/data."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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
