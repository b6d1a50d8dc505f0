"""Convergence: psilon's default recipe against the paper recipe's 5,000-step results.

For every UCI set (splits 0-2) and the 6 paper-tabular sets (split 0), and for PSiLON
Net, PSiLON ResNet and StandardNet, this fits the estimator with **psilon's default
recipe** exactly as a user gets it (the paper's init with a 30x learning rate on the
lengths, ``max_steps='auto'``, early stopping per lambda, best state kept; the
protocol's width, depth, batch and 13 lambdas) on the same split the committed
paper-recipe run used, and compares with that run (5,000 steps, read from
``docs/results/{uci,paper-tabular}``: its per-lambda validation curves and test metric).

Per run: the best validation loss so far (minimum over lambdas) against the step, the
**steps needed** to come within 2% of the paper recipe's 5,000-step validation loss
(``inf`` when the run stops before), and the test metric of the selected lambda.
Headline, per model: the median over datasets (each the median over its splits) of the
steps needed, and the mean over datasets of the test ratio new / paper.

Results go to a resumable store ``<out>/results.jsonl`` (one row per run, appended as
it finishes; a re-run skips finished runs); ``<out>/report.md`` and
``<out>/curves.png`` are rewritten (atomically) from the store at the end or with
``--report-only``.

Usage::

    python benchmarks/bench_convergence.py --out docs/results/convergence [--models psilon-net] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from psilon.bench.protocols import DEFAULT_RECIPE, get_protocol
from psilon.bench.runner import prepare_split
from psilon.bench.store import ResultStore, atomic_write_bytes, atomic_write_text
from psilon.datasets import load_dataset
from psilon.estimators import PSiLONClassifier, PSiLONRegressor

REPO = Path(__file__).resolve().parents[1]
MODELS = ("psilon-net", "psilon-resnet", "standard-net")
ARCH = {"psilon-net": ("psilon", "mlp"), "psilon-resnet": ("psilon", "resnet"), "standard-net": ("standard", "mlp")}
SOURCES = (("uci", (0, 1, 2)), ("paper-tabular", (0,)))
TOLERANCE = 0.02


def _paper_runs(protocol: str) -> dict[tuple[str, int, str], dict]:
    """The committed paper-recipe rows (ok, current protocol version) with their best-so-far curve."""
    folder = REPO / "docs" / "results" / protocol
    proto = get_protocol(protocol)
    current = {t.key for t in proto.tasks()}
    runs = {}
    for line in (folder / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("status") != "ok" or row["model"] not in MODELS or row["key"] not in current:
            continue
        curve = pd.DataFrame(json.loads((folder / "curves" / f"{row['key']}.json").read_text()))
        best = curve.groupby("step").value.min().sort_index()
        runs[(row["dataset"], row["split_id"], row["model"])] = dict(
            key=row["key"], final_val=float(best.iloc[-1]), steps=int(best.index[-1]),
            test=float(row["metrics"]["test"][row["primary_metric"]]), metric=row["primary_metric"],
        )
    return runs


def _fit_default(task, data) -> tuple[object, float]:
    model, arch = ARCH[task.model.label]
    params = {k: v for k, v in task.model.params.items() if k not in ("max_steps", "architecture", "model")}
    cls = PSiLONRegressor if data.task == "regression" else PSiLONClassifier
    est = cls(model=model, architecture=arch, **params, **DEFAULT_RECIPE, max_steps="auto",
              random_state=task.split_id, device="cpu")
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(data.X_train, data.y_train, eval_set=(data.X_val, data.y_val))
    return est, time.perf_counter() - t


def _test_metric(est, data, metric: str, scale: float) -> float:
    if metric == "rmse":
        return float(np.sqrt(np.mean((est.predict(data.X_test) - data.y_test) ** 2)) * scale)
    proba = np.clip(est.predict_proba(data.X_test), 1e-15, 1)
    return float(-np.mean(np.log(proba[np.arange(len(data.y_test)), np.searchsorted(est.classes_, data.y_test)])))


def run_one(task, ref: dict) -> dict:
    dataset = load_dataset(task.dataset)
    data = prepare_split(task, dataset)
    est, seconds = _fit_default(task, data)
    best = est.history_.min(axis=1).cummin()
    target = ref["final_val"] * (1 + TOLERANCE)
    hit = best.index[best.to_numpy() <= target]
    scale = data.target_scale if task.preprocessing.metric_scale == "original" else 1.0
    return dict(
        key=f"{task.key}-default", protocol=task.protocol, dataset=task.dataset, split_id=task.split_id,
        model=task.model.label, recipe=DEFAULT_RECIPE | {"max_steps": "auto"}, n_steps=int(est.n_steps_),
        paper_final_val=ref["final_val"], paper_steps=ref["steps"], paper_test=ref["test"], metric=ref["metric"],
        final_val=float(best.iloc[-1]), steps_needed=int(hit[0]) if len(hit) else None,
        test=_test_metric(est, data, ref["metric"], scale), fit_seconds=seconds, lambda_=float(est.lambda_),
        lipschitz_bound=float(np.max(est.lipschitz_bound_)), near_sparsity=float(est.near_sparsity_),
        curve=[[int(s), float(v)] for s, v in best.items()],
    )


def _todo(models, limit_datasets):
    for protocol, splits in SOURCES:
        refs = _paper_runs(protocol)
        for task in get_protocol(protocol).tasks(models=list(models)):
            if task.split_id in splits and (task.dataset, task.split_id, task.model.label) in refs:
                if limit_datasets and task.dataset not in limit_datasets:
                    continue
                yield task, refs[(task.dataset, task.split_id, task.model.label)]


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


def report(out: Path, rows: list[dict], command: str) -> str:
    per = summarize(rows)
    lines = ["# Convergence: psilon's default recipe vs the paper recipe's 5,000 steps", "",
             f"Produced by `{command}` (resumable; {len(rows)} runs in the store).", "",
             "Default recipe: " + ", ".join(f"`{k}={v}`" for k, v in (DEFAULT_RECIPE | {"max_steps": "auto"}).items())
             + " (the estimators' defaults), on the same splits, widths, depths and 13 lambdas as the committed "
             "paper-recipe runs (`docs/results/uci`, `docs/results/paper-tabular`: 5,000 steps, `init='paper'`, "
             "`length_lr_scale=1`, final state).", "",
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
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--datasets", default="", help="comma-separated qualified names to restrict to")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {MODELS}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.jsonl")
    command = "python benchmarks/bench_convergence.py --out " + args.out + (f" --models {args.models}" if args.models != ",".join(MODELS) else "")
    if not args.report_only:
        done = store.finished_keys()
        todo = [(t, r) for t, r in _todo(models, set(filter(None, args.datasets.split(",")))) if f"{t.key}-default" not in done]
        with store:
            for task, ref in tqdm(todo, desc="convergence", unit="run"):
                store.append(run_one(task, ref) | {"status": "ok"})
    rows = store.rows()
    if rows:
        atomic_write_text(out / "report.md", report(out, rows, command))
        plot(out, rows)
        print(report(out, rows, command).split("## Per dataset")[0])


if __name__ == "__main__":
    main()
