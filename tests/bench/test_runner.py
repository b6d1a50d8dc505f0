"""The runner: resumable store, joblib and Dask execution, failures recorded, surviving SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from psilon.bench.protocols import ModelSpec, Protocol, SplitSpec
from psilon.bench.runner import STORE_NAME, execute_task, prepare_split, run_protocol
from psilon.bench.store import ResultStore
from psilon.datasets import load_dataset

REPO = Path(__file__).resolve().parents[2]


def _scores(out):
    return {r["key"]: r["metrics"]["test"] for r in ResultStore(out / STORE_NAME).rows() if r["status"] == "ok"}


def test_run_then_rerun_skips_finished_tasks(tmp_path, tiny_protocol):
    summary = run_protocol(tiny_protocol, tmp_path, progress=False)
    assert (summary.total, summary.ok, summary.error, summary.skipped) == (8, 8, 0, 0)
    before = (tmp_path / STORE_NAME).read_bytes()
    again = run_protocol(tiny_protocol, tmp_path, progress=False)
    assert (again.already_done, again.ok) == (8, 0)
    assert (tmp_path / STORE_NAME).read_bytes() == before
    rows = ResultStore(tmp_path / STORE_NAME).rows()
    assert {r["key"] for r in rows} == {t.key for t in tiny_protocol.tasks()}
    reg = next(r for r in rows if r["dataset"] == "sklearn:diabetes" and r["model"] == "linear")
    assert reg["primary_metric"] == "rmse" and reg["selected"]["alpha"] in (0.1, 1.0, 10.0)
    assert (reg["n_train"], reg["n_val"] + reg["n_test"]) == (265, 177)


def test_parallel_jobs_give_the_same_results(tmp_path, tiny_protocol):
    run_protocol(tiny_protocol, tmp_path / "serial", models=["linear"], progress=False)
    run_protocol(tiny_protocol, tmp_path / "jobs", models=["linear"], jobs=2, progress=False)
    assert _scores(tmp_path / "serial") == _scores(tmp_path / "jobs") and len(_scores(tmp_path / "jobs")) == 4


def test_dask_local_cluster(tmp_path, tiny_protocol):
    distributed = pytest.importorskip("distributed")
    run_protocol(tiny_protocol, tmp_path / "serial", models=["linear"], progress=False)
    with distributed.LocalCluster(
        host="127.0.0.1", protocol="tcp", n_workers=2, threads_per_worker=1, processes=False,
        dashboard_address=None,
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        summary = run_protocol(tiny_protocol, tmp_path / "dask", models=["linear"], scheduler=cluster.scheduler_address, progress=False)
    assert (summary.ok, summary.error) == (4, 0)
    assert _scores(tmp_path / "serial") == _scores(tmp_path / "dask")


def test_failures_are_recorded_and_retried(tmp_path):
    bad = Protocol(
        "bad", "", ("sklearn:iris",), (ModelSpec("hgb", "hist-gb", {"learning_rate": [-1.0]}),),
        split=SplitSpec(n_train=0.6, row_cap=None),
    )
    summary = run_protocol(bad, tmp_path, progress=False)
    assert summary.error == 1 and "learning_rate" in summary.errors[0]
    (row,) = ResultStore(tmp_path / STORE_NAME).rows()
    assert row["status"] == "error" and "Traceback" in row["traceback"]
    assert run_protocol(bad, tmp_path, progress=False).error == 1  # retried, not treated as done
    assert len((tmp_path / STORE_NAME).read_text().splitlines()) == 2 and len(ResultStore(tmp_path / STORE_NAME).rows()) == 1


def test_unavailable_models_are_skipped_with_a_note(tmp_path):
    protocol = Protocol("p", "", ("sklearn:iris",), (ModelSpec("tabm-d", "tabm-d"),), split=SplitSpec(n_train=0.6, row_cap=None))
    try:
        import pytabkit  # noqa: F401
    except ImportError:
        summary = run_protocol(protocol, tmp_path, progress=False)
        assert summary.skipped == 1 and "pytabkit" in summary.notes[0]
    else:
        pytest.skip("pytabkit is installed")


def test_preprocessing_is_fitted_on_training_rows(tiny_protocol):
    task = tiny_protocol.tasks(datasets=["sklearn:diabetes"], models=["linear"])[0]
    ds = load_dataset("sklearn:diabetes")
    data = prepare_split(task, ds)
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, atol=1e-12)
    assert np.median(data.y_train) == pytest.approx(0)
    q1, q3 = np.percentile(data.y_train, [25, 75])
    assert (q3 - q1) / 2 == pytest.approx(1)
    train = task.split.split(ds, task.split_id)[0]
    q1, q3 = np.percentile(ds.y.to_numpy()[train], [25, 75])
    assert data.target_scale == pytest.approx((q3 - q1) / 2)


def test_original_scale_metrics_multiply_back(tiny_protocol):
    from dataclasses import replace

    from psilon.bench.protocols import Preprocessing

    task = tiny_protocol.tasks(datasets=["sklearn:diabetes"], models=["linear"])[0]
    original = replace(task, preprocessing=Preprocessing(metric_scale="original"))
    scaled_row, original_row = execute_task(task), execute_task(original)
    ratio = original_row["metrics"]["test"]["rmse"] / scaled_row["metrics"]["test"]["rmse"]
    assert ratio == pytest.approx(original_row["target_scale"]) and ratio > 10


def _bench_command(protocol_file, out):
    return [sys.executable, "-m", "psilon.bench.cli", "bench", str(protocol_file), "--out", str(out), "--no-report", "--no-progress"]


def _wait_for_rows(path, n, proc, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"bench finished before it could be killed (rc={proc.returncode})")
        time.sleep(0.02)
    pytest.fail("no rows appeared in time")


def test_sigkill_mid_run_loses_only_tasks_in_flight(tmp_path, tiny_protocol):
    spec = tiny_protocol.to_dict()
    spec = {**spec, "datasets": ["sklearn:diabetes", "sklearn:breast_cancer", "sklearn:wine"]}
    spec["models"] = [{**m, "params": {**m["params"]}} for m in spec["models"]]
    spec["models"][1]["params"]["n_estimators"] = 60  # ~0.5 s tasks: the kill lands mid-task
    protocol_file = tmp_path / "protocol.json"
    protocol_file.write_text(json.dumps(spec))
    store_path = tmp_path / "out" / STORE_NAME
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    total = 12
    for kill_after in (2, 5):
        proc = subprocess.Popen(_bench_command(protocol_file, tmp_path / "out"), env=env, cwd=tmp_path)
        _wait_for_rows(store_path, kill_after, proc)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = store_path.read_bytes()
        complete = [json.loads(line) for line in data.split(b"\n")[:-1]]  # every complete line parses
        assert len(complete) >= kill_after
        assert len({r["key"] for r in complete}) == len(complete) < total  # no duplicates, not finished
    finished = subprocess.run(_bench_command(protocol_file, tmp_path / "out"), env=env, cwd=tmp_path, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "already done" in finished.stdout
    rows = [json.loads(line) for line in store_path.read_text().splitlines()]
    assert len(rows) == total and len({r["key"] for r in rows}) == total and all(r["status"] == "ok" for r in rows)
    assert data[: data.rfind(b"\n") + 1] == store_path.read_bytes()[: data.rfind(b"\n") + 1]  # earlier rows untouched


def _loky_workers(parent_pid):
    """Pids of the joblib/loky worker processes whose parent is ``parent_pid`` (from /proc)."""
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent_pid and "popen_loky" in cmdline:
            workers.append(int(entry.name))
    return workers


def _running(pid):
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker processes from /proc (Linux)")
def test_workers_exit_when_the_run_is_killed(tmp_path, tiny_protocol):
    """SIGKILL the main process of a --jobs 2 run: its loky workers must not outlive it
    (loky keeps them up to 5 minutes, each holding ~0.5 GB)."""
    spec = tiny_protocol.to_dict()
    spec["datasets"] = ["sklearn:diabetes", "sklearn:breast_cancer", "sklearn:wine"]
    spec["models"] = [{"label": "rf", "entry": "random-forest", "params": {"n_estimators": 300, "min_samples_leaf": [4, 16]}}]
    protocol_file = tmp_path / "protocol.json"
    protocol_file.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([*_bench_command(protocol_file, tmp_path / "out"), "--jobs", "2"], env=env, cwd=tmp_path)
    workers = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            workers = _loky_workers(proc.pid)
        assert len(workers) == 2, f"expected 2 workers, found {workers} (rc={proc.poll()})"
        time.sleep(1.0)  # let them start their first tasks
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 60  # a watchdog needs about a second; loky alone keeps them 300 s
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _running(pid)], "workers outlived the killed run"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in workers:  # never leave them behind, even when the test fails
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
