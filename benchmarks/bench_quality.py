"""Quality table: 5-fold CV of the PSiLON estimators next to scikit-learn baselines.

Datasets: scikit-learn's bundled diabetes (regression, RMSE and R^2) and breast_cancer
(binary classification, log loss and accuracy). Every model sees the same shuffled 5
folds (KFold / StratifiedKFold, random_state=0). PSiLON estimators use their default
settings (only ``random_state`` set); baselines: RidgeCV / LogisticRegressionCV,
RandomForest (300 trees), HistGradientBoosting, MLP (scikit-learn defaults, max_iter
2000), each in a Pipeline after a StandardScaler where that matters.

Writes ``docs/results/quality.md`` atomically (temporary file + rename) and prints it.

Usage::

    python benchmarks/bench_quality.py [--threads 1] [--out docs/results/quality.md]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from psilon import PSiLONClassifier, PSiLONRegressor


def _models(task: str):
    if task == "regression":
        return {
            "PSiLON Net (mlp)": PSiLONRegressor(architecture="mlp", random_state=0),
            "PSiLON ResNet": PSiLONRegressor(architecture="resnet", random_state=0),
            "RidgeCV": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-6, 2, 17))),
            "RandomForest": RandomForestRegressor(n_estimators=300, random_state=0, n_jobs=1),
            "HistGradientBoosting": HistGradientBoostingRegressor(random_state=0),
            "MLP (sklearn)": make_pipeline(StandardScaler(), MLPRegressor(max_iter=2000, random_state=0)),
        }
    return {
        "PSiLON Net (mlp)": PSiLONClassifier(architecture="mlp", random_state=0),
        "PSiLON ResNet": PSiLONClassifier(architecture="resnet", random_state=0),
        "LogisticRegressionCV": make_pipeline(StandardScaler(), LogisticRegressionCV(max_iter=5000)),
        "RandomForest": RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=1),
        "HistGradientBoosting": HistGradientBoostingClassifier(random_state=0),
        "MLP (sklearn)": make_pipeline(StandardScaler(), MLPClassifier(max_iter=2000, random_state=0)),
    }


def _run(name, task, X, y):
    if task == "regression":
        cv = KFold(5, shuffle=True, random_state=0)
        scoring = {"rmse": "neg_root_mean_squared_error", "r2": "r2"}
    else:
        cv = StratifiedKFold(5, shuffle=True, random_state=0)
        scoring = {"log_loss": "neg_log_loss", "accuracy": "accuracy"}
    rows = []
    for model_name, model in _models(task).items():
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = cross_validate(model, X, y, cv=cv, scoring=scoring, n_jobs=1)
        wall = time.perf_counter() - t
        keys = list(scoring)
        first = -res[f"test_{keys[0]}"]
        second = res[f"test_{keys[1]}"]
        rows.append((name, model_name, keys, first.mean(), first.std(), second.mean(), second.std(), wall))
        print(f"  {name:14s} {model_name:22s} {keys[0]} {first.mean():.4f} +- {first.std():.4f}   "
              f"{keys[1]} {second.mean():.4f}   ({wall:.0f} s)", flush=True)
    return rows


def _table(rows) -> str:
    lines = []
    for dataset in dict.fromkeys(r[0] for r in rows):
        sub = [r for r in rows if r[0] == dataset]
        k1, k2 = sub[0][2]
        lines += [
            f"### {dataset}",
            "",
            f"| model | {k1} (mean +- sd, lower is better) | {k2} (mean +- sd) | time, 5 folds (s) |",
            "|---|---|---|---|",
        ]
        for _, model_name, _, m1, s1, m2, s2, wall in sub:
            lines.append(f"| {model_name} | {m1:.4f} +- {s1:.4f} | {m2:.4f} +- {s2:.4f} | {wall:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--datasets", nargs="+", default=["diabetes", "breast_cancer"],
                        choices=["diabetes", "breast_cancer"])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "results" / "quality.md"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    loaders = {"diabetes": (load_diabetes, "regression"), "breast_cancer": (load_breast_cancer, "classification")}
    for name in args.datasets:
        loader, task = loaders[name]
        X, y = loader(return_X_y=True, as_frame=True)
        rows += _run(name, task, X, y)
        _write(args, rows)  # after every dataset, so a long run leaves a partial table


def _write(args, rows) -> None:
    defaults = PSiLONRegressor().get_params()
    text = "\n".join(
        [
            "# Quality: PSiLON estimators vs scikit-learn baselines",
            "",
            "5-fold cross-validation (shuffled, random_state=0; stratified for classification) on",
            "scikit-learn's bundled datasets. Generated by `python benchmarks/bench_quality.py`"
            + (f" --threads {args.threads}" if args.threads else "") + ".",
            "",
            "PSiLON estimators at their defaults: "
            + ", ".join(f"{k}={defaults[k]!r}" for k in ("width", "depth", "max_steps", "batch_size",
                                                          "learning_rate", "selection", "validation_fraction"))
            + ", lambdas = the paper's 13 values (one stacked run), random_state=0.",
            "Baselines: RidgeCV / LogisticRegressionCV (after StandardScaler), RandomForest (300 trees),",
            "HistGradientBoosting (defaults), MLP (scikit-learn defaults, max_iter=2000, after StandardScaler).",
            "Times are wall-clock on a shared 2-core machine (noisy).",
            "",
            _table(rows),
        ]
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".quality.", suffix=".md")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, out)
    print(text, flush=True)


if __name__ == "__main__":
    main()
