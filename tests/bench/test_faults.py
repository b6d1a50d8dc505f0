"""Fault injection: ``psilon bench`` SIGKILLed at random points, then resumed.

Each case runs a tiny protocol (4 bundled datasets x 3 splits x the linear model: 12
tasks) in a child process, kills it (SIGKILL) at a point drawn from the case's seed
(after a random number of stored rows, plus a random delay), sometimes twice and
sometimes with a torn line appended to the store (what a write cut short would leave),
then resumes the same command to completion. Afterwards every task is in the store
exactly once, with the metrics of an uninterrupted run; the report counts all 12 tasks
and lists the command once per run that stored rows.

Serial cases (--jobs 1) fork the test process (already imported, so a case costs about a
second; the serial runner never touches joblib). The parallel (--jobs 2) and Dask cases
start a fresh interpreter, since loky workers and Dask clients must not be inherited
through a fork; that costs seconds per start (and two more interpreters for the
workers), so there is one of each, and their resume runs serially in the test process.
"""

import json
import multiprocessing
from collections import Counter
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from psilon.bench.cli import main
from psilon.bench.runner import COMMANDS_NAME, STORE_NAME, run_protocol
from psilon.bench.store import ResultStore

REPO = Path(__file__).resolve().parents[2]
TOTAL = 12
SPEC = {
    "name": "faults",
    "description": "fault-injection protocol: 12 linear-model tasks on bundled data",
    "datasets": ["sklearn:diabetes", "sklearn:breast_cancer", "sklearn:wine", "sklearn:iris"],
    "models": [{"label": "linear", "entry": "linear", "params": {"alphas": [0.1, 1.0, 10.0]}}],
    "split": {"kind": "shuffle", "seeds": [0, 1, 2], "row_cap": None, "n_train": 0.6},
}


@pytest.fixture(scope="module")
def protocol_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "faults.json"
    path.write_text(json.dumps(SPEC))
    return path


@pytest.fixture(scope="module")
def reference(protocol_file):
    """Metrics and selected settings of every task in an uninterrupted run."""
    from psilon.bench.protocols import get_protocol

    out = protocol_file.parent / "reference"
    summary = run_protocol(get_protocol(str(protocol_file)), out, progress=False)
    assert summary.ok == TOTAL
    return {r["key"]: (r["metrics"], r["selected"]) for r in ResultStore(out / STORE_NAME).rows()}


def _argv(protocol_file, out, jobs, scheduler=None):
    argv = ["bench", str(protocol_file), "--out", str(out), "--no-progress", "--no-report", "--jobs", str(jobs)]
    return argv + (["--scheduler", scheduler] if scheduler else [])


def _n_rows(store: Path) -> int:
    return store.read_bytes().count(b"\n") if store.exists() else 0


def _run_in_fork(argv):
    os._exit(main(argv))


def _start(argv, fork: bool):
    """Start ``psilon`` with ``argv`` in a child process; returns (pid-like handle, poll, kill)."""
    if fork:
        child = multiprocessing.get_context("fork").Process(target=_run_in_fork, args=(argv,))
        child.start()
        return child.pid, lambda: child.exitcode, lambda: (os.kill(child.pid, signal.SIGKILL), child.join())
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "psilon.bench.cli", *argv], env=env, stdout=subprocess.DEVNULL)
    return proc.pid, proc.poll, lambda: (proc.send_signal(signal.SIGKILL), proc.wait())


def _kill_at_random_point(argv, store: Path, rng: random.Random, fork: bool) -> dict:
    """Run ``argv`` and SIGKILL it after a random number of new rows and a random delay."""
    before = _n_rows(store)
    target = before + rng.randint(0, (TOTAL - before) // 2)  # in the first half of what is left
    delay = rng.uniform(0.0, 0.1)
    _, poll, kill = _start(argv, fork)
    deadline = time.monotonic() + 120
    while _n_rows(store) < target and poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    finished = poll() is not None
    if not finished:
        kill()
    lines = store.read_bytes().split(b"\n")[:-1] if store.exists() else []
    rows = [json.loads(line) for line in lines]  # every complete line parses
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)), "a task was stored twice"
    return {"wrote": len(rows) - before, "interrupted": not finished, "rows": len(rows)}


