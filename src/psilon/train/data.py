"""Input checking of the training engine, done once, and the members' minibatch streams.

:func:`prepare_data` validates everything :func:`~psilon.train.train_members` is given
about data (shapes, finiteness, labels, row indices) and returns a :class:`TrainData`
on the training device; nothing behind it checks again.

Batches. Every member draws its batches from its own stream seeded with ``seed`` (the
same for all members): a random permutation of the member's training rows cut into
batches of ``batch_size`` (a remainder shorter than a batch is dropped and a new
permutation drawn). Members with the same training rows share one stream and one input
batch ``(batch, in)``; members with different rows (CV folds) get ``(K, batch, in)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["TrainData", "elementwise_loss", "prepare_data", "trivial_loss"]

LOSSES = ("mse", "bce", "ce")


class BatchStream:
    """Endless minibatches of row indices: permutations of ``rows`` cut into ``size``.

    The permutation is drawn on the CPU (a seeded generator: identical on every device)
    and copied to ``device`` once per epoch, so a step never waits for the host.
    """

    def __init__(self, rows: Tensor, size: int, seed: int, device: torch.device) -> None:
        self.rows = rows
        self.size = size
        self.device = device
        self.gen = torch.Generator().manual_seed(int(seed))
        self.perm = rows[:0].to(device)
        self.pos = 0

    def state(self) -> tuple:
        """Where the stream is: generator state, current permutation, position (a snapshot)."""
        return self.gen.get_state(), self.perm, self.pos

    def set_state(self, state: tuple) -> None:
        gen_state, perm, pos = state
        self.gen.set_state(gen_state.cpu())
        self.perm, self.pos = perm.to(self.device), int(pos)

    def next(self) -> Tensor:
        if self.pos + self.size > self.perm.numel():
            self.perm = self.rows[torch.randperm(self.rows.numel(), generator=self.gen)].to(self.device)
            self.pos = 0
        out = self.perm[self.pos : self.pos + self.size]
        self.pos += self.size
        return out


def elementwise_loss(out: Tensor, y: Tensor, loss: str) -> Tensor:
    """Per-example data loss ``(K, n)``. ``out`` ``(K, n, o)``; ``y`` ``(n, o)``/``(n,)`` or ``(K, n, o)``/``(K, n)``."""
    if loss == "mse":
        return (out - y).pow(2).mean(-1)
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(out, y.expand_as(out), reduction="none").mean(-1)
    k, n, c = out.shape
    target = y.expand(k, n) if y.dim() == 1 else y
    return F.cross_entropy(out.reshape(k * n, c), target.reshape(k * n), reduction="none").view(k, n)


def trivial_loss(y: Tensor, loss: str) -> float:
    """Data loss of the best constant prediction on targets ``y`` (the bar any member must beat)."""
    if loss == "mse":
        return float(y.double().var(dim=0, unbiased=False).mean())
    if loss == "bce":
        p = y.double().mean(0).clamp(1e-12, 1 - 1e-12)
        return float((-(p * p.log() + (1 - p) * (1 - p).log())).mean())
    freq = torch.bincount(y).double() / y.numel()
    freq = freq[freq > 0]
    return float(-(freq * freq.log()).sum())


@dataclass
class TrainData:
    """Validated training data on the training device.

    ``group_of`` ``(K,)`` gives each member's batch stream; ``val_masks`` ``(K, m)``
    selects each member's validation rows when members validate on their own rows.
    """

    X: Tensor
    y: Tensor
    loss: str
    streams: list[BatchStream]
    group_of: Tensor
    val_X: Tensor | None = None
    val_y: Tensor | None = None
    val_masks: Tensor | None = None

    @property
    def has_val(self) -> bool:
        return self.val_X is not None

    @property
    def shared_batch(self) -> bool:
        return len(self.streams) == 1

    def batch(self, group_index: Tensor) -> tuple[Tensor, Tensor]:
        """The next batch: ``(batch, in)`` shared, or ``(K_w, batch, in)`` for members ``group_index``."""
        idx = [s.next() for s in self.streams]
        if self.shared_batch:
            return self.X[idx[0]], self.y[idx[0]]
        stacked = torch.stack(idx)[group_index]
        return self.X[stacked], self.y[stacked]


def _as_tensor(a, dtype=None) -> Tensor:
    t = a if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a))
    return t if dtype is None else t.to(dtype)


def _as_rows(idx, n: int, what: str) -> Tensor:
    rows = torch.as_tensor(np.asarray(idx), dtype=torch.long).reshape(-1)
    if rows.numel() == 0:
        raise ValueError(f"{what} is empty: every member needs at least one row")
    if int(rows.min()) < 0 or int(rows.max()) >= n:
        raise ValueError(f"{what} has row indices outside [0, {n})")
    return rows


def _check_X(X, in_features: int, dtype, what: str) -> Tensor:
    X = _as_tensor(X).to(dtype)
    if X.dim() != 2 or X.shape[1] != in_features or X.shape[0] == 0:
        raise ValueError(f"{what} must have shape (n >= 1, {in_features}), got {tuple(X.shape)}")
    if not torch.isfinite(X).all():
        raise ValueError(f"{what} contains NaN or inf; impute or drop those values first")
    return X


def _check_targets(y, n: int, loss: str, out_features: int, dtype, what: str) -> Tensor:
    y = _as_tensor(y)
    if y.shape[0] != n:
        raise ValueError(f"{what} has {y.shape[0]} rows, but X has {n}")
    if loss == "ce":
        if y.is_floating_point() and not torch.equal(y, y.round()):
            raise ValueError(f"{what}: class labels must be integers for loss='ce'")
        y = y.long().reshape(-1)
        if int(y.min()) < 0 or int(y.max()) >= out_features:
            raise ValueError(f"{what}: class labels must be integers in [0, {out_features}) for loss='ce'")
        return y
    y = y.to(dtype)
    if y.dim() == 1:
        y = y.unsqueeze(1)
    if y.shape[1] != out_features:
        raise ValueError(f"{what} has {y.shape[1]} columns, but the network has {out_features} outputs")
    if not torch.isfinite(y).all():
        raise ValueError(f"{what} contains NaN or inf")
    if loss == "bce" and not bool(((y == 0) | (y == 1)).all()):
        raise ValueError(f"{what}: targets of loss='bce' must be 0 or 1; encode the labels first")
    return y


def _streams(train_indices, n: int, k: int, batch_size: int, seed: int, device) -> tuple[list, Tensor]:
    """Batch streams, one per distinct training row set, and each member's stream index."""
    if train_indices is None:
        rows = [torch.arange(n)] * k
    else:
        if len(train_indices) != k:
            raise ValueError(f"train_indices must hold one index array per member ({k})")
        rows = [_as_rows(r, n, f"train_indices[{i}]") for i, r in enumerate(train_indices)]
    keys: dict[bytes, int] = {}
    group_of, group_rows = [], []
    for r in rows:
        key = r.numpy().tobytes()
        if key not in keys:
            keys[key] = len(group_rows)
            group_rows.append(r)
        group_of.append(keys[key])
    batch = min(batch_size, min(r.numel() for r in group_rows))
    streams = [BatchStream(r, batch, seed, device) for r in group_rows]
    return streams, torch.tensor(group_of, device=device)


