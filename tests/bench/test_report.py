"""Reports: tables, ranks and wins from a store; plots, including curves when a network recorded them."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from psilon.bench.report import recent_fits, summarize, write_report
from psilon.bench.runner import STORE_NAME, run_protocol
from psilon.bench.store import ResultStore, atomic_write_text


def _row(dataset, model, score, split=0, curves=None, near=None, lip=None, task="regression"):
    metric = "rmse" if task == "regression" else "log_loss"
    test = {metric: score} if task == "regression" else {metric: score, "accuracy": 0.9}
    return {
        "key": f"{dataset}-{model}-{split}",
        "status": "ok",
        "protocol": "synthetic",
        "dataset": dataset,
        "model": model,
        "split_id": split,
        "task_type": task,
        "primary_metric": metric,
        "metrics": {"test": test, "val": test},
        "selected": {"lambda": 0.01} if curves else {},
        "near_sparsity": near,
        "lipschitz_bound": lip,
        "fit_seconds": 1.0,
        "curves_file": curves,
    }


def _store(folder, rows):
    """``rows`` written to a store in ``folder``; returns the store's path."""
    with ResultStore(folder / STORE_NAME) as store:
        for r in rows:
            store.append(r)
    return folder / STORE_NAME


@pytest.fixture
def synthetic_store(tmp_path):
    curves = [{"lambda": lam, "step": s, "value": float(np.exp(-s / 50) + lam)} for lam in (0.001, 0.01, 0.1) for s in range(0, 200, 10)]
    atomic_write_text(tmp_path / "curves" / "a.json", json.dumps(curves))
    atomic_write_text(tmp_path / "curves" / "b.json", json.dumps(curves))
    rows = [
        _row("d1", "psilon-net", 0.5, curves="curves/a.json", near=0.6, lip=3.0),
        _row("d1", "standard-net", 0.7, curves="curves/b.json", near=0.1, lip=30.0),
        _row("d1", "random-forest", 0.6),
        _row("d2", "psilon-net", 0.9, near=0.5, lip=2.0),
        _row("d2", "standard-net", 0.8, near=0.2, lip=20.0),
        _row("d2", "random-forest", 0.4),
        _row("d3", "psilon-net", 0.30, task="binary"),
        _row("d3", "psilon-net", 0.34, split=1, task="binary"),
        _row("d3", "standard-net", 0.35, task="binary"),
        _row("d3", "random-forest", 0.31, task="binary"),
        {"key": "x", "status": "skipped", "protocol": "synthetic", "dataset": "d1", "model": "tabm-d", "split_id": 0, "note": "tabm-d needs pytabkit"},
    ]
    _store(tmp_path, rows)
    return tmp_path


def test_summary_ranks_and_wins(synthetic_store):
    s = summarize(ResultStore(synthetic_store / STORE_NAME).rows())["synthetic"]
    assert s["datasets"]["d3"]["models"]["psilon-net"]["score"] == pytest.approx(0.32)
    assert s["datasets"]["d3"]["models"]["psilon-net"]["score_se"] == pytest.approx(0.02)
    assert s["datasets"]["d3"]["models"]["psilon-net"]["n_splits"] == 2
    # Ranks and wins are paired: on d3 only split 0 is common, where psilon-net (0.30) beats
    # random-forest (0.31) although its mean over both of its splits (0.32) does not.
    # ranks: d1 psilon 1, rf 2, std 3; d2 rf 1, std 2, psilon 3; d3 psilon 1, rf 2, std 3
    assert s["mean_rank"] == pytest.approx({"random-forest": 5 / 3, "psilon-net": 5 / 3, "standard-net": 8 / 3})
    assert s["datasets"]["d3"]["models"]["psilon-net"]["rank"] == 1
    assert s["wins"]["psilon-net vs standard-net"] == {"wins": 2, "ties": 0, "losses": 1, "datasets": 3, "splits": 3}
    assert s["wins"]["psilon-net vs random-forest"] == {"wins": 2, "ties": 0, "losses": 1, "datasets": 3, "splits": 3}
    assert s["notes"] == ["tabm-d needs pytabkit"]
    # d3 has two psilon-net splits, one of the others: those cells are flagged as incomplete
    assert s["incomplete"] == [
        {"dataset": "d3", "model": "random-forest", "n_splits": 1, "of": 2},
        {"dataset": "d3", "model": "standard-net", "n_splits": 1, "of": 2},
    ]
    assert s["fit_time"]["psilon-net"] == {"tasks": 4, "hours": pytest.approx(4 / 3600), "resumed": 0, "mean_seconds": 1.0,
                                           "recent_mean_seconds": 1.0}
    assert s["total_fit_hours"] == pytest.approx(10 / 3600)


def test_report_files_and_plots(synthetic_store, tmp_path):
    out = tmp_path / "report"
    write_report(synthetic_store / STORE_NAME, out)
    text = (out / "report.md").read_text()
    assert "## Protocol `synthetic`" in text and "| **mean rank** |" in text
    assert "psilon-net vs standard-net: 2 wins, 0 ties, 1 loss on 3 datasets (3 paired splits)" in text
    assert "**0.4000**" in text and "0.3200 ± 0.0200" in text and "tabm-d needs pytabkit" in text
    assert "0.600 / 3.000" in text  # near-sparsity / Lipschitz bound of PSiLON Net on d1
    assert "- standard-net, 1 of 2 splits: 1 dataset (d3)" in text
    assert "over 10 finished tasks" in text and "| psilon-net | 4 | 1.00 |" in text
    summary = json.loads((out / "summary.json").read_text())
    plots = set(summary["plots"])
    assert plots == {"curves_synthetic_d1.png", "figure1_synthetic.png", "near_sparsity_synthetic.png", "ranks_synthetic.png"}
    for name in plots:
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_a_real_run(tmp_path, tiny_protocol):
    run_protocol(tiny_protocol, tmp_path, progress=False)
    summary = write_report(tmp_path)
    s = summary["tiny"]
    assert set(s["datasets"]) == {"sklearn:diabetes", "sklearn:breast_cancer"}
    assert all(m["n_splits"] == 2 and m["score_se"] is not None for d in s["datasets"].values() for m in d["models"].values())
    assert sorted(s["mean_rank"].values()) in ([1.0, 2.0], [1.5, 1.5])
    assert (tmp_path / "plots" / "ranks_tiny.png").is_file() and "Test accuracy" in (tmp_path / "report.md").read_text()


