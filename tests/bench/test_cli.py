"""The bench/report commands, including the smoke protocol end to end (the README's main job)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from psilon.bench.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_protocols_and_models(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("paper-tabular", "uci", "smoke", "--scheduler", "--jobs", "--data-dir", "psilon-net", "random-forest"):
        assert word in text
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "RESULTS" in capsys.readouterr().out


def test_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["bench", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown protocol 'nope'" in capsys.readouterr().err
    assert main(["bench", "smoke", "--out", str(tmp_path), "--datasets", "diabetis"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no result store" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_protocol_end_to_end(tmp_path):
    """``psilon bench smoke`` writes its store and report (run as a real subprocess)."""
    out = tmp_path / "smoke"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "psilon.bench.cli", "bench", "smoke", "--out", str(out), "--jobs", "2", "--no-progress"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "report:" in done.stdout
    summary = json.loads((out / "summary.json").read_text())["protocols"]["smoke"]
    assert set(summary["datasets"]) == {"sklearn:diabetes", "sklearn:breast_cancer", "sklearn:wine"}
    for d in summary["datasets"].values():
        assert {"linear", "random-forest", "hist-gb", "mlp"} <= set(d["models"])
    report = (out / "report.md").read_text()
    assert "## Protocol `smoke`" in report and "Produced by" in report and "psilon bench smoke --out" in report
    assert (out / "plots" / "ranks_smoke.png").is_file()
    # the report command rebuilds it from the store alone
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.md").is_file()


def test_top_level_psilon_command_has_bench_and_report(capsys):
    from psilon.cli import main as psilon_main

    with pytest.raises(SystemExit):
        psilon_main(["bench", "--help"])
    assert "paper-tabular" in capsys.readouterr().out
    assert psilon_main(["report", "/nonexistent/results"]) == 2
