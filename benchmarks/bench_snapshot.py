"""Cost of the independent path's run snapshots (``psilon.train.checkpoint.RunCheckpoint``).

Trains a default-recipe-30-sized stacked run (13 lambdas, width 500, 4 weight layers,
2,000 rows of 21 features, best states kept) for a few steps with a snapshot at every
evaluation, and prints the snapshot's size, the median time to write it and the median
stacked step, then the share of the training time that snapshots take at the default
interval (``RUN_SNAPSHOT_SECONDS``): write time / (interval + write time).

Usage::

    python benchmarks/bench_snapshot.py [--threads N] [--steps S]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from psilon.train import PAPER_LAMBDAS, lambda_path
from psilon.train.checkpoint import RUN_SNAPSHOT_SECONDS, RunCheckpoint
from psilon.train.loop import TrainLoop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 21)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] ** 2).astype(np.float32)

    saves, steps = [], []
    real_save, real_step = RunCheckpoint.save, TrainLoop._step

    def timed_save(self, state):
        t = time.perf_counter()
        real_save(self, state)
        saves.append((time.perf_counter() - t, self.file.stat().st_size))

    def timed_step(self, i):
        t = time.perf_counter()
        real_step(self, i)
        steps.append(time.perf_counter() - t)

    RunCheckpoint.save, RunCheckpoint.due, TrainLoop._step = timed_save, lambda self: True, timed_step
    with tempfile.TemporaryDirectory() as folder:
        lambda_path(X, y, lambdas=PAPER_LAMBDAS, width=500, depth=4, max_steps=args.steps, eval_every=10,
                    val_data=(X[:500], y[:500]), restore="best", patience=100, checkpoint=folder)
    write = statistics.median(s for s, _ in saves)
    size = statistics.median(b for _, b in saves) / 1e6
    step = statistics.median(steps)
    print(f"torch {torch.__version__}, {args.threads} thread(s); 13 members, width 500, 4 weight layers")
    print(f"snapshot {size:.1f} MB, written in {write:.2f} s (median of {len(saves)}); "
          f"stacked step {step * 1e3:.0f} ms (median of {len(steps)})")
    share = write / (RUN_SNAPSHOT_SECONDS + write)
    print(f"at one snapshot per {RUN_SNAPSHOT_SECONDS:.0f} s: {share:.2%} of the training time "
          f"(one snapshot per {RUN_SNAPSHOT_SECONDS / step:.0f} steps)")


if __name__ == "__main__":
    main()