def test_resumed_commands_are_listed_once_with_their_run_count(synthetic_store, tmp_path):
    base = synthetic_store
    first = "psilon bench synthetic --out x --jobs 1"
    second = "psilon bench synthetic --out x --jobs 2"
    (base / "commands.txt").write_text("\n".join([first, first, second, first, ""]) + "\n")
    write_report(base / STORE_NAME, tmp_path)
    text = (tmp_path / "report.md").read_text()
    block = text.split("```")[1].strip().splitlines()
    assert block == [first, second]
    assert "command 1 ran 3 times." in text and "command 2 ran" not in text


def test_a_resumed_command_with_a_new_deadline_is_the_same_command(synthetic_store, tmp_path):
    base = synthetic_store
    first = "psilon bench synthetic --out x --jobs 1"
    second = "psilon bench synthetic --out x --jobs 1 --models linear"
    log = [first, first + " --finish-by 21:45", "psilon bench synthetic --out x --finish-by=+2h --jobs 1",
           second + " --finish-by 2026-12-01T03:30", second]
    (base / "commands.txt").write_text("\n".join(log) + "\n")
    write_report(base / STORE_NAME, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert text.split("```")[1].strip().splitlines() == [first, second]
    assert "command 1 ran 3 times; command 2 ran 2 times." in text
    assert "3 of the 5 runs had a `--finish-by` deadline" in text


def test_selected_lambdas_and_the_grids_ends_are_reported(tmp_path):
    def net(dataset, model, split, chosen, grid=(1e-4, 1e-3, 1e-2)):
        path = [{"lambda": lam, "val_loss": 1.0, "selected": lam == chosen} for lam in grid]
        return {**_row(dataset, model, 0.5, split=split, near=0.5, lip=2.0), "selected": {"lambda": chosen}, "path": path}

    rows = [net("d1", "psilon-net", 0, 1e-3), net("d1", "psilon-net", 1, 1e-4),  # the smallest on one split
            net("d1", "standard-net", 0, 1e-2), net("d1", "standard-net", 1, 1e-2),
            net("d2", "psilon-net", 0, 1e-3), net("d2", "standard-net", 0, 1e-3),
            net("d3", "psilon-net", 0, 0.1, grid=(0.1,)),  # a grid of one lambda has no end to hit
            {**_row("d1", "random-forest", 0.6), "selected": {"max_features": 0.5}}]
    _store(tmp_path, rows)
    d = write_report(tmp_path)["synthetic"]["datasets"]
    assert d["d1"]["models"]["psilon-net"]["selected_lambdas"] == [1e-4, 1e-3]
    assert d["d1"]["models"]["psilon-net"]["lambda_at_grid_end"] == ["smallest"]
    assert d["d1"]["models"]["standard-net"]["lambda_at_grid_end"] == ["largest"]
    assert d["d2"]["models"]["psilon-net"]["lambda_at_grid_end"] == [] and d["d3"]["models"]["psilon-net"]["lambda_at_grid_end"] == []
    assert d["d1"]["models"]["random-forest"]["selected_lambdas"] == []
    text = (tmp_path / "report.md").read_text()
    assert "| d1 | 0.500 / 2.000 / 0.0001, 0.001 (end) | 0.500 / 2.000 / 0.01 (end) |" in text
    assert "| d2 | 0.500 / 2.000 / 0.001 | 0.500 / 2.000 / 0.001 |" in text
    assert ("At an end of the λ grid: psilon-net the smallest on 1 of 3 datasets; "
            "standard-net the largest on 1 of 2 datasets.") in text


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no result store"):
        write_report(tmp_path)


def test_rows_of_an_earlier_protocol_version_are_left_out(tmp_path):
    """A protocol whose settings changed: the old rows stay in the store but not in the report."""
    split = {"kind": "fixed", "n_splits": 2}
    prep = {"standardize": True}
    protocol = {
        "name": "synthetic",
        "datasets": ["d1"],
        "models": [
            {"label": "psilon-net", "entry": "psilon-net", "params": {"max_steps": 5000}},
            {"label": "random-forest", "entry": "random-forest", "params": {}},
        ],
        "split": split,
        "preprocessing": prep,
    }
    atomic_write_text(tmp_path / "protocol.json", json.dumps(protocol))

    def row(model, score, split_id, params):
        r = _row("d1", model, score, split=split_id)
        r.update(key=f"{model}-{split_id}-{params}", entry=model, params=params, split=split, preprocessing=prep)
        return r

    rows = [
        row("psilon-net", 9.0, 0, {"max_steps": 1000}),  # earlier version: superseded
        row("psilon-net", 9.0, 1, {"max_steps": 1000}),
        row("psilon-net", 0.5, 0, {"max_steps": 5000}),
        row("random-forest", 0.6, 0, {}),
        row("tabm-d", 0.7, 0, {}),  # a label the protocol no longer lists: kept
    ]
    _store(tmp_path, rows)
    summary = write_report(tmp_path / STORE_NAME)["synthetic"]
    assert summary["datasets"]["d1"]["models"]["psilon-net"]["score"] == pytest.approx(0.5)
    assert summary["datasets"]["d1"]["models"]["psilon-net"]["n_splits"] == 1
    assert set(summary["datasets"]["d1"]["models"]) == {"psilon-net", "random-forest", "tabm-d"}
    text = (tmp_path / "report.md").read_text()
    assert "Left out: 2 rows of an earlier version of the protocol (psilon-net" in text
    assert len(ResultStore(tmp_path / STORE_NAME).rows()) == 5  # nothing deleted


def test_ranks_of_a_run_in_progress_are_paired_and_counted(tmp_path):
    """A model on fewer splits or datasets: ranks use common splits; its mean rank says over how many datasets."""
    rows = [
        _row("d1", "psilon-net", 1.0, split=0),  # worse than RF on split 0 but far better on split 1 ...
        _row("d1", "random-forest", 0.9, split=0),
        _row("d1", "random-forest", 5.0, split=1),  # ... which psilon-net has not finished
        _row("d2", "psilon-net", 0.2),
        _row("d2", "random-forest", 0.3),
        _row("d2", "tabm-d", 0.1),
    ]
    _store(tmp_path, rows)
    s = write_report(tmp_path)["synthetic"]
    # unpaired means would give psilon-net 1.0 < 2.95 on d1: a win it has not earned
    assert s["wins"]["psilon-net vs random-forest"] == {"wins": 1, "ties": 0, "losses": 1, "datasets": 2, "splits": 2}
    assert s["datasets"]["d1"]["models"]["psilon-net"]["rank"] == 2
    assert s["mean_rank"] == pytest.approx({"tabm-d": 1.0, "psilon-net": 2.0, "random-forest": 2.0})
    assert s["n_datasets_ranked"] == {"psilon-net": 2, "random-forest": 2, "tabm-d": 1}
    text = (tmp_path / "report.md").read_text()
    assert "| 1.00 (1 of 2) |" in text and "- psilon-net, 1 of 2 splits: 1 dataset (d1)" in text


# ------------------------------------------------------------------- unreadable rows (issue #13)


def _append_bytes(path, data: bytes):
    with open(path, "ab") as handle:
        handle.write(data)


def test_report_names_rows_missing_fields_and_reports_the_rest(synthetic_store, capsys):
    from psilon.bench.cli import main

    _append_bytes(synthetic_store / STORE_NAME, b'{"key":"half","status":"ok","protocol":"synthetic"}\n')
    assert main(["report", str(synthetic_store)]) == 0
    err = capsys.readouterr().err
    assert "1 row" in err and "'half'" in err and "primary_metric" in err
    text = (synthetic_store / "report.md").read_text()
    assert "Skipped while reading" in text and "'half'" in text and "primary_metric" in text
    summary = json.loads((synthetic_store / "summary.json").read_text())
    assert summary["protocols"]["synthetic"]["fit_time"]["psilon-net"]["tasks"] == 4  # the good rows all count
    assert summary["unreadable"]["rows"] == 1


def test_report_of_plain_text_is_an_error_naming_the_lines(tmp_path, capsys):
    from psilon.bench.cli import main

    (tmp_path / STORE_NAME).write_text("hello\nworld\n")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no usable rows" in err and "2 lines" in err and "not JSON" in err and "1, 2" in err
    assert not (tmp_path / "report.md").exists()


def test_report_says_a_torn_last_line_was_left_out(synthetic_store, capsys):
    from psilon.bench.cli import main

    _append_bytes(synthetic_store / STORE_NAME, b'{"key":"torn","status":"o')
    assert main(["report", str(synthetic_store)]) == 0
    err = capsys.readouterr().err
    assert "line 12" in err and "torn" in err and "interrupted" in err
    assert "torn" in (synthetic_store / "report.md").read_text()


def test_write_report_warns_when_rows_are_skipped(synthetic_store, tmp_path):
    _append_bytes(synthetic_store / STORE_NAME, b"not json\n")
    with pytest.warns(UserWarning, match="line 12: not JSON"):
        write_report(synthetic_store, tmp_path / "out")


def test_report_of_an_empty_store_is_an_error(tmp_path):
    (tmp_path / STORE_NAME).write_bytes(b"")
    with pytest.raises(ValueError, match="no usable rows"):
        write_report(tmp_path)


@pytest.mark.parametrize("kind", ["file", "below-file", "sys"])
def test_report_bad_out_is_a_one_line_error(synthetic_store, capsys, bad_out_folders, assert_one_line_error, kind):
    from psilon.bench.cli import main

    out = bad_out_folders[kind]
    assert main(["report", str(synthetic_store), "--out", str(out)]) == 2
    assert_one_line_error(capsys.readouterr().err, out)


# ------------------------------------------------------------------------------- issue #15: the claim section


def _claim_rows(n=30):
    """A synthetic paper-exact store on ``n`` datasets with known answers.

    PSiLON Net beats StandardNet on d00-d20 (ratios 0.99, 0.98, ..., 0.79) and loses on
    d21-d29 by the 9 smallest margins (ratios 1.001 ... 1.009); against random forest it wins
    on 10 datasets, ties on 2 and loses on 18; linear is last everywhere.
    """
    rows = []
    for i in range(n):
        d = f"d{i:02d}"
        psilon = 1.0 - 0.01 * (i + 1) if i <= 20 else 1.0 + 0.001 * (i - 20)
        rf = psilon + 0.003 if i < 10 else psilon if i < 12 else psilon - 0.05  # never equal to 1.0
        for model, score in (("psilon-net", psilon), ("standard-net", 1.0), ("random-forest", rf), ("linear", 10.0)):
            row = _row(d, model, score)
            rows.append({**row, "protocol": "paper-exact", "key": f"pe-{row['key']}"})
    return rows


def _two_sided_binomial(k, n):
    tail = sum(math.comb(n, j) for j in range(0, min(k, n - k) + 1))
    return min(1.0, 2 * tail / 2**n)


def _exact_signed_rank_p(w_small, n):
    """Two-sided exact p of the signed-rank statistic min(W+, W-) = ``w_small`` for ``n`` untied ranks:
    counts the subsets of {1..n} with sum <= w_small."""
    counts = [1] + [0] * (n * (n + 1) // 2)
    for r in range(1, n + 1):
        for total in range(len(counts) - 1, r - 1, -1):
            counts[total] += counts[total - r]
    return min(1.0, 2 * sum(counts[: w_small + 1]) / 2**n)


def test_the_verdict_counts_only_datasets_with_all_of_the_protocols_splits():
    """default-recipe-30 has 3 splits: a dataset with only split 0 counts in the wins and the
    tests, but not in the verdict (its mean may still move), so 21 wins on split 0 alone are open."""
    split = {"kind": "shuffle", "seeds": [0, 1, 2]}
    rows = []
    for i in range(30):
        d = f"d{i:02d}"
        splits = range(3) if i < 10 else range(1)  # d00-d09 complete, the others on split 0 only
        for k in splits:
            for model, score in (("psilon-net", 0.9 if i < 21 else 1.1), ("standard-net", 1.0), ("random-forest", 1.2)):
                row = _row(d, model, score, split=k)
                rows.append({**row, "protocol": "default-recipe-30", "key": f"dr-{row['key']}", "split": split})
    c = summarize(rows)["default-recipe-30"]["claim"]
    std = c["rivals"]["standard-net"]
    assert (std["wins"], std["datasets"], std["complete"], std["complete_wins"], std["splits"]) == (21, 30, 10, 10, 3)
    assert std["verdict"] == "open"  # 10 settled wins, 20 datasets open
    rf = c["rivals"]["random-forest"]
    assert (rf["wins"], rf["complete_wins"], rf["verdict"]) == (30, 10, "open")
    text = "\n".join(_claim_lines_of(rows))
    assert ("it is **open** (21 wins on 30 of 30 datasets so far; the verdict counts the 10 datasets where both "
            "have all 3 splits (10 wins): the 20 others, 11 wins so far, may still change; 21 needs 11 more on the "
            "20 datasets left)") in text
    # all splits in: the same means settle it
    for i in range(10, 30):
        for k in (1, 2):
            for model, score in (("psilon-net", 0.9 if i < 21 else 1.1), ("standard-net", 1.0)):
                row = _row(f"d{i:02d}", model, score, split=k)
                rows.append({**row, "protocol": "default-recipe-30", "key": f"dr-{row['key']}", "split": split})
    std = summarize(rows)["default-recipe-30"]["claim"]["rivals"]["standard-net"]
    assert (std["complete"], std["complete_wins"], std["verdict"]) == (30, 21, "reproduces")


def _claim_lines_of(rows):
    from psilon.bench.report import _verdict_sentence

    c = summarize(rows)["default-recipe-30"]["claim"]
    return [_verdict_sentence(rival, r, c["wins_needed"], c["of"]) for rival, r in c["rivals"].items()]


def test_paired_tests_keep_the_log_ratios_of_positive_pairs_only():
    """A zero score (a perfect fit) has no log ratio: it counts as a win, but the ratios' tests
    and geometric mean need every ratio, so they are left out; the other ratios are kept."""
    from psilon.bench.report import _paired_tests

    ours, theirs = pd.Series({"a": 0.5, "b": 0.0, "c": 2.0}), pd.Series({"a": 1.0, "b": 0.1, "c": 1.0})
    t = _paired_tests(ours, theirs)
    assert (t["wins"], t["losses"], t["ties"]) == (2, 1, 0)
    assert t["log_ratios"] == pytest.approx({"a": math.log(0.5), "c": math.log(2.0)})
    assert t["geometric_mean_ratio"] is None and t["wilcoxon_p"] is None
    positive = _paired_tests(ours.drop("b"), theirs.drop("b"))
    assert positive["geometric_mean_ratio"] == pytest.approx(1.0) and positive["wilcoxon_p"] == pytest.approx(1.0)


def test_claim_statistics_have_the_known_answers():
    s = summarize(_claim_rows())["paper-exact"]
    c = s["claim"]
    std, rf = c["rivals"]["standard-net"], c["rivals"]["random-forest"]
    assert (std["wins"], std["ties"], std["losses"], std["datasets"]) == (21, 0, 9, 30)
    assert std["sign_p"] == pytest.approx(_two_sided_binomial(21, 30), rel=1e-9)
    assert std["sign_p"] == pytest.approx(0.04277, abs=1e-5)
    # the 9 losses have the 9 smallest |log ratio|: W+ = 1 + ... + 9 = 45
    assert std["wilcoxon_p"] == pytest.approx(_exact_signed_rank_p(45, 30), rel=1e-6)
    ratios = [1.0 - 0.01 * (i + 1) for i in range(21)] + [1.0 + 0.001 * j for j in range(1, 10)]
    assert std["geometric_mean_ratio"] == pytest.approx(math.exp(sum(map(math.log, ratios)) / 30))
    assert std["verdict"] == "reproduces"
    assert std["log_ratios"] == pytest.approx({f"d{i:02d}": math.log(r) for i, r in enumerate(ratios)})
    assert (rf["wins"], rf["ties"], rf["losses"]) == (10, 2, 18)
    assert rf["sign_p"] == pytest.approx(_two_sided_binomial(10, 28), rel=1e-9)  # ties are left out
    assert rf["verdict"] == "does not reproduce"
    assert s["wins"]["psilon-net vs standard-net"]["wins"] == 21  # the same pairing as the wins table
    # ranks: linear always 4th; psilon-net 1st on d00-d09, 1.5 on the ties, 2nd on d12-d20, 3rd on d21-d29
    ranks = c["ranks"]
    assert (ranks["datasets"], ranks["models"]) == (30, 4)
    # Demšar (2006), Table 5: q_0.05 = 2.569 for 4 classifiers; CD = q sqrt(k (k + 1) / (6 N))
    assert ranks["q"] == pytest.approx(2.569, abs=1e-3)
    assert ranks["cd"] == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 30)), abs=1e-3)
    assert ranks["friedman_p"] < 1e-6
    # random forest: 2nd on d00-d09, 1.5 on the ties, 1st on d12-d29; StandardNet: 3rd, but 2nd on d21-d29
    assert ranks["mean_rank"] == pytest.approx({"random-forest": 41 / 30, "psilon-net": 58 / 30, "standard-net": 81 / 30,
                                                "linear": 4.0})
    assert list(ranks["mean_rank"]) == ["random-forest", "psilon-net", "standard-net", "linear"]
    # CD = 0.856: random forest - PSiLON Net 0.57 and PSiLON Net - StandardNet 0.77 are within it,
    # random forest - StandardNet 1.33 is not, and linear is far from all
    assert ranks["groups"] == [["random-forest", "psilon-net"], ["psilon-net", "standard-net"]]


