"""What denormal floats cost a training step, and what flushing them (``psilon.train.flush_denormals``) saves.

Builds a paper-exact-sized StandardNet (width 500, 4 weight layers, one member) in which a
share of the hidden units has shrunk as the path penalty shrinks unused units: their
lengths and biases at ``--tiny`` (1e-20 by default) and the next layer's directions on
them at the same scale, so that their forward products (1e-40) are denormal floats, as
in a paper-exact StandardNet after two lambdas. Times one training step (forward,
backward, Adam) on 400 rows with denormals kept and with them flushed, interleaved
round by round, and prints the medians and their ratio; then the same for the network
before shrinking, where flushing should change nothing. With ``--threads`` above 1 it also
times flushing in the calling thread only (``torch.set_flush_denormal``), which leaves
torch's OpenMP pool threads, created by the warm-up before it, keeping denormals; the
library's ``flush_denormals`` sets every thread of the team. ``--tiny 1e-39`` makes the
shrunk weights themselves denormal, as in a real StandardNet after two lambdas (where
the calling thread alone was not enough: see ``psilon.train.runtime``). (A PSiLON Net's units cannot
shrink one by one: each layer shares one length and every row of its directions has unit
L1 norm, so this construction does not apply to it.)

Usage::

    python benchmarks/bench_denormals.py [--threads N] [--rounds R] [--shrunk 0.5] [--tiny 1e-20]
    python benchmarks/bench_denormals.py --threads 2 --checkpoint docs/results/paper-exact/checkpoints/KEY/fold-1-lambda1.pt
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time

import torch

from psilon.train import build_network, flush_denormals, make_optimizer, objective
from psilon.train.loop import network_from_state


def _shrink(net, share: float, tiny: float) -> None:
    """Shrink the first ``share`` of each hidden layer's units and the next layer's weights on them."""
    layers = [net.embed, *net.hidden, net.head]
    with torch.no_grad():
        for layer, following in zip(layers[:-1], layers[1:]):
            k = int(share * layer.length.shape[-1])
            layer.length[..., :k] = tiny
            layer.bias[..., :k] = tiny
            following.direction[..., :k] *= tiny


@contextlib.contextmanager
def _caller_only():
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


WAYS = {"kept": contextlib.nullcontext, "caller only": _caller_only, "flushed": flush_denormals}


def _step_seconds(net0, X, y, rounds: int, way: str) -> list[float]:
    """Seconds of ``rounds`` steps of a copy of ``net0`` (each way starts from the same weights)."""
    net = copy.deepcopy(net0)
    opt = make_optimizer(net, 1e-4)  # small steps: the shrunk units stay shrunk
    times = []
    with WAYS[way]():
        for _ in range(rounds):
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = objective(net, X, y, torch.tensor([1e-3]), "mse")[0].sum()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t)
    return times


def _from_checkpoint(path: str):
    """The StandardNet of a lambda checkpoint (``<store>/checkpoints/<key>/fold-F-lambdaL.pt``)."""
    saved = torch.load(path, weights_only=False)
    state = saved["state"]
    members, width, in_features = state["embed.direction"].shape
    depth = 2 + sum(name.endswith(".direction") and name.startswith("hidden.") for name in state)
    template = build_network("standard", in_features, state["head.direction"].shape[1], width=width, depth=depth)
    return network_from_state(template, members, state)


def _compare(label: str, net, X, y, ways: list[str], rounds: int) -> None:
    _step_seconds(net, X, y, 2, "kept")  # warm-up: creates torch's thread pool, unflushed
    times = {way: [] for way in ways}
    for _ in range(rounds):
        for way in ways:
            times[way] += _step_seconds(net, X, y, 10, way)
    ms = {way: 1000 * statistics.median(t) for way, t in times.items()}
    line = (f"{label}: denormals kept {ms['kept']:6.1f} ms, "
            f"flushed {ms['flushed']:5.1f} ms, ratio {ms['kept'] / ms['flushed']:5.2f}")
    if "caller only" in ms:
        line += (f"; calling thread only flushed {ms['caller only']:6.1f} ms, "
                 f"ratio to flushed {ms['caller only'] / ms['flushed']:5.2f}")
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 10 steps each way")
    parser.add_argument("--shrunk", type=float, default=0.5, help="share of the hidden units shrunk")
    parser.add_argument("--tiny", type=float, default=1e-20, help="scale of the shrunk units' weights")
    parser.add_argument("--checkpoint", help="time this StandardNet lambda checkpoint of a benchmark store "
                        "instead (on 400 standard-normal rows)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ways = ["kept"] + (["caller only"] if args.threads > 1 else []) + ["flushed"]
    gen = torch.Generator().manual_seed(0)
    if args.checkpoint:
        net = _from_checkpoint(args.checkpoint)
        X = torch.randn(400, net.embed.direction.shape[-1], generator=gen)
        y = X[:, :1] - X[:, 1:2] ** 2
        print(f"torch {torch.__version__}, {args.threads} thread(s); {args.checkpoint}, 400 rows; "
              f"median ms per step over {args.rounds} x 10 steps each way")
        _compare("checkpoint", net, X, y, ways, args.rounds)
        return
    X = torch.randn(400, 20, generator=gen)
    y = X[:, :1] - X[:, 1:2] ** 2
    print(f"torch {torch.__version__}, {args.threads} thread(s); width 500, 4 weight layers, 400 rows; "
          f"median ms per step over {args.rounds} x 10 steps each way")
    for shrunk in (0.0, args.shrunk):
        net = build_network("standard", 20, 1, width=500, depth=4)
        _shrink(net, shrunk, args.tiny)
        _compare(f"StandardNet, {shrunk:.0%} of hidden units shrunk", net, X, y, ways, args.rounds)


if __name__ == "__main__":
    main()
