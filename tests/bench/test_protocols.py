"""Protocols as data: splits, preprocessing settings, task keys, JSON round trip."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from psilon.bench.protocols import (
    PAPER_LAMBDAS,
    PROTOCOLS,
    RF_MIN_SAMPLES_LEAF,
    RIDGE_ALPHAS,
    ModelSpec,
    Protocol,
    SplitSpec,
    get_protocol,
)
from psilon.datasets import Dataset, DatasetError, list_datasets, load_dataset


def _dataset(n, masks=None):
    X = pd.DataFrame(np.arange(n * 2, dtype=float).reshape(n, 2), columns=["a", "b"])
    return Dataset("test:toy", "test", X, pd.Series(np.arange(n, dtype=float)), "regression", masks)


def test_paper_grids():
    assert RIDGE_ALPHAS[:3] == (1e-6, 3e-6, 1e-5) and RIDGE_ALPHAS[-3:] == (10.0, 30.0, 100.0)
    assert len(RIDGE_ALPHAS) == 17
    assert len(PAPER_LAMBDAS) == 13 and PAPER_LAMBDAS[0] == 5e-5 and PAPER_LAMBDAS[-1] == 0.5
    assert RF_MIN_SAMPLES_LEAF == (4, 8, 12, 16, 20, 30, 40, 50, 75, 100, 150, 200)
    paper = PROTOCOLS["paper-tabular"]
    nets = {m.label: m.params for m in paper.models if m.entry in ("psilon-net", "standard-net", "psilon-resnet")}
    assert set(nets) == {"psilon-net", "standard-net", "psilon-resnet"}
    for params in nets.values():
        assert (params["width"], params["depth"], params["max_steps"], params["batch_size"]) == (500, 3, 5000, 400)
        assert params["lambdas"] == list(PAPER_LAMBDAS) and params["selection"] == "holdout"
    assert nets["psilon-resnet"]["architecture"] == "resnet"


def test_paper_split_caps_rows_and_halves_the_rest_test_then_validation():
    spec = PROTOCOLS["paper-tabular"].split
    train, val, test = spec.split(_dataset(25_000), 0)
    assert (len(train), len(test), len(val)) == (2000, 9000, 9000)
    assert len(set(train) | set(val) | set(test)) == 20_000
    order = np.random.default_rng(0).permutation(25_000)[:20_000]
    assert np.array_equal(test, order[2000:11_000]) and np.array_equal(val, order[11_000:])
    again = spec.split(_dataset(25_000), 0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(spec.split(_dataset(25_000), 1)[0], train)


def test_shuffle_split_refuses_too_small_datasets():
    with pytest.raises(DatasetError, match="too few"):
        SplitSpec(n_train=2000).split(_dataset(2001), 0)


def test_fixed_split_carves_validation_from_training_part():
    masks = np.zeros((50, 10), dtype=bool)
    masks[np.arange(50), np.arange(50) % 10] = True
    spec = SplitSpec(kind="fixed", n_splits=10, val_fraction=0.2)
    train, val, test = spec.split(_dataset(50, masks), 4)
    assert sorted(test) == [4, 14, 24, 34, 44]
    assert (len(train), len(val)) == (36, 9) and not set(train) & set(val)
    with pytest.raises(DatasetError, match="no fixed splits"):
        spec.split(_dataset(50), 0)


def test_task_keys_are_stable_and_distinct(tiny_protocol):
    tasks = tiny_protocol.tasks()
    assert len(tasks) == 8
    keys = [t.key for t in tasks]
    assert len(set(keys)) == 8
    assert keys == [t.key for t in Protocol.from_dict(tiny_protocol.to_dict()).tasks()]
    changed = Protocol.from_dict({**tiny_protocol.to_dict(), "split": {**tiny_protocol.to_dict()["split"], "n_train": 0.5}})
    assert not set(keys) & {t.key for t in changed.tasks()}


def test_tasks_filter_models_and_resolve_dataset_names(tiny_protocol):
    tasks = tiny_protocol.tasks(datasets=["diabetes"], models=["linear"])
    assert [(t.dataset, t.model.label, t.split_id) for t in tasks] == [("sklearn:diabetes", "linear", 0), ("sklearn:diabetes", "linear", 1)]
    with pytest.raises(ValueError, match="no model.*svm.*its models are: linear, random-forest"):
        tiny_protocol.tasks(models=["svm"])
    with pytest.raises(DatasetError, match="did you mean"):
        tiny_protocol.tasks(datasets=["diabetis"])


def test_protocol_json_files(tmp_path, tiny_protocol):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(tiny_protocol.to_dict()))
    assert get_protocol(path).to_dict() == tiny_protocol.to_dict()
    assert get_protocol("smoke") is PROTOCOLS["smoke"]
    with pytest.raises(ValueError, match="unknown protocol 'smok'.*smoke"):
        get_protocol("smok")
    with pytest.raises(ValueError, match="does not exist"):
        get_protocol(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="duplicate model labels"):
        Protocol("x", "", ("sklearn:iris",), (ModelSpec("a", "linear"), ModelSpec("a", "mlp")))


#: paper-tabular's datasets as its committed store (docs/results/paper-tabular) was made: the
#: task keys hash them, so the protocol keeps them when the shared PMLB folder grows.
PAPER_TABULAR_DATASETS_AS_COMMITTED = (
    "pmlb:197_cpu_act", "pmlb:201_pol", "pmlb:574_house_16H", "pmlb:227_cpu_small",
    "pmlb:503_wind", "pmlb:564_fried", "pmlb:215_2dplanes",
    "pmlb:magic", "pmlb:twonorm", "pmlb:churn", "pmlb:clean2",
    "pmlb:waveform_40", "pmlb:texture", "pmlb:optdigits", "pmlb:satimage",
)


def test_paper_tabular_datasets_qualify_are_local_and_unchanged(data_dir):
    paper = PROTOCOLS["paper-tabular"]
    assert paper.datasets == PAPER_TABULAR_DATASETS_AS_COMMITTED
    local = set(list_datasets("pmlb", data_dir))
    for name in paper.datasets:
        assert name in local, f"{name} is not in the local PMLB folder"
        ds = load_dataset(name, data_dir)
        assert ds.n_rows >= 5000 and ds.n_features >= 10, name
    assert "pmlb:spambase" in local and load_dataset("pmlb:spambase", data_dir).n_rows < 5000  # 4,601 rows: out


def test_paper_tabular_committed_store_stays_valid(data_dir):
    """The committed protocol.json is today's protocol, and every store row but the 3 hist-gb
    rows of an earlier version (which its report leaves out) is one of today's tasks."""
    folder = Path(__file__).resolve().parents[2] / "docs" / "results" / "paper-tabular"
    paper = PROTOCOLS["paper-tabular"]
    assert json.loads((folder / "protocol.json").read_text()) == paper.to_dict()
    keys = {t.key for t in paper.tasks(data_dir=data_dir)}
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
    stale = [(r["model"], r["params"].get("max_iter")) for r in rows if r["key"] not in keys]
    assert len(rows) > len(stale) and stale == [("hist-gb", 500)] * 3


def test_uci_protocol_covers_the_nine_local_sets(data_dir):
    assert set(PROTOCOLS["uci"].datasets) == set(list_datasets("uci", data_dir))
    assert len(PROTOCOLS["uci"].tasks(data_dir=data_dir)) == 9 * 10 * len(PROTOCOLS["uci"].models)
