"""``psilon status``: a store's finished tasks, its lock, the tasks in flight and the estimate of the rest."""

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
import torch

from psilon.bench.cli import main
from psilon.bench.protocols import Protocol
from psilon.bench import runner
from psilon.bench.runner import CHECKPOINTS_DIR, STORE_NAME, run_protocol
from psilon.bench.status import format_status, store_status
from psilon.bench.store import STARTED_NAME, ResultStore

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
    # a run resumes it 3 h later: it redoes the unsaved lambda from its start, so it is not idle
    marker = out / CHECKPOINTS_DIR / task.key / STARTED_NAME
    marker.write_text("{}")
    restart = now + 3 * 3600
    os.utime(marker, (restart, restart))
    resumed = format_status(store_status(out), now=datetime.fromtimestamp(restart) + timedelta(seconds=60))
    assert "last written 3.0 h ago; about 4 min left" in resumed  # 300 s from the restart, 60 s of them gone


def test_a_warm_path_with_one_lambda_file_is_timed_by_its_models_recent_fits(store):
    out, tasks = store
    task = tasks[("warm-net", "sklearn:diabetes", 0)]
    t0 = datetime.now().timestamp() - 600
    _warm_files(out / CHECKPOINTS_DIR / task.key, [t0])  # one file: no gap between two to time
    st = store_status(out)
    (f,) = st.in_flight
    assert (f.done, f.total, f.seconds_left) == (1, 5, None)
    line = "warm-net on sklearn:diabetes, split 0: warm path, 1 of 5 lambdas done, last written 1 min ago"
    assert format_status(st, now=datetime.fromtimestamp(t0 + 60)).count(line + "\n") == 1  # nothing to time it by
    st.progress["models"]["warm-net"]["seconds"] = 500.0  # 100 s a lambda: 4 lambdas left are 400 s
    assert f"{line}; about 6 min left at its model's recent mean fit time" in format_status(
        st, now=datetime.fromtimestamp(t0 + 60))
    assert "last written 4 min ago; idle (no run is working on it): about 7 min left once one resumes it at its " \
           "model's recent mean fit time" in format_status(st, now=datetime.fromtimestamp(t0 + 250))


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


def test_a_reader_that_goes_away_ends_the_command_without_a_traceback(store):
    """`psilon status ... | head`: the pipe closes under the command."""
    out, _ = store
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to the pipe now fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "psilon.cli", "status", str(out), str(out)], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and proc.stderr == ""


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


def test_every_task_marks_its_start_and_status_names_it_while_it_runs(store, monkeypatch):
    """A forest saves nothing midway; its start marker still names it in flight, with its model's mean fit time."""
    out, _ = store
    protocol = Protocol.from_dict(json.loads((out / "protocol.json").read_text()))
    seen = []
    real = runner._prepared

    def spy(task, data_dir):  # runs inside the task, after its start is marked
        st = store_status(out)
        seen.append((task.key, st.running, [(f.key, f.kind, f.started is not None) for f in st.in_flight]))
        return real(task, data_dir)

    monkeypatch.setattr(runner, "_prepared", spy)
    assert run_protocol(protocol, out, models=["random-forest"], splits=[0], progress=False).ok == 2
    assert len(seen) == 2
    assert [(running, flights) for _, running, flights in seen] == [(True, [(key, "started", True)]) for key, _, _ in seen]
    assert not (out / CHECKPOINTS_DIR).exists() or not any((out / CHECKPOINTS_DIR).iterdir())  # removed with the rows

    task = next(t for t in protocol.tasks() if t.model.label == "random-forest" and t.split_id == 1)
    folder = out / CHECKPOINTS_DIR / task.key
    folder.mkdir(parents=True)
    (folder / STARTED_NAME).write_text("{}")
    start = datetime.now().timestamp() - 120
    os.utime(folder / STARTED_NAME, (start, start))
    now = datetime.fromtimestamp(start) + timedelta(minutes=2)
    st = store_status(out)
    (f,) = st.in_flight
    assert (f.key, f.kind, f.started) == (task.key, "started", datetime.fromtimestamp(start))
    what = f"random-forest on {task.dataset}, split 1"
    assert f"{what}: started 2 min ago by a run that is no longer writing to the store; it saved nothing" \
        in format_status(st, now=now)  # no lock held: the run that started it is gone
    st.running = True
    mean = st.progress["models"]["random-forest"]["seconds"]  # the two fits above
    assert mean is not None and mean < 90
    assert f"{what}: started 2 min ago, saves nothing midway; past its model's recent mean fit time" in format_status(st, now)
    st.progress["models"]["random-forest"]["seconds"] = 600.0
    assert f"{what}: started 2 min ago, saves nothing midway; about 8 min left at its model's recent mean fit " \
           "time (10 min)" in format_status(st, now=now)
    st.progress["models"]["random-forest"]["seconds"] = None
    assert "saves nothing midway (its model has no finished fit to time yet)" in format_status(st, now=now)
    # a network saves its lambdas (or snapshots) midway: before its first save it has saved nothing yet
    net = next(t for t in protocol.tasks() if t.model.label == "warm-net" and t.split_id == 0)
    (out / CHECKPOINTS_DIR / net.key).mkdir()
    (out / CHECKPOINTS_DIR / net.key / STARTED_NAME).write_text("{}")
    st = store_status(out)
    st.running = True
    assert f"warm-net on {net.dataset}, split 0: started 0 min ago, nothing saved yet" in format_status(st)


