"""``psilon bench --finish-by``: start a task only if it should finish in time."""

import json
import os
from datetime import datetime, timedelta

import pytest

from psilon.bench.cli import main
from psilon.bench.deadline import QUANTILE, TaskTimes, parse_finish_by, within_deadline
from psilon.bench.report import RECENT_FITS as RECENT
from psilon.bench.protocols import Protocol
from psilon.bench import runner
from psilon.bench.runner import CHECKPOINTS_DIR, STORE_NAME, run_protocol
from psilon.bench.store import ResultStore

NOW = datetime(2026, 11, 30, 20, 15, 0)


@pytest.mark.parametrize("text, expected", [
    ("21:30", datetime(2026, 11, 30, 21, 30)),
    ("20:15:30", datetime(2026, 11, 30, 20, 15, 30)),
    ("07:05", datetime(2026, 12, 1, 7, 5)),  # today's has passed: tomorrow's
    ("20:15", datetime(2026, 12, 1, 20, 15)),  # now is not in the future
    ("2026-12-02T08:00", datetime(2026, 12, 2, 8, 0)),
    ("+90m", NOW + timedelta(minutes=90)),
    ("+2h", NOW + timedelta(hours=2)),
    ("+1h30m", NOW + timedelta(hours=1, minutes=30)),
    ("+2.5h", NOW + timedelta(hours=2.5)),
])
def test_the_forms_of_a_finish_time(text, expected):
    assert parse_finish_by(text, now=NOW) == expected


@pytest.mark.parametrize("text, words", [
    ("25:00", "not a time of day"),
    ("21:75", "not a time of day"),
    ("tonight", "expected a time of day"),
    ("+", "expected a time of day"),
    ("+3d", "expected a time of day"),
    ("2026-11-30T08:00", "has already passed"),
])
def test_a_bad_finish_time_says_what_is_expected(text, words):
    with pytest.raises(ValueError, match=words):
        parse_finish_by(text, now=NOW)


def _row(key, model, seconds, status="ok", **extra):
    return {"key": key, "model": model, "status": status, "fit_seconds": seconds, **extra}


def test_a_models_estimate_is_a_high_quantile_of_its_own_fresh_fits(tiny_protocol):
    rf, lin = (next(t for t in tiny_protocol.tasks(resolve=False) if t.model.label == label)
               for label in ("random-forest", "linear"))
    # the first fit is older than the last RECENT = 5: slower code, or another machine
    rows = [_row(f"r{i}", "random-forest", s) for i, s in enumerate([9000.0, 100.0, 200.0, 300.0, 400.0, 500.0])]
    rows += [_row("resumed", "random-forest", 5.0, restored_checkpoints=7),  # only its last run's part: left out
             _row("failed", "random-forest", 9999.0, status="error")]
    times = TaskTimes(rows)
    assert RECENT == 5 and times.seconds(rf) == pytest.approx(100.0 + QUANTILE * 400.0)  # linear quantile of 100..500
    assert times.seconds(lin) == times.seconds(rf)  # never timed: the longest estimate of the store
    assert TaskTimes([]).seconds(rf) is None  # nothing timed: nothing known
    assert TaskTimes(rows, {rf.key: 42.0, lin.key: None}).seconds(rf) == 42.0  # in flight: its own time left
    assert TaskTimes(rows, {lin.key: None}).seconds(lin) == times.seconds(lin)


def test_tasks_are_checked_as_they_are_taken(tiny_protocol):
    tasks = tiny_protocol.tasks(resolve=False)  # linear and forest tasks, interleaved by dataset and split
    times = TaskTimes([_row("a", "linear", 10.0), _row("b", "random-forest", 100.0)])
    clock = [0.0]
    deferred = []
    kept = []
    for task in within_deadline(tasks, datetime.fromtimestamp(150.0), times,
                                on_defer=lambda t, s: deferred.append((t.key, s)), clock=lambda: clock[0]):
        kept.append(task)
        clock[0] += times.seconds(task)  # the task runs for its estimate
    # t=0: linear (10) -> 10; forest (100) -> 110; linear -> 120; forest would end at 220: deferred; ...
    assert [t.model.label for t in kept] == ["linear", "random-forest", "linear", "linear", "linear"]
    assert [s for _, s in deferred] == [100.0, 100.0, 100.0]
    assert {k for k, _ in deferred} | {t.key for t in kept} == {t.key for t in tasks}


def _timed_store(folder, tasks, forest_seconds=3600.0):
    """A store where one forest task took ``forest_seconds`` (a slow machine's) and one linear task 0.1 s."""
    forest = [t for t in tasks if t.model.label == "random-forest"]
    linear = next(t for t in tasks if t.model.label == "linear")
    with ResultStore(folder / STORE_NAME) as store:
        store.append(_row(forest[0].key, "random-forest", forest_seconds, dataset=forest[0].dataset))
        store.append(_row(linear.key, "linear", 0.1, dataset=linear.dataset))
    return forest


def test_the_estimates_are_read_again_for_each_task(tiny_protocol):
    tasks = [t for t in tiny_protocol.tasks(resolve=False) if t.model.label == "random-forest"]
    rows = [_row("fast", "random-forest", 10.0)]
    kept, deferred = [], []
    for task in within_deadline(tasks, datetime.fromtimestamp(500.0), lambda: TaskTimes(rows),
                                on_defer=lambda t, s: deferred.append(s), clock=lambda: 0.0):
        kept.append(task)
        rows.extend(_row(f"slow{i}", "random-forest", 1000.0) for i in range(RECENT))  # rows landing meanwhile
    assert kept == tasks[:1] and deferred == [1000.0] * (len(tasks) - 1)


