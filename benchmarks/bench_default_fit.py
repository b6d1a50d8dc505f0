"""Default-fit time and quality: ``PSiLONRegressor().fit`` on scikit-learn's diabetes.

One thread. In one run, interleaved round by round: the PSiLON estimator at its
defaults (only ``random_state`` set), scikit-learn's ``MLPRegressor`` (defaults,
``max_iter=2000``, after a StandardScaler) and ``HistGradientBoostingRegressor``
(defaults). Prints each model's median fit time on all 442 rows, the ratios of
PSiLON's to the others', and the 5-fold CV RMSE of each (KFold shuffled,
random_state=0) -- the quality bar is the old default's 54.75 (docs/results/quality.md).

Usage::

    python benchmarks/bench_default_fit.py [--rounds 3] [--folds 5] [--architecture mlp] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from psilon import PSiLONRegressor
from psilon.train import resolve_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--architecture", default="mlp", choices=["mlp", "resnet"])
    ap.add_argument("--device", default="auto", help="PSiLON's device (default auto: CUDA when available)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    X, y = load_diabetes(return_X_y=True)
    models = {
        "psilon": PSiLONRegressor(architecture=args.architecture, random_state=0, device=args.device),
        "sklearn-mlp": make_pipeline(StandardScaler(), MLPRegressor(max_iter=2000, random_state=0)),
        "hgb": HistGradientBoostingRegressor(random_state=0),
    }
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                fitted = clone(model).fit(X, y)
                times[name].append(time.perf_counter() - t)
            if name == "psilon":
                steps, lam = fitted.n_steps_, fitted.lambda_
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, PSiLON on {resolve_device(args.device)}, 1 thread, load avg {os.getloadavg()[0]:.1f}; "
          f"medians of {args.rounds} interleaved fits on all {len(y)} rows")
    print(f"PSiLONRegressor(architecture={args.architecture!r}) default fit: {med['psilon']:.2f} s "
          f"({steps} steps done, lambda_={lam:g})")
    for name in ("sklearn-mlp", "hgb"):
        print(f"  {name:12s} {med[name]:7.2f} s   psilon / {name} = {med['psilon'] / med[name]:.1f}x")
    cv = KFold(args.folds, shuffle=True, random_state=0)
    print(f"\n{args.folds}-fold CV RMSE (bar: 54.75, the old default)")
    for name, model in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = -cross_val_score(model, X, y, cv=cv, scoring="neg_root_mean_squared_error")
        print(f"  {name:12s} {np.mean(scores):8.3f} +- {np.std(scores):.3f}")


if __name__ == "__main__":
    main()