def _with_accuracy(rows, accuracies):
    """``rows`` with the datasets of ``accuracies`` ({dataset: {model: test accuracy}}) turned into
    classification (the score becomes the log loss)."""
    out = []
    for r in rows:
        acc = accuracies.get(r["dataset"], {}).get(r["model"])
        if r["dataset"] in accuracies:
            test = {"log_loss": r["metrics"]["test"]["rmse"], "accuracy": 0.9 if acc is None else acc}
            r = {**r, "task_type": "binary", "primary_metric": "log_loss", "metrics": {"test": test, "val": test}}
        out.append(r)
    return out


def test_claim_is_also_tested_without_the_saturated_datasets(tmp_path):
    # d00 (a win) and d25 (a loss) have PSiLON Net and StandardNet both at >= 0.999; d01 does not
    # (StandardNet 0.998); random forest is at 0.99 on d00, so against it nothing is saturated
    rows = _with_accuracy(_claim_rows(), {
        "d00": {"psilon-net": 1.0, "standard-net": 0.9995, "random-forest": 0.99},
        "d01": {"psilon-net": 1.0, "standard-net": 0.998},
        "d25": {"psilon-net": 0.9992, "standard-net": 1.0},
    })
    _store(tmp_path, rows)
    c = write_report(tmp_path)["paper-exact"]["claim"]["rivals"]
    std, rf = c["standard-net"], c["random-forest"]
    assert (std["wins"], std["losses"], std["verdict"]) == (21, 9, "reproduces")  # the verdict counts them all
    assert (std["saturated"], std["saturated_wins"]) == (["d00", "d25"], 1)
    u = std["unsaturated"]
    assert (u["wins"], u["ties"], u["losses"], u["datasets"]) == (20, 0, 8, 28)
    assert u["sign_p"] == pytest.approx(_two_sided_binomial(20, 28), rel=1e-9)
    kept = [1.0 - 0.01 * (i + 1) for i in range(1, 21)] + [1.0 + 0.001 * j for j in range(1, 10) if j != 5]
    assert u["geometric_mean_ratio"] == pytest.approx(math.exp(sum(map(math.log, kept)) / 28))
    assert (rf["saturated"], rf["unsaturated"]) == ([], None)
    text = (tmp_path / "report.md").read_text()
    assert ("against standard-net, 2 saturated (d00, d25; PSiLON Net lower on 1); without them 20 wins, 0 ties, "
            "8 losses on 28 datasets") in text
    assert "against random-forest, " not in text.split("Saturated datasets")[1].split("\n")[0]


