"""The training engine: one optimization loop for K stacked members (paper P1.7).

Two entry points, shaped like scikit-learn's ``lasso_path``:

* :func:`train_members` trains an existing network with ``members=K`` (or a single
  ``members=None`` network, K = 1): one lambda per member and, optionally, one training
  / validation row set per member (cross-validation folds as members).
* :func:`lambda_path` builds the network (every member from the *same* initial weights,
  so member k is exactly "this lambda trained alone with this seed") for a grid of
  lambdas, optionally crossed with CV folds, and calls :func:`train_members`.

The recipe (defaults = the paper's small-tabular-data experiment):

* Adam, ``lr = 2e-3``, no weight decay; minibatches of 400; a fixed number of steps.
* One-cycle cosine schedule (:func:`one_cycle_lr`): the first 20% of the steps warm up
  from ``lr / 20`` to ``lr`` along a half cosine, the rest anneal along a half cosine to
  ``lr / 20 / 1e4``. Identical to ``torch.optim.lr_scheduler.OneCycleLR(max_lr=lr,
  pct_start=0.2, div_factor=20, final_div_factor=1e4, anneal_strategy='cos')``.
* Per member: ``loss_k = 0.5 * data_loss_k + 0.5 * lambda_k * regularizer_k``. The
  optimized objective is the **sum** over members of ``loss_k`` (each ``data_loss_k`` a
  mean over the member's batch). Because Adam is elementwise and every parameter belongs
  to exactly one member, member k's trajectory does not depend on the other members:
  training K members together equals training each alone (same seed, same batches).

Batches. Every member draws its batches from its own stream seeded with ``seed`` (the
same for all members): a random permutation of the member's training rows cut into
batches of ``batch_size`` (a remainder shorter than a batch is dropped and a new
permutation drawn). Members with the same training rows therefore see the same batches
and share one input batch ``(batch, in)``; members with different rows (CV folds) get a
``(K, batch, in)`` input. The batch size is ``min(batch_size, smallest training set)``.

Validation. Every ``eval_every`` steps (and after the last step) each member's mean
validation data loss is computed (MSE, binary or multiclass log loss). ``restore='best'``
keeps each member's state with the lowest validation loss, ``'final'`` the last state.
``patience=p`` stops a member after ``p`` evaluations without improvement (its best state
is kept; the stacked computation continues until every member has stopped, so stopping
saves time only when all members stop).

Pruning. ``prune_steps=n`` runs the pruning schedule of the modules (P1.5) over the
**last n of the max_steps steps** (the paper does not say when pruning starts; 20% of the
steps is the estimators' default). The final, exactly sparse state is kept, so pruning
requires ``restore='final'`` and no ``patience``.

Divergence. A member whose loss becomes NaN or inf is stopped at once: its loss is masked
out of the objective (its parameters are left as they are and never selected), and it is
reported in :attr:`TrainResult.diverged` (member, lambda, step) and by a warning.

Performance note. Large temporaries of the weight normalization (13 x 500 x 500 floats =
13 MB per tensor at the paper's size) exceed glibc's dynamic mmap threshold; each
allocation then costs page faults, which made elementwise kernels 3-4x slower than the
memory bandwidth allows. Raising only the mmap threshold is not enough: glibc then
returns the freed top of the heap to the kernel (``M_TRIM_THRESHOLD``, 128 kB) and the
next step faults the same pages in again. :func:`train_members` therefore sets, once per
process, ``M_MMAP_THRESHOLD`` = 32 MB, ``M_TRIM_THRESHOLD`` = 256 MB and ``M_TOP_PAD`` =
64 MB (Linux/glibc only; the process keeps up to 256 MB of freed heap instead of
returning it; set the environment variable ``PSILON_MALLOC_TUNING=0`` to opt out).
Compare ``benchmarks/bench_lambda_path.py`` with and without ``--no-malloc-tuning``.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.nn import functional as F

from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet, WeightNormNet, stack_members

__all__ = [
    "PAPER_LAMBDAS",
    "TrainResult",
    "build_network",
    "lambda_path",
    "one_cycle_lr",
    "train_members",
]

#: The paper's lambda grid (P1.7), smallest to largest.
PAPER_LAMBDAS: tuple[float, ...] = (
    5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1, 2.5e-1, 5e-1,
)

_LOSSES = ("mse", "bce", "ce")
_RESTORE = ("final", "best")
_MODELS = ("psilon", "standard")


# --------------------------------------------------------------------------- schedule
def one_cycle_lr(
    step: int,
    total_steps: int,
    *,
    lr: float = 2e-3,
    warmup: float = 0.2,
    div_factor: float = 20.0,
    final_div_factor: float = 1e4,
) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of a one-cycle cosine schedule.

    ``lr_start = lr / div_factor``, ``lr_end = lr_start / final_div_factor``. Phase 1
    (``step <= warmup * total_steps - 1``) rises along a half cosine from ``lr_start`` to
    ``lr``; phase 2 falls along a half cosine from ``lr`` to ``lr_end`` at the last step.
    The same values as ``torch.optim.lr_scheduler.OneCycleLR`` with ``three_phase=False``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step must be in [0, {total_steps}), got {step}")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be in [0, 1), got {warmup}")
    start = lr / div_factor
    end = start / final_div_factor
    warm_end = float(warmup * total_steps) - 1.0
    last = float(total_steps - 1)
    if step <= warm_end:
        pct = step / warm_end if warm_end > 0 else 1.0
        hi, lo = start, lr
    else:
        span = last - warm_end
        pct = (step - warm_end) / span if span > 0 else 1.0
        hi, lo = lr, end
    return lo + (hi - lo) / 2.0 * (math.cos(math.pi * pct) + 1.0)


# --------------------------------------------------------------------------- allocator
_MALLOC_TUNED = False


def _tune_allocator() -> None:
    """Keep blocks up to 32 MB, and up to 256 MB of freed memory, in glibc's heap (module docstring)."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED or os.environ.get("PSILON_MALLOC_TUNING", "1") == "0":
        return
    _MALLOC_TUNED = True
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD
        libc.mallopt(-2, 64 * 1024 * 1024)  # M_TOP_PAD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """Adam without weight decay; the fused kernel (one pass per tensor) when available.

    On CPU the fused Adam is ~5x faster than the ``foreach`` one on (13, 500, 500)
    parameters, which otherwise costs several full passes over every parameter per step.
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=0.0, fused=True)
    except (RuntimeError, TypeError, ValueError):  # fused not supported for these tensors
        return torch.optim.Adam(params, lr=lr, weight_decay=0.0)