def _tear_tail(store: Path) -> None:
    """Append the first half of a row, as a write cut short would leave it."""
    line = json.dumps({"key": "torn-row", "status": "ok", "metrics": {"test": {"rmse": 1.0}}}).encode()
    with open(store, "ab") as handle:
        handle.write(line[: len(line) // 2])


def _check_resumed(out: Path, reference: dict, runs_with_rows: int, runs_maybe_logged: int) -> None:
    store = out / STORE_NAME
    lines = store.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the store ends with a torn line after the resume"
    rows = [json.loads(line) for line in lines[:-1]]
    keys = [r["key"] for r in rows]
    assert sorted(keys) == sorted(reference) and len(keys) == TOTAL, "not every task exactly once"
    assert all(r["status"] == "ok" for r in rows)
    assert {r["key"]: (r["metrics"], r["selected"]) for r in rows} == reference
    logged = (out / COMMANDS_NAME).read_text().splitlines() if (out / COMMANDS_NAME).exists() else []
    assert runs_with_rows <= len(logged) <= runs_with_rows + runs_maybe_logged
    assert all(line.startswith("psilon bench ") and "--out" in line for line in logged)
    assert main(["report", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    s = summary["protocols"]["faults"]
    assert sorted(s["datasets"]) == sorted(SPEC["datasets"])
    assert all(d["models"]["linear"]["n_splits"] == 3 for d in s["datasets"].values())
    assert s["fit_time"]["linear"]["tasks"] == TOTAL and not s["errors"] and "unreadable" not in summary
    report = (out / "report.md").read_text()
    assert f"Store: `{out.name}/` — {TOTAL} tasks ({TOTAL} ok)." in report
    for number, count in enumerate(Counter(logged).values(), 1):  # each distinct command once, with its runs
        assert (f"command {number} ran {count} times" in report) == (count > 1)


def _fault_case(protocol_file, reference, out, seed, jobs, fork, kills=1, scheduler=None):
    """Kill ``kills`` times at random points (tearing the tail on odd seeds), then resume serially."""
    rng = random.Random(seed)
    argv = _argv(protocol_file, out, jobs, scheduler)
    store = out / STORE_NAME
    runs_with_rows = runs_maybe_logged = 0
    interrupted = 0
    for _ in range(kills):
        result = _kill_at_random_point(argv, store, rng, fork)
        runs_with_rows += result["wrote"] > 0
        runs_maybe_logged += result["wrote"] == 0  # killed between logging and its first row
        interrupted += result["interrupted"]
    if seed % 2 and store.exists():
        _tear_tail(store)
    assert main(_argv(protocol_file, out, 1)) == 0
    runs_with_rows += result["rows"] < TOTAL  # the resume had tasks left
    _check_resumed(out, reference, runs_with_rows, runs_maybe_logged)
    return interrupted


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_serial_run_killed_at_random_points_resumes_exactly(tmp_path, protocol_file, reference, seed):
    interrupted = _fault_case(protocol_file, reference, tmp_path / "out", seed, jobs=1, fork=True, kills=2)
    assert interrupted >= 1, "no kill landed before the run finished"


def test_parallel_run_killed_at_random_point_resumes_exactly(tmp_path, protocol_file, reference):
    interrupted = _fault_case(protocol_file, reference, tmp_path / "out", 11, jobs=2, fork=False)
    assert interrupted == 1


def test_dask_run_killed_at_random_point_resumes_exactly(tmp_path, protocol_file, reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        host="127.0.0.1", protocol="tcp", n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        interrupted = _fault_case(
            protocol_file, reference, tmp_path / "out", 21, jobs=1, fork=False, scheduler=cluster.scheduler_address
        )
    assert interrupted == 1
