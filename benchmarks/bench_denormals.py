"""What denormal floats cost a training step, and what flushing them (``psilon.train.flush_denormals``) saves.

Builds a paper-exact-sized StandardNet (width 500, 4 weight layers, one member) in which a
share of the hidden units has shrunk as the path penalty shrinks unused units: their
lengths and biases at ``--tiny`` (1e-20 by default) and the next layer's directions on
them at the same scale, so that their forward products (1e-40) are denormal floats, as
in a paper-exact StandardNet after two lambdas. Times one training step (forward,
backward, Adam) on 400 rows with denormals kept and with them flushed, interleaved
round by round, and prints the medians and their ratio; then the same for the network
before shrinking, where flushing should change nothing. (A PSiLON Net's units cannot
shrink one by one: each layer shares one length and every row of its directions has unit
L1 norm, so this construction does not apply to it.)

Usage::

    python benchmarks/bench_denormals.py [--threads N] [--rounds R] [--shrunk 0.5] [--tiny 1e-20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from psilon.train import build_network, make_optimizer, objective


def _shrink(net, share: float, tiny: float) -> None:
    """Shrink the first ``share`` of each hidden layer's units and the next layer's weights on them."""
    layers = [net.embed, *net.hidden, net.head]
    with torch.no_grad():
        for layer, following in zip(layers[:-1], layers[1:]):
            k = int(share * layer.length.shape[-1])
            layer.length[..., :k] = tiny
            layer.bias[..., :k] = tiny
            following.direction[..., :k] *= tiny


def _step_seconds(net, opt, X, y, rounds: int, flush: bool) -> list[float]:
    times = []
    torch.set_flush_denormal(flush)
    try:
        for _ in range(rounds):
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = objective(net, X, y, torch.tensor([1e-3]), "mse")[0].sum()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t)
    finally:
        torch.set_flush_denormal(False)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 10 steps each way")
    parser.add_argument("--shrunk", type=float, default=0.5, help="share of the hidden units shrunk")
    parser.add_argument("--tiny", type=float, default=1e-20, help="scale of the shrunk units' weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(400, 20, generator=gen)
    y = X[:, :1] - X[:, 1:2] ** 2
    print(f"torch {torch.__version__}, {args.threads} thread(s); width 500, 4 weight layers, 400 rows; "
          f"median ms per step over {args.rounds} x 10 steps each way")
    for shrunk in (0.0, args.shrunk):
        net = build_network("standard", 20, 1, width=500, depth=4)
        _shrink(net, shrunk, args.tiny)
        opt = make_optimizer(net, 1e-4)  # small steps: the shrunk units stay shrunk
        kept, flushed = [], []
        for _ in range(args.rounds):
            kept += _step_seconds(net, opt, X, y, 10, flush=False)
            flushed += _step_seconds(net, opt, X, y, 10, flush=True)
        k, f = 1000 * statistics.median(kept), 1000 * statistics.median(flushed)
        print(f"StandardNet, {shrunk:.0%} of hidden units shrunk: denormals kept {k:6.1f} ms, "
              f"flushed {f:5.1f} ms, ratio {k / f:5.2f}")

if __name__ == "__main__":
    main()