def test_critical_difference_matches_demsars_table():
    from psilon.bench.report import critical_difference

    for k, q in ((2, 1.960), (3, 2.343), (5, 2.728), (7, 2.949), (10, 3.164)):
        got_q, cd = critical_difference(k, 12)
        assert got_q == pytest.approx(q, abs=1e-3) and cd == pytest.approx(q * math.sqrt(k * (k + 1) / 72), abs=1e-3)
    with pytest.raises(ValueError, match=">= 2 models"):
        critical_difference(1, 30)


def test_claim_is_open_while_the_run_is_in_progress_and_closes_when_out_of_reach():
    rows = [r for r in _claim_rows() if r["dataset"] not in {f"d{i:02d}" for i in range(15, 20)}]  # 25 datasets
    std = summarize(rows)["paper-exact"]["claim"]["rivals"]["standard-net"]
    assert (std["wins"], std["datasets"], std["verdict"]) == (16, 25, "open")  # 16 + 5 left can still reach 21
    rows = [r for r in rows if r["dataset"] != "d00"]
    std = summarize(rows)["paper-exact"]["claim"]["rivals"]["standard-net"]
    assert (std["wins"], std["datasets"], std["verdict"]) == (15, 24, "open")
    fewer = [r for r in _claim_rows() if r["dataset"] not in {f"d{i:02d}" for i in range(0, 4)}]  # 17 wins on 26
    assert summarize(fewer)["paper-exact"]["claim"]["rivals"]["standard-net"]["verdict"] == "open"
    lost = [r for r in _claim_rows() if not (r["dataset"] < "d05" and r["model"] == "standard-net")] + [
        {**_row(f"d{i:02d}", "standard-net", 0.5), "protocol": "paper-exact", "key": f"pe-x{i}"} for i in range(5)
    ]  # d00-d04 turn into losses: 16 wins of 30
    assert summarize(lost)["paper-exact"]["claim"]["rivals"]["standard-net"]["verdict"] == "does not reproduce"


