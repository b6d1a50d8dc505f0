"""Speed of the psilon modules, as ratios measured in one run.

(a) one training step (forward, backward, Adam) of PSiLONNet relative to a plain
    ``nn.Linear`` ReLU MLP of the same shape (goal <= 1.25x);
(b) achieved GFLOP/s of PSiLONNet training at paper size (width 500, depth 3,
    batch 400, 21 features) as a fraction of a large ``torch.mm``'s GFLOP/s (goal >= 0.75);
(c) closed-form regularizer vs explicit chain, time per call (PSiLONNet);
(d) the same for PSiLONResNet (improved bound);
(e) the input validation of one forward at paper size: training mode (shape checks only;
    the finiteness of the output's sum) against eval mode (which also scans the input for
    NaN/inf).

(b) also prints the GEMM floor: the plain MLP step's own matrix products replayed alone
(``_gemm_floor.py``), i.e. the rate a step of this shape would reach if nothing but
its GEMMs cost time.

Timings alternate between the contenders (round-robin) so that machine noise hits
both alike; medians are reported. Usage::

    python benchmarks/bench_modules.py [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from _gemm_floor import record_gemms

from psilon import pathnorm as P
from psilon.nn import PSiLONNet, PSiLONResNet


def plain_mlp(in_features: int, out_features: int, width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(in_features, width)]
    for _ in range(depth - 2):
        layers += [nn.ReLU(), nn.Linear(width, width)]
    layers += [nn.ReLU(), nn.Linear(width, out_features)]
    return nn.Sequential(*layers)


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reg: bool):
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * nn.functional.mse_loss(model(x), y)
        if reg:
            loss = loss + 0.5 * 1e-3 * model.regularizer()
        loss.backward()
        opt.step()

    return step


def race(fns: dict[str, callable], repeats: int, warmup: int = 5) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved round-robin."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def step_flops(batch: int, dims: list[int]) -> float:
    """Matmul FLOPs of forward + backward: weight grads everywhere, input grads after layer 1."""
    fwd = [2.0 * batch * a * b for a, b in zip(dims[:-1], dims[1:])]
    return 2 * sum(fwd) + sum(fwd[1:])


MM_SIZE = 2048


def mm_call(n: int = MM_SIZE):
    """A large square ``torch.mm`` (``2 n^3`` FLOPs per call): the machine's reference rate."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return lambda: torch.mm(a, b)


def mm_gflops_of(seconds: float, n: int = MM_SIZE) -> float:
    return 2.0 * n**3 / seconds / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's allocator defaults")
    args = ap.parse_args()
    if not args.no_malloc_tuning:
        from psilon.train import tune_allocator  # what the psilon command line turns on

        tune_allocator()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats} interleaved runs, "
          f"malloc tuning {'off' if args.no_malloc_tuning else 'on'} (both contenders)\n")

    # (a) + (b): paper size
    batch, d_in, width, depth = 400, 21, 500, 3
    x, y = torch.randn(batch, d_in), torch.randn(batch, 1)
    psilon, plain = PSiLONNet(d_in, 1, width=width, depth=depth), plain_mlp(d_in, 1, width, depth)
    psilon_step, plain_step = make_step(psilon, x, y, True), make_step(plain, x, y, False)
    plain_step()
    plain_floor, _ = record_gemms(plain_step)  # the plain MLP step's GEMMs replayed alone
    t = race({"psilon": psilon_step, "plain": plain_step, "mm": mm_call(), "floor": plain_floor}, args.repeats)
    flops = step_flops(batch, [d_in] + [width] * (depth - 1) + [1])
    mm = mm_gflops_of(t["mm"])
    print("(a) training step, width 500, depth 3, batch 400, 21 features")
    print(f"    PSiLONNet {t['psilon'] * 1e3:.2f} ms   nn.Linear MLP {t['plain'] * 1e3:.2f} ms   "
          f"ratio {t['psilon'] / t['plain']:.3f}x (goal <= 1.25x)")
    for w in (64, 128):
        ps, pl = PSiLONNet(d_in, 1, width=w, depth=depth), plain_mlp(d_in, 1, w, depth)
        tw = race({"psilon": make_step(ps, x, y, True), "plain": make_step(pl, x, y, False)}, args.repeats)
        print(f"    width {w}: PSiLONNet {tw['psilon'] * 1e3:.2f} ms   MLP {tw['plain'] * 1e3:.2f} ms   "
              f"ratio {tw['psilon'] / tw['plain']:.3f}x")
    achieved = flops / t["psilon"] / 1e9
    print("(b) achieved rate of PSiLONNet training at paper size")
    print(f"    {flops / 1e6:.0f} MFLOP/step -> {achieved:.1f} GFLOP/s; torch.mm {MM_SIZE}^2 (interleaved): {mm:.1f} GFLOP/s; "
          f"fraction {achieved / mm:.3f} (goal >= 0.75)")
    print(f"    plain MLP step: {flops / t['plain'] / 1e9:.1f} GFLOP/s, fraction {flops / t['plain'] / 1e9 / mm:.3f}")
    print(f"    GEMM floor (the plain step's matrix products replayed alone, nothing else): "
          f"{t['floor'] * 1e3:.2f} ms, fraction {flops / t['floor'] / 1e9 / mm:.3f}")

    # (c) + (d): regularizer closed form vs chain (forward + backward of the penalty)
    def timed_penalty(fn, model):
        def call():
            model.zero_grad(set_to_none=True)
            fn(model).sum().backward()
        return call

    resnet = PSiLONResNet(d_in, 1, width=width, depth=depth)
    with torch.no_grad():
        for layer in resnet.layers():
            layer.length.uniform_(-1, 1)
    rows = [
        ("(c) PSiLONNet", psilon, P.path_norm_closed_form, P.path_norm),
        ("(d) PSiLONResNet", resnet, P.improved_bound_closed_form, P.improved_bound),
    ]
    for label, model, closed, chain in rows:
        tc = race({"closed": timed_penalty(closed, model), "chain": timed_penalty(chain, model)}, args.repeats)
        print(f"{label} regularizer (value + gradient), width 500 depth 3: closed form "
              f"{tc['closed'] * 1e6:.0f} us, explicit chain {tc['chain'] * 1e6:.0f} us, "
              f"chain/closed {tc['chain'] / tc['closed']:.1f}x")

    # (e): per-forward input validation, training vs eval mode
    train_net, eval_net = PSiLONNet(d_in, 1, width=width, depth=depth), PSiLONNet(d_in, 1, width=width, depth=depth)
    eval_net.eval()
    out = torch.zeros(1, batch, 1)

    def validate(net):
        def call():
            net._check_output(net._validate_input(x), out)
        return call

    tv = race({"train": validate(train_net), "eval": validate(eval_net)}, args.repeats * 20)
    print(f"(e) input validation per forward, batch 400 x 21: training mode {tv['train'] * 1e6:.1f} us, "
          f"eval mode (with the NaN scan of the input) {tv['eval'] * 1e6:.1f} us")


if __name__ == "__main__":
    main()
