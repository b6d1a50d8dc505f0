"""Compiled kernels in a fit whose member count shrinks (early stopping), against eager.

A long default fit compiles the normalization kernels of its wide layers
(``compile='auto'``, >= ``COMPILE_MIN_STEPS`` steps) and drops members as they stop
early, so the stacked step sees K = 13, 12, ..., 1. The compiled kernels must be traced
once with K symbolic; before the fix of stop 13 every new K of a width-500 layer
recompiled (torch kept the parameters' shapes static) until torch's recompile limit of 8
sent the layer back to eager.

One run, interleaved round by round: the same fit (PSiLON Net width 500, depth 3, 13
lambdas, n = 2,000, 20 features, batch 400, 2,000-step budget, patience 3 evaluations of
every 20 steps) with compiled kernels and eager ones. Prints median fit seconds, their
ratio, the member-steps done (equal in both: same data, same seeds) and the number of
kernel recompilations torch counted in the compiled fits after the first trace.

Usage::

    python benchmarks/bench_shrink_compile.py [--rounds 3] [--width 500] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

N, D, DEPTH, LAMBDAS = 2000, 20, 3, np.geomspace(5e-5, 0.5, 13)


def _fit(width: int, compiled: bool, X, y, Xv, yv) -> tuple[float, int]:
    from psilon.nn import PSiLONNet
    from psilon.train import train_members

    torch.manual_seed(0)
    net = PSiLONNet(D, 1, width=width, depth=DEPTH, members=len(LAMBDAS))
    t = time.perf_counter()
    result = train_members(net, X, y, lambdas=LAMBDAS, val_data=(Xv, yv), max_steps=2000, learning_rate=1e-2,
                           length_lr_scale=5.0, eval_every=20, restore="best", patience=3, compile=compiled)
    return time.perf_counter() - t, int(result.member_steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N + 500, D)).astype(np.float32)
    y = (X[:, 0] - 2 * X[:, 1] ** 2 + np.sin(3 * X[:, 2]) + 0.3 * rng.normal(size=len(X))).astype(np.float32)
    data = (X[:N], y[:N, None], X[N:], y[N:, None])
    from torch._dynamo.utils import counters

    _fit(args.width, True, *data)  # first trace, not timed
    traced = sum(counters["stats"].values()) and counters["stats"]["unique_graphs"]
    times: dict[bool, list[float]] = {True: [], False: []}
    steps: dict[bool, int] = {}
    for _ in range(args.rounds):
        for compiled in (True, False):
            seconds, steps[compiled] = _fit(args.width, compiled, *data)
            times[compiled].append(seconds)
    recompiles = counters["stats"]["unique_graphs"] - traced
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, {args.threads} thread(s), load avg {os.getloadavg()[0]:.1f}; "
          f"medians of {args.rounds} interleaved fits; width {args.width}, 13 lambdas, early stopping")
    print(f"  compiled kernels: {med[True]:7.2f} s  ({steps[True]} member-steps)")
    print(f"  eager kernels:    {med[False]:7.2f} s  ({steps[False]} member-steps)")
    print(f"  compiled / eager = {med[True] / med[False]:.3f}")
    print(f"  graphs compiled after the first fit (recompilations as K shrank): {recompiles}")


if __name__ == "__main__":
    main()