def test_the_claim_section_appears_only_for_the_30_dataset_protocols(synthetic_store):
    with ResultStore(synthetic_store / STORE_NAME) as store:  # the store then holds two protocols
        for r in _claim_rows():
            store.append(r)
    summary = write_report(synthetic_store)
    assert "claim" in summary["paper-exact"] and "claim" not in summary["synthetic"]
    text = (synthetic_store / "report.md").read_text()
    other, ours = text.split("## Protocol `paper-exact`")
    assert "The paper's claim" not in other
    assert ours.index("The paper's claim") < ours.index("Test metric")  # before the per-dataset tables
    assert "against standard-net it **reproduces** (21 wins on 30 of 30 datasets)" in ours
    assert "against random-forest it **does not reproduce** (10 wins on 30 of 30 datasets)" in ours
    assert "| standard-net | 30 of 30 | 21 | 0 | 9 | 0.043 |" in ours
    assert "Groups not significantly different: {random-forest, psilon-net}; {psilon-net, standard-net}." in ours
    assert [p.name for p in (synthetic_store / "plots").glob("cd_*.png")] == ["cd_paper-exact.png"]


def test_claim_is_open_before_psilon_net_has_a_result(tmp_path):
    _store(tmp_path, [r for r in _claim_rows(3) if r["model"] != "psilon-net"])
    s = write_report(tmp_path)["paper-exact"]
    assert s["claim"]["rivals"] == {} and s["claim"]["ranks"]["models"] == 3
    assert "the paper's 21 of 30 is **open**: no dataset has results of both" in (tmp_path / "report.md").read_text()


