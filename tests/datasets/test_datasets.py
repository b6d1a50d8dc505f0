"""Tests of psilon.datasets: loaders, name resolution, data-folder discovery and error messages."""

import gzip
import importlib.util

import numpy as np
import pandas as pd
import pytest

from psilon.datasets import (
    DATA_DIR_ENV,
    DatasetError,
    DatasetUnavailableError,
    find_data_dir,
    list_datasets,
    load_dataset,
    resolve_name,
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No ambient data folder: each test says where its data is."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tiny_dir(tmp_path):
    """A data folder with one PMLB-layout set of each task type and one UCI-layout set."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name, target in {
        "101_toyreg": rng.normal(size=30),
        "toybin": rng.integers(0, 2, 30),
        "toymulti": rng.integers(0, 4, 30),
    }.items():
        folder = root / "pmlb" / name
        folder.mkdir(parents=True)
        frame = pd.DataFrame(rng.normal(size=(30, 3)), columns=["a", "b", "c"]).assign(target=target)
        frame.to_csv(folder / f"{name}.tsv.gz", sep="\t", index=False)
    uci = root / "uci" / "toyuci"
    uci.mkdir(parents=True)
    pd.DataFrame(rng.normal(size=(20, 4))).to_csv(uci / "data.csv.gz", header=False, index=False)
    masks = np.zeros((20, 10), dtype=int)
    masks[np.arange(20), np.arange(20) % 10] = 1
    pd.DataFrame(masks).to_csv(uci / "test_mask.csv.gz", header=False, index=False)
    return root


@pytest.mark.parametrize(
    "name, task, shape",
    [
        ("sklearn:diabetes", "regression", (442, 10)),
        ("sklearn:breast_cancer", "binary", (569, 30)),
        ("sklearn:wine", "multiclass", (178, 13)),
        ("sklearn:iris", "multiclass", (150, 4)),
        ("sklearn:digits", "multiclass", (1797, 64)),
    ],
)
def test_sklearn_sets_load_offline_without_a_data_folder(name, task, shape):
    ds = load_dataset(name)
    assert ds.task == task and ds.X.shape == shape and len(ds.y) == shape[0]
    assert ds.source == "sklearn" and ds.name == name and ds.test_masks is None


def test_pmlb_layout_and_task_inference(tiny_dir):
    reg = load_dataset("pmlb:101_toyreg", tiny_dir)
    assert reg.task == "regression" and reg.X.shape == (30, 3) and "target" not in reg.X
    assert load_dataset("pmlb:toybin", tiny_dir).task == "binary"
    assert load_dataset("pmlb:toymulti", tiny_dir).task == "multiclass"
    # numeric prefix may be left out; bare names resolve when unique
    assert resolve_name("pmlb:toyreg", tiny_dir) == "pmlb:101_toyreg"
    assert resolve_name("toybin", tiny_dir) == "pmlb:toybin"


def test_uci_layout_gives_fixed_splits(tiny_dir):
    ds = load_dataset("uci:toyuci", tiny_dir)
    assert ds.task == "regression" and ds.X.shape == (20, 3) and ds.n_splits == 10
    train, test = ds.fixed_split(3)
    assert set(test) == {3, 13} and len(train) == 18 and not set(train) & set(test)
    with pytest.raises(DatasetError, match="splits 0..9"):
        ds.fixed_split(10)


def test_data_dir_from_env_var_and_argument(tiny_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tiny_dir))
    assert find_data_dir() == tiny_dir.resolve()
    assert "uci:toyuci" in list_datasets()
    monkeypatch.setenv(DATA_DIR_ENV, str(tiny_dir / "nope"))
    with pytest.raises(DatasetError, match=DATA_DIR_ENV):
        find_data_dir()
    with pytest.raises(DatasetError, match="data_dir"):
        find_data_dir(tiny_dir / "missing")


def test_default_data_dir_is_shared_data_next_to_cwd(tiny_dir, monkeypatch, tmp_path):
    (tmp_path / "shared").mkdir()
    tiny_dir.rename(tmp_path / "shared" / "data")
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.chdir(work)
    assert find_data_dir() == (tmp_path / "shared" / "data").resolve()
    assert load_dataset("uci:toyuci").n_splits == 10


def test_missing_folder_error_names_the_env_var():
    assert find_data_dir() is None
    with pytest.raises(DatasetError, match=DATA_DIR_ENV):
        find_data_dir(required=True)
    with pytest.raises(DatasetError, match=f"{DATA_DIR_ENV}.*uci/"):
        load_dataset("uci:yacht")


def test_unknown_names_list_close_matches(tiny_dir):
    with pytest.raises(DatasetError, match="did you mean.*pmlb:toybin"):
        load_dataset("pmlb:toybinn", tiny_dir)
    with pytest.raises(DatasetError, match="did you mean.*sklearn:diabetes"):
        load_dataset("diabetis", tiny_dir)
    with pytest.raises(DatasetError, match="unknown dataset source 'kaggle'"):
        load_dataset("kaggle:titanic")
    with pytest.raises(DatasetError, match="numeric id"):
        resolve_name("openml:adult")


def test_ambiguous_bare_name_lists_the_choices(tiny_dir):
    (tiny_dir / "uci" / "wine").mkdir()
    (tiny_dir / "uci" / "toyuci" / "data.csv.gz").rename(tiny_dir / "uci" / "wine" / "data.csv.gz")
    with pytest.raises(DatasetError, match="ambiguous.*sklearn:wine, uci:wine"):
        load_dataset("wine", tiny_dir)


@pytest.mark.skipif(importlib.util.find_spec("openml") is not None, reason="openml is installed")
def test_openml_without_package_is_a_clear_error():
    with pytest.raises(DatasetUnavailableError, match="optional 'openml' package"):
        load_dataset("openml:44132")


@pytest.mark.skipif(importlib.util.find_spec("pmlb") is not None, reason="pmlb is installed")
def test_pmlb_missing_from_cache_without_package_is_a_clear_error(tiny_dir):
    from psilon.datasets import _load_pmlb

    with pytest.raises(DatasetUnavailableError, match="not in the local cache.*'pmlb'"):
        _load_pmlb("magic", tiny_dir)


def test_uci_mask_must_match_data(tiny_dir):
    with gzip.open(tiny_dir / "uci" / "toyuci" / "test_mask.csv.gz", "wt") as handle:
        handle.write("1,0,0,0,0,0,0,0,0,0\n")
    with pytest.raises(DatasetError, match="test_mask has 1 rows but data has 20"):
        load_dataset("uci:toyuci", tiny_dir)


# ------------------------------------------------------------------ the shared data folder


def test_shared_pmlb_sets(data_dir):
    magic = load_dataset("magic", data_dir)
    assert (magic.name, magic.task, magic.X.shape) == ("pmlb:magic", "binary", (19020, 10))
    cpu = load_dataset("pmlb:cpu_act", data_dir)
    assert (cpu.name, cpu.task, cpu.X.shape) == ("pmlb:197_cpu_act", "regression", (8192, 21))
    assert load_dataset("pmlb:satimage", data_dir).task == "multiclass"


def test_shared_uci_sets_have_ten_partitioning_splits(data_dir):
    for name in ("yacht", "concrete", "energy", "housing", "wine", "airfoil", "autompg", "servo", "machine"):
        ds = load_dataset(f"uci:{name}", data_dir)
        assert ds.task == "regression" and ds.n_splits == 10
        assert (ds.test_masks.sum(axis=1) == 1).all()  # each row is tested in exactly one split
        assert all(0 < len(ds.fixed_split(k)[1]) < ds.n_rows for k in range(10))