def prepare_data(
    net, X, y, *, loss: str, train_indices, val_data, val_indices, batch_size: int, seed: int, device
) -> TrainData:
    """Check the data of :func:`~psilon.train.train_members` once and move it to ``device``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    dtype, k = net.embed.direction.dtype, net.n_members
    X = _check_X(X, net.in_features, dtype, "X")
    n = X.shape[0]
    y = _check_targets(y, n, loss, net.out_features, dtype, "y")
    streams, group_of = _streams(train_indices, n, k, batch_size, seed, device)
    data = TrainData(X.to(device), y.to(device), loss, streams, group_of)
    if val_data is not None and val_indices is not None:
        raise ValueError("pass either val_data or val_indices, not both")
    if val_data is not None:
        if not (isinstance(val_data, (tuple, list)) and len(val_data) == 2):
            raise ValueError("val_data must be a pair (X_val, y_val)")
        vx = _check_X(val_data[0], net.in_features, dtype, "val_data X")
        vy = _check_targets(val_data[1], vx.shape[0], loss, net.out_features, dtype, "val_data y")
        data.val_X, data.val_y = vx.to(device), vy.to(device)
    elif val_indices is not None:
        if len(val_indices) != k:
            raise ValueError(f"val_indices must hold one index array per member ({k})")
        masks = torch.zeros(k, n, dtype=torch.bool)
        for i, r in enumerate(val_indices):
            masks[i, _as_rows(r, n, f"val_indices[{i}]")] = True
        data.val_X, data.val_y, data.val_masks = data.X, data.y, masks.to(device)
    return data