def test_progress_of_a_run_in_progress_counts_the_rest_and_estimates_its_cost(tmp_path, tiny_protocol):
    """A store part-way through its protocol says how many tasks are left and what they should
    cost: each model's remaining tasks times the mean fit time of its finished ones."""
    run_protocol(tiny_protocol, tmp_path, models=["linear"], splits=[0], progress=False)
    run_protocol(tiny_protocol, tmp_path, models=["random-forest"], splits=[0], datasets=["sklearn:diabetes"],
                 progress=False)
    s = write_report(tmp_path)["tiny"]
    p = s["progress"]
    rows = ResultStore(tmp_path / STORE_NAME).rows()
    mean = {m: np.mean([r["fit_seconds"] for r in rows if r["model"] == m]) / 3600 for m in ("linear", "random-forest")}
    assert (p["tasks"], p["done"]) == (8, 3)
    assert p["models"]["linear"]["done"] == 2 and p["models"]["linear"]["left"] == 2
    assert p["models"]["random-forest"]["done"] == 1 and p["models"]["random-forest"]["left"] == 3
    assert p["models"]["random-forest"]["hours_left"] == pytest.approx(3 * mean["random-forest"])
    assert p["hours_left"] == pytest.approx(2 * mean["linear"] + 3 * mean["random-forest"])
    assert p["unestimated"] == []
    report = (tmp_path / "report.md").read_text()
    assert "Progress: 3 of the protocol's 8 tasks are finished. The other 5 need about" in report
    assert "| random-forest | 1 of 4 | 3 |" in report

    run_protocol(tiny_protocol, tmp_path, progress=False)  # the rest: complete, no progress section
    write_report(tmp_path)
    assert "Progress:" not in (tmp_path / "report.md").read_text()


def test_the_estimates_read_each_models_last_fits_to_finish(tmp_path):
    """The code and the machine change between runs: the last 5 whole fits by finish time
    estimate the rest, not all of them (nor the last 5 lines of the store)."""
    rows = [_row(f"d{i}", "psilon-net", 0.5) for i in range(7)]
    for i, r in enumerate(rows):  # stored newest first; the two oldest fits were slow
        r["finished_at"] = f"2026-11-30T12:0{6 - i}:00+00:00"
        r["fit_seconds"] = 1000.0 if i >= 5 else 100.0 + i
    rows.append({**rows[0], "key": "resumed", "dataset": "d7", "fit_seconds": 1.0, "restored_checkpoints": 4,
                 "finished_at": "2026-11-30T13:00:00+00:00"})  # the newest, but only its last run's part
    t = write_report(_store(tmp_path, rows))["synthetic"]["fit_time"]["psilon-net"]
    assert t["mean_seconds"] == pytest.approx((sum(100.0 + i for i in range(5)) + 2000.0) / 7)
    assert t["recent_mean_seconds"] == pytest.approx(102.0)  # 100..104: the five newest whole fits
    assert recent_fits(rows)["psilon-net"] == [104.0, 103.0, 102.0, 101.0, 100.0]  # oldest first


def test_progress_names_the_models_it_cannot_estimate_yet(tmp_path, tiny_protocol):
    run_protocol(tiny_protocol, tmp_path, models=["linear"], splits=[0], progress=False)
    p = write_report(tmp_path)["tiny"]["progress"]
    assert p["unestimated"] == ["random-forest"] and p["models"]["random-forest"]["hours_left"] is None
    report = (tmp_path / "report.md").read_text()
    assert "need at least" in report and "random-forest not counted (none finished yet in one run)" in report
    assert "| random-forest | 0 of 4 | 4 | ? |" in report


def test_resumed_tasks_are_left_out_of_the_mean_fit_time(tmp_path):
    rows = [_row(f"d{i}", "psilon-net", 0.5) for i in range(3)] + [_row("d0", "linear", 0.9)]
    rows[0]["fit_seconds"], rows[1]["fit_seconds"], rows[2]["fit_seconds"] = 100.0, 300.0, 20.0
    rows[2]["restored_checkpoints"] = 9  # resumed: 20 s is only its last run's part
    s = write_report(_store(tmp_path, rows))["synthetic"]
    t = s["fit_time"]["psilon-net"]
    assert (t["tasks"], t["resumed"], t["mean_seconds"]) == (3, 1, pytest.approx(200.0))
    assert t["hours"] == pytest.approx(420 / 3600)
    assert s["fit_time"]["linear"]["mean_seconds"] == pytest.approx(1.0) and s["fit_time"]["linear"]["resumed"] == 0
    text = (tmp_path / "report.md").read_text()
    assert "| psilon-net | 3 | 200.00 |" in text and "so the mean leaves them out): psilon-net 1." in text
    # every task resumed: no whole fit time to take the mean of
    only = [{**rows[2], "key": "only"}]
    assert write_report(_store(tmp_path / "only", only))["synthetic"]["fit_time"]["psilon-net"]["mean_seconds"] is None
    assert "| psilon-net | 1 | – |" in (tmp_path / "only" / "report.md").read_text()


# ------------------------------------------------------------------------------- issue #15: the recipe ablation


def _steps_rows():
    """A recipe-ablation store: at step 'tabular' PSiLON Net beats StandardNet on 2 of 6 datasets,
    at 'exact' on 5 of 6 ('schedule' is missing for d5, 'mystery' is an unknown step)."""
    rows = []
    wins = {"tabular": {0, 1}, "schedule": {0, 1, 2}, "exact": {0, 1, 2, 3, 4}, "mystery": {0}}
    for i in range(6):
        d = f"d{i}"
        rows.append(_row(d, "random-forest", 1.0 + 0.1 * (i % 2)))
        for step, won in wins.items():
            if step == "schedule" and i == 5:
                continue
            rows.append({**_row(d, f"standard-net@{step}", 1.0), "selected": {"lambda": 0.01}})
            lam = 5e-05 if step == "tabular" else 0.0025  # the tabular step picks the grid's smallest
            rows.append({**_row(d, f"psilon-net@{step}", 0.9 if i in won else 1.2), "selected": {"lambda": lam}})
    return [{**r, "protocol": "recipe-ablation"} for r in rows]


