"""Convergence: psilon's default recipe against the paper recipe's 5,000-step results.

A comparison of two pairs of result stores, each made by ``psilon bench`` on the same
datasets, splits, widths, depths and 13 lambdas:

- ``docs/results/uci`` (paper recipe) and ``docs/results/uci-default`` (psilon's default
  recipe), all 9 UCI sets and their 10 splits;
- ``docs/results/paper-tabular`` and ``docs/results/paper-tabular-default``, the 6 sets
  the paper-tabular run covers (split 0).

For PSiLON Net, PSiLON ResNet and StandardNet and each (dataset, split) present in both
stores: the best validation loss so far (minimum over lambdas) against the step, read
from the stores' curves; the **steps needed** to come within 2% of the paper recipe's
5,000-step validation loss (``inf`` when the run stopped before); the test metric of the
selected lambda. Headline, per model: the median over datasets (each the median over its
splits) of the steps needed, and the mean over datasets of the test ratio new / paper.

The runs live in the stores (resumable, parallel: ``psilon bench uci-default --jobs 2``);
this script only reads them and rewrites ``<out>/report.md`` and ``<out>/curves.png``
(atomically).

Usage::

    python benchmarks/bench_convergence.py --out docs/results/convergence
    python benchmarks/bench_convergence.py --out docs/results/recipe-sweep/convergence --pair uci:recipe-sweep
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from psilon.bench.protocols import DEFAULT_RECIPE, get_protocol
from psilon.bench.store import atomic_write_bytes, atomic_write_text

REPO = Path(__file__).resolve().parents[1]
MODELS = ("psilon-net", "psilon-resnet", "standard-net")
#: (paper-recipe store, default-recipe store), both under docs/results and named after their protocol.
PAIRS = (("uci", "uci-default"), ("paper-tabular", "paper-tabular-default"))
TOLERANCE = 0.02


def _runs(protocol: str, results: Path) -> dict[tuple[str, int, str], dict]:
    """The store's ok rows of the networks (current protocol version), each with its best-so-far curve."""
    folder = results / protocol
    if not (folder / "results.jsonl").is_file():
        return {}
    current = {t.key for t in get_protocol(protocol).tasks()}
    runs = {}
    for line in (folder / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("status") != "ok" or row["model"].split("@")[0] not in MODELS or row["key"] not in current:
            continue
        curve = pd.DataFrame(json.loads((folder / "curves" / f"{row['key']}.json").read_text()))
        best = curve.groupby("step").value.min().sort_index()
        runs[(row["dataset"], row["split_id"], row["model"])] = dict(
            best=best, test=float(row["metrics"]["test"][row["primary_metric"]]), metric=row["primary_metric"],
            fit_seconds=float(row.get("fit_seconds") or math.nan),
        )
    return runs


def compare(results: Path = REPO / "docs" / "results", pairs=PAIRS) -> list[dict]:
    """One row per (dataset, split, model) run in both stores of a pair; a model label
    ``<model>@<variant>`` (the recipe-sweep protocol) is compared with ``<model>``."""
    rows = []
    for paper_protocol, default_protocol in pairs:
        paper, default = _runs(paper_protocol, results), _runs(default_protocol, results)
        for (dataset, split, model), new in sorted(default.items()):
            ref = paper.get((dataset, split, model.split("@")[0]))
            if ref is None:
                continue
            best = new["best"].cummin()
            paper_val = float(ref["best"].iloc[-1])
            hit = best.index[best.to_numpy() <= paper_val * (1 + TOLERANCE)]
            rows.append(dict(
                source=paper_protocol, dataset=dataset, split_id=split, model=model, metric=ref["metric"],
                paper_final_val=paper_val, paper_steps=int(ref["best"].index[-1]), paper_test=ref["test"],
                final_val=float(best.iloc[-1]), steps_needed=int(hit[0]) if len(hit) else None,
                n_steps=int(best.index[-1]), test=new["test"], fit_seconds=new["fit_seconds"],
                curve=[[int(s), float(v)] for s, v in best.items()],
            ))
    return rows


def pending(results: Path = REPO / "docs" / "results", pairs=PAIRS) -> dict[tuple[str, str], list[str]]:
    """Per (default store, model): the datasets whose paper-recipe runs have no counterpart
    in the default store yet (a pair whose store holds ``@`` variants is a sweep, not a
    re-run, and is skipped)."""
    out: dict[tuple[str, str], list[str]] = {}
    for paper_protocol, default_protocol in pairs:
        paper, default = _runs(paper_protocol, results), _runs(default_protocol, results)
        if any("@" in model for _, _, model in default):
            continue
        for dataset, split, model in sorted(paper):
            if (dataset, split, model) not in default:
                names = out.setdefault((default_protocol, model), [])
                if dataset not in names:
                    names.append(dataset)
    return out


def summarize(rows: list[dict]) -> pd.DataFrame:
    """Per model and dataset: median steps needed over splits, mean test ratio new / paper."""
    frame = pd.DataFrame(rows)
    frame["steps"] = frame.steps_needed.astype(float).fillna(math.inf)
    frame["ratio"] = frame.test / frame.paper_test
    return frame.groupby(["model", "dataset"]).agg(
        splits=("split_id", "size"), steps=("steps", "median"), ratio=("ratio", "mean"),
        paper_val=("paper_final_val", "mean"), new_val=("final_val", "mean"), paper_test=("paper_test", "mean"),
        new_test=("test", "mean"), n_steps=("n_steps", "median"), fit_seconds=("fit_seconds", "median"),
    ).reset_index()


def _fmt_steps(v: float) -> str:
    return "not reached" if not math.isfinite(v) else f"{int(v)}"


def report(out: Path, rows: list[dict], command: str, pairs=PAIRS, results: Path = REPO / "docs" / "results") -> str:
    per = summarize(rows)
    lines = ["# Convergence: psilon's default recipe vs the paper recipe's 5,000 steps", "",
             f"Produced by `{command}` from {len(rows)} runs present in both stores of a pair: "
             + " and ".join(f"`docs/results/{a}` vs `docs/results/{b}`" for a, b in pairs)
             + " (made by `psilon bench <protocol> --out docs/results/<protocol>`).", "",
             "Default recipe: " + ", ".join(f"`{k}={v}`" for k, v in (DEFAULT_RECIPE | {"max_steps": "auto"}).items())
             + " (the estimators' defaults), on the same splits, widths, depths and 13 lambdas as the "
             "paper-recipe runs (5,000 steps, `init='paper'`, `length_lr_scale=1`, lr 2e-3, final state).", "",
             f"*Steps needed*: first evaluation where the best validation loss so far (minimum over lambdas) is "
             f"within {TOLERANCE:.0%} of the paper recipe's 5,000-step value ('not reached' when early stopping or "
             "the budget ended the run first). *Test ratio*: new / paper test metric (RMSE or log loss; < 1 is better).",
             "", "## Headline", "", "| model | datasets | median steps needed | reached | mean test ratio new/paper |",
             "|---|---:|---:|---:|---:|"]
    for model, g in per.groupby("model"):
        reached = int(np.isfinite(g.steps).sum())
        lines.append(f"| {model} | {len(g)} | {_fmt_steps(float(np.median(g.steps)))} | {reached} of {len(g)} | "
                     f"{g.ratio.mean():.3f} |")
    lines += ["", "## Per dataset", "", "| model | dataset | splits | paper val | default val | steps needed | "
              "paper test | default test | ratio | default steps run | fit s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in per.itertuples():
        lines.append(f"| {r.model} | {r.dataset} | {r.splits} | {r.paper_val:.4f} | {r.new_val:.4f} | "
                     f"{_fmt_steps(r.steps)} | {r.paper_test:.4f} | {r.new_test:.4f} | {r.ratio:.3f} | "
                     f"{int(r.n_steps)} | {r.fit_seconds:.0f} |")
    waiting = pending(results, pairs)
    if waiting:
        lines += ["", "## Not yet in the default store", "",
                  "Paper-recipe runs whose default-recipe counterpart is still to run (resume with `psilon bench "
                  "<store> --out docs/results/<store>`); they are not in the tables above.", ""]
        lines += [f"- `{store}`, {model}: {', '.join(names)}" for (store, model), names in sorted(waiting.items())]
    lines += ["", "![best validation loss so far against steps](curves.png)", ""]
    return "\n".join(lines)


def plot(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows)
    frame = frame[frame.split_id == frame.groupby("dataset").split_id.transform("min")]
    datasets = sorted(frame.dataset.unique())
    cols = 5
    fig, axes = plt.subplots(math.ceil(len(datasets) / cols), cols, figsize=(3.2 * cols, 2.6 * math.ceil(len(datasets) / cols)),
                             squeeze=False)
    for ax, name in zip(axes.flat, datasets):
        for r in frame[frame.dataset == name].itertuples():
            c = np.asarray(r.curve)
            line, = ax.plot(c[:, 0], c[:, 1] / r.paper_final_val, label=r.model)
        ax.axhline(1 + TOLERANCE, color="k", lw=0.8, ls="--")
        ax.set_title(name.split(":")[-1], fontsize=9)
        ax.set_yscale("log")
        ax.set_ylim(0.5, 20)
    for ax in axes.flat[len(datasets):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("step (default recipe)")
    fig.supylabel("best val loss / paper's 5,000-step val loss")
    fig.tight_layout()
    tmp = out / "curves.png.tmp.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    atomic_write_bytes(out / "curves.png", tmp.read_bytes())
    tmp.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/results/convergence")
    ap.add_argument("--results", default=str(REPO / "docs" / "results"), help="folder holding the stores")
    ap.add_argument("--pair", action="append", metavar="PAPER:OTHER",
                    help="compare the store OTHER with the paper-recipe store PAPER (protocol names; repeatable; "
                         "default: uci:uci-default and paper-tabular:paper-tabular-default)")
    args = ap.parse_args()
    pairs = PAIRS if not args.pair else tuple(tuple(p.split(":", 1)) for p in args.pair)
    if any(len(p) != 2 for p in pairs):
        ap.error("--pair takes PAPER:OTHER, e.g. uci:recipe-sweep")
    rows = compare(Path(args.results), pairs)
    if not rows:
        raise SystemExit(f"no run is in both stores of any pair {PAIRS} under {args.results}: run "
                         "'psilon bench uci-default --out docs/results/uci-default' first")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = f"python benchmarks/bench_convergence.py --out {args.out}" + "".join(f" --pair {p}" for p in args.pair or ())
    text = report(out, rows, command, pairs, Path(args.results))
    atomic_write_text(out / "report.md", text)
    plot(out, rows)
    print(text.split("## Per dataset")[0])


if __name__ == "__main__":
    main()
