"""Reports from a result store: Markdown tables, a JSON summary and PNG plots.

For every protocol found in the store, :func:`write_report` writes (atomically):

- ``report.md``: the test primary metric (RMSE / log loss; mean ± standard error over
  splits when there are several) per dataset x model, the best in bold, the mean rank of
  each model over datasets, accuracy for classification, near-sparsity and Lipschitz
  bound of the selected networks, PSiLON Net's wins against StandardNet and random
  forest, fit times, and the notes of skipped or failed tasks;
- ``summary.json``: the same numbers, machine-readable;
- ``plots/``: ``curves_<protocol>_<dataset>.png`` (validation loss against step for every
  lambda, one panel per network that recorded curves), ``figure1_<protocol>.png`` (PSiLON
  Net next to StandardNet on one dataset, the paper's Figure 1, when both have curves),
  ``near_sparsity_<protocol>.png`` and ``ranks_<protocol>.png``.

Ranks and wins are paired: per dataset, models are ranked (1 = best, ties share the
average rank) by their mean test primary metric over the splits that every model with a
result there has finished, so that a run in progress (some models on fewer splits) does
not compare means over different splits; a model's mean rank is over the datasets where
it has results, and the report says on how many. PSiLON Net's wins against a rival count
the datasets where its mean over the splits both have finished is lower.

The protocols on the paper's 30 datasets (:data:`CLAIM_PROTOCOLS`, issue #15) open with the
claim section: PSiLON Net's wins against StandardNet and random forest out of 30 (paired as
above), the two-sided sign test of the wins (``scipy.stats.binomtest``), the Wilcoxon
signed-rank test of the per-dataset log ratios (``scipy.stats.wilcoxon``), whether the
paper's 21 of 30 reproduces, is out of reach or still open, the same tests without the
datasets where both models are saturated (test accuracy >= :data:`SATURATED_ACCURACY`), and the mean ranks on the
datasets every model has finished with Friedman's test and Nemenyi's critical difference
(:func:`critical_difference`, from ``scipy.stats.studentized_range``; ``plots/cd_<protocol>.png``).
``plots/claim_<protocol>.png`` shows PSiLON Net / rival per dataset, sorted, with the
saturated datasets hatched; the claim section (and the overview) shows it under its table.
A report of several stores (both recipes, and the recipe ablation) opens with the claims of
all its claim protocols in one table. An ablation protocol with labels ``psilon-net@<step>``
and ``standard-net@<step>`` gets a table of PSiLON Net's wins at each step and
``plots/recipe_steps_<protocol>.png``.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from psilon.bench.protocols import PAPER_LAMBDAS, RECIPE_ABLATION_STEPS, SplitSpec, canonical_json
from psilon.bench.store import ResultStore, atomic_write_bytes, atomic_write_text
from psilon.recovery.options import prepare_out_dir

__all__ = ["critical_difference", "load_results", "read_usable", "recipes_compared", "summarize", "write_report"]

PSILON = "psilon-net"
RIVALS = ("standard-net", "random-forest")
#: How many of a model's last whole fits estimate its next ones (the Progress section,
#: ``psilon bench --finish-by``): the code and the machine change between runs.
RECENT_FITS = 5
#: The model entry of the deep ablation (P1.8): its protocols get the ablation section instead of the tables.
ABLATION_ENTRY = "deep-resnet"
#: The deep ablation's settings named in the report, and the paper's values of them.
_ABLATION_SETTINGS = ("width", "depth", "epochs", "batch_size", "learning_rate", "eval_every_epochs", "prune_epochs")
_PAPER_DATASET = "images:fashion-mnist"
#: Protocols on the paper's 30 tabular datasets (issue #15): their report opens with the claim
#: section (PSiLON Net better than a rival on CLAIM_WINS of CLAIM_OF datasets, tests, mean ranks and CD).
CLAIM_PROTOCOLS = ("paper-exact", "default-recipe-30")
CLAIM_WINS, CLAIM_OF = 21, 30
#: Test accuracy at or above which a classification dataset is *saturated* for a pair of models
#: (both at or above it): their log losses there compare how sure predictions that are already
#: right are, and tiny absolute differences make large ratios. The claim is also tested without them.
SATURATED_ACCURACY = 0.999
#: The claim plot draws ratios beyond this factor (either way) to it, labelled with their value
#: and an arrow: the margins of most datasets are a few percent, a saturated log loss's several-fold.
_CLAIM_PLOT_CLIP = 2.0
#: Level of Nemenyi's critical difference.
CD_ALPHA = 0.05


def _store_path(results: str | os.PathLike) -> Path:
    from psilon.bench.store import STORE_NAME

    path = Path(results)
    if path.is_dir():
        path = path / STORE_NAME
    if not path.is_file():
        raise ValueError(f"no result store at {str(path)!r}; pass a results.jsonl file or the --out folder of 'psilon bench'")
    return path


def load_results(results: str | os.PathLike) -> tuple[list[dict[str, Any]], Path]:
    """Rows of a store, given the ``results.jsonl`` file or the folder holding it; and that folder."""
    path = _store_path(results)
    return ResultStore(path).rows(), path.parent


#: Fields a row needs, beyond ``key``, ``protocol`` and ``status``, for the report to use it.
_REQUIRED = {
    "ok": ("dataset", "model", "split_id", "task_type", "primary_metric", "metrics"),
    "error": ("dataset", "model", "split_id"),
    "skipped": (),
}


def _row_problem(row: dict[str, Any]) -> str | None:
    """Why the report cannot use ``row``, or None when it can."""
    status = row.get("status")
    if status not in _REQUIRED:
        return f"has status {status!r}, not one of ok, error, skipped"
    missing = [f for f in ("protocol", *_REQUIRED[status]) if f not in row]
    if not missing and status == "ok":
        metric, metrics = row["primary_metric"], row["metrics"]
        test = metrics.get("test") if isinstance(metrics, dict) else None
        score = test.get(metric) if isinstance(test, dict) and isinstance(metric, str) else None
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            missing.append(f"a number at metrics.test.{metric}")
    return f"lacks {', '.join(missing)}" if missing else None


def _skip_notes(skipped: list[tuple[int, str]], bad_rows: list[tuple[str, str]]) -> list[str]:
    """One sentence per reason: which lines (or rows) were left out and why."""
    by_reason: dict[str, list[int]] = {}
    for line, reason in skipped:
        by_reason.setdefault(reason, []).append(line)
    notes = []
    for reason, lines in by_reason.items():
        shown = ", ".join(map(str, lines[:10])) + (", ..." if len(lines) > 10 else "")
        notes.append(f"line {lines[0]}: {reason}" if len(lines) == 1 else f"{len(lines)} lines ({shown}): {reason}")
    if bad_rows:
        listed = "; ".join(f"{key!r} {problem}" for key, problem in bad_rows[:5])
        more = f"; and {len(bad_rows) - 5} more" if len(bad_rows) > 5 else ""
        notes.append(
            f"{len(bad_rows)} row{'s' if len(bad_rows) > 1 else ''} without what a report needs: {listed}{more} "
            "(fix or delete such a row: 'psilon bench' re-runs a task whose row is gone)"
        )
    return notes


@dataclass
class UsableRows:
    """The rows of a store a report can use, the store's folder, and what was left out and why."""

    rows: list[dict[str, Any]]
    folder: Path
    notes: list[str]  # one sentence per reason
    lines_skipped: int  # lines that are not a row (not JSON, no key, torn)
    rows_skipped: int  # rows without the fields a report needs


def read_usable(results: str | os.PathLike) -> UsableRows:
    """Read a store (``results.jsonl`` or its folder), keeping the rows a report can use.

    Raises ValueError when no row is usable (an empty store, or one of plain text).
    """
    path = _store_path(results)
    scan = ResultStore(path).scan()
    rows, bad_rows = [], []
    for row in scan.rows:
        problem = _row_problem(row)
        if problem is None:
            rows.append(row)
        else:
            bad_rows.append((row["key"], problem))
    notes = _skip_notes(scan.skipped, bad_rows)
    if not rows:
        found = "; ".join(notes) if notes else "the file is empty"
        raise ValueError(
            f"no usable rows in {str(path)!r}: {found}. A store written by 'psilon bench' holds one JSON "
            "object per line; point the command at such a results.jsonl or its folder"
        )
    return UsableRows(rows, path.parent, notes, len(scan.skipped), len(bad_rows))


def split_superseded(rows: list[dict[str, Any]], protocol: dict[str, Any] | None) -> tuple[list, list]:
    """``(current, superseded)``: rows whose settings differ from the protocol's are superseded.

    A row of protocol ``P`` for model label ``m`` is superseded when its ``entry``,
    ``params``, ``split`` or ``preprocessing`` differ from what ``protocol`` (the
    ``protocol.json`` a run writes) now gives ``m``: results of an earlier version of the
    protocol, which the runner no longer counts as finished. Rows of other protocols and
    of labels the protocol does not list are kept.
    """
    if not protocol:
        return list(rows), []
    specs = {m["label"]: m for m in protocol.get("models", [])}
    name = protocol.get("name")
    split, prep = protocol.get("split", {}), protocol.get("preprocessing", {})
    current, superseded = [], []
    for r in rows:
        spec = specs.get(r.get("model")) if r.get("protocol") == name else None
        same = spec is None or (
            r.get("entry") == spec.get("entry", spec["label"])
            and canonical_json(r.get("params", {})) == canonical_json(spec.get("params", {}))
            and canonical_json(r.get("split", {})) == canonical_json(split)
            and canonical_json(r.get("preprocessing", {})) == canonical_json(prep)
        )
        (current if same else superseded).append(r)
    return current, superseded


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    records = []
    for r in rows:
        if r.get("status") != "ok":
            continue
        metric = r["primary_metric"]
        records.append(
            {
                "protocol": r["protocol"],
                "dataset": r["dataset"],
                "model": r["model"],
                "split_id": r["split_id"],
                "task_type": r["task_type"],
                "metric": metric,
                "score": r["metrics"]["test"][metric],
                "accuracy": r["metrics"]["test"].get("accuracy", np.nan),
                "near_sparsity": np.nan if r.get("near_sparsity") is None else float(np.mean(r["near_sparsity"])),
                "lipschitz_bound": np.nan if r.get("lipschitz_bound") is None else float(np.max(r["lipschitz_bound"])),
                "fit_seconds": r.get("fit_seconds", np.nan),
                "resumed": bool(r.get("restored_checkpoints")),
                "curves_file": r.get("curves_file"),
                "selected": r.get("selected") or {},
                **_selected_lambda(r),
            }
        )
    return pd.DataFrame.from_records(records)


def _selected_lambda(row: dict[str, Any]) -> dict[str, Any]:
    """``lambda``: the lambda a row's model selected (NaN: none, e.g. a forest); ``lambda_end``:
    ``'smallest'`` or ``'largest'`` when it is an end of the lambdas its validation path tried
    (the best lambda may then lie outside the grid), else ``''``."""
    chosen = (row.get("selected") or {}).get("lambda")
    if not isinstance(chosen, (int, float)):
        return {"lambda": np.nan, "lambda_end": ""}
    tried = [p["lambda"] for p in row.get("path") or [] if isinstance(p, dict) and isinstance(p.get("lambda"), (int, float))]
    end = "" if len(tried) < 2 else "smallest" if chosen == min(tried) else "largest" if chosen == max(tried) else ""
    return {"lambda": float(chosen), "lambda_end": end}