# --------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    """What :func:`train_members` / :func:`lambda_path` return.

    Attributes:
        net: the trained network, every member holding its kept state (best or final),
            in eval mode. Diverged members hold whatever they had (NaN): never use them.
        lambdas: ``(K,)`` lambda of each member.
        folds: ``(K,)`` fold of each member (``-1`` when members are not folds).
        status: per member ``'ok'``, ``'early_stopped'`` or ``'diverged'``.
        kept_step: ``(K,)`` number of steps done when the kept state was reached.
        val_loss: ``(K,)`` validation loss of the kept state (NaN without validation
            data or for a diverged member).
        history: long DataFrame, one row per evaluation and member: ``step``, ``member``,
            ``lambda``, ``fold``, ``train_loss`` (mean objective since the previous
            evaluation), ``val_loss``.
        diverged: one dict per diverged member: ``member``, ``lambda``, ``fold``, ``step``.
        steps: number of optimizer steps done.
    """

    net: WeightNormNet
    lambdas: np.ndarray
    folds: np.ndarray
    status: list[str]
    kept_step: np.ndarray
    val_loss: np.ndarray
    history: pd.DataFrame
    diverged: list[dict] = field(default_factory=list)
    steps: int = 0


# --------------------------------------------------------------------------- helpers
class _BatchStream:
    """Endless minibatches of row indices: permutations of ``rows`` cut into ``size``."""

    def __init__(self, rows: Tensor, size: int, seed: int) -> None:
        self.rows = rows
        self.size = size
        self.gen = torch.Generator().manual_seed(int(seed))
        self.perm = rows[:0]
        self.pos = 0

    def next(self) -> Tensor:
        if self.pos + self.size > self.perm.numel():
            self.perm = self.rows[torch.randperm(self.rows.numel(), generator=self.gen)]
            self.pos = 0
        out = self.perm[self.pos : self.pos + self.size]
        self.pos += self.size
        return out


def _elementwise_loss(out: Tensor, y: Tensor, loss: str) -> Tensor:
    """Per-example data loss. ``out`` ``(K, n, o)``; ``y`` ``(n, o)``/``(n,)`` or ``(K, n, o)``/``(K, n)``.

    Returns ``(K, n)``.
    """
    if loss == "mse":
        return (out - y).pow(2).mean(-1)
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(out, y.expand_as(out), reduction="none").mean(-1)
    k, n, c = out.shape
    target = y.expand(k, n) if y.dim() == 1 else y
    return F.cross_entropy(out.reshape(k * n, c), target.reshape(k * n), reduction="none").view(k, n)


def _forward(net: WeightNormNet, x: Tensor) -> Tensor:
    """Network output as ``(K, batch, out)`` whatever ``net.members`` is."""
    if net.members is None:
        if x.dim() == 3:
            x = x[0]
        return net(x).unsqueeze(0)
    return net(x)


def _regularizer(net: WeightNormNet) -> Tensor:
    reg = net.regularizer()
    return reg.reshape(1) if net.members is None else reg


def _as_rows(idx, n: int, what: str) -> Tensor:
    rows = torch.as_tensor(np.asarray(idx), dtype=torch.long).reshape(-1)
    if rows.numel() == 0:
        raise ValueError(f"{what} is empty: every member needs at least one row")
    if int(rows.min()) < 0 or int(rows.max()) >= n:
        raise ValueError(f"{what} has row indices outside [0, {n})")
    return rows


def _stacked_names(net: WeightNormNet) -> list[str]:
    return [name for name, _ in net.named_parameters()]


@torch.no_grad()
def _validation_losses(net, X: Tensor, y: Tensor, loss: str, masks: Tensor | None, chunk: int = 2048) -> Tensor:
    """Mean validation loss per member ``(K,)``; ``masks`` ``(K, n)`` selects each member's rows."""
    parts = []
    for s in range(0, X.shape[0], chunk):
        parts.append(_elementwise_loss(_forward(net, X[s : s + chunk]), y[s : s + chunk], loss))
    per = torch.cat(parts, dim=1)  # (K, n)
    if masks is None:
        return per.mean(1)
    per = torch.where(masks, per, torch.zeros((), dtype=per.dtype))
    return per.sum(1) / masks.sum(1)


