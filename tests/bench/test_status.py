"""``psilon status``: a store's finished tasks, its lock, the tasks in flight and the estimate of the rest."""

import json
import os
from datetime import datetime, timedelta

import pytest
import torch

from psilon.bench.cli import main
from psilon.bench.protocols import Protocol
from psilon.bench.runner import CHECKPOINTS_DIR, STORE_NAME, run_protocol
from psilon.bench.status import format_status, store_status
from psilon.bench.store import ResultStore

LAMBDAS = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


@pytest.fixture
def store(tmp_path, tiny_protocol):
    """The tiny protocol plus two networks that never run; only its 4 linear tasks are finished."""
    info = tiny_protocol.to_dict()
    info["models"] = info["models"] + [
        {"label": "warm-net", "entry": "psilon-net", "params": {"lambdas": LAMBDAS, "path": "warm"}},
        {"label": "run-net", "entry": "psilon-net", "params": {"lambdas": LAMBDAS, "max_steps": 5000}},
    ]
    protocol = Protocol.from_dict(info)
    summary = run_protocol(protocol, tmp_path, models=["linear"], progress=False)
    assert summary.ok == 4
    return tmp_path, {(t.model.label, t.dataset, t.split_id): t for t in protocol.tasks()}


def _warm_files(folder, times):
    folder.mkdir(parents=True)
    for i, t in enumerate(times):
        (folder / f"fold-1-lambda{i}.pt").write_bytes(b"weights")
        os.utime(folder / f"fold-1-lambda{i}.pt", (t, t))


def test_finished_tasks_lock_and_estimate(store):
    out, _ = store
    st = store_status(out)
    assert (st.protocol, st.tasks, st.finished, st.running, st.in_flight) == ("tiny", 16, 4, False, [])
    p = st.progress
    assert p["models"]["linear"]["left"] == 0 and p["models"]["random-forest"]["left"] == 4
    assert set(p["unestimated"]) == {"random-forest", "warm-net", "run-net"}  # none finished: nothing to time
    assert st.finished == p["done"]
    with ResultStore(out / STORE_NAME):  # a run holds the store
        assert store_status(out / STORE_NAME).running
    assert not store_status(out).running


def test_a_warm_path_in_flight_counts_its_lambdas_and_the_time_left(store):
    out, tasks = store
    task = tasks[("warm-net", "sklearn:diabetes", 1)]
    now = datetime.now().timestamp()
    _warm_files(out / CHECKPOINTS_DIR / task.key, [now - 1300, now - 1000, now - 700, now - 100])  # gaps 300, 300, 600 s
    (f,) = store_status(out).in_flight
    assert (f.task.key, f.kind, f.done, f.total) == (task.key, "warm path", 4, 5)
    assert f.seconds_left == pytest.approx(300.0)  # 1 lambda left x the median gap (a pause between sessions is not one)
    text = format_status(store_status(out), now=datetime.fromtimestamp(now))
    assert "warm-net on sklearn:diabetes, split 1: warm path, 4 of 5 lambdas done, last written 2 min ago; " \
           "about 3 min left" in text  # 300 s from the last file, 100 s of them gone
    late = format_status(store_status(out), now=datetime.fromtimestamp(now) + timedelta(minutes=5))
    assert "last written 7 min ago; due about now" in late
    idle = format_status(store_status(out), now=datetime.fromtimestamp(now) + timedelta(hours=3))
    assert "last written 3.0 h ago; idle (no run is working on it): about 5 min left once one resumes it" in idle


