"""End-to-end: ``psilon recovery FIGURE`` writes a PNG and a CSV with tiny settings."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from psilon.cli import main


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#")


def test_recovery_fig1_writes_png_and_csv(tmp_path, capsys):
    code = main(["recovery", "fig1", "--out", str(tmp_path), "--trials", "2", "--max-steps", "300",
                 "--alphas", "0.1,0.5", "--no-progress"])
    assert code == 0
    png, csv = tmp_path / "fig1.png", tmp_path / "fig1.csv"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = csv.read_text().splitlines()[1]
    assert header.startswith("# settings:") and "trials=2" in header and "max_steps=300" in header
    df = _read(csv)
    assert len(df) == 2 * 2 * 2  # trials x alphas x methods
    assert set(df.method) == {"gd", "wn"} and set(df.alpha) == {0.1, 0.5}
    assert np.all(df.steps <= 300) and np.all(np.isfinite(df.error))
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries
    out = capsys.readouterr().out
    assert "median_ratio_gd_over_wn" in out and "wrote" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["history", "--max-steps", "200"],
        ["fig3", "--max-steps", "200", "--etas", "0.1,10"],
        ["fig4", "--max-steps", "200", "--alphas", "0.1"],
        ["fig5", "--max-steps", "200", "--alphas", "0.1"],
        ["phase", "--max-steps", "100", "--N", "20", "--deltas", "0.3,0.6", "--rhos", "0.2,0.4"],
    ],
)
def test_other_figures_run_tiny(tmp_path, argv):
    code = main(["recovery", *argv, "--out", str(tmp_path), "--trials", "2", "--no-progress"])
    assert code == 0
    pngs = list(tmp_path.glob("fig*.png"))
    csvs = list(tmp_path.glob("fig*.csv"))
    assert len(pngs) == 1 and len(csvs) == 1
    assert len(_read(csvs[0])) > 0


def test_bad_cli_arguments(tmp_path, capsys):
    assert main(["recovery", "fig1", "--etas", "1", "--out", str(tmp_path)]) == 2
    assert "does not apply" in capsys.readouterr().err
    assert main(["recovery", "fig1", "--trials", "0", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "n_trials must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["recovery", "fig9"])


def test_fig4_etas_l3_option(tmp_path):
    """--etas-l3 gives one L = 3 WN-GD column per value; L = 2 keeps --eta; both in the CSV."""
    code = main(["recovery", "fig4", "--out", str(tmp_path), "--trials", "2", "--max-steps", "200",
                 "--alphas", "0.05,0.1", "--eta", "0.02", "--etas-l3", "0.01,0.3,0.5", "--no-progress"])
    assert code == 0
    csv = tmp_path / "fig4.csv"
    header = csv.read_text().splitlines()[1]
    assert "eta_ratio_L2=0.02" in header and "eta_ratios_L3=[0.01,0.3,0.5]" in header
    assert "max_steps=200" in header and "lr=0.05" in header
    df = _read(csv)
    wn = df[df.method == "wn"]
    assert set(wn[wn.depth == 2].eta_ratio) == {0.02}
    assert set(wn[wn.depth == 3].eta_ratio) == {0.01, 0.3, 0.5}
    assert len(df) == 2 * 2 * (2 + 4)  # trials x alphas x (L=2: gd + wn; L=3: gd + 3 wn)
    assert {"radius", "n_active", "diverged"} <= set(df.columns)
    assert df[df.method == "gd"].radius.isna().all() and (wn.radius > 0).all()
    assert main(["recovery", "fig1", "--etas-l3", "0.3", "--out", str(tmp_path)]) == 2
    assert main(["recovery", "fig4", "--etas-l3", "0,0.3", "--out", str(tmp_path), "--trials", "1",
                 "--max-steps", "10", "--no-progress"]) == 2


def _exit_code(call):
    """The exit code of a command, whether it returns it or argparse exits with it."""
    try:
        return call()
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(
    "argv",
    [
        ["fig1", "--max-steps", "0"],
        ["fig1", "--max-steps", "-5"],
        ["fig1", "--lr", "0"],
        ["fig1", "--lr", "nan"],
        ["fig1", "--tol", "-1"],
        ["fig1", "--eta", "0"],
        ["fig1", "--seed", "-1"],
        ["fig1", "--N", "0"],
        ["fig1", "--M", "0"],
        ["fig1", "--s", "0"],
        ["fig1", "--alphas", "0,0.1"],
        ["fig1", "--alphas", "inf"],
        ["fig3", "--etas", "-1"],
        ["phase", "--deltas", "0,0.5"],
        ["phase", "--rhos", "0.2,-0.1"],
    ],
)
def test_degenerate_options_are_refused_and_leave_the_figure_alone(tmp_path, capsys, argv):
    name = {"phase": "fig6"}.get(argv[0], argv[0])
    committed = {tmp_path / f"{name}.png": b"committed png", tmp_path / f"{name}.csv": b"committed csv"}
    for path, data in committed.items():
        path.write_bytes(data)
    code = _exit_code(lambda: main(["recovery", *argv, "--out", str(tmp_path), "--trials", "1", "--no-progress"]))
    assert code == 2
    assert argv[1] in capsys.readouterr().err
    assert {path: path.read_bytes() for path in committed} == committed


@pytest.mark.parametrize("kind", ["file", "below-file", "sys"])
def test_bad_out_is_a_one_line_error_before_any_work(tmp_path, capsys, monkeypatch, kind):
    from psilon.recovery import experiments

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    out = {"file": a_file, "below-file": a_file / "sub", "sys": Path("/sys/psilon-out")}[kind]

    def must_not_run(**kwargs):
        raise AssertionError("the figure ran although its --out folder is unusable")

    monkeypatch.setitem(experiments.FIGURES, "fig1", must_not_run)
    assert main(["recovery", "fig1", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err and str(out) in lines[0], err