def test_a_task_whose_starting_process_has_ended_is_not_taken_for_running(store):
    """A killed run leaves started.json behind; while a later run holds the lock, the marker's
    pid (of this host, ended) says nobody works on that task, so status does not count it down."""
    out, tasks = store
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    forest, net = tasks[("random-forest", "sklearn:diabetes", 0)], tasks[("warm-net", "sklearn:diabetes", 0)]
    now = datetime.now()
    markers = {
        "ended": {"pid": ended.pid, "host": socket.gethostname()},
        "alive": {"pid": os.getpid(), "host": socket.gethostname()},
        "elsewhere": {"pid": ended.pid, "host": "another-machine"},
        "older": {},
    }
    for name, marker in markers.items():
        for folder in (out / CHECKPOINTS_DIR / forest.key, out / CHECKPOINTS_DIR / net.key):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / STARTED_NAME).write_text(json.dumps(marker))
        if not (out / CHECKPOINTS_DIR / net.key / "fold-1-lambda0.pt").exists():
            for i in range(2):  # two lambdas done, a minute apart, the last one just now
                file = out / CHECKPOINTS_DIR / net.key / f"fold-1-lambda{i}.pt"
                file.write_bytes(b"weights")
                os.utime(file, (now.timestamp() - 60 * (1 - i),) * 2)
        st = store_status(out)
        st.running = True  # another run holds the store
        flights = {f.key: f for f in st.in_flight}
        assert flights[forest.key].gone == flights[net.key].gone == (name == "ended"), name
        text = format_status(st, now=now)
        forest_line = next(line for line in text.splitlines() if "random-forest" in line)
        net_line = next(line for line in text.splitlines() if "warm-net" in line)
        if name == "ended":
            assert "by a process that has ended; it saved nothing, so a re-run starts it again" in forest_line
            assert "idle (no run is working on it): about 3 min left once one resumes it" in net_line
        else:
            assert "saves nothing midway" in forest_line and "ended" not in forest_line, name
            assert "about 3 min left" in net_line and "idle" not in net_line, name


def test_status_says_what_a_claim_protocols_verdict_waits_for(store):
    """A claim protocol's progress has ``claim`` (its verdict's models): status adds a line for it."""
    import dataclasses

    out, _ = store
    st = store_status(out)
    assert "claim" not in st.progress and "verdict" not in format_status(st)  # tiny is no claim protocol
    claim = {"models": ["psilon-net", "standard-net"], "tasks": 6, "done": 2, "hours_left": 1.5, "unestimated": []}
    text = format_status(dataclasses.replace(st, progress={**st.progress, "claim": claim}))
    assert text.endswith("\nthe verdict on 21 of 30 waits for 4 tasks of psilon-net and standard-net (about 1.5 core-hours)")
    done = format_status(dataclasses.replace(st, progress={**st.progress, "claim": {**claim, "done": 6}}))
    assert "verdict" not in done