def test_a_run_snapshot_in_flight_gives_its_step(store):
    out, tasks = store
    task = tasks[("run-net", "sklearn:breast_cancer", 0)]
    folder = out / CHECKPOINTS_DIR / task.key
    folder.mkdir(parents=True)
    torch.save({"fingerprint": "f", "state": {"steps_done": 1250}}, folder / "run.pt")  # an older snapshot
    (f,) = store_status(out).in_flight
    assert (f.kind, f.done, f.total, f.seconds_left) == ("run", 1250, 5000, None)  # max_steps from the params
    assert "run-net on sklearn:breast_cancer, split 0: run snapshot at step 1,250 of 5,000" in format_status(
        store_status(out))
    torch.save({"fingerprint": "f", "state": {"steps_done": 1250, "max_steps": 2000, "seconds": 500.0}},
               folder / "run.pt")  # the resolved max_steps (e.g. of 'auto') and the training time so far
    (f,) = store_status(out).in_flight
    assert (f.total, f.seconds_left) == (2000, pytest.approx(300.0))  # 750 steps at 0.4 s each
    text = format_status(store_status(out), now=f.last_write + timedelta(seconds=60))
    assert "step 1,250 of 2,000, last written 1 min ago; about 4 min left if it runs all its steps" in text
    idle = format_status(store_status(out), now=f.last_write + timedelta(minutes=11))  # 2 snapshot periods gone
    assert "last written 11 min ago; idle (no run is working on it): about 5 min left once one resumes it" in idle
    (folder / "run.pt").write_bytes(b"half a fi")  # caught mid-replace, or damaged: said so, no traceback
    (f,) = store_status(out).in_flight
    assert f.done == -1 and "snapshot unreadable" in format_status(store_status(out))


def test_stale_and_foreign_checkpoint_folders(store):
    out, tasks = store
    finished = tasks[("linear", "sklearn:diabetes", 0)]
    _warm_files(out / CHECKPOINTS_DIR / finished.key, [1.0])  # its row landed: not in flight
    _warm_files(out / CHECKPOINTS_DIR / "0123456789abcdef0123", [1.0, 2.0])
    (f,) = store_status(out).in_flight
    assert f.task is None and (f.done, f.total, f.seconds_left) == (2, None, None)
    assert "not in this protocol" in format_status(store_status(out))


def test_command_line(store, tmp_path_factory, capsys):
    out, tasks = store
    _warm_files(out / CHECKPOINTS_DIR / tasks[("warm-net", "sklearn:diabetes", 0)].key, [1.0, 2.0])
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"tiny ({out}): 4 of 16 tasks finished; no run is writing to it\nin flight:\n")
    assert "warm-net on sklearn:diabetes, split 0: warm path, 2 of 5 lambdas done" in text
    assert "left: 12 tasks, not estimated (random-forest, run-net, warm-net: no finished task to time)" in text

    empty = tmp_path_factory.mktemp("empty")
    assert main(["status", str(empty), str(out)]) == 2  # the bad folder is an error; the good one is still shown
    captured = capsys.readouterr()
    assert "4 of 16 tasks finished" in captured.out
    (line,) = captured.err.strip().splitlines()
    assert "psilon status: error:" in line and "no protocol.json" in line and str(empty) in line


def test_a_protocol_read_back_needs_no_data(store, monkeypatch):
    """The task keys come from protocol.json's qualified names, without the data folder."""
    out, tasks = store
    monkeypatch.setenv("PSILON_DATA_DIR", "/nonexistent")
    info = json.loads((out / "protocol.json").read_text())
    keys = {t.key for t in Protocol.from_dict(info).tasks(resolve=False)}
    assert keys == {t.key for t in tasks.values()}


def test_rows_on_datasets_outside_the_protocol_are_counted_apart(store):
    """A run with --datasets keeps the protocol's list in protocol.json: its rows are not the protocol's tasks."""
    out, _ = store
    protocol = Protocol.from_dict(json.loads((out / "protocol.json").read_text()))
    assert run_protocol(protocol, out, datasets=["sklearn:wine"], models=["linear"], progress=False).ok == 2
    st = store_status(out)
    assert (st.tasks, st.finished, st.other_datasets, st.other_finished) == (16, 4, ["sklearn:wine"], 2)
    assert "besides, 2 tasks finished on datasets outside the protocol's list (a run with --datasets): sklearn:wine" \
        in format_status(st)
