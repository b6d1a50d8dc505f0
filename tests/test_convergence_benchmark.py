"""benchmarks/bench_convergence.py: steps needed and test ratios from a pair of stores."""

import importlib.util
import json
import math
from pathlib import Path

from psilon.bench.protocols import get_protocol

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("bench_convergence", REPO / "benchmarks" / "bench_convergence.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _store(folder: Path, protocol: str, label: str, curve: dict[float, list[tuple[int, float]]], test: float):
    task = next(t for t in get_protocol(protocol).tasks() if t.model.label == label and t.split_id == 0)
    folder.mkdir(parents=True)
    (folder / "curves").mkdir()
    row = {"key": task.key, "status": "ok", "dataset": task.dataset, "split_id": 0, "model": label,
           "primary_metric": "rmse", "metrics": {"test": {"rmse": test}}, "fit_seconds": 1.5}
    (folder / "results.jsonl").write_text(json.dumps(row) + "\n")
    records = [{"lambda": lam, "step": s, "value": v} for lam, points in curve.items() for s, v in points]
    (folder / "curves" / f"{task.key}.json").write_text(json.dumps(records))


def test_steps_needed_is_the_first_step_within_two_percent_of_the_paper_final_value(tmp_path):
    bc = _script()
    # paper: the best lambda ends at 1.0 after 5,000 steps
    _store(tmp_path / "uci", "uci", "psilon-net", {1e-3: [(10, 3.0), (5000, 1.0)], 1e-1: [(10, 2.0), (5000, 1.5)]}, 2.0)
    # the default recipe: lambda 1e-1 is within 2% (1.015) at step 300, then gets worse (best so far counts)
    _store(tmp_path / "recipe-sweep", "recipe-sweep", "psilon-net@lr0.005x10",
           {1e-3: [(100, 2.0), (300, 1.5), (500, 1.1)], 1e-1: [(100, 1.9), (300, 1.015), (500, 1.3)]}, 1.8)
    rows = bc.compare(tmp_path, pairs=(("uci", "recipe-sweep"),))
    assert len(rows) == 1
    r = rows[0]
    assert r["model"] == "psilon-net@lr0.005x10" and r["paper_final_val"] == 1.0
    assert r["steps_needed"] == 300 and r["final_val"] == 1.015 and r["n_steps"] == 500
    assert math.isclose(r["test"] / r["paper_test"], 0.9)
    table = bc.summarize(rows)
    assert table.steps.tolist() == [300.0] and math.isclose(table.ratio.iloc[0], 0.9)


def test_a_run_that_never_comes_within_two_percent_is_not_reached(tmp_path):
    bc = _script()
    _store(tmp_path / "uci", "uci", "psilon-net", {1e-3: [(5000, 1.0)]}, 2.0)
    _store(tmp_path / "uci-default", "uci-default", "psilon-net", {1e-3: [(100, 1.5), (1000, 1.03)]}, 2.2)
    rows = bc.compare(tmp_path, pairs=(("uci", "uci-default"),))
    assert rows[0]["steps_needed"] is None
    assert bc.summarize(rows).steps.tolist() == [math.inf]
    assert "not reached" in bc.report(tmp_path, rows, "cmd", (("uci", "uci-default"),))


def test_paper_runs_without_a_default_counterpart_are_listed_as_pending(tmp_path):
    bc = _script()
    _store(tmp_path / "uci", "uci", "psilon-net", {1e-3: [(5000, 1.0)]}, 2.0)
    (tmp_path / "uci-default").mkdir()
    (tmp_path / "uci-default" / "results.jsonl").write_text("")
    pairs = (("uci", "uci-default"),)
    dataset = next(t.dataset for t in get_protocol("uci").tasks() if t.model.label == "psilon-net")
    assert bc.pending(tmp_path, pairs) == {("uci-default", "psilon-net"): [dataset]}
    _store(tmp_path / "uci-default-done", "uci-default", "psilon-net", {1e-3: [(1000, 1.0)]}, 2.0)
    # once the default store has the run, nothing is pending and the report has no pending section
    (tmp_path / "uci-default" / "results.jsonl").unlink()
    (tmp_path / "uci-default").rmdir()
    (tmp_path / "uci-default-done").rename(tmp_path / "uci-default")
    assert bc.pending(tmp_path, pairs) == {}
    rows = bc.compare(tmp_path, pairs)
    assert "Not yet in the default store" not in bc.report(tmp_path, rows, "cmd", pairs, tmp_path)