def test_a_run_with_a_finish_time_leaves_the_long_tasks_for_later(tmp_path, tiny_protocol):
    forest = _timed_store(tmp_path, tiny_protocol.tasks())
    summary = run_protocol(tiny_protocol, tmp_path, progress=False, finish_by=datetime.now() + timedelta(minutes=30))
    assert summary.ok == 3 and summary.already_done == 2  # the other linear tasks ran
    assert sorted((d, label, s) for d, label, s, _ in summary.deferred) == sorted(
        (t.dataset, "random-forest", t.split_id) for t in forest[1:])
    assert all(seconds == 3600.0 for *_, seconds in summary.deferred)
    again = run_protocol(tiny_protocol, tmp_path, progress=False)  # no deadline: the rest runs
    assert (again.ok, again.deferred) == (3, [])


def test_a_task_in_flight_is_estimated_from_its_checkpoints(tmp_path, tiny_protocol):
    info = tiny_protocol.to_dict()
    info["models"] = [{"label": "warm-net", "entry": "psilon-net", "params": {"lambdas": [1e-3, 1e-2, 0.1, 1.0, 10.0],
                                                                                "path": "warm"}}]
    tasks = Protocol.from_dict(info).tasks(resolve=False)
    with ResultStore(tmp_path / STORE_NAME) as store:
        store.append(_row(tasks[0].key, "warm-net", 3600.0, dataset=tasks[0].dataset))
    folder = tmp_path / CHECKPOINTS_DIR / tasks[1].key  # a killed warm path: 3 of 5 lambdas, 60 s apart
    folder.mkdir(parents=True)
    for i, t in enumerate([1000.0, 1060.0, 1120.0]):
        (folder / f"fold-1-lambda{i}.pt").write_bytes(b"weights")
        os.utime(folder / f"fold-1-lambda{i}.pt", (t, t))
    times = TaskTimes.of_store(tmp_path, ResultStore(tmp_path / STORE_NAME).rows(), tasks)
    assert times.seconds(tasks[1]) == pytest.approx(120.0)  # 2 lambdas left x 60 s
    assert times.seconds(tasks[2]) == 3600.0  # not started: the model's estimate
    slow = TaskTimes([_row(tasks[0].key, "warm-net", 100.0, dataset=tasks[0].dataset)], {tasks[1].key: 120.0})
    assert slow.seconds(tasks[1]) == 100.0  # gaps of a slower earlier run: capped at the label's whole fit
    assert TaskTimes([], {tasks[1].key: 120.0}).seconds(tasks[1]) == 120.0  # nothing else timed: its own gaps


def test_the_command_prints_what_it_left_for_later(tmp_path, tiny_protocol, capsys):
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_protocol.to_dict()))
    out = tmp_path / "out"
    out.mkdir()
    _timed_store(out, tiny_protocol.tasks(), forest_seconds=7200.0)
    code = main(["bench", str(tmp_path / "tiny.json"), "--out", str(out), "--no-progress", "--no-report",
                 "--finish-by", "+1h"])
    text = capsys.readouterr().out
    assert code == 0
    assert "3 ok" in text and "3 tasks left for a later run: they would not have finished by" in text
    assert "random-forest on sklearn:" in text and "about 120 min" in text
    assert main(["bench", str(tmp_path / "tiny.json"), "--out", str(out), "--finish-by", "soon"]) == 2
    assert "expected a time of day" in capsys.readouterr().err


def test_a_finish_time_and_a_dask_scheduler_are_refused_together(tmp_path, tiny_protocol):
    with pytest.raises(ValueError, match="drop --finish-by or --scheduler"):
        run_protocol(tiny_protocol, tmp_path, scheduler="tcp://127.0.0.1:1", finish_by=datetime.now() + timedelta(hours=1))
    assert not (tmp_path / STORE_NAME).exists()


def test_two_processes_take_tasks_only_while_they_fit(tmp_path, tiny_protocol):
    _timed_store(tmp_path, tiny_protocol.tasks())
    summary = run_protocol(tiny_protocol, tmp_path, progress=False, jobs=2,
                           finish_by=datetime.now() + timedelta(minutes=30))
    assert summary.ok == 3 and len(summary.deferred) == 3


def test_with_two_processes_a_task_is_taken_only_when_a_process_is_free(tiny_protocol):
    """The deadline is checked when a task is taken from the queue, so the queue must be read only
    when a process can start the task: a task taken early would be checked against a start time
    that is not its own (a paper-exact network taken when one finished, started 14 minutes later)."""
    tasks = [t for t in tiny_protocol.tasks() if t.model.label == "linear"]
    results, pulls = [], []

    def queue():
        for task in tasks:
            pulls.append(len(results))  # results the run had when it took this task
            yield task

    for row in runner._execute_all(queue(), None, jobs=2, scheduler=None, threads=1, lazy=True):
        results.append(row)
    assert len(results) == len(tasks) and all(r["status"] == "ok" for r in results)
    # two processes: the i-th task (from 0) is taken once at least i - 1 results have come back
    assert all(seen >= i - 1 for i, seen in enumerate(pulls)), pulls