def _check_targets(y: Tensor, n: int, loss: str, out_features: int, what: str) -> Tensor:
    if y.shape[0] != n:
        raise ValueError(f"{what} has {y.shape[0]} rows, but X has {n}")
    if loss == "ce":
        y = y.long().reshape(-1)
        if int(y.min()) < 0 or int(y.max()) >= out_features:
            raise ValueError(f"class labels must be integers in [0, {out_features}) for loss='ce'")
        return y
    y = y.float()
    if y.dim() == 1:
        y = y.unsqueeze(1)
    if y.shape[1] != out_features:
        raise ValueError(f"{what} has {y.shape[1]} columns, but the network has {out_features} outputs")
    if not torch.isfinite(y).all():
        raise ValueError(f"{what} contains NaN or inf")
    return y


# --------------------------------------------------------------------------- engine
def train_members(
    net: WeightNormNet,
    X,
    y,
    *,
    lambdas,
    loss: str = "mse",
    train_indices: Sequence | None = None,
    val_data: tuple | None = None,
    val_indices: Sequence | None = None,
    max_steps: int = 5000,
    batch_size: int = 400,
    learning_rate: float = 2e-3,
    warmup: float = 0.2,
    div_factor: float = 20.0,
    final_div_factor: float = 1e4,
    eval_every: int | None = None,
    restore: str = "final",
    patience: int | None = None,
    prune_steps: int = 0,
    seed: int = 0,
    folds: Sequence[int] | None = None,
    verbose: bool = False,
) -> TrainResult:
    """Train the K members of ``net`` at once (one lambda and optionally one row set each).

    Args:
        net: a psilon network; ``members=K`` (or ``None`` for K = 1). Trained in place.
        X: ``(n, in)`` float features (array or tensor; used as float32).
        y: targets: ``(n,)`` / ``(n, out)`` floats for ``'mse'``, 0/1 floats ``(n, 1)``
            for ``'bce'``, integer labels ``(n,)`` for ``'ce'``.
        lambdas: one positive lambda per member (a float is used for every member).
        loss: ``'mse'``, ``'bce'`` (binary, logits) or ``'ce'`` (multiclass, logits).
        train_indices: ``None`` (every member trains on all rows) or K row-index arrays.
        val_data: ``(X_val, y_val)`` shared by all members, or ``None``.
        val_indices: K row-index arrays of ``X`` validating each member (CV folds);
            exclusive with ``val_data``.
        max_steps: number of optimizer steps (>= 1).
        batch_size: minibatch size (capped at the smallest training set).
        learning_rate, warmup, div_factor, final_div_factor: see :func:`one_cycle_lr`.
        eval_every: steps between validations (default ``max(1, max_steps // 100)``).
        restore: ``'final'`` or ``'best'`` state per member (``'best'`` needs validation).
        patience: evaluations without improvement before a member stops (needs
            validation); ``None`` disables early stopping.
        prune_steps: length of the pruning phase at the end (0 = no pruning).
        seed: seed of the batch streams (initial weights are the caller's: see
            :func:`lambda_path`).
        folds: optional fold number per member (only reported).
        verbose: show a tqdm progress bar over steps.

    Returns:
        A :class:`TrainResult`.
    """
    _tune_allocator()
    if not isinstance(net, WeightNormNet):
        raise ValueError(f"net must be a psilon network, got {type(net).__name__}")
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
    if restore not in _RESTORE:
        raise ValueError(f"restore must be one of {_RESTORE}, got {restore!r}")
    for name, value in (("max_steps", max_steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    max_steps, batch_size = int(max_steps), int(batch_size)
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    prune_steps = int(prune_steps or 0)
    if not 0 <= prune_steps <= max_steps:
        raise ValueError(f"prune_steps must be in [0, max_steps={max_steps}], got {prune_steps}")
    if prune_steps and (restore != "final" or patience is not None):
        raise ValueError(
            "pruning keeps the final (exactly sparse) state: use restore='final' and patience=None with prune_steps"
        )
    k_members = net.n_members
    lam = np.broadcast_to(np.asarray(lambdas, dtype=float), (k_members,)).copy() if np.ndim(lambdas) == 0 else np.asarray(
        lambdas, dtype=float
    ).reshape(-1)
    if lam.shape != (k_members,):
        raise ValueError(f"got {lam.size} lambdas for a network with {k_members} members")
    if not (np.all(np.isfinite(lam)) and np.all(lam > 0)):
        raise ValueError(f"lambdas must be positive finite numbers, got {lam.tolist()}")
    fold_of = np.full(k_members, -1) if folds is None else np.asarray(folds, dtype=int).reshape(-1)
    if fold_of.shape != (k_members,):
        raise ValueError(f"folds must give one fold per member ({k_members})")

    dtype = net.embed.direction.dtype
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, Tensor) else X).to(dtype)
    if X.dim() != 2 or X.shape[1] != net.in_features or X.shape[0] == 0:
        raise ValueError(f"X must have shape (n >= 1, {net.in_features}), got {tuple(X.shape)}")
    if not torch.isfinite(X).all():
        raise ValueError("X contains NaN or inf; impute or drop those values first")
    n = X.shape[0]
    y = _check_targets(torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y), n, loss, net.out_features, "y")
    if loss != "ce":
        y = y.to(dtype)

    # Training row sets, grouped: members with identical rows share one batch stream.
    if train_indices is None:
        rows = [torch.arange(n)] * k_members
    else:
        if len(train_indices) != k_members:
            raise ValueError(f"train_indices must hold one index array per member ({k_members})")
        rows = [_as_rows(r, n, f"train_indices[{i}]") for i, r in enumerate(train_indices)]
    keys: dict[bytes, int] = {}
    group_of = []
    group_rows = []
    for r in rows:
        key = r.numpy().tobytes()
        if key not in keys:
            keys[key] = len(group_rows)
            group_rows.append(r)
        group_of.append(keys[key])
    batch = min(batch_size, min(r.numel() for r in group_rows))
    streams = [_BatchStream(r, batch, seed) for r in group_rows]
    group_index = torch.tensor(group_of)

    # Validation.
    if val_data is not None and val_indices is not None:
        raise ValueError("pass either val_data or val_indices, not both")
    val_X = val_y = val_masks = None
    if val_data is not None:
        vx, vy = val_data
        val_X = torch.as_tensor(np.asarray(vx) if not isinstance(vx, Tensor) else vx).to(dtype)
        if val_X.dim() != 2 or val_X.shape[1] != net.in_features or val_X.shape[0] == 0:
            raise ValueError(f"val_data X must have shape (m >= 1, {net.in_features}), got {tuple(val_X.shape)}")
        if not torch.isfinite(val_X).all():
            raise ValueError("val_data X contains NaN or inf")
        val_y = _check_targets(
            torch.as_tensor(np.asarray(vy) if not isinstance(vy, Tensor) else vy), val_X.shape[0], loss,
            net.out_features, "val_data y",
        )
        if loss != "ce":
            val_y = val_y.to(dtype)
    elif val_indices is not None:
        if len(val_indices) != k_members:
            raise ValueError(f"val_indices must hold one index array per member ({k_members})")
        val_masks = torch.zeros(k_members, n, dtype=torch.bool)
        for i, r in enumerate(val_indices):
            val_masks[i, _as_rows(r, n, f"val_indices[{i}]")] = True
        val_X, val_y = X, y
    has_val = val_X is not None
    if (restore == "best" or patience is not None) and not has_val:
        raise ValueError("restore='best' and patience need validation data (val_data or val_indices)")
    if patience is not None and (isinstance(patience, bool) or int(patience) < 1):
        raise ValueError(f"patience must be a positive integer or None, got {patience!r}")
    if eval_every is None:
        eval_every = max(1, max_steps // 100)
    eval_every = int(eval_every)
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")

    lam_t = torch.as_tensor(lam, dtype=dtype)
    names = _stacked_names(net)
    params = dict(net.named_parameters())
    optimizer = _make_optimizer(net.parameters(), learning_rate)

    alive = torch.ones(k_members, dtype=torch.bool)  # not diverged
    running = np.ones(k_members, dtype=bool)  # not diverged, not early-stopped
    status = ["ok"] * k_members
    diverged: list[dict] = []
    best_val = np.full(k_members, np.inf)
    best_step = np.zeros(k_members, dtype=int)
    since_best = np.zeros(k_members, dtype=int)
    best_state = {nm: params[nm].detach().clone() for nm in names} if (restore == "best" or patience) else None
    last_val = np.full(k_members, np.nan)
    records: list[tuple] = []
    acc = torch.zeros(k_members, dtype=torch.float64)
    acc_n = 0

    progress = None
    if verbose:
        from tqdm.auto import tqdm

        progress = tqdm(total=max_steps, desc=f"training {k_members} member(s)", unit="step")

    net.train()
    shared_batch = len(group_rows) == 1
    step = 0
    try:
        for step in range(max_steps):
            lr = one_cycle_lr(
                step, max_steps, lr=learning_rate, warmup=warmup, div_factor=div_factor,
                final_div_factor=final_div_factor,
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            if prune_steps and step == max_steps - prune_steps:
                net.start_pruning(prune_steps)

            idx = [s.next() for s in streams]
            if shared_batch:
                xb, yb = X[idx[0]], y[idx[0]]
            else:
                stacked = torch.stack(idx)[group_index]  # (K, batch)
                xb, yb = X[stacked], y[stacked]
            out = _forward(net, xb)
            data = _elementwise_loss(out, yb, loss).mean(1)  # (K,)
            per = 0.5 * data + 0.5 * lam_t * _regularizer(net)
            finite = torch.isfinite(per)
            bad = alive & ~finite
            if bool(bad.any()):
                for m in torch.nonzero(bad).flatten().tolist():
                    _mark_diverged(m, step, lam, fold_of, status, diverged, running)
                alive &= finite
                if not bool(alive.any()):
                    break
            total = torch.where(alive, per, torch.zeros((), dtype=per.dtype)).sum()
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            if prune_steps and step >= max_steps - prune_steps:
                net.advance_pruning()
            acc += torch.where(alive, per.detach(), torch.zeros((), dtype=per.dtype)).double()
            acc_n += 1
            done = step + 1

            if done % eval_every == 0 or done == max_steps:
                train_mean = (acc / acc_n).numpy()
                acc.zero_()
                acc_n = 0
                if has_val:
                    net.eval()
                    val = _validation_losses(net, val_X, val_y, loss, val_masks).double().numpy()
                    net.train()
                else:
                    val = np.full(k_members, np.nan)
                for m in range(k_members):
                    if status[m] == "diverged":
                        continue
                    if has_val and not np.isfinite(val[m]):
                        _mark_diverged(m, step, lam, fold_of, status, diverged, running)
                        alive[m] = False
                        continue
                    records.append((done, m, lam[m], fold_of[m], train_mean[m], val[m]))
                last_val = val
                if best_state is not None:
                    improved = running & np.isfinite(val) & (val < best_val)
                    for m in np.flatnonzero(improved):
                        best_val[m] = val[m]
                        best_step[m] = done
                        since_best[m] = 0
                        for nm in names:
                            best_state[nm][m].copy_(params[nm].detach()[m])
                    since_best[running & ~improved] += 1
                    if patience is not None:
                        for m in np.flatnonzero(running & (since_best >= patience)):
                            running[m] = False
                            status[m] = "early_stopped"
                if progress is not None and has_val:
                    ok = np.isfinite(val)
                    progress.set_postfix(best_val=float(np.min(val[ok])) if ok.any() else float("nan"))
                if not running.any():
                    break
            if progress is not None:
                progress.update(1)
    finally:
        if progress is not None:
            progress.close()

    steps_done = step + 1
    kept_step = np.full(k_members, steps_done)
    kept_val = last_val.astype(float).copy()
    with torch.no_grad():
        for m in range(k_members):
            use_best = status[m] == "early_stopped" or (restore == "best" and status[m] == "ok")
            if use_best and best_state is not None:
                for nm in names:
                    params[nm][m].copy_(best_state[nm][m])
                kept_step[m] = best_step[m]
                kept_val[m] = best_val[m] if np.isfinite(best_val[m]) else np.nan
            if status[m] == "diverged":
                kept_val[m] = np.nan
    net.eval()
    history = pd.DataFrame.from_records(
        records, columns=["step", "member", "lambda", "fold", "train_loss", "val_loss"]
    )
    return TrainResult(
        net=net,
        lambdas=lam,
        folds=fold_of,
        status=status,
        kept_step=kept_step,
        val_loss=kept_val if has_val else np.full(k_members, np.nan),
        history=history,
        diverged=diverged,
        steps=steps_done,
    )


def _mark_diverged(m, step, lam, fold_of, status, diverged, running) -> None:
    status[m] = "diverged"
    running[m] = False
    info = {"member": int(m), "lambda": float(lam[m]), "fold": int(fold_of[m]), "step": int(step)}
    diverged.append(info)
    fold = f", fold {info['fold']}" if info["fold"] >= 0 else ""
    warnings.warn(
        f"member {m} (lambda={info['lambda']:g}{fold}) diverged at step {step} (loss NaN/inf); "
        "it was stopped and is excluded from the results",
        RuntimeWarning,
        stacklevel=3,
    )


# --------------------------------------------------------------------------- path
def build_network(
    model: str,
    in_features: int,
    out_features: int,
    *,
    architecture: str = "mlp",
    width: int = 500,
    depth: int = 3,
    members: int | None = None,
    seed: int = 0,
) -> WeightNormNet:
    """A network of the family, initialized from ``seed``; with ``members`` all start equal.

    ``model='psilon'`` gives :class:`~psilon.nn.PSiLONNet` (``architecture='mlp'``) or
    :class:`~psilon.nn.PSiLONResNet` (``'resnet'``); ``'standard'`` the
    :class:`~psilon.nn.StandardNet` baseline with that architecture. The global torch
    random state is not touched.
    """
    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {model!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        kw = dict(width=width, depth=depth)
        if model == "standard":
            one = StandardNet(in_features, out_features, architecture=architecture, **kw)
        elif architecture == "mlp":
            one = PSiLONNet(in_features, out_features, **kw)
        elif architecture == "resnet":
            one = PSiLONResNet(in_features, out_features, **kw)
        else:
            raise ValueError(f"architecture must be 'mlp' or 'resnet', got {architecture!r}")
    if members is None:
        return one
    return stack_members([one] * int(members))


def lambda_path(
    X,
    y,
    *,
    lambdas=PAPER_LAMBDAS,
    loss: str = "mse",
    model: str = "psilon",
    architecture: str = "mlp",
    width: int = 500,
    depth: int = 3,
    out_features: int | None = None,
    folds: Sequence[tuple] | None = None,
    val_data: tuple | None = None,
    seed: int = 0,
    **train_kwargs,
) -> TrainResult:
    """Train one member per lambda (times per fold) in a single stacked network.

    Every member starts from the same initial weights (from ``seed``) and draws the same
    batches from its training rows, so member k's result is what training lambda k alone
    with this seed gives, whatever the other lambdas are.

    Args:
        X, y: training data (see :func:`train_members`).
        lambdas: positive grid (default :data:`PAPER_LAMBDAS`) or one float.
        loss: ``'mse'``, ``'bce'`` or ``'ce'``.
        model, architecture, width, depth: see :func:`build_network`.
        out_features: network outputs (default: columns of ``y``; classes for ``'ce'``).
        folds: optional ``[(train_rows, val_rows), ...]``: members become
            ``folds x lambdas`` (fold-major: member ``f * L + l``), validated on their
            fold's rows. Exclusive with ``val_data``.
        val_data: ``(X_val, y_val)`` validating every member.
        seed: initial weights and batch streams.
        **train_kwargs: passed to :func:`train_members` (``max_steps``, ``batch_size``,
            ``learning_rate``, ``eval_every``, ``restore``, ``patience``, ``prune_steps``,
            ``verbose``, ...).
    """
    grid = np.atleast_1d(np.asarray(lambdas, dtype=float)).reshape(-1)
    if grid.size == 0:
        raise ValueError("lambdas is empty")
    if not (np.all(np.isfinite(grid)) and np.all(grid > 0)):
        raise ValueError(f"lambdas must be positive finite numbers, got {grid.tolist()}")
    X_arr = X if isinstance(X, Tensor) else torch.as_tensor(np.asarray(X, dtype=np.float32))
    if X_arr.dim() != 2:
        raise ValueError(f"X must be 2-d (n, features), got shape {tuple(X_arr.shape)}")
    if out_features is None:
        y_arr = np.asarray(y)
        out_features = int(y_arr.max()) + 1 if loss == "ce" else (1 if y_arr.ndim == 1 else y_arr.shape[1])
    n_folds = 1 if folds is None else len(folds)
    members = n_folds * grid.size
    net = build_network(
        model, X_arr.shape[1], out_features, architecture=architecture, width=width, depth=depth,
        members=members, seed=seed,
    )
    member_lambdas = np.tile(grid, n_folds)
    if folds is None:
        return train_members(net, X_arr, y, lambdas=member_lambdas, loss=loss, val_data=val_data, seed=seed, **train_kwargs)
    if val_data is not None:
        raise ValueError("pass either folds or val_data, not both")
    train_rows = [f[0] for f in folds for _ in grid]
    val_rows = [f[1] for f in folds for _ in grid]
    fold_ids = np.repeat(np.arange(n_folds), grid.size)
    return train_members(
        net, X_arr, y, lambdas=member_lambdas, loss=loss, train_indices=train_rows, val_indices=val_rows,
        folds=fold_ids, seed=seed, **train_kwargs,
    )
