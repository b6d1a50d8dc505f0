"""Speed of the batched GD / WN-GD solver on Figure 1's sweep.

Prints
1. the wall time of Figure 1's whole sweep (10 alphas x 2 methods x 20 trials, the
   figure's settings: tol 1e-16, budget 20,000 updates), median of ``--repeats`` runs;
2. the same 400 runs looped one (trial, alpha, method) at a time through the same solver
   with the same step budget and stopping rule, and the ratio loop / batched;
3. the same comparison with early stopping disabled (every run does exactly
   ``--fixed-steps`` updates): the pure per-step vectorization gain;
4. the largest difference between the looped and batched estimates (they must agree).

Usage: .venv/bin/python benchmarks/bench_recovery.py [--loop-trials 20] [--repeats 3]
``--loop-trials n < 20`` loops over the first n trials only and scales that time by 20/n
(flagged as extrapolated in the output).

Times are reported as wall time and as CPU time of this process (``time.process_time``;
BLAS is pinned to one thread). On a machine shared with other jobs the wall-time ratio
drifts with the load between the two measurements; the CPU-time ratio is the steadier one.
"""

from __future__ import annotations

import os

# one BLAS thread for both variants: the machine is shared, and CPU time is then a fair
# measure of the work of each variant (set before NumPy is imported)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import time

import numpy as np

from psilon.recovery import make_problems, solve
from psilon.recovery.experiments import DEFAULTS, FIG1_ALPHAS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop-trials", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fixed-steps", type=int, default=2000)
    args = ap.parse_args()

    cfg = DEFAULTS
    T = cfg["trials"]
    P = make_problems(T, cfg["M"], cfg["N"], cfg["s"], seed=cfg["seed"])
    alphas = np.tile(np.asarray(FIG1_ALPHAS), 2)
    meth = np.repeat(["gd", "wn"], len(FIG1_ALPHAS))
    K = alphas.size
    kw = dict(depth=cfg["depth"], lr=cfg["lr"], tol=cfg["tol"], max_steps=cfg["max_steps"])

    def batched(**over):
        t0, c0 = time.perf_counter(), time.process_time()
        res = solve(P, meth, alphas, cfg["eta_ratio"], **{**kw, **over})
        return time.perf_counter() - t0, time.process_time() - c0, res

    def looped(n_trials, **over):
        t0, c0 = time.perf_counter(), time.process_time()
        x = np.empty((n_trials, K, P.n_features))
        for t in range(n_trials):
            sub = P.subset(t)
            for k in range(K):
                x[t, k] = solve(sub, meth[k], alphas[k], cfg["eta_ratio"], **{**kw, **over}).x[0, 0]
        return time.perf_counter() - t0, time.process_time() - c0, x

    n = min(max(args.loop_trials, 1), T)
    scale = T / n
    tag = "" if n == T else f" (looped {n} trials, scaled x{scale:g}: extrapolated)"
    print(f"Figure 1 sweep: {T} trials x {len(FIG1_ALPHAS)} alphas x 2 methods = {T * K} runs, "
          f"M={cfg['M']} N={cfg['N']} s={cfg['s']} lr={cfg['lr']} eta~={cfg['eta_ratio']} "
          f"tol={cfg['tol']:g} budget={cfg['max_steps']}")

    walls, cpus = [], []
    for _ in range(args.repeats):
        w, c, res = batched()
        walls.append(w)
        cpus.append(c)
    tb, cb = statistics.median(walls), statistics.median(cpus)
    print(f"[1] batched sweep: wall median {tb:.2f} s over {args.repeats} runs "
          f"({', '.join(f'{t:.2f}' for t in walls)}), CPU median {cb:.2f} s; "
          f"updates done: {int(res.steps.sum())}")

    tl, cl, xl = looped(n)
    tl, cl = tl * scale, cl * scale
    print(f"[2] one run at a time, same budget and stopping: wall {tl:.1f} s, CPU {cl:.1f} s{tag}; "
          f"speed-up loop/batched = {tl / tb:.1f}x (wall), {cl / cb:.1f}x (CPU)")

    fs = args.fixed_steps
    fixed = [batched(tol=0.0, max_steps=fs) for _ in range(args.repeats)]
    tbf = statistics.median(f[0] for f in fixed)
    cbf = statistics.median(f[1] for f in fixed)
    tlf, clf, _ = looped(n, tol=0.0, max_steps=fs)
    tlf, clf = tlf * scale, clf * scale
    print(f"[3] fixed {fs} updates per run, no early stopping: batched {tbf:.2f} s wall / "
          f"{cbf:.2f} s CPU, looped {tlf:.1f} s / {clf:.1f} s{tag}; speed-up = {tlf / tbf:.1f}x (wall), "
          f"{clf / cbf:.1f}x (CPU) ({cbf / fs / (T * K) * 1e6:.2f} vs {clf / fs / (T * K) * 1e6:.1f} "
          f"CPU us per run-update)")

    diff = np.abs(xl - res.x[:n]).max(axis=-1)  # (n, K)
    t, k = np.unravel_index(np.argmax(diff), diff.shape)
    print(f"[4] |x_loop - x_batched|_inf: median {np.median(diff):.1e}, max {diff[t, k]:.1e} "
          f"(trial {t}, {meth[k]}, alpha {alphas[k]:g}; rounding differences between batched and "
          f"single products, amplified over up to {cfg['max_steps']} steps)")


if __name__ == "__main__":
    main()
