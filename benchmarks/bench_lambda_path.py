"""Lambda-path throughput: 13 members in one stacked step vs 1 member vs 13 sequential steps.

For each width (depth 3, n = 2000, 20 features, batch 400) one *training step* is
forward + loss + backward + Adam, exactly as :func:`psilon.train.train_members` does it.
Timings are interleaved round by round with a large ``torch.mm`` (2048 x 2048) so that
load from other processes hits all of them alike; medians are reported.

FLOPs counted: matmuls only, ``2 * batch * in * out`` per layer forward, x3 for
forward + backward, x members.

Goals (issue 3): width 64: 13-member step <= 0.4 x the 13 sequential steps; widths >= 128:
13-member step >= 70% of the torch.mm GFLOP/s.

"GEMM floor": the 13-member step's own matrix products (recorded from one real step,
forward and backward) replayed alone with identical shapes and memory layouts; "floor
frac" is the fraction of the torch.mm rate the step would reach if everything else
(elementwise work, Adam, Python) were free. It bounds what the step itself can reach.

Usage::

    python benchmarks/bench_lambda_path.py                 # the step table
    python benchmarks/bench_lambda_path.py --threads 1     # pin torch threads
    python benchmarks/bench_lambda_path.py --no-malloc-tuning   # glibc defaults
    python benchmarks/bench_lambda_path.py --paper-fit     # + one paper-size fit (slow)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
from _gemm_floor import per_call, record_gemms

N, D, BATCH, DEPTH, MEMBERS = 2000, 20, 400, 3, 13


def _step_fn(net, x, y, lam):
    from psilon.train import make_optimizer, objective  # the parts of train_members' step

    opt = make_optimizer(net, 2e-3)

    def step():
        per, _ = objective(net, x, y, lam, "mse")
        total = per.sum()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    return step


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_width(width: int, rounds: int, mm_size: int, floor_detail: bool = False, compiled: bool = True) -> dict:
    from psilon.nn import PSiLONNet

    torch.manual_seed(0)
    x = torch.randn(BATCH, D)
    y = torch.randn(BATCH, 1)
    lam13 = torch.logspace(-4, -0.3, MEMBERS)
    # a long fit (compile='auto', >= COMPILE_MIN_STEPS steps) compiles the wide layers' kernels
    net13 = PSiLONNet(D, 1, width=width, depth=DEPTH, members=MEMBERS).set_compiled_kernels(compiled)
    stacked = _step_fn(net13, x, y, lam13)
    single = _step_fn(PSiLONNet(D, 1, width=width, depth=DEPTH), x, y, lam13[:1])
    singles = [_step_fn(PSiLONNet(D, 1, width=width, depth=DEPTH), x, y, lam13[k : k + 1]) for k in range(MEMBERS)]

    def sequential():
        for s in singles:
            s()

    a = torch.randn(mm_size, mm_size)
    b = torch.randn(mm_size, mm_size)
    for fn in (stacked, single, sequential, lambda: torch.mm(a, b)):  # warm-up
        fn()
        fn()
    floor, _ = record_gemms(stacked, nets=(net13,))  # the 13-member step's own GEMMs, replayed alone
    t13, t1, tseq, tmm, tfloor = [], [], [], [], []
    for _ in range(rounds):
        tmm.append(_time(lambda: torch.mm(a, b)))
        t13.append(_time(stacked))
        t1.append(_time(single))
        tseq.append(_time(sequential))
        tfloor.append(_time(floor))
    med = {k: statistics.median(v) for k, v in dict(t13=t13, t1=t1, tseq=tseq, tmm=tmm, tfloor=tfloor).items()}
    if floor_detail:
        mm_gflops = 2 * mm_size**3 / med["tmm"] / 1e9

        def timed(fn):
            return statistics.median(_time(fn) for _ in range(rounds))

        print(f"  width {width}: the 13-member step's GEMMs one at a time (vs the mm rate of this round)")
        print("\n".join(per_call(floor, timed, mm_gflops)))
    flops_member = 3 * 2 * BATCH * (D * width + width * width * (DEPTH - 2) + width * 1)
    mm_rate = 2 * mm_size**3 / med["tmm"] / 1e9
    rate13 = MEMBERS * flops_member / med["t13"] / 1e9
    return dict(
        width=width,
        step13_ms=med["t13"] * 1e3,
        step1_ms=med["t1"] * 1e3,
        seq13_ms=med["tseq"] * 1e3,
        ratio_vs_seq=med["t13"] / med["tseq"],
        ratio_vs_1=med["t13"] / med["t1"],
        gflops13=rate13,
        gflops_mm=mm_rate,
        frac_mm=rate13 / mm_rate,
        floor_ms=med["tfloor"] * 1e3,
        floor_frac=MEMBERS * flops_member / med["tfloor"] / 1e9 / mm_rate,
    )


def paper_fit(steps: int, device: str = "auto") -> None:
    """One paper-size fit: width 500, depth 3, n = 2000, 13 lambdas as members."""
    import tracemalloc

    from psilon.train import PAPER_LAMBDAS, lambda_path

    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D)).astype(np.float32)
    w = rng.normal(size=D) * (rng.random(D) < 0.3)
    y = (X @ w + np.sin(X[:, 0]) + 0.1 * rng.normal(size=N)).astype(np.float32)
    Xv = rng.normal(size=(1000, D)).astype(np.float32)
    yv = (Xv @ w + np.sin(Xv[:, 0])).astype(np.float32)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t = time.perf_counter()
    res = lambda_path(
        X, y, lambdas=PAPER_LAMBDAS, width=500, depth=3, max_steps=steps, batch_size=BATCH,
        val_data=(Xv, yv), eval_every=50, seed=0, verbose=True, device=device,
    )
    wall = time.perf_counter() - t
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from psilon.train import resolve_device

    print(f"\npaper-size fit on {resolve_device(device)}: width 500, depth 3, n={N}, {steps} steps, "
          f"{len(PAPER_LAMBDAS)} lambdas as members")
    print(f"  wall time          {wall:8.1f} s   ({wall / steps * 1e3:.1f} ms/step incl. validation every 50 steps)")
    print(f"  peak RSS (process) {rss1 / 1024:8.1f} MB   (before the fit: {rss0 / 1024:.1f} MB)")
    print(f"  tracemalloc peak   {py_peak / 2**20:8.1f} MB   (Python-heap allocations only; torch tensors are not traced)")
    print(f"  statuses: {sorted(set(res.status))}; best val MSE {np.nanmin(res.val_loss):.4f} "
          f"at lambda {res.lambdas[int(np.nanargmin(res.val_loss))]:g}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 500])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--mm-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-malloc-tuning", action="store_true")
    parser.add_argument("--eager", action="store_true", help="eager kernels (default: compiled, as long fits run)")
    parser.add_argument("--paper-fit", action="store_true", help="also run one paper-size fit")
    parser.add_argument("--paper-steps", type=int, default=5000)
    parser.add_argument("--device", default="auto", help="device of the paper-size fit (the step table times the CPU)")
    parser.add_argument("--skip-steps", action="store_true", help="skip the step table")
    parser.add_argument("--floor-detail", action="store_true", help="also time each GEMM of the step alone")
    args = parser.parse_args(argv)
    if not args.no_malloc_tuning:
        from psilon.train import tune_allocator  # what the psilon command line turns on

        tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, step table on the cpu, threads {torch.get_num_threads()}, "
          f"malloc tuning {'off' if args.no_malloc_tuning else 'on'}, load avg {os.getloadavg()[0]:.1f}")
    if not args.skip_steps:
        print(f"\none training step (fwd+bwd+Adam), depth {DEPTH}, batch {BATCH}, {D} features; "
              f"medians of {args.rounds} interleaved rounds")
        hdr = (f"{'width':>5} {'13-member':>10} {'1-member':>9} {'13 seq':>9} {'13m/seq':>8} {'13m/1m':>7} "
               f"{'GFLOP/s':>8} {'mm GF/s':>8} {'frac mm':>8} {'GEMM floor':>11} {'floor frac':>10}")
        print(hdr)
        for width in args.widths:
            r = bench_width(width, args.rounds, args.mm_size, args.floor_detail, compiled=not args.eager)
            goal = "goal <= 0.40" if width < 128 else "goal >= 0.70"
            print(f"{r['width']:>5} {r['step13_ms']:>8.1f}ms {r['step1_ms']:>7.1f}ms {r['seq13_ms']:>7.1f}ms "
                  f"{r['ratio_vs_seq']:>8.3f} {r['ratio_vs_1']:>7.2f} {r['gflops13']:>8.1f} {r['gflops_mm']:>8.1f} "
                  f"{r['frac_mm']:>8.2f} {r['floor_ms']:>9.1f}ms {r['floor_frac']:>10.2f}   "
                  f"({goal} on {'13m/seq' if width < 128 else 'frac mm'})")
            sys.stdout.flush()
    if args.paper_fit:
        paper_fit(args.paper_steps, args.device)


if __name__ == "__main__":
    main()
