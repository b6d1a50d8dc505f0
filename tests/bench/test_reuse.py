"""``psilon bench --reuse``: rows of other stores with the same fit identity are copied, not re-run."""

import json

import pytest

from psilon.bench.cli import main
from psilon.bench.protocols import Protocol, SplitSpec
from psilon.bench.runner import STORE_NAME, run_protocol
from psilon.bench.store import ResultStore

NET = {"width": 8, "depth": 2, "lambdas": [1e-3], "max_steps": 20, "batch_size": 64}


def _protocol(name, models, seeds=(0,), row_cap=None):
    return Protocol.from_dict({
        "name": name,
        "description": "reuse test",
        "datasets": ["sklearn:diabetes"],
        "models": models,
        "split": {"kind": "shuffle", "seeds": list(seeds), "row_cap": row_cap, "n_train": 0.6},
    })


def _rows(out):
    return {r["model"]: r for r in ResultStore(out / STORE_NAME).rows()}


@pytest.fixture
def source(tmp_path):
    """A store with a ridge model and a tiny PSiLON Net (which has curves) on splits 0 and 1."""
    proto = _protocol("first", [
        {"label": "linear", "entry": "linear", "params": {"alphas": [0.1, 1.0]}},
        {"label": "psilon-net", "entry": "psilon-net", "params": NET},
    ], seeds=(0, 1))
    out = tmp_path / "first"
    assert run_protocol(proto, out, progress=False).ok == 4
    return out


def test_same_fit_under_another_protocol_and_label_is_copied(tmp_path, source):
    # another name, other labels, another seed list: split 0's rows are the same, so are the fits
    second = _protocol("second", [
        {"label": "ridge", "entry": "linear", "params": {"alphas": [0.1, 1.0]}},
        {"label": "net", "entry": "psilon-net", "params": NET},
        {"label": "ridge-other-grid", "entry": "linear", "params": {"alphas": [10.0]}},
    ], seeds=(0,))
    out = tmp_path / "second"
    summary = run_protocol(second, out, progress=False, reuse=[source])
    assert (summary.total, summary.reused, summary.ok) == (3, 2, 1)
    rows, old = _rows(out), {(r["model"], r["split_id"]): r for r in ResultStore(source / STORE_NAME).rows()}
    tasks = {t.model.label: t for t in second.tasks()}
    for label, was in (("ridge", "linear"), ("net", "psilon-net")):
        row, src = rows[label], old[(was, 0)]
        assert row["key"] == tasks[label].key != src["key"] and row["protocol"] == "second"
        assert row["metrics"] == src["metrics"] and row["fit_seconds"] == src["fit_seconds"]
        assert row["reused_from"] == {"store": str(source), "key": src["key"], "protocol": "first", "model": was}
    assert "reused_from" not in rows["ridge-other-grid"]
    curves = json.loads((out / rows["net"]["curves_file"]).read_text())
    assert curves == json.loads((source / old[("psilon-net", 0)]["curves_file"]).read_text()) and curves
    # the copies are what running them gives, and a re-run finds every task done
    fresh = tmp_path / "fresh"
    run_protocol(second, fresh, progress=False)
    assert {m: r["metrics"] for m, r in _rows(fresh).items()} == {m: r["metrics"] for m, r in rows.items()}
    again = run_protocol(second, out, progress=False, reuse=[source])
    assert (again.already_done, again.reused, again.ok) == (3, 0, 0)


def test_other_split_rows_or_params_are_not_reused(tmp_path, source):
    capped = _protocol("capped", [{"label": "linear", "entry": "linear", "params": {"alphas": [0.1, 1.0]}}],
                       row_cap=300)
    summary = run_protocol(capped, tmp_path / "capped", progress=False, reuse=[source / STORE_NAME])
    assert (summary.reused, summary.ok) == (0, 1)
    assert SplitSpec(row_cap=300).defining() != SplitSpec(row_cap=None).defining()
    assert SplitSpec(seeds=(0,), n_splits=3).defining() == SplitSpec(seeds=(0, 1, 2), n_splits=10).defining()
    fixed = SplitSpec(kind="fixed", val_fraction=0.2)
    assert fixed.defining() != SplitSpec(kind="fixed", val_fraction=0.3).defining()


def test_failed_rows_are_not_reused(tmp_path):
    bad = _protocol("bad", [{"label": "linear", "entry": "linear", "params": {"alphas": [0.1], "nope": 1}}])
    assert run_protocol(bad, tmp_path / "bad", progress=False).error == 1
    again = run_protocol(_protocol("again", bad.to_dict()["models"]), tmp_path / "again", progress=False,
                         reuse=[tmp_path / "bad"])
    assert (again.reused, again.error) == (0, 1)


def test_reuse_errors_name_the_store_and_write_nothing(tmp_path, source, capsys):
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps(_protocol("p", [{"label": "linear", "entry": "linear", "params": {"alphas": [1.0]}}])
                               .to_dict()))
    missing = tmp_path / "missing"
    out = tmp_path / "out"
    assert main(["bench", str(spec), "--out", str(out), "--reuse", str(missing), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no result store" in err and not out.exists()
    assert main(["bench", str(spec), "--out", str(source), "--reuse", str(source), "--no-progress"]) == 2
    assert "output store itself" in capsys.readouterr().err


def test_cli_reports_the_reused_count_and_logs_the_command(tmp_path, source, capsys):
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps(_protocol("p", [{"label": "ridge", "entry": "linear", "params": {"alphas": [0.1, 1.0]}}])
                               .to_dict()))
    out = tmp_path / "out"
    assert main(["bench", str(spec), "--out", str(out), "--reuse", str(source), "--no-progress", "--no-report"]) == 0
    assert "1 reused" in capsys.readouterr().out
    assert "--reuse" in (out / "commands.txt").read_text()


def test_reuse_only_copies_and_runs_nothing(tmp_path, source, capsys):
    second = _protocol("second", [
        {"label": "ridge", "entry": "linear", "params": {"alphas": [0.1, 1.0]}},
        {"label": "ridge-other-grid", "entry": "linear", "params": {"alphas": [10.0]}},
    ])
    out = tmp_path / "second"
    summary = run_protocol(second, out, progress=False, reuse=[source], reuse_only=True)
    assert (summary.reused, summary.ok, summary.error) == (1, 0, 0)
    assert set(_rows(out)) == {"ridge"}  # the other task is left to do
    assert run_protocol(second, out, progress=False).ok == 1  # and a normal run does it
    with pytest.raises(ValueError, match="reuse_only needs stores"):
        run_protocol(second, tmp_path / "x", progress=False, reuse_only=True)
    spec = tmp_path / "p.json"
    spec.write_text(json.dumps(second.to_dict()))
    assert main(["bench", str(spec), "--out", str(tmp_path / "cli"), "--reuse-only", "--no-progress"]) == 2
    assert "--reuse" in capsys.readouterr().err and not (tmp_path / "cli").exists()