def _model_order(names) -> list[str]:
    preferred = ["psilon-net", "psilon-resnet", "standard-net", "linear", "random-forest", "hist-gb", "mlp", "realmlp-td", "tabm-d"]
    names = list(dict.fromkeys(names))
    return [m for m in preferred if m in names] + sorted(m for m in names if m not in preferred)


def _nan_to_none(value):
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-protocol numbers of the report (JSON-able)."""
    frame = _frame(rows)
    summary: dict[str, Any] = {}
    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    for protocol in protocols:
        part = frame[frame["protocol"] == protocol] if len(frame) else frame
        prows = [r for r in rows if r["protocol"] == protocol]
        summary[protocol] = _summarize_protocol(part, prows)
        if protocol in CLAIM_PROTOCOLS and not part.empty:
            seeds = [len(r["split"].get("seeds") or [0]) for r in prows if isinstance(r.get("split"), dict)]
            summary[protocol]["claim"] = _claim_summary(part, max(seeds, default=1))
        steps = _recipe_steps(part) if not part.empty else None
        if steps is not None:
            summary[protocol]["recipe_steps"] = steps
    return _nan_to_none(summary)


def _summarize_protocol(part: pd.DataFrame, rows: list[dict[str, Any]]) -> dict[str, Any]:
    notes = sorted({r["note"] for r in rows if r.get("status") == "skipped" and r.get("note")})
    errors = [
        {"dataset": r["dataset"], "model": r["model"], "split_id": r["split_id"], "error": r.get("error")}
        for r in rows
        if r.get("status") == "error"
    ]
    out: dict[str, Any] = {"datasets": {}, "mean_rank": {}, "wins": {}, "notes": notes, "errors": errors}
    if part.empty:
        return out
    grouped = part.groupby(["dataset", "model"])
    stats = grouped.agg(
        score=("score", "mean"),
        score_std=("score", "std"),
        n_splits=("score", "size"),
        accuracy=("accuracy", "mean"),
        near_sparsity=("near_sparsity", "mean"),
        lipschitz_bound=("lipschitz_bound", "mean"),
        fit_seconds=("fit_seconds", "mean"),
    )
    stats["score_se"] = stats["score_std"] / np.sqrt(stats["n_splits"])
    chosen = part.dropna(subset=["lambda"]).groupby(["dataset", "model"])
    lambdas = chosen["lambda"].agg(lambda v: sorted(set(v))).to_dict()
    ends = chosen["lambda_end"].agg(lambda v: sorted(set(v) - {""})).to_dict()
    means = stats["score"].unstack("model")
    scores = _split_scores(part)
    ranks = _paired_ranks(scores)
    out["mean_rank"] = ranks.mean(axis=0).sort_values().to_dict()
    out["n_datasets_ranked"] = ranks.notna().sum(axis=0).to_dict()
    meta = part.groupby("dataset").agg(task_type=("task_type", "first"), metric=("metric", "first"))
    for dataset in means.index:
        models = {}
        for model in means.columns:
            if (dataset, model) not in stats.index:
                continue
            s = stats.loc[(dataset, model)]
            models[model] = {
                "score": s["score"],
                "score_se": s["score_se"] if s["n_splits"] > 1 else None,
                "n_splits": int(s["n_splits"]),
                "accuracy": s["accuracy"],
                "near_sparsity": s["near_sparsity"],
                "lipschitz_bound": s["lipschitz_bound"],
                "fit_seconds": s["fit_seconds"],
                "selected_lambdas": lambdas.get((dataset, model), []),
                "lambda_at_grid_end": ends.get((dataset, model), []),
                "rank": ranks.loc[dataset, model] if dataset in ranks.index and model in ranks.columns else None,
            }
        out["datasets"][dataset] = {
            "task_type": meta.loc[dataset, "task_type"],
            "metric": meta.loc[dataset, "metric"],
            "models": models,
        }
    n_splits = stats["n_splits"].unstack("model")
    most = n_splits.max(axis=1)
    out["incomplete"] = [
        {"dataset": d, "model": m, "n_splits": int(n_splits.loc[d, m]), "of": int(most[d])}
        for d in n_splits.index
        for m in n_splits.columns
        if not np.isnan(n_splits.loc[d, m]) and n_splits.loc[d, m] < most[d]
    ]
    if any(r.get("status") == "ok" and r.get("entry") == ABLATION_ENTRY for r in rows):
        out["ablation"] = _ablation_summary(rows)
    recent = recent_fits(rows)
    out["fit_time"] = {m: _fit_time(g, recent.get(m)) for m, g in part.groupby("model")}
    out["total_fit_hours"] = float(part["fit_seconds"].sum()) / 3600
    if PSILON in means.columns:
        for rival in RIVALS:
            if rival not in means.columns:
                continue
            pairs = scores[[PSILON, rival]].dropna()  # (dataset, split) rows both have finished
            both = pairs.groupby(level="dataset").mean()
            out["wins"][f"{PSILON} vs {rival}"] = {
                "wins": int((both[PSILON] < both[rival]).sum()),
                "ties": int((both[PSILON] == both[rival]).sum()),
                "losses": int((both[PSILON] > both[rival]).sum()),
                "datasets": int(len(both)),
                "splits": int(len(pairs)),
            }
    return out


def _fit_time(group: pd.DataFrame, recent: list[float] | None) -> dict[str, Any]:
    """A model's fit times: tasks and total hours as stored, how many tasks were resumed from
    checkpoints (their fit time is the last run's only), and the mean seconds of a task
    over those that ran in one go, all of them and ``recent`` (its :func:`recent_fits`)
    (``None`` when every task was resumed: no whole fit time)."""
    whole = group.loc[~group["resumed"], "fit_seconds"]
    return {"tasks": int(len(group)), "hours": float(group["fit_seconds"].sum()) / 3600,
            "resumed": int(group["resumed"].sum()), "mean_seconds": float(whole.mean()) if len(whole) else None,
            "recent_mean_seconds": float(np.mean(recent)) if recent else None}


def recent_fits(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per model label, the fit seconds of its last :data:`RECENT_FITS` finished tasks that
    ran in one go (``ok``, not resumed from checkpoints), oldest first by ``finished_at``
    (rows without it count as the oldest, in the store's order)."""
    whole = [r for r in rows if r.get("status") == "ok" and r.get("fit_seconds") is not None
             and not r.get("restored_checkpoints")]
    fits: dict[str, list[float]] = {}
    for r in sorted(whole, key=lambda r: r.get("finished_at") or ""):
        fits.setdefault(r["model"], []).append(float(r["fit_seconds"]))
    return {label: times[-RECENT_FITS:] for label, times in fits.items()}


def _split_scores(part: pd.DataFrame, values: str = "score") -> pd.DataFrame:
    """Test primary metric (or another column of the frame: ``values``) as a (dataset, split_id) x
    model table (NaN: not finished)."""
    return part.pivot_table(index=["dataset", "split_id"], columns="model", values=values, aggfunc="mean")


def _paired_ranks(scores: pd.DataFrame) -> pd.DataFrame:
    """Dataset x model ranks of the mean test metric over the splits all of a dataset's models have finished.

    ``scores`` is the table of :func:`_split_scores`.
    """
    ranks = {}
    for dataset, block in scores.groupby(level="dataset"):
        common = block.dropna(axis=1, how="all").dropna(axis=0, how="any")
        if not common.empty:
            ranks[dataset] = common.mean().rank(method="average")
    return pd.DataFrame.from_dict(ranks, orient="index")


# ------------------------------------------------------------------------------- deep ablation


def _ablation_order(label: str, v: dict[str, Any]) -> tuple[int, int, int, str]:
    """The paper's variants in its order first, then pruned rows, then grids."""
    from psilon.bench.models import ABLATION_VARIANTS

    order = list(ABLATION_VARIANTS)
    return (int(v["grid"]), int(v["pruned"]), order.index(v["variant"]) if v["variant"] in order else len(order), label)


def _ablation_variant(group: list[dict[str, Any]]) -> dict[str, Any]:
    """One model label of the deep ablation: means over its finished splits."""
    from psilon.bench.models import ABLATION_VARIANTS

    first = group[0]
    params, extra = first.get("params", {}), first.get("extra") or {}
    variant = params.get("variant", extra.get("variant"))

    def mean(values):
        values = [float(v) for v in values if v is not None]
        return float(np.mean(values)) if values else None

    lambdas = list(params.get("lambdas", []))
    return {
        "variant": variant,
        "name": ABLATION_VARIANTS.get(variant, {}).get("name", variant),
        "lambdas": lambdas,
        "grid": len(lambdas) > 1,
        "selected_lambda": [r.get("selected", {}).get("lambda") for r in group],
        "n_splits": len(group),
        "n_test": first.get("n_test"),
        "accuracy": mean(r["metrics"]["test"].get("accuracy") for r in group),
        "cross_entropy": mean(r["metrics"]["test"].get("log_loss") for r in group),
        "near_sparsity": mean(r.get("near_sparsity") for r in group),
        "exact_sparsity": mean((r.get("extra") or {}).get("exact_sparsity") for r in group),
        "lipschitz_bound": mean(None if r.get("lipschitz_bound") is None else np.max(r["lipschitz_bound"]) for r in group),
        "fit_seconds": mean(r.get("fit_seconds") for r in group),
        "ms_per_step": mean((r.get("extra") or {}).get("ms_per_step") for r in group),
        "steps": extra.get("steps"),
        "pruned": bool(extra.get("pruned")),
        "path": first.get("path", []) if len(lambdas) > 1 else [],
        "curves_file": first.get("curves_file"),
    }


def _ablation_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The deep ablation's table (one entry per dataset and model label), its data and settings."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("entry") == ABLATION_ENTRY]
    datasets: dict[str, Any] = {}
    for dataset in dict.fromkeys(r["dataset"] for r in ok):
        mine = [r for r in ok if r["dataset"] == dataset]
        groups: dict[str, list] = {}
        for r in sorted(mine, key=lambda r: r["split_id"]):
            groups.setdefault(r["model"], []).append(r)
        variants = {label: _ablation_variant(g) for label, g in groups.items()}
        order = sorted(variants, key=lambda m: _ablation_order(m, variants[m]))
        datasets[dataset] = {
            "descriptions": sorted({r["data_description"] for r in mine if r.get("data_description")}),
            "paper_data": dataset == _PAPER_DATASET,
            "variants": {m: variants[m] for m in order},
        }
    settings = {k: sorted({canonical_json(r.get("params", {}).get(k)) for r in ok}) for k in _ABLATION_SETTINGS}
    return {
        "datasets": datasets,
        "settings": {k: [json.loads(v) for v in vs if v != "null"] for k, vs in settings.items()},
        "claim": {d: _ablation_claim(v["variants"]) for d, v in datasets.items()},
    }


def _ablation_claim(variants: dict[str, Any]) -> dict[str, Any] | None:
    """The paper's claim on the single-lambda variants: PSiLON best or tied-best on accuracy, with the highest sparsity."""
    single = {m: v for m, v in variants.items() if not v["grid"] and not v["pruned"] and v["accuracy"] is not None}
    psilon = next((m for m, v in single.items() if v["variant"] == "psilon"), None)
    if psilon is None or len(single) < 2:
        return None
    best = max(single, key=lambda m: single[m]["accuracy"])
    sparsest = max(single, key=lambda m: single[m]["near_sparsity"] or -1.0)
    acc, top = single[psilon]["accuracy"], single[best]["accuracy"]
    n = single[psilon].get("n_test") or 0
    se = math.sqrt(max(top * (1 - top), 1e-12) / n) if n else None
    return {
        "psilon": psilon,
        "compared": len(single),
        "accuracy_rank": 1 + sum(v["accuracy"] > acc for v in single.values()),
        "best": best,
        "gap": top - acc,
        "standard_error": se,
        "tied_best": se is not None and top - acc <= 2 * se,
        "sparsest": sparsest,
        "near_sparsity_rank": 1 + sum((v["near_sparsity"] or -1.0) > (single[psilon]["near_sparsity"] or -1.0)
                                      for v in single.values()),
    }


def _ablation_lines(a: dict[str, Any]) -> list[str]:
    lines = []
    for dataset, d in a["datasets"].items():
        lines += [f"### Deep ablation on `{dataset}`", ""]
        for text in d["descriptions"]:
            lines += [f"Data: {text}.", ""]
        if not d["paper_data"]:
            lines += [
                f"**Not the paper's data**: the paper's Table 2 uses Fashion-MNIST (10,000 training and 20,000 "
                f"validation images from its training set, the official 10,000 test images); these numbers are on "
                f"`{dataset}` and are not comparable to the paper's.",
                "",
            ]
        lines += _ablation_settings_lines(a["settings"])
        lines += _ablation_table(d["variants"])
        lines += _ablation_grid_lines(d["variants"])
        lines += _ablation_claim_lines(a["claim"].get(dataset), d["variants"])
    return lines


def _ablation_settings_lines(settings: dict[str, list]) -> list[str]:
    from psilon.bench.protocols import DEEP_ABLATION_PAPER

    def show(k):
        values = settings.get(k) or []
        return "/".join(_fmt_setting(v) for v in values) if values else "–"

    size = "the paper's" if all(settings.get(k) == [v] for k, v in DEEP_ABLATION_PAPER.items()) else "reduced, CPU-sized"
    return [
        f"Settings ({size}): width {show('width')}, depth {show('depth')} weight layers (embedder, residual blocks, "
        f"predictor), {show('epochs')} epochs of batch {show('batch_size')}, Adam lr {show('learning_rate')} with the "
        f"one-cycle schedule stepped per epoch, validation every {show('eval_every_epochs')} epochs, "
        + (f"pruning over the last {show('prune_epochs')} epochs in the rows marked '+ pruning', none elsewhere"
           if settings.get("prune_epochs") else "no pruning")
        + ". The paper: width 500, depth 12 (10 blocks), "
        "400 epochs of batch 200, Adam lr 2e-2.",
        "",
    ]


def _fmt_setting(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ablation_table(variants: dict[str, Any]) -> list[str]:
    single = [v for v in variants.values() if not v["grid"]]
    best_acc = max((v["accuracy"] for v in variants.values() if v["accuracy"] is not None), default=None)
    best_ns = max((v["near_sparsity"] for v in variants.values() if v["near_sparsity"] is not None), default=None)
    lines = [
        "Test accuracy, test cross-entropy, near-sparsity (mean over neurons) and exact sparsity (fraction of zero "
        "weights) of the final model, Lipschitz bound (l_inf input, max over outputs) and fit time. Best accuracy "
        "and highest near-sparsity in bold; grid rows give the lambda selected on validation. Fit time and ms/step "
        "(fit time / steps, validation included) depend on the load of the machine that ran the task.",
        "",
        "| variant | label | λ | test accuracy | test CE | near-sparsity | exact sparsity | Lipschitz bound "
        "| fit time (min) | ms/step | splits |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, v in variants.items():
        lam = ", ".join(_fmt_setting(x) for x in v["selected_lambda"] if x is not None)
        name = v["name"] + (" (grid)" if v["grid"] else "") + (" + pruning" if v["pruned"] else "")
        acc = _fmt(v["accuracy"])
        ns = _fmt(v["near_sparsity"], 3)
        acc = f"**{acc}**" if v["accuracy"] is not None and v["accuracy"] == best_acc else acc
        ns = f"**{ns}**" if v["near_sparsity"] is not None and v["near_sparsity"] == best_ns else ns
        minutes = None if v["fit_seconds"] is None else v["fit_seconds"] / 60
        lines.append(
            f"| {name} | {label} | {lam} | {acc} | {_fmt(v['cross_entropy'])} | {ns} | {_fmt(v['exact_sparsity'], 3)} "
            f"| {_fmt(v['lipschitz_bound'], 3)} | {_fmt(minutes, 1)} | {_fmt(v['ms_per_step'], 1)} | {v['n_splits']} |"
        )
    lines.append("")
    if not single:
        lines += ["No single-lambda variant has finished yet.", ""]
    return lines


def _ablation_grid_lines(variants: dict[str, Any]) -> list[str]:
    lines = []
    for label, v in variants.items():
        if not v["path"]:
            continue
        lines += [
            f"Lambda grid `{label}` ({v['name']}, members of one run; split {0 if v['n_splits'] else '–'}): "
            "validation cross-entropy of the final state and near-sparsity per lambda.",
            "",
            "| λ | validation CE | near-sparsity | status |",
            "|---:|---:|---:|---|",
        ]
        for p in v["path"]:
            chosen = " (selected)" if p.get("lambda") in v["selected_lambda"][:1] else ""
            lines.append(
                f"| {_fmt_setting(p.get('lambda'))}{chosen} | {_fmt(p.get('val_score'))} "
                f"| {_fmt(p.get('near_sparsity'), 3)} | {p.get('status', '')} |"
            )
        lines.append("")
    return lines


def _ablation_claim_lines(claim: dict[str, Any] | None, variants: dict[str, Any]) -> list[str]:
    if claim is None:
        return ["The paper's claim (PSiLON best or tied-best on accuracy, with the highest sparsity) cannot be "
                "checked yet: PSiLON and at least one other single-lambda variant must have finished.", ""]
    se = claim["standard_error"]
    best = variants[claim["best"]]["name"]
    sparsest = variants[claim["sparsest"]]["name"]
    tied = ("best" if claim["gap"] == 0 else "tied-best (within two binomial standard errors)" if claim["tied_best"]
            else "not tied-best")
    return [
        f"The paper's claim, as measured here over {claim['compared']} variants at their paper λ (no grid, no pruning): PSiLON's test accuracy "
        f"ranks {claim['accuracy_rank']} (best: {best}, {100 * claim['gap']:.2f} points higher"
        + (f"; one binomial standard error of the test accuracy is {100 * se:.2f} points" if se else "")
        + f"), so PSiLON is {tied}; its near-sparsity ranks {claim['near_sparsity_rank']} (highest: {sparsest}).",
        "",
    ]


def _ablation_plot(a: dict[str, Any], protocol: str, base: Path, plots: Path) -> list[str]:
    """One figure per dataset: validation loss against step of the variants, and one panel per lambda grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for dataset, d in a["datasets"].items():
        panels = [("variants at their λ", [(m, v) for m, v in d["variants"].items() if not v["grid"]])]
        panels += [(f"{m} ({v['name']} grid)", [(m, v)]) for m, v in d["variants"].items() if v["grid"]]
        panels = [(t, ms) for t, ms in panels if any(_load_curves(base, v["curves_file"]) is not None for _, v in ms)]
        if not panels:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), sharey=True, squeeze=False)
        for ax, (title, members) in zip(axes[0], panels):
            if members and members[0][1]["grid"]:
                m, v = members[0]
                _plot_curves_panel(ax, _load_curves(base, v["curves_file"]), title, v["selected_lambda"][0])
                ax.legend(fontsize=7, loc="upper right")
                continue
            for m, v in members:
                c = _load_curves(base, v["curves_file"])
                if c is not None and len(c):
                    c = c.sort_values("step")
                    name = v["name"] + (" + pruning" if v["pruned"] else "")
                    ax.plot(c["step"], c["value"], lw=1.5, label=f"{name} (λ={v['lambdas'][0]:g})")
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper right")
        axes[0][0].set_ylabel("validation cross-entropy")
        fig.suptitle(f"Deep ablation — validation loss against step — {dataset} (first split)")
        name = f"ablation_curves_{_slug(protocol)}_{_slug(dataset)}.png"
        _save(fig, plots / name)
        plt.close(fig)
        written.append(name)
    return written


# ------------------------------------------------------------------------------- the paper's claim (issue #15)


def _paired_tests(ours: pd.Series, theirs: pd.Series) -> dict[str, Any]:
    """Wins / ties / losses of ``ours`` (lower is better) against ``theirs`` per dataset, the two-sided
    sign test of the wins among the untied datasets, and the Wilcoxon signed-rank test of the
    per-dataset log ratios ``log(ours / theirs)`` (the ratios against 1; with their geometric mean,
    only when every score is positive). ``log_ratios``: by dataset, for the pairs of positive scores."""
    from scipy.stats import binomtest, wilcoxon

    wins, losses = int((ours < theirs).sum()), int((ours > theirs).sum())
    positive = (ours > 0) & (theirs > 0)
    log_ratios = np.log(ours[positive].astype(float) / theirs[positive].astype(float))
    out: dict[str, Any] = {"datasets": int(len(ours)), "wins": wins, "ties": int(len(ours)) - wins - losses,
                           "losses": losses, "sign_p": None, "wilcoxon_p": None, "geometric_mean_ratio": None,
                           "log_ratios": log_ratios.to_dict()}
    if wins + losses:
        out["sign_p"] = float(binomtest(wins, wins + losses, 0.5, alternative="two-sided").pvalue)
    if len(ours) and bool(positive.all()):
        out["geometric_mean_ratio"] = float(np.exp(log_ratios.mean()))
        if np.any(log_ratios != 0):
            out["wilcoxon_p"] = float(wilcoxon(log_ratios, zero_method="wilcox", alternative="two-sided").pvalue)
    return out


def _claim_verdict(wins: int, datasets: int) -> str:
    """``reproduces`` (at least CLAIM_WINS wins), ``does not reproduce`` (not reachable even when
    every dataset left is a win) or ``open``."""
    if wins >= CLAIM_WINS:
        return "reproduces"
    return "does not reproduce" if wins + max(CLAIM_OF - datasets, 0) < CLAIM_WINS else "open"


def critical_difference(n_models: int, n_datasets: int, alpha: float = CD_ALPHA) -> tuple[float, float]:
    """Nemenyi's critical difference of mean ranks, ``(q, CD)``: ``q`` is the studentized range's
    ``1 - alpha`` quantile for ``n_models`` groups and infinite degrees of freedom over sqrt(2),
    ``CD = q * sqrt(k (k + 1) / (6 N))`` (Demšar 2006)."""
    from scipy.stats import studentized_range

    if n_models < 2 or n_datasets < 1:
        raise ValueError(f"a critical difference needs >= 2 models and >= 1 dataset, not {n_models} and {n_datasets}")
    q = float(studentized_range.ppf(1 - alpha, n_models, np.inf)) / math.sqrt(2)
    return q, q * math.sqrt(n_models * (n_models + 1) / (6.0 * n_datasets))


def _rank_groups(mean_rank: pd.Series, cd: float) -> list[list[str]]:
    """Maximal runs of models (in mean-rank order) whose mean ranks span less than ``cd``."""
    names, values = list(mean_rank.index), mean_rank.to_numpy(float)
    groups: list[list[str]] = []
    for i in range(len(names)):
        j = i
        while j + 1 < len(names) and values[j + 1] - values[i] < cd:
            j += 1
        if j > i and not (groups and names.index(groups[-1][-1]) >= j):
            groups.append(names[i : j + 1])
    return groups


def _rank_test(ranks: pd.DataFrame) -> dict[str, Any] | None:
    """Mean ranks on the datasets every model has finished, Friedman's test and Nemenyi's CD."""
    from scipy.stats import friedmanchisquare

    complete = ranks.dropna(axis=0, how="any")
    k, n = complete.shape[1], complete.shape[0]
    if k < 2 or n < 1:
        return None
    mean_rank = complete.mean(axis=0).sort_values()
    q, cd = critical_difference(k, n)
    friedman = None
    if k >= 3 and n >= 2 and complete.nunique(axis=1).gt(1).any():
        friedman = float(friedmanchisquare(*(complete[m].to_numpy(float) for m in complete.columns)).pvalue)
    return {"datasets": n, "models": k, "alpha": CD_ALPHA, "q": q, "cd": cd, "friedman_p": friedman,
            "mean_rank": mean_rank.to_dict(), "groups": _rank_groups(mean_rank, cd)}


def _claim_summary(part: pd.DataFrame, splits: int = 1) -> dict[str, Any]:
    """PSiLON Net against StandardNet and random forest on the paper's 30 datasets, paired as the
    wins of :func:`_summarize_protocol`, with the tests and the verdict on 21 of 30.

    The wins and tests use every dataset both models have begun (the mean over the splits both
    have finished); the verdict counts only the datasets where both have all ``splits`` of the
    protocol (``complete``, with ``complete_wins``), so a mean that later splits may still move
    never settles it: the other datasets are open, as if not run."""
    scores, accuracy = _split_scores(part), _split_scores(part, "accuracy")
    rivals = {}
    for rival in RIVALS:
        if PSILON in scores.columns and rival in scores.columns:
            both = _paired_means(scores, PSILON, rival)
            tests = _paired_tests(both[PSILON], both[rival])
            counts = scores[[PSILON, rival]].dropna().groupby(level="dataset").size()
            complete = both.loc[counts.index[counts >= splits]]
            complete_wins = int((complete[PSILON] < complete[rival]).sum())
            saturated = _saturated(accuracy, rival)
            kept = both.drop(index=saturated)
            rivals[rival] = {**tests, "verdict": _claim_verdict(complete_wins, len(complete)),
                             "splits": splits, "complete": int(len(complete)), "complete_wins": complete_wins,
                             "saturated": saturated,
                             "saturated_wins": int((both.loc[saturated, PSILON] < both.loc[saturated, rival]).sum()),
                             "unsaturated": _paired_tests(kept[PSILON], kept[rival]) if saturated else None}
    return {"wins_needed": CLAIM_WINS, "of": CLAIM_OF, "rivals": rivals, "ranks": _rank_test(_paired_ranks(scores))}


def _saturated(accuracy: pd.DataFrame, rival: str) -> list[str]:
    """The datasets where PSiLON Net and ``rival`` both reach a mean test accuracy of at least
    :data:`SATURATED_ACCURACY` over the splits both have finished (classification only;
    ``accuracy`` is :func:`_split_scores` of the accuracy)."""
    if PSILON not in accuracy.columns or rival not in accuracy.columns:
        return []
    both = _paired_means(accuracy, PSILON, rival)
    return sorted(both.index[(both >= SATURATED_ACCURACY).all(axis=1)])


def _paired_means(scores: pd.DataFrame, ours: str, rival: str) -> pd.DataFrame:
    """Per dataset, the two models' mean test metric over the splits both have finished."""
    return scores[[ours, rival]].dropna().groupby(level="dataset").mean()


def _recipe_steps(part: pd.DataFrame) -> dict[str, Any] | None:
    """PSiLON Net against StandardNet and random forest at each recipe step of an ablation
    (labels ``psilon-net@<step>`` and ``standard-net@<step>``; steps in the order of
    :data:`~psilon.bench.protocols.RECIPE_ABLATION_STEPS`, then by name), paired per dataset
    as the claim; ``None`` when no step has both networks."""
    scores = _split_scores(part)
    steps = [c.split("@", 1)[1] for c in scores.columns if c.startswith(f"{PSILON}@")]
    steps = [st for st in steps if f"{RIVALS[0]}@{st}" in scores.columns]
    if not steps:
        return None
    known = [name for name, _, _ in RECIPE_ABLATION_STEPS]
    steps.sort(key=lambda st: (known.index(st) if st in known else len(known), st))
    out: dict[str, Any] = {"steps": [], "ratios": {}, "lambdas": {}}
    for st in steps:
        ours = f"{PSILON}@{st}"
        out["lambdas"][st] = {net: _selected_lambdas(part, f"{net}@{st}") for net in (PSILON, RIVALS[0])}
        row: dict[str, Any] = {"step": st}
        for rival in (f"{RIVALS[0]}@{st}", RIVALS[1]):
            if rival not in scores.columns:
                continue
            both = _paired_means(scores, ours, rival)
            row[rival.split("@")[0]] = _paired_tests(both[ours], both[rival])
            if rival.startswith(RIVALS[0]):
                out["ratios"][st] = (both[ours] / both[rival]).to_dict()
        out["steps"].append(row)
    out["changes"] = _step_changes(scores, steps)
    return out


def _step_changes(scores: pd.DataFrame, steps: list[str]) -> list[dict[str, Any]]:
    """What each step does to the step before it, on the datasets where both networks have
    finished both steps (mean over the splits all four have): the geometric mean change of
    PSiLON Net's test metric, of StandardNet's and of their ratio, and how many datasets turn
    from a loss of PSiLON Net into a win or back."""
    changes = []
    for before, step in zip(steps, steps[1:]):
        cols = [f"{net}@{st}" for st in (before, step) for net in (PSILON, RIVALS[0])]
        both = scores[cols].dropna().groupby(level="dataset").mean()
        ours_0, theirs_0, ours_1, theirs_1 = (both[c] for c in cols)
        row: dict[str, Any] = {"step": step, "before": before, "datasets": int(len(both)),
                               "won": int(((ours_0 > theirs_0) & (ours_1 < theirs_1)).sum()),
                               "lost": int(((ours_0 < theirs_0) & (ours_1 > theirs_1)).sum())}
        for key, new, old in (("psilon", ours_1, ours_0), ("standard", theirs_1, theirs_0),
                              ("ratio", ours_1 / theirs_1, ours_0 / theirs_0)):
            positive = len(both) > 0 and bool((new > 0).all() and (old > 0).all())
            row[key] = float(np.exp(np.log(new / old).mean())) if positive else None
        changes.append(row)
    return changes


def _selected_lambdas(part: pd.DataFrame, label: str) -> dict[str, float]:
    """Dataset -> the lambda model ``label`` selected (on its first split), where it selected one."""
    rows = part[part["model"] == label].sort_values("split_id")
    chosen = {d: g["selected"].iloc[0].get("lambda") for d, g in rows.groupby("dataset")}
    return {d: lam for d, lam in chosen.items() if lam is not None}


def _recipe_lambda_lines(r: dict[str, Any], datasets: list[str], steps: list[str]) -> list[str]:
    """Per dataset and step: the lambda PSiLON Net / StandardNet selected, with the grid's ends marked."""
    grid = (min(PAPER_LAMBDAS), max(PAPER_LAMBDAS))

    def cell(lam):
        return "–" if lam is None else _fmt_setting(lam) + (" (end)" if lam in grid else "")

    lines = ["", f"Selected lambda per dataset, PSiLON Net / StandardNet (on the first split; \"(end)\": the grid's "
                 f"smallest or largest lambda, {_fmt_setting(grid[0])} or {_fmt_setting(grid[1])}, so the best lambda "
                 "may lie outside the grid).", "",
             "| dataset | " + " | ".join(steps) + " |", "|---|" + "---:|" * len(steps)]
    for d in datasets:
        cells = [f"{cell(r['lambdas'][st][PSILON].get(d))} / {cell(r['lambdas'][st][RIVALS[0]].get(d))}"
                 for st in steps]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def _recipe_steps_lines(r: dict[str, Any] | None) -> list[str]:
    if r is None:
        return []
    lines = [
        "### PSiLON Net at each step of the recipe",
        "",
        "Each step adds one difference to the one above it. Wins per dataset (lower test metric), paired as "
        "in the claim; ratio: geometric mean of PSiLON Net / rival over those datasets; sign test and "
        "Wilcoxon p as in the claim.",
        "",
        "| step | vs StandardNet: datasets | wins | ties | losses | ratio | sign p | Wilcoxon p "
        "| vs random forest: wins | losses | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["steps"]:
        sn, rf = row.get(RIVALS[0]), row.get(RIVALS[1])
        cells = [row["step"]]
        cells += (["–"] * 7 if sn is None else [str(sn["datasets"]), str(sn["wins"]), str(sn["ties"]), str(sn["losses"]),
                                              _fmt(sn["geometric_mean_ratio"], 3), _fmt_p(sn["sign_p"]),
                                              _fmt_p(sn["wilcoxon_p"])])
        cells += (["–"] * 3 if rf is None else [str(rf["wins"]), str(rf["losses"]), _fmt(rf["geometric_mean_ratio"], 3)])
        lines.append("| " + " | ".join(cells) + " |")
    datasets = sorted({d for ratios in r["ratios"].values() for d in ratios})
    steps = [row["step"] for row in r["steps"]]
    lines += ["", "PSiLON Net / StandardNet test metric per dataset (below 1: PSiLON Net better).", "",
              "| dataset | " + " | ".join(steps) + " |", "|---|" + "---:|" * len(steps)]
    for d in datasets:
        lines.append(f"| {d} | " + " | ".join(_fmt(r["ratios"].get(st, {}).get(d), 3) for st in steps) + " |")
    return lines + _recipe_lambda_lines(r, datasets, steps) + _step_change_lines(r.get("changes", [])) + [""]


def _step_change_lines(changes: list[dict[str, Any]]) -> list[str]:
    """The table of :func:`_step_changes` and the step that moves the ratio most."""
    measured = [c for c in changes if c["datasets"] and c["ratio"] is not None]
    if not measured:
        return []
    lines = ["", "What each step changes, on the datasets where both networks have finished it and the step before "
                 "it: geometric mean of this step's test metric over the previous step's (below 1: lower, i.e. "
                 "better), for each network and for their ratio; and the datasets where PSiLON Net's loss to "
                 "StandardNet turned into a win, or its win into a loss.", "",
             "| step | from | datasets | PSiLON Net | StandardNet | PSiLON Net / StandardNet | loss → win "
             "| win → loss |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for c in changes:
        lines.append(f"| {c['step']} | {c['before']} | {c['datasets']} | {_fmt(c['psilon'], 3)} | "
                     f"{_fmt(c['standard'], 3)} | {_fmt(c['ratio'], 3)} | {c['won']} | {c['lost']} |")
    most = max(measured, key=lambda c: abs(math.log(c["ratio"])))
    lines += ["", f"The step that moves PSiLON Net / StandardNet most is **{most['step']}** (×{most['ratio']:.3f} on "
                  f"{most['datasets']} dataset{'s' if most['datasets'] != 1 else ''}: PSiLON Net ×"
                  f"{_fmt(most['psilon'], 3)}, StandardNet ×{_fmt(most['standard'], 3)}; "
                  + ("1 loss turned into a win)." if most["won"] == 1 else f"{most['won']} losses turned into wins).")]
    return lines


def _recipe_steps_plot(r: dict[str, Any] | None, protocol: str, plots: Path) -> list[str]:
    """``recipe_steps_<protocol>.png``: PSiLON Net / StandardNet per dataset along the steps."""
    if r is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    steps = [row["step"] for row in r["steps"]]
    fig, ax = plt.subplots(figsize=(3.2 + 1.3 * len(steps), 4))
    for d in sorted({d for ratios in r["ratios"].values() for d in ratios}):
        y = [r["ratios"].get(st, {}).get(d, np.nan) for st in steps]
        ax.plot(range(len(steps)), y, marker="o", label=d.split(":")[-1])
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
    ax.tick_params(axis="y", which="both", labelsize=7)
    ax.set_xticks(range(len(steps)), steps, fontsize=8)
    ax.set_ylabel("PSiLON Net / StandardNet (test)")
    ax.set_title(f"Below the line PSiLON Net wins — {protocol}", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    name = f"recipe_steps_{_slug(protocol)}.png"
    _save(fig, plots / name)
    plt.close(fig)
    return [name]


def _fmt_p(p) -> str:
    return "–" if p is None else (f"{p:.2g}" if p < 0.01 else f"{p:.3f}")


def _claim_lines(name: str, c: dict[str, Any]) -> list[str]:
    need, of = c["wins_needed"], c["of"]
    lines = [
        f"### The paper's claim: PSiLON Net better on {need} of {of} datasets (issue #15)",
        "",
        "PSiLON Net against each rival on the datasets both have finished, paired as below (mean test metric over "
        "the splits both have finished; lower is better). Sign test: two-sided binomial test of the wins among the "
        "untied datasets. Wilcoxon: signed-rank test of log(PSiLON Net / rival) per dataset, i.e. of the ratios "
        "against 1. Ratio: geometric mean of PSiLON Net / rival (below 1: PSiLON Net lower).",
        "",
    ]
    if not c["rivals"]:
        lines += [f"Under this protocol's recipe (`{name}`), the paper's {need} of {of} is **open**: no dataset has "
                  "results of both PSiLON Net and a rival yet.", ""]
        return lines + _rank_lines(c.get("ranks"))
    lines += [
        f"| PSiLON Net vs | datasets | wins | ties | losses | sign test p | Wilcoxon p | ratio | {need} of {of} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rival, r in c["rivals"].items():
        lines.append(
            f"| {rival} | {r['datasets']} of {of} | {r['wins']} | {r['ties']} | {r['losses']} | {_fmt_p(r['sign_p'])} | "
            f"{_fmt_p(r['wilcoxon_p'])} | {_fmt(r['geometric_mean_ratio'], 3)} | {r['verdict']} |"
        )
    lines += ["", *_plot_line(c.get("plot"))]
    lines += [f"Under this protocol's recipe (`{name}`), the paper's {need} of {of}: "
              + "; ".join(_verdict_sentence(rival, r, need, of) for rival, r in c["rivals"].items()) + ".", ""]
    return lines + _saturated_lines(c["rivals"]) + _rank_lines(c.get("ranks"))


def _plot_line(name: str | None) -> list[str]:
    return [f"![{name}](plots/{name})", ""] if name else []


def _saturated_lines(rivals: dict[str, dict[str, Any]], head: str = "Saturated datasets") -> list[str]:
    """The claim's tests again without the saturated datasets (:data:`SATURATED_ACCURACY`), per rival that has any."""
    parts = []
    for rival, r in rivals.items():
        sat, u = r["saturated"], r["unsaturated"]
        if not sat:
            continue
        names = ", ".join(d.split(":", 1)[-1] for d in sat)
        parts.append(
            f"against {rival}, {len(sat)} saturated ({names}; PSiLON Net lower on {r['saturated_wins']}); without them "
            f"{_wins(u['wins'])}, {u['ties']} ties, {u['losses']} losses on {u['datasets']} datasets, sign test p "
            f"{_fmt_p(u['sign_p'])}, Wilcoxon p {_fmt_p(u['wilcoxon_p'])}, ratio {_fmt(u['geometric_mean_ratio'], 3)}"
        )
    if not parts:
        return []
    return [f"{head} (both models at test accuracy ≥ {SATURATED_ACCURACY:g}; their log losses compare how "
            "sure predictions that are already right are, and tiny differences make large ratios) count in the "
            "verdict as in the paper; the tests without them: " + "; ".join(parts) + ".", ""]


def _verdict_sentence(rival: str, r: dict[str, Any], need: int, of: int) -> str:
    complete, wins = r["complete"], r["complete_wins"]
    left = max(of - complete, 0)
    partial = ""
    if complete < r["datasets"]:  # some cells are means over fewer splits than the protocol's
        partial = (f"; the verdict counts the {complete} datasets where both have all {r['splits']} splits "
                   f"({_wins(wins)}): the {r['datasets'] - complete} others, {_wins(r['wins'] - wins)} so far, "
                   "may still change")
    if r["verdict"] == "reproduces":
        return f"against {rival} it **reproduces** ({_wins(r['wins'])} on {r['datasets']} of {of} datasets{partial})"
    if r["verdict"] == "does not reproduce":
        return (f"against {rival} it **does not reproduce** ({_wins(r['wins'])} on {r['datasets']} of {of} datasets"
                + partial + (f"; even {left} more wins would not reach {need})" if left else ")"))
    return (f"against {rival} it is **open** ({_wins(r['wins'])} on {r['datasets']} of {of} datasets so far{partial}; "
            f"{need} needs {need - wins} more on the {left} datasets left)")


def _wins(n: int) -> str:
    return f"{n} win" if n == 1 else f"{n} wins"


def _rank_lines(t: dict[str, Any] | None) -> list[str]:
    if t is None:
        return ["Mean ranks with a critical difference need at least one dataset that every model has finished.", ""]
    lines = [
        f"Mean ranks (1 = best) on the {t['datasets']} dataset{'s' if t['datasets'] != 1 else ''} that all "
        f"{t['models']} models have finished"
        + (f"; Friedman test p = {_fmt_p(t['friedman_p'])}" if t["friedman_p"] is not None else "")
        + f". Nemenyi critical difference at α = {t['alpha']:g}: CD = q √(k(k+1)/(6N)) = {t['cd']:.3f} "
        f"(q = {t['q']:.3f}, the studentized range's quantile / √2). Mean ranks closer than CD are not "
        "significantly different.",
        "",
        "| model | mean rank | differs from PSiLON Net by more than CD |",
        "|---|---:|---|",
    ]
    ours = t["mean_rank"].get(PSILON)
    for m, r in t["mean_rank"].items():
        differs = "" if m == PSILON or ours is None else ("yes" if abs(r - ours) > t["cd"] else "no")
        lines.append(f"| {m} | {r:.2f} | {differs} |")
    lines.append("")
    if t["groups"]:
        lines += ["Groups not significantly different: " + "; ".join("{" + ", ".join(g) + "}" for g in t["groups"]) + ".", ""]
    return lines


def _claim_plot(c: dict[str, Any], protocol: str, plots: Path) -> list[str]:
    """``claim_<protocol>.png``: one panel per rival, PSiLON Net / rival per dataset as bars of
    the log ratio, sorted and labelled with the ratio (left of 1: PSiLON Net lower, a win);
    saturated datasets hatched; ratios beyond :data:`_CLAIM_PLOT_CLIP` (either way) drawn to it."""
    rivals = {rival: r for rival, r in c["rivals"].items() if r.get("log_ratios")}
    if not rivals:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(len(r["log_ratios"]) for r in rivals.values())
    fig, axes = plt.subplots(1, len(rivals), figsize=(5.6 * len(rivals), 1.4 + 0.26 * rows), squeeze=False,
                             layout="constrained")
    for ax, (rival, r) in zip(axes[0], rivals.items()):
        ordered = sorted(r["log_ratios"].items(), key=lambda kv: kv[1])
        logs = np.array([v for _, v in ordered])
        # bars end within +-limit (the largest ratio, at least 1.1x, at most the clip); the
        # axis reaches a third further, for the labels at the bars' ends
        limit = min(max(float(np.abs(logs).max()), math.log(1.1)), math.log(_CLAIM_PLOT_CLIP))
        shown = np.clip(logs, -limit, limit)
        reach = limit * 1.35
        y = np.arange(len(ordered))
        bars = ax.barh(y, shown, color=np.where(logs < 0, "tab:blue", "tab:red"), alpha=0.8)
        for bar, (dataset, v), end in zip(bars, ordered, shown):
            if dataset in r["saturated"]:
                bar.set_hatch("///")
                bar.set_alpha(0.35)
            arrow = ("" if end == v else " ▸") if v >= 0 else ("" if end == v else "◂ ")
            ax.text(end + (0.02 if v >= 0 else -0.02) * reach, bar.get_y() + bar.get_height() / 2,
                    f"{math.exp(v):.3g}{arrow}" if v >= 0 else f"{arrow}{math.exp(v):.3g}", va="center",
                    ha="left" if v >= 0 else "right", fontsize=6)
        steps = (0.5, 0.8, 1, 1.25, 2) if reach > math.log(1.3) else (0.9, 0.95, 1, 1.05, 1.1)
        ticks = [t for t in steps if abs(math.log(t)) <= reach]
        ax.set_xticks([math.log(t) for t in ticks], [f"{t:g}" for t in ticks], fontsize=7)
        ax.set_xlim(-reach, reach)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [d.split(":", 1)[-1] for d, _ in ordered], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"{PSILON} / {rival}, test metric (log axis)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"vs {rival}: PSiLON Net lower on {r['wins']} of {r['datasets']} datasets\n"
                     f"(the paper: {c['wins_needed']} of {c['of']})", fontsize=9)
    fig.suptitle(f"PSiLON Net / rival per dataset (blue: PSiLON Net lower; hatched: saturated) — {protocol}",
                 fontsize=9)
    name = f"claim_{_slug(protocol)}.png"
    _save(fig, plots / name)
    plt.close(fig)
    return [name]


def _cd_plot(c: dict[str, Any], protocol: str, plots: Path) -> list[str]:
    """``cd_<protocol>.png``: mean ranks on an axis, the CD bar, and bars joining the groups."""
    t = c.get("ranks")
    if t is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks = t["mean_rank"]
    k = t["models"]
    half = (k + 1) // 2
    fig, ax = plt.subplots(figsize=(7, 1.6 + 0.3 * k))
    ax.set_xlim(-1.5, k + 2.5)
    ax.set_ylim(-0.45 * half - 0.6, 1.8)
    ax.hlines(0, 1, k, color="black")
    for x in range(1, k + 1):
        ax.vlines(x, 0, 0.15, color="black")
        ax.text(x, 0.3, str(x), ha="center", fontsize=8)
    for i, (m, r) in enumerate(ranks.items()):  # the better half labelled on the left, the rest on the right
        left = i < half
        y = -0.6 - 0.45 * (i if left else k - 1 - i)
        edge = 0.6 if left else k + 0.4
        colour = "tab:blue" if m == PSILON else "grey"
        ax.plot([r, r, edge], [0, y, y], color=colour, lw=1)
        ax.text(edge + (-0.05 if left else 0.05), y, f"{m} ({r:.2f})", ha="right" if left else "left", va="center",
                fontsize=8, fontweight="bold" if m == PSILON else "normal")
    ax.hlines(1.2, 1, 1 + t["cd"], color="tab:red", lw=2)
    ax.text(1 + t["cd"] / 2, 1.4, f"CD = {t['cd']:.2f}", ha="center", fontsize=8, color="tab:red")
    for g, group in enumerate(t["groups"]):
        ax.hlines(-0.25 - 0.12 * g, ranks[group[0]] - 0.03, ranks[group[-1]] + 0.03, color="black", lw=3)
    ax.axis("off")
    ax.set_title(f"Mean ranks on {t['datasets']} datasets, Nemenyi CD at α = {t['alpha']:g} — {protocol}", fontsize=9)
    name = f"cd_{_slug(protocol)}.png"
    _save(fig, plots / name)
    plt.close(fig)
    return [name]


# ------------------------------------------------------------------------------- markdown


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.{digits}f}"


# ``--finish-by TIME`` only decides which tasks a run starts, never what a task computes: a
# resumed run with a new deadline is the same command (its first form is shown).
_FINISH_BY = re.compile(r"\s--finish-by(?:=|\s+)\S+")


def _produced_by(log: str) -> list[str]:
    """The "Produced by" section: each distinct command of ``commands.txt`` once, in first-run order.

    A long run is resumed by re-issuing the same command, often with a new ``--finish-by``
    deadline, so the log repeats it; the section lists it once and says how often it ran.
    """
    runs: Counter[str] = Counter()
    deadlines = 0
    for line in log.splitlines():
        if line.strip():
            command, n = _FINISH_BY.subn("", line.strip())
            runs[command] += 1
            deadlines += n > 0
    if not runs:
        return []
    lines = ["Produced by:", "", "```", *runs, "```", ""]
    repeated = [f"command {i} ran {n} times" for i, n in enumerate(runs.values(), 1) if n > 1]
    if repeated:
        lines += ["Resumed runs (each run skipped the tasks already in the store): " + "; ".join(repeated) + ".", ""]
    if deadlines:
        lines += [f"{deadlines} of the {sum(runs.values())} runs had a `--finish-by` deadline, left out above: it only "
                  "decides which tasks a run starts, not what they compute.", ""]
    return lines


def _markdown_protocol(name: str, s: dict[str, Any], protocol_info: dict[str, Any] | None) -> str:
    lines = [f"## Protocol `{name}`", ""]
    if protocol_info and protocol_info.get("description"):
        lines += [protocol_info["description"], ""]
    datasets = s["datasets"]
    if "ablation" in s:
        lines += _ablation_lines(s["ablation"])
        n_tasks = sum(t["tasks"] for t in s.get("fit_time", {}).values())
        lines += [f"Fit time: {_fmt(s.get('total_fit_hours'), 2)} CPU-hours over {n_tasks} finished tasks.", ""]
    elif not datasets:
        lines += ["No finished tasks yet.", ""]
    else:
        models = _model_order(m for d in datasets.values() for m in d["models"])
        if "claim" in s:
            lines += _claim_lines(name, s["claim"])
        lines += _recipe_steps_lines(s.get("recipe_steps"))
        lines += _score_table(s, models)
        lines += _incomplete_lines(s)
        lines += _accuracy_table(datasets, models)
        lines += _network_table(datasets, models)
        lines += _wins_lines(s["wins"])
        lines += _fit_time_table(s, models)
        lines += _progress_lines(s.get("progress"))
    lines += _notes_and_errors(s)
    return "\n".join(lines)


def _score_cell(v: dict[str, Any] | None, best: float) -> str:
    if v is None:
        return "–"
    text = _fmt(v["score"]) + (f" ± {_fmt(v['score_se'])}" if v.get("score_se") is not None else "")
    return f"**{text}**" if v["score"] == best else text


def _score_table(s: dict[str, Any], models: list[str]) -> list[str]:
    """Test primary metric per dataset x model, best in bold, and the mean-rank row."""
    datasets = s["datasets"]
    lines = [
        "Test metric (lower is better: RMSE for regression, log loss for classification; "
        "mean ± standard error over splits when there are several). Best per dataset in bold.",
        "",
        "| dataset | task | metric | " + " | ".join(models) + " |",
        "|---|---|---|" + "---:|" * len(models),
    ]
    for dataset, d in datasets.items():
        best = min(v["score"] for v in d["models"].values())
        cells = [_score_cell(d["models"].get(m), best) for m in models]
        lines.append(f"| {dataset} | {d['task_type']} | {d['metric']} | " + " | ".join(cells) + " |")
    ranks, counted = s["mean_rank"], s.get("n_datasets_ranked", {})

    def rank_cell(m):
        n = counted.get(m)
        return _fmt(ranks.get(m), 2) + (f" ({n} of {len(datasets)})" if n is not None and n < len(datasets) else "")

    lines.append("| **mean rank** | | | " + " | ".join(rank_cell(m) for m in models) + " |")
    lines.append("")
    lines += [
        "Ranks are paired: on each dataset, models are ranked by their mean over the splits that all of them "
        "have finished; a mean rank over fewer datasets than the table has says on how many.",
        "",
    ]
    return lines


def _incomplete_lines(s: dict[str, Any]) -> list[str]:
    """The cells over fewer splits than their dataset's most complete model, one line per
    model and split count (a run in progress leaves dozens: a line per cell was unreadable)."""
    if not s.get("incomplete"):
        return []
    groups: dict[tuple[str, int, int], list[str]] = {}
    for c in s["incomplete"]:
        groups.setdefault((c["model"], c["n_splits"], c["of"]), []).append(c["dataset"])
    lines = ["Cells over fewer splits than the dataset's most complete model (a run still in progress):", ""]
    for (model, n, of), names in sorted(groups.items()):
        count = f"{len(names)} dataset" + ("s" if len(names) > 1 else "")
        lines.append(f"- {model}, {n} of {of} splits: {count} ({', '.join(names)})")
    return lines + [""]


def _accuracy_table(datasets: dict[str, Any], models: list[str]) -> list[str]:
    classification = {k: d for k, d in datasets.items() if d["task_type"] != "regression"}
    if not classification:
        return []
    lines = ["Test accuracy (classification).", "", "| dataset | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for dataset, d in classification.items():
        lines.append(f"| {dataset} | " + " | ".join(_fmt(d["models"].get(m, {}).get("accuracy")) for m in models) + " |")
    lines.append("")
    return lines


def _network_table(datasets: dict[str, Any], models: list[str]) -> list[str]:
    """Near-sparsity / Lipschitz bound / selected lambda of the models that report them (the networks),
    and how often a network selected an end of its lambda grid."""
    network = [m for m in models if any(d["models"].get(m, {}).get("near_sparsity") is not None for d in datasets.values())]
    if not network:
        return []
    lines = [
        "Selected networks: near-sparsity (mean over neurons) / Lipschitz bound (l_inf input) / selected λ (each "
        "distinct one over the splits; \"(end)\": the smallest or largest λ of the grid, so a better one may lie "
        "outside it).",
        "",
        "| dataset | " + " | ".join(network) + " |",
        "|---|" + "---:|" * len(network),
    ]
    for dataset, d in datasets.items():
        cells = []
        for m in network:
            v = d["models"].get(m, {})
            lams = ", ".join(_fmt_setting(lam) for lam in v.get("selected_lambdas", [])) or "–"
            end = " (end)" if v.get("lambda_at_grid_end") else ""
            cells.append(f"{_fmt(v.get('near_sparsity'), 3)} / {_fmt(v.get('lipschitz_bound'), 3)} / {lams}{end}")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    lines.append("")
    counts = []
    for m in network:
        selected = [d["models"][m] for d in datasets.values() if d["models"].get(m, {}).get("selected_lambdas")]
        for end in ("smallest", "largest"):
            n = sum(end in v.get("lambda_at_grid_end", []) for v in selected)
            if n:
                counts.append(f"{m} the {end} on {n} of {len(selected)} datasets")
    if counts:
        lines += ["At an end of the λ grid: " + "; ".join(counts) + ".", ""]
    return lines


def _wins_lines(wins: dict[str, Any]) -> list[str]:
    if not wins:
        return []
    lines = ["PSiLON Net against its rivals (datasets where it has the lower mean test metric over the splits both have finished):", ""]
    for pair, w in wins.items():
        lines.append(
            f"- {pair}: {_wins(w['wins'])}, {w['ties']} ties, {w['losses']} loss{'' if w['losses'] == 1 else 'es'} "
            f"on {w['datasets']} datasets"
            + (f" ({w['splits']} paired splits)" if w.get("splits") is not None else "")
        )
    lines.append("")
    return lines


def _fit_time_table(s: dict[str, Any], models: list[str]) -> list[str]:
    fit_time = s.get("fit_time", {})
    n_tasks = sum(t["tasks"] for t in fit_time.values())
    lines = [
        f"Fit time: {_fmt(s.get('total_fit_hours'), 2)} CPU-hours over {n_tasks} finished tasks "
        "(sum of the tasks' fit times; prediction and scoring not included).",
        "",
        "| model | tasks | mean seconds per task | total hours |",
        "|---|---:|---:|---:|",
    ]
    for m in models:
        t = fit_time.get(m)
        if t:
            lines.append(f"| {m} | {t['tasks']} | {_fmt(t['mean_seconds'], 2)} | {t['hours']:.3g} |")
    lines.append("")
    resumed = {m: t["resumed"] for m, t in fit_time.items() if t.get("resumed")}
    if resumed:
        lines += ["Resumed from checkpoints after an interruption (their fit time is the last run's only, so the "
                  "mean leaves them out): " + ", ".join(f"{m} {n}" for m, n in resumed.items()) + ".", ""]
    return lines


def protocol_progress(s: dict[str, Any], protocol_info: dict[str, Any]) -> dict[str, Any]:
    """How far a store is through its whole protocol, and what the rest should cost.

    Per model label of ``protocol_info`` (``protocol.json``): the tasks of the protocol
    (its datasets times its splits), those finished (``ok``) and the rest; the estimate of
    the rest is its count times that mean fit time (``seconds``) of the model's last
    :data:`RECENT_FITS` finished tasks that ran in one go (one thread each, so task-hours
    are core-hours), ``None`` while none has finished. For a claim protocol (``s`` has a
    ``claim``), ``claim``: the same totals over the models its verdict compares.
    """
    datasets = list(protocol_info.get("datasets", []))
    per_model = len(datasets) * len(SplitSpec(**protocol_info.get("split", {})).split_ids)
    models: dict[str, Any] = {}
    for spec in protocol_info.get("models", []):
        label = spec["label"]
        done = sum(s["datasets"].get(d, {}).get("models", {}).get(label, {}).get("n_splits", 0) for d in datasets)
        timed = s.get("fit_time", {}).get(label) or {}
        recent = timed.get("recent_mean_seconds", timed.get("mean_seconds"))
        mean_hours = recent / 3600 if recent is not None else None
        left = per_model - done
        models[label] = {"tasks": per_model, "done": done, "left": left, "seconds": recent,
                         "hours_left": None if mean_hours is None else left * mean_hours}
    out = _progress_of(models)
    out["models"] = models
    claim = [m for m in (PSILON, *RIVALS) if m in models] if "claim" in s else []
    if claim:  # the verdict on 21 of 30 waits for these models on every split
        out["claim"] = {"models": claim, **_progress_of({m: models[m] for m in claim})}
    return out


def _progress_of(models: dict[str, Any]) -> dict[str, Any]:
    known = [m["hours_left"] for m in models.values() if m["hours_left"] is not None]
    return {
        "tasks": sum(m["tasks"] for m in models.values()),
        "done": sum(m["done"] for m in models.values()),
        "hours_left": sum(known),
        "unestimated": sorted(k for k, m in models.items() if m["hours_left"] is None and m["left"]),
    }


def _progress_lines(p: dict[str, Any] | None) -> list[str]:
    if not p or p["done"] >= p["tasks"]:
        return []
    lines = [
        f"Progress: {p['done']} of the protocol's {p['tasks']} tasks are finished. The other "
        f"{p['tasks'] - p['done']} need {'at least ' if p['unestimated'] else 'about '}"
        f"**{p['hours_left']:.1f} core-hours**: each model's remaining tasks times the mean fit time of its "
        f"last {RECENT_FITS} finished ones (one thread per task, on this machine and at its load)"
        + (f"; {', '.join(p['unestimated'])} not counted (none finished yet in one run)" if p["unestimated"] else "") + ".",
        "",
        "| model | finished | remaining | estimated core-hours left |",
        "|---|---:|---:|---:|",
    ]
    for label, m in p["models"].items():
        hours = "?" if m["hours_left"] is None else f"{m['hours_left']:.1f}"
        lines.append(f"| {label} | {m['done']} of {m['tasks']} | {m['left']} | {hours} |")
    lines.append("")
    c = p.get("claim")
    if c and c["done"] < c["tasks"]:
        lines += [claim_wait(c).capitalize() + ".", ""]
    return lines


def claim_wait(c: dict[str, Any]) -> str:
    """What a claim protocol's verdict still waits for (``c``: the ``claim`` of
    :func:`protocol_progress`): its models' tasks left and their cost."""
    names = ", ".join(c["models"][:-1]) + " and " + c["models"][-1] if len(c["models"]) > 1 else c["models"][0]
    cost = (f"at least {c['hours_left']:.1f} core-hours" if c["unestimated"] else f"about {c['hours_left']:.1f} core-hours")
    return f"the verdict on {CLAIM_WINS} of {CLAIM_OF} waits for {c['tasks'] - c['done']} tasks of {names} ({cost})"


def _notes_and_errors(s: dict[str, Any]) -> list[str]:
    """The notes of skipped tasks and the first 20 failed tasks."""
    lines = []
    if s["notes"]:
        lines += ["Skipped:", ""] + [f"- {n}" for n in s["notes"]] + [""]
    if s["errors"]:
        lines += [f"Failed tasks ({len(s['errors'])}):", ""]
        lines += [f"- {e['dataset']} / {e['model']} / split {e['split_id']}: {e['error']}" for e in s["errors"][:20]]
        lines.append("")
    return lines


# ------------------------------------------------------------------------------- plots


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _load_curves(base: Path, relative: str | None) -> pd.DataFrame | None:
    if not relative:
        return None
    path = base / relative
    if not path.is_file():
        return None
    return pd.DataFrame.from_records(json.loads(path.read_text()))


def _plot_curves_panel(ax, curves: pd.DataFrame, title: str, selected=None) -> None:
    import matplotlib as mpl

    lambdas = sorted(curves["lambda"].unique())
    cmap = mpl.colormaps["viridis"]
    for i, lam in enumerate(lambdas):
        c = curves[curves["lambda"] == lam].sort_values("step")
        width = 2.2 if selected is not None and np.isclose(lam, selected) else 1.0
        ax.plot(c["step"], c["value"], color=cmap(i / max(1, len(lambdas) - 1)), lw=width, label=f"λ={lam:g}")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)


def _plots(frame: pd.DataFrame, summary: dict[str, Any], base: Path, plots: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []
    for protocol, s in summary.items():
        part = frame[frame["protocol"] == protocol] if len(frame) else frame
        if part.empty:
            continue
        # curves: one figure per dataset, one panel per model with curves (first split)
        with_curves = part[part["curves_file"].notna()]
        figure1_done = False
        for dataset, d in with_curves.groupby("dataset", sort=False):
            first = d.sort_values("split_id").groupby("model", sort=False).head(1)
            models = [m for m in _model_order(first["model"])]
            loaded = {m: _load_curves(base, first.loc[first["model"] == m, "curves_file"].iloc[0]) for m in models}
            loaded = {m: c for m, c in loaded.items() if c is not None and len(c)}
            if not loaded:
                continue
            selected = {m: first.loc[first["model"] == m, "selected"].iloc[0].get("lambda") for m in loaded}
            fig, axes = plt.subplots(1, len(loaded), figsize=(5 * len(loaded), 4), sharey=True, squeeze=False)
            for ax, (m, c) in zip(axes[0], loaded.items()):
                _plot_curves_panel(ax, c, f"{m} — {dataset}", selected[m])
            axes[0][0].set_ylabel("validation loss")
            axes[0][-1].legend(fontsize=7, loc="upper right")
            name = f"curves_{_slug(protocol)}_{_slug(dataset)}.png"
            _save(fig, plots / name)
            plt.close(fig)
            written.append(name)
            if not figure1_done and {PSILON, "standard-net"} <= set(loaded):
                fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
                for ax, m in zip(axes, ("standard-net", PSILON)):
                    _plot_curves_panel(ax, loaded[m], f"{m} — {dataset}", selected[m])
                axes[0].set_ylabel("validation loss")
                axes[1].legend(fontsize=7, loc="upper right")
                fig.suptitle("Validation loss against step for every λ (paper Figure 1 style)")
                name = f"figure1_{_slug(protocol)}.png"
                _save(fig, plots / name)
                plt.close(fig)
                written.append(name)
                figure1_done = True
        # near-sparsity per model
        ns = part.dropna(subset=["near_sparsity"])
        if not ns.empty:
            pivot = ns.groupby(["dataset", "model"])["near_sparsity"].mean().unstack("model")
            pivot = pivot[_model_order(pivot.columns)]
            fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(pivot) + 2), 4))
            pivot.plot.bar(ax=ax)
            ax.set_ylabel("near-sparsity of the selected network")
            ax.set_title(f"Near-sparsity per model — {protocol}")
            ax.set_ylim(0, 1)
            ax.grid(axis="y", alpha=0.3)
            _save(fig, plots / f"near_sparsity_{_slug(protocol)}.png")
            plt.close(fig)
            written.append(f"near_sparsity_{_slug(protocol)}.png")
        # rank summary across datasets
        ranks = pd.DataFrame(
            {d: {m: v["rank"] for m, v in dd["models"].items()} for d, dd in summary[protocol]["datasets"].items()},
            dtype=float,
        ).T.dropna(how="all").dropna(axis=1, how="all")  # the paired ranks the summary computed
        order = ranks.mean(axis=0).sort_values().index.tolist()
        fig, ax = plt.subplots(figsize=(6, 0.45 * len(order) + 1.5))
        ax.barh(order, ranks[order].mean(axis=0), color="tab:blue", alpha=0.5, label="mean rank")
        for i, m in enumerate(order):
            values = ranks[m].dropna()
            ax.scatter(values, np.full(len(values), i), color="black", s=12, zorder=3, label="dataset" if i == 0 else None)
        ax.invert_yaxis()
        ax.set_xlabel("rank (1 = best)")
        ax.set_yticks(range(len(order)), [f"{m} ({ranks[m].notna().sum()})" for m in order])
        ax.set_title(f"Paired ranks on {len(ranks)} datasets (model: datasets ranked) — {protocol}", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(axis="x", alpha=0.3)
        _save(fig, plots / f"ranks_{_slug(protocol)}.png")
        plt.close(fig)
        written.append(f"ranks_{_slug(protocol)}.png")
    return written


# ------------------------------------------------------------------------------- entry point


def write_report(
    results: str | os.PathLike | list[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    *,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write ``report.md``, ``summary.json`` and ``plots/*.png`` for the store ``results``.

    ``out_dir`` defaults to the store's folder. Returns the summary (also in ``summary.json``).
    Lines and rows the report cannot use are left out, listed in the report and passed one
    sentence each to ``warn`` (default: :func:`warnings.warn`); when no row is usable a
    ValueError says why and nothing is written. So does an ``out_dir`` that cannot be
    written (an existing file, no permission).

    ``results`` may also be a list of stores (each with its own protocols): the report then
    has every store's protocols, and opens with the claim overview when two or more of
    them are claim protocols (one table for the recipes side by side); ``out_dir`` is
    then required.
    """
    stores = [results] if isinstance(results, (str, os.PathLike)) else list(results)
    if not stores:
        raise ValueError("no result store given")
    if len(stores) > 1 and out_dir is None:
        raise ValueError("a report of several stores needs an output folder (--out)")
    read = [_read_store(store, warn, several=len(stores) > 1) for store in stores]
    out = prepare_out_dir(out_dir if out_dir is not None else read[0].folder)
    by_key: dict[str, dict[str, Any]] = {}
    for part in read:  # a task in two of the stores (the same store twice, a copy) counts once
        for r in part.rows:
            by_key.setdefault(r["key"], r)
    rows = list(by_key.values())
    infos = {part.info["name"]: part.info for part in read if part.info and part.info.get("name")}
    summary = summarize(rows)
    tables = {name: s for name, s in summary.items() if "ablation" not in s}
    plots = _plots(_frame(rows), tables, read[0].folder, out / "plots")
    for name, s in summary.items():
        if "ablation" in s:
            plots += _ablation_plot(s["ablation"], name, read[0].folder, out / "plots")
        if "claim" in s:
            plots += _cd_plot(s["claim"], name, out / "plots")
            # shown under the claim's table (and the overview's), not in the Plots section
            s["claim"]["plot"] = next(iter(_claim_plot(s["claim"], name, out / "plots")), None)
        plots += _recipe_steps_plot(s.get("recipe_steps"), name, out / "plots")
    sections = ["# Benchmark report", ""]
    sections += _overview_lines({name: s["claim"] for name, s in summary.items() if "claim" in s})
    claimed = [name for name in CLAIM_PROTOCOLS if "claim" in summary.get(name, {})]
    compared = recipes_compared(rows, *claimed[:2]) if len(claimed) >= 2 else None
    sections += _recipes_compared_lines(compared)
    for part in read:
        sections += part.header
    for name, s in summary.items():
        info = infos.get(name)
        if info is not None and "ablation" not in s and s["datasets"]:
            s["progress"] = protocol_progress(s, info)
        sections.append(_markdown_protocol(name, s, info))
    if plots:
        sections += ["## Plots", ""] + [f"![{p}](plots/{p})" for p in plots] + [""]
    atomic_write_text(out / "report.md", "\n".join(sections))
    claim_plots = [s["claim"]["plot"] for s in summary.values() if s.get("claim", {}).get("plot")]
    document: dict[str, Any] = {"protocols": summary, "plots": plots + claim_plots}
    if compared:
        document["recipes_compared"] = _nan_to_none(compared)
    unreadable = {str(part.folder): part.unreadable for part in read if part.unreadable}
    if unreadable:
        document["unreadable"] = next(iter(unreadable.values())) if len(stores) == 1 else unreadable
    atomic_write_text(out / "summary.json", json.dumps(document, indent=2, sort_keys=True))
    return summary


@dataclass
class _StoreRead:
    """One store as the report reads it: its usable current rows, its ``protocol.json``, the
    Markdown lines that introduce it (commands, counts, what was left out), and what was unreadable."""

    folder: Path
    rows: list[dict[str, Any]]
    info: dict[str, Any] | None
    header: list[str]
    unreadable: dict[str, Any] | None


def _read_store(results, warn, *, several: bool) -> _StoreRead:
    usable = read_usable(results)
    rows, base, notes = usable.rows, usable.folder, usable.notes
    for note in notes:
        (warn or _warn)(f"{base.name}/results.jsonl {note}; left out of the report")
    info = json.loads((base / "protocol.json").read_text()) if (base / "protocol.json").is_file() else None
    rows, superseded = split_superseded(rows, info)
    if several:  # curves files are relative to their own store; the report's folder is elsewhere
        rows = [{**r, "curves_file": str((base / r["curves_file"]).resolve())} if r.get("curves_file") else r
                for r in rows]
    header = []
    commands = base / "commands.txt"
    if commands.is_file():
        header += _produced_by(commands.read_text())
    counts = pd.Series([r.get("status") for r in rows]).value_counts().to_dict() if rows else {}
    header += [f"Store: `{base.name}/` — {len(rows)} tasks ({', '.join(f'{v} {k}' for k, v in counts.items()) or 'none'}).", ""]
    if notes:
        header += ["Skipped while reading `results.jsonl` (not counted anywhere below): " + "; ".join(notes) + ".", ""]
    if superseded:
        labels = ", ".join(sorted({r["model"] for r in superseded}))
        header += [
            f"Left out: {len(superseded)} rows of an earlier version of the protocol ({labels} with other "
            "settings than `protocol.json` now gives them). They stay in the store.",
            "",
        ]
    unreadable = {"notes": notes, "lines": usable.lines_skipped, "rows": usable.rows_skipped} if notes else None
    return _StoreRead(base, rows, info, header, unreadable)


def _overview_lines(claims: dict[str, dict[str, Any]]) -> list[str]:
    """The claim overview of a report of several claim protocols: one row per recipe and rival."""
    if len(claims) < 2:
        return []
    need, of = next(iter(claims.values()))["wins_needed"], next(iter(claims.values()))["of"]
    lines = [
        f"## Does PSiLON Net win on {need} of {of} datasets? (issue #15)",
        "",
        "Each recipe's claim section below, side by side: PSiLON Net's wins per dataset (mean test metric over the "
        "splits both have finished), the two-sided sign test of the wins among untied datasets, the Wilcoxon "
        "signed-rank test of the per-dataset log ratios, their geometric mean (below 1: PSiLON Net lower) and the "
        f"verdict on {need} of {of}.",
        "",
        f"| recipe | PSiLON Net vs | datasets | wins | ties | losses | sign test p | Wilcoxon p | ratio | {need} of {of} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, c in claims.items():
        if not c["rivals"]:
            lines.append(f"| `{name}` | – | 0 of {of} | | | | | | | open: no dataset with PSiLON Net and a rival yet |")
        for rival, r in c["rivals"].items():
            lines.append(
                f"| `{name}` | {rival} | {r['datasets']} of {of} | {r['wins']} | {r['ties']} | {r['losses']} | "
                f"{_fmt_p(r['sign_p'])} | {_fmt_p(r['wilcoxon_p'])} | {_fmt(r['geometric_mean_ratio'], 3)} | "
                f"{r['verdict']} |"
            )
    lines.append("")
    for name, c in claims.items():
        lines += _plot_line(c.get("plot"))
    for name, c in claims.items():
        if c["rivals"]:
            lines += [f"Under `{name}`: " + "; ".join(_verdict_sentence(rival, r, need, of)
                                                    for rival, r in c["rivals"].items()) + ".", ""]
            lines += _saturated_lines(c["rivals"], f"Under `{name}`, saturated datasets")
    return lines


def recipes_compared(rows: list[dict[str, Any]], first: str, second: str) -> dict[str, Any] | None:
    """Each model whose settings differ between protocols ``first`` and ``second`` (the
    networks of two recipes), under ``second`` against itself under ``first`` on the splits
    both ran on the same data (dataset, split settings, seed and preprocessing): the paired
    tests of the per-dataset mean test metric (``wins``: ``second`` lower) and the fit times of the pairs
    that both ran in one go (not resumed from checkpoints). Also PSiLON Net against each
    rival under both recipes on those same splits (``claim``), which separates what the
    recipe changes from what the other splits change. ``None`` when no split pairs up."""
    frame = _same_data_frame(rows, (first, second))
    if frame.empty or frame["protocol"].nunique() < 2:
        return None
    params = frame.groupby(["model", "protocol"])["params"].first().unstack("protocol")
    changed = [m for m in params.index if params.loc[m].notna().all() and params.loc[m, first] != params.loc[m, second]]
    out: dict[str, Any] = {"first": first, "second": second, "models": {}, "claim": {}}
    for model in _model_order(changed):
        wide = frame[frame["model"] == model].pivot_table(index=["dataset", "data"], columns="protocol",
                                                          values=["score", "fit_seconds", "resumed"], aggfunc="first")
        wide = wide.dropna()
        if wide.empty:
            continue
        means = wide["score"].groupby(level="dataset").mean()  # one pair per dataset, as the claim's
        tests = _paired_tests(means[second], means[first])
        whole = wide[~wide["resumed"].astype(bool).any(axis=1)]["fit_seconds"]
        out["models"][model] = {**tests, "median_seconds": {p: float(whole[p].median()) if len(whole) else None
                                                            for p in (first, second)},
                                "time_ratio": float(whole[first].sum() / whole[second].sum()) if len(whole) else None}
    scores = frame.pivot_table(index=["dataset", "data"], columns=["protocol", "model"], values="score", aggfunc="first")
    for rival in RIVALS:
        pair = [(p, m) for p in (first, second) for m in (PSILON, rival)]
        if all(c in scores.columns for c in pair):
            both = scores[pair].dropna().groupby(level="dataset").mean()
            out["claim"][rival] = {p: {k: v for k, v in _paired_tests(both[(p, PSILON)], both[(p, rival)]).items()
                                       if k != "log_ratios"} for p in (first, second)}
    return out if out["models"] or out["claim"] else None


def _same_data_frame(rows: list[dict[str, Any]], protocols: tuple[str, ...]) -> pd.DataFrame:
    """The ok rows of ``protocols``, with ``data``: what makes two rows' data the same."""
    records = []
    for r in rows:
        if r.get("status") != "ok" or r.get("protocol") not in protocols:
            continue
        split = dict(r.get("split") or {})
        seeds = split.pop("seeds", None) or [0]
        seed = seeds[r["split_id"]] if r["split_id"] < len(seeds) else None
        records.append({"protocol": r["protocol"], "model": r["model"], "dataset": r["dataset"],
                        "data": canonical_json([split, seed, r.get("preprocessing")]),
                        "params": canonical_json(r.get("params") or {}),
                        "score": r["metrics"]["test"][r["primary_metric"]],
                        "fit_seconds": r.get("fit_seconds", np.nan), "resumed": bool(r.get("restored_checkpoints"))})
    return pd.DataFrame.from_records(records)


def _recipes_compared_lines(c: dict[str, Any] | None) -> list[str]:
    if not c:
        return []
    first, second = c["first"], c["second"]
    lines = [
        "### The same networks under both recipes",
        "",
        f"Each network under `{second}` against itself under `{first}`, on the splits both ran (the same rows, "
        f"split and preprocessing). Lower: how many datasets each recipe gave the lower test metric; ratio: "
        f"geometric mean of `{second}` / `{first}`; fit time: median seconds of a task, and the total under "
        f"`{first}` over the total under `{second}` (the pairs that ran in one go).",
        "",
        f"| model | datasets | `{second}` lower | `{first}` lower | sign test p | Wilcoxon p | ratio | "
        f"median fit s, `{first}` | median fit s, `{second}` | time ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, m in c["models"].items():
        lines.append(
            f"| {model} | {m['datasets']} | {m['wins']} | {m['losses']} | {_fmt_p(m['sign_p'])} | "
            f"{_fmt_p(m['wilcoxon_p'])} | {_fmt(m['geometric_mean_ratio'], 3)} | {_fmt(m['median_seconds'][first], 0)} | "
            f"{_fmt(m['median_seconds'][second], 0)} | {_fmt(m['time_ratio'], 2)} |"
        )
    lines.append("")
    for rival, r in c["claim"].items():
        a, b = r[first], r[second]
        lines += [
            f"On those same splits, PSiLON Net against {rival}: {_wins(a['wins'])} of {a['datasets']} under `{first}` "
            f"(ratio {_fmt(a['geometric_mean_ratio'], 3)}), {_wins(b['wins'])} of {b['datasets']} under `{second}` "
            f"(ratio {_fmt(b['geometric_mean_ratio'], 3)}).",
            "",
        ]
    return lines


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)
