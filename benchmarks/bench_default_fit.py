"""Default-fit time and quality: ``PSiLONRegressor().fit`` on scikit-learn's diabetes.

One thread. In one run, interleaved round by round: the PSiLON estimator at its
defaults (only ``random_state`` set), scikit-learn's ``MLPRegressor`` (defaults,
``max_iter=2000``, after a StandardScaler) and ``HistGradientBoostingRegressor``
(defaults). Prints each model's median fit time on all 442 rows, the ratios of
PSiLON's to the others', and the 5-fold CV RMSE of each (KFold shuffled,
random_state=0) -- the quality bar is the old default's 54.75 (docs/results/quality.md).
``--seeds 0,1,2`` averages PSiLON's CV RMSE over several ``random_state`` values (it is
noisy on 442 rows: a spread of about 1 between seeds); ``--set PARAM=VALUE`` overrides
PSiLON's parameters, e.g. to compare learning rates.

Usage::

    python benchmarks/bench_default_fit.py [--rounds 3] [--folds 5] [--architecture mlp] [--device auto]
    python benchmarks/bench_default_fit.py --seeds 0,1,2 --set learning_rate=1e-2 --set length_lr_scale=10
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
    ap.add_argument("--seeds", default="0", help="comma-separated random_state values of the CV (default 0)")
    ap.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                    help="override a PSiLONRegressor parameter (numbers parsed), e.g. --set learning_rate=1e-2")
    args = ap.parse_args()
    overrides = dict(_parse_set(text) for text in args.set)
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    X, y = load_diabetes(return_X_y=True)
    models = {
        "psilon": PSiLONRegressor(architecture=args.architecture, random_state=seeds[0], device=args.device, **overrides),
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
    print(f"PSiLONRegressor(architecture={args.architecture!r}{''.join(f', {k}={v!r}' for k, v in overrides.items())}) fit: {med['psilon']:.2f} s "
          f"({steps} steps done, lambda_={lam:g})")
    for name in ("sklearn-mlp", "hgb"):
        print(f"  {name:12s} {med[name]:7.2f} s   psilon / {name} = {med['psilon'] / med[name]:.1f}x")
    cv = KFold(args.folds, shuffle=True, random_state=0)
    print(f"\n{args.folds}-fold CV RMSE (bar: 54.75, the old default); PSiLON with random_state {seeds}")
    for name, model in models.items():
        runs = [clone(model).set_params(random_state=s) for s in seeds] if name == "psilon" else [model]
        per_seed = []
        for run in runs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = -cross_val_score(run, X, y, cv=cv, scoring="neg_root_mean_squared_error")
            per_seed.append(np.mean(scores))
        detail = f"  (per seed: {', '.join(f'{s:.3f}' for s in per_seed)})" if len(per_seed) > 1 else ""
        print(f"  {name:12s} {np.mean(per_seed):8.3f} +- {np.std(scores):.3f}{detail}")


def _parse_set(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set takes PARAM=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


if __name__ == "__main__":
    main()
