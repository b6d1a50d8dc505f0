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
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800)  # a hang guard: a loaded 2-core machine takes > 6 min
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


# ------------------------------------------------------------------------- issue #13


@pytest.fixture
def linear_protocol_file(tmp_path, tiny_protocol):
    """The tiny protocol with its linear model only: 4 tasks of well under a second."""
    spec = tiny_protocol.to_dict()
    spec["models"] = [m for m in spec["models"] if m["label"] == "linear"]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(spec))
    return path


def test_only_commands_that_ran_are_recorded(tmp_path, linear_protocol_file, capsys, monkeypatch):
    import psilon.bench.runner as runner
    from psilon.bench.runner import STORE_NAME
    from psilon.bench.store import ResultStore

    out = tmp_path / "out"
    base = ["bench", str(linear_protocol_file), "--out", str(out), "--no-progress"]
    assert main([*base, "--models", "nope"]) == 2  # refused at validation
    assert "nope" in capsys.readouterr().err
    assert not (out / "commands.txt").exists() and not (out / "protocol.json").exists()
    out.mkdir()
    with ResultStore(out / STORE_NAME):  # another run holds the store
        assert main(base) == 2
    assert "another process is writing" in capsys.readouterr().err
    assert not (out / "commands.txt").exists() and not (out / "protocol.json").exists()

    def unreachable(*args, **kwargs):
        raise OSError("Timed out trying to connect to tcp://127.0.0.1:1")
        yield

    with monkeypatch.context() as patch:  # the executor fails before any task ran
        patch.setattr(runner, "_execute_all", unreachable)
        assert main(base) == 2
    assert "Timed out" in capsys.readouterr().err and not (out / "commands.txt").exists()
    assert main(base) == 0  # runs the 4 tasks
    assert (out / "commands.txt").read_text() == "psilon " + " ".join(base) + "\n"
    assert main(base) == 0  # nothing left to run: not a run of the benchmark
    assert (out / "commands.txt").read_text().count("\n") == 1
    report = (out / "report.md").read_text()
    assert "nope" not in report and "ran 2 times" not in report and "psilon bench" in report


def _exit_code(call):
    """The exit code of a command, whether it returns it or argparse exits with it."""
    try:
        return call()
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("threads", ["0", "-3", "two"])
def test_bench_refuses_bad_threads_before_any_work(tmp_path, linear_protocol_file, capsys, threads):
    out = tmp_path / "out"
    argv = ["bench", str(linear_protocol_file), "--out", str(out), "--threads", threads, "--no-progress"]
    assert _exit_code(lambda: main(argv)) == 2
    assert "--threads" in capsys.readouterr().err
    assert not out.exists()  # no store, no failed rows, no log


@pytest.mark.parametrize("option", [{"threads": 0}, {"threads": -3}, {"jobs": 0}, {"jobs": -2}])
def test_run_protocol_refuses_bad_threads_and_jobs(tmp_path, tiny_protocol, option):
    from psilon.bench.runner import run_protocol

    (name, value), = option.items()
    with pytest.raises(ValueError, match=f"{name}="):
        run_protocol(tiny_protocol, tmp_path / "out", progress=False, **option)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["file", "below-file", "sys"])
def test_bench_bad_out_is_a_one_line_error(linear_protocol_file, capsys, bad_out_folders, assert_one_line_error, kind):
    out = bad_out_folders[kind]
    assert main(["bench", str(linear_protocol_file), "--out", str(out), "--no-progress"]) == 2
    assert_one_line_error(capsys.readouterr().err, out)


def test_bench_refuses_a_device_this_machine_lacks_before_any_work(tmp_path, linear_protocol_file, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: 'cuda' is a valid device here")
    out = tmp_path / "out"
    argv = ["bench", str(linear_protocol_file), "--out", str(out), "--device", "cuda", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "'cpu'" in err
    assert not out.exists()


def test_device_reaches_the_torch_models_only_and_leaves_the_keys_alone(tmp_path):
    import json

    import torch

    from psilon.bench.protocols import Protocol
    from psilon.bench.runner import run_protocol

    proto = Protocol.from_dict({
        "name": "tiny-net",
        "description": "a network and a baseline",
        "datasets": ["sklearn:diabetes"],
        "models": [
            {"label": "linear", "entry": "linear", "params": {"alphas": [1.0]}},
            {"label": "psilon-net", "entry": "psilon-net",
             "params": {"width": 8, "depth": 2, "lambdas": [1e-3], "max_steps": 20, "batch_size": 64}},
        ],
        "split": {"kind": "shuffle", "seeds": [0], "row_cap": None, "n_train": 0.6},
    })
    plain = run_protocol(proto, tmp_path / "plain", progress=False)
    on_cpu = run_protocol(proto, tmp_path / "cpu", progress=False, device="cpu")
    assert plain.ok == on_cpu.ok == 2
    rows = {p: {r["model"]: r for r in map(json.loads, (tmp_path / p / "results.jsonl").read_text().splitlines())}
            for p in ("plain", "cpu")}
    assert rows["cpu"]["psilon-net"]["device"] == "cpu"
    assert "device" not in rows["cpu"]["linear"] and "device" not in rows["plain"]["psilon-net"]
    assert {m: r["key"] for m, r in rows["cpu"].items()} == {m: r["key"] for m, r in rows["plain"].items()}
    if not torch.cuda.is_available():  # the estimators' own default, 'auto', is then the CPU too
        assert rows["cpu"]["psilon-net"]["metrics"] == rows["plain"]["psilon-net"]["metrics"]


def test_splits_option_runs_only_those_splits_and_refuses_unknown_ids(tmp_path, linear_protocol_file, capsys):
    import json

    out = tmp_path / "out"
    assert main(["bench", str(linear_protocol_file), "--out", str(out), "--splits", "1", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert rows and {r["split_id"] for r in rows} == {1}
    capsys.readouterr()
    assert main(["bench", str(linear_protocol_file), "--out", str(out), "--splits", "0,7", "--no-progress"]) == 2
    assert "splits [7] are not in this protocol" in capsys.readouterr().err
    assert _exit_code(lambda: main(["bench", str(linear_protocol_file), "--out", str(out), "--splits", "x"])) == 2