def test_recipe_steps_count_wins_per_step_in_the_ablations_order(tmp_path):
    s = summarize(_steps_rows())["recipe-ablation"]
    steps = s["recipe_steps"]["steps"]
    assert [r["step"] for r in steps] == ["tabular", "schedule", "exact", "mystery"]  # known order, then by name
    by = {r["step"]: r for r in steps}
    assert [(by[st]["standard-net"]["wins"], by[st]["standard-net"]["losses"], by[st]["standard-net"]["datasets"])
            for st in ("tabular", "schedule", "exact")] == [(2, 4, 6), (3, 2, 5), (5, 1, 6)]
    assert by["exact"]["standard-net"]["geometric_mean_ratio"] == pytest.approx(math.exp((5 * math.log(0.9) + math.log(1.2)) / 6))
    # against the forest (1.0 on even datasets, 1.1 on odd ones): 0.9 always wins, 1.2 always loses
    assert (by["tabular"]["random-forest"]["wins"], by["tabular"]["random-forest"]["losses"]) == (2, 4)
    assert s["recipe_steps"]["ratios"]["exact"]["d5"] == pytest.approx(1.2)
    assert "claim" not in s
    write_report(_store(tmp_path, _steps_rows()))
    text = (tmp_path / "report.md").read_text()
    assert "### PSiLON Net at each step of the recipe" in text
    assert "| exact | 6 | 5 | 0 | 1 |" in text and "| schedule | 5 | 3 | 0 | 2 |" in text
    assert s["recipe_steps"]["lambdas"]["tabular"]["psilon-net"]["d0"] == 5e-05
    assert "d5" not in s["recipe_steps"]["lambdas"]["schedule"]["psilon-net"]
    assert "| d0 | 5e-05 (end) / 0.01 | 0.0025 / 0.01 | 0.0025 / 0.01 | 0.0025 / 0.01 |" in text
    assert "| d5 | 5e-05 (end) / 0.01 | – / – | 0.0025 / 0.01 |" in text
    assert (tmp_path / "plots" / "recipe_steps_recipe-ablation.png").stat().st_size > 1000


def test_step_changes_compare_each_step_with_the_one_before_on_the_datasets_that_have_both(tmp_path):
    s = summarize(_steps_rows())["recipe-ablation"]
    by = {c["step"]: c for c in s["recipe_steps"]["changes"]}
    assert [(c["before"], c["step"]) for c in s["recipe_steps"]["changes"]] == [
        ("tabular", "schedule"), ("schedule", "exact"), ("exact", "mystery")]
    # tabular -> schedule on d0-d4 (d5 has no schedule): only d2 moves, 1.2 -> 0.9, a loss turned win
    assert (by["schedule"]["datasets"], by["schedule"]["won"], by["schedule"]["lost"]) == (5, 1, 0)
    assert by["schedule"]["psilon"] == pytest.approx(0.75 ** (1 / 5))
    assert by["schedule"]["standard"] == pytest.approx(1.0) and by["schedule"]["ratio"] == pytest.approx(0.75 ** (1 / 5))
    assert (by["exact"]["datasets"], by["exact"]["won"]) == (5, 2) and by["exact"]["ratio"] == pytest.approx(0.75 ** (2 / 5))
    # exact -> mystery on all 6: d1-d4 go 0.9 -> 1.2, wins turned losses
    assert (by["mystery"]["datasets"], by["mystery"]["won"], by["mystery"]["lost"]) == (6, 0, 4)
    assert by["mystery"]["ratio"] == pytest.approx((4 / 3) ** (4 / 6))
    write_report(_store(tmp_path, _steps_rows()))
    text = (tmp_path / "report.md").read_text()
    assert "| exact | schedule | 5 | 0.891 | 1.000 | 0.891 | 2 | 0 |" in text
    assert "moves PSiLON Net / StandardNet most is **mystery** (×1.211 on 6 datasets" in text


def test_no_recipe_steps_without_both_networks_at_a_step(synthetic_store):
    rows = [r for r in _steps_rows() if not r["model"].startswith("standard-net")]
    assert "recipe_steps" not in summarize(rows)["recipe-ablation"]
    assert "recipe_steps" not in summarize(ResultStore(synthetic_store / STORE_NAME).rows())["synthetic"]


def test_a_report_of_several_stores_opens_with_both_recipes_claims(tmp_path, synthetic_store, capsys):
    from psilon.bench.cli import main

    exact = _claim_rows()
    default = [{**r, "protocol": "default-recipe-30", "key": f"dr-{r['key']}",
                "metrics": {"test": {"rmse": r["metrics"]["test"]["rmse"] * (1.2 if r["model"] == "psilon-net" else 1.0)}}}
               for r in _claim_rows(12)]
    a, b = tmp_path / "a", tmp_path / "b"
    _store(a, exact), _store(b, default)
    out = tmp_path / "both"
    summary = write_report([a, b / STORE_NAME, synthetic_store], out)
    assert set(summary) == {"paper-exact", "default-recipe-30", "synthetic"}
    text = (out / "report.md").read_text()
    overview = text[: text.index("Store: `a/`")]
    assert "## Does PSiLON Net win on 21 of 30 datasets? (issue #15)" in overview
    assert "| `paper-exact` | standard-net | 30 of 30 | 21 | 0 | 9 |" in overview
    # x1.2 turns the 12 datasets' wins (ratios 0.88 ... 0.99) into 12 losses
    assert "| `default-recipe-30` | standard-net | 12 of 30 | 0 | 0 | 12 |" in overview
    assert "Under `paper-exact`: against standard-net it **reproduces**" in overview
    # the per-dataset ratio plot of each recipe: under the overview's table and its own claim table, not in Plots
    for name in ("paper-exact", "default-recipe-30"):
        image = f"![claim_{name}.png](plots/claim_{name}.png)"
        assert image in overview and text.count(image) == 2 and (out / "plots" / f"claim_{name}.png").is_file()
        assert summary[name]["claim"]["plot"] == f"claim_{name}.png"
    assert image not in text[text.index("## Plots"):]
    assert "claim_paper-exact.png" in json.loads((out / "summary.json").read_text())["plots"]
    assert "## Protocol `paper-exact`" in text and "## Protocol `synthetic`" in text
    assert (out / "plots" / "curves_synthetic_d1.png").is_file()  # curves read from their own store's folder
    assert not (a / "report.md").exists()
    with pytest.raises(ValueError, match="several stores needs an output folder"):
        write_report([a, b])
    assert main(["report", str(a), str(b)]) == 2 and "--out" in capsys.readouterr().err
    assert main(["report", str(a), str(b), "--out", str(tmp_path / "cli")]) == 0
    assert "Does PSiLON Net win" in (tmp_path / "cli" / "report.md").read_text()
    # a store given twice counts once
    twice = write_report([a, a / STORE_NAME], tmp_path / "twice")
    assert twice["paper-exact"]["datasets"]["d00"]["models"]["psilon-net"]["n_splits"] == 1
    # one claim protocol: no overview (its own section says it)
    write_report([a, synthetic_store], tmp_path / "one")
    assert "Does PSiLON Net win" not in (tmp_path / "one" / "report.md").read_text()


def test_the_networks_are_compared_across_recipes_on_the_splits_both_ran(tmp_path):
    """Each network whose settings differ between paper-exact and default-recipe-30, against
    itself on the same data only (split settings, seed, preprocessing): default-recipe-30's
    split 1 (seed 1) and a split of another kind do not pair; a baseline with the same settings
    is not compared; a resumed task's fit time is left out of the times."""
    from psilon.bench.report import recipes_compared

    one, three = {"kind": "shuffle", "seeds": [0]}, {"kind": "shuffle", "seeds": [0, 1, 2]}
    rows = []

    def add(protocol, dataset, model, score, split_id, split, params, seconds, **extra):
        row = _row(dataset, model, score, split=split_id)
        rows.append({**row, "protocol": protocol, "key": f"{protocol}-{row['key']}", "split": split,
                     "params": params, "fit_seconds": seconds, "preprocessing": {"standardize": True}, **extra})

    for i in range(4):
        d = f"d{i}"
        for model, exact, default in (("psilon-net", 1.0, 0.9 if i < 3 else 1.1), ("standard-net", 1.2, 1.0)):
            add("paper-exact", d, model, exact, 0, one, {"path": "warm"}, 100.0)
            resumed = {"restored_checkpoints": [1]} if (model, i) == ("psilon-net", 3) else {}
            add("default-recipe-30", d, model, default, 0, three, {"path": "independent"},
                1.0 if resumed else 25.0, **resumed)
            add("default-recipe-30", d, model, 5.0, 1, three, {"path": "independent"}, 25.0)  # seed 1: other data
        add("paper-exact", d, "random-forest", 1.5, 0, one, {"n_estimators": 1000}, 3.0)
        add("default-recipe-30", d, "random-forest", 1.5, 0, three, {"n_estimators": 1000}, 3.0)
    add("paper-exact", "d9", "psilon-net", 1.0, 0, one, {"path": "warm"}, 100.0)
    add("default-recipe-30", "d9", "psilon-net", 0.1, 0, {"kind": "kfold", "seeds": [0]}, {"path": "independent"}, 25.0)

    c = recipes_compared(rows, "paper-exact", "default-recipe-30")
    assert set(c["models"]) == {"psilon-net", "standard-net"}  # random forest: the same settings, the same fit
    p = c["models"]["psilon-net"]
    assert (p["datasets"], p["wins"], p["losses"]) == (4, 3, 1)
    assert p["geometric_mean_ratio"] == pytest.approx(math.exp((3 * math.log(0.9) + math.log(1.1)) / 4))
    assert p["median_seconds"] == {"paper-exact": 100.0, "default-recipe-30": 25.0} and p["time_ratio"] == pytest.approx(4.0)
    s = c["models"]["standard-net"]
    assert (s["datasets"], s["wins"], s["geometric_mean_ratio"]) == (4, 4, pytest.approx(1.0 / 1.2))
    claim = c["claim"]["standard-net"]
    assert (claim["paper-exact"]["wins"], claim["default-recipe-30"]["wins"]) == (4, 3)
    assert claim["default-recipe-30"]["datasets"] == 4  # d9 pairs under neither: no standard-net there

    a, b = tmp_path / "a", tmp_path / "b"
    _store(a, [r for r in rows if r["protocol"] == "paper-exact"])
    _store(b, [r for r in rows if r["protocol"] == "default-recipe-30"])
    write_report([a, b], tmp_path / "both")
    text = (tmp_path / "both" / "report.md").read_text()
    assert "### The same networks under both recipes" in text
    assert "| psilon-net | 4 | 3 | 1 |" in text and "| 100 | 25 | 4.00 |" in text
    assert ("PSiLON Net against standard-net: 4 wins of 4 under `paper-exact` (ratio 0.833), "
            "3 wins of 4 under `default-recipe-30`") in text
    document = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert document["recipes_compared"]["models"]["psilon-net"]["wins"] == 3
    assert recipes_compared(rows, "paper-exact", "no-such-protocol") is None


def test_progress_of_a_claim_protocol_says_what_its_verdict_waits_for():
    """The verdict on 21 of 30 needs PSiLON Net and its rivals on every split: the progress
    counts their tasks left and what those cost, apart from the other models'."""
    from psilon.bench.report import _progress_lines, claim_wait, protocol_progress

    split = {"kind": "shuffle", "seeds": [0, 1, 2]}
    seconds = {"psilon-net": 3600.0, "standard-net": 1800.0, "random-forest": 36.0, "hist-gb": 10.0}
    done = {("d00", "psilon-net"): 3, ("d01", "psilon-net"): 1, ("d00", "standard-net"): 1, ("d01", "standard-net"): 1,
            ("d00", "random-forest"): 3, ("d01", "random-forest"): 3, ("d00", "hist-gb"): 1}
    rows = []
    for (d, model), n in done.items():
        for k in range(n):
            row = _row(d, model, 0.5, split=k)
            rows.append({**row, "protocol": "default-recipe-30", "key": f"dr-{row['key']}", "split": split,
                         "fit_seconds": seconds[model]})
    info = {"datasets": ["d00", "d01"], "split": split, "models": [{"label": m} for m in seconds]}
    p = protocol_progress(summarize(rows)["default-recipe-30"], info)
    assert (p["tasks"], p["done"]) == (24, 13)
    c = p["claim"]
    assert c["models"] == ["psilon-net", "standard-net", "random-forest"]
    assert (c["tasks"], c["done"], c["unestimated"]) == (18, 12, [])
    assert c["hours_left"] == pytest.approx(2 * 1.0 + 4 * 0.5)  # 2 PSiLON Nets, 4 StandardNets, no forest
    assert claim_wait(c) == ("the verdict on 21 of 30 waits for 6 tasks of psilon-net, standard-net and "
                             "random-forest (about 4.0 core-hours)")
    lines = "\n".join(_progress_lines(p))
    assert "The verdict on 21 of 30 waits for 6 tasks" in lines
    plain = [{**r, "protocol": "synthetic"} for r in rows]
    assert "claim" not in protocol_progress(summarize(plain)["synthetic"], info)
