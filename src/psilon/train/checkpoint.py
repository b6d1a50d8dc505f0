"""Checkpoints of the lambda path: an interrupted path resumes where it stopped.

Two kinds, one per mode of :func:`~psilon.train.lambda_path`, both written atomically
with a fingerprint of everything that determines the run (the data, the lambda grid, the
folds, the seed, the starting weights and the training options):

* :class:`WarmCheckpoint` (``path='warm'``): one file per finished lambda.
* :class:`RunCheckpoint` (``path='independent'``): one stacked run of all the lambdas,
  snapshotted in the middle (``run.pt``, see below).

Warm path. The warm path (:func:`~psilon.train.lambda_path` with ``path='warm'``) trains the lambdas
one after the other, each from the previous one's final weights. Its natural unit of
work is therefore one finished lambda: :class:`WarmCheckpoint` saves each lambda's
:class:`~psilon.train.TrainResult` to ``<folder>/fold<f>-lambda<i>.pt``, written
atomically, with a fingerprint of everything that determines the path: the data, the
lambda grid, the folds, the seed, the starting weights and the training options.

A later call with the same fingerprint loads the finished lambdas and trains only the
rest. A lambda's training depends on nothing but its start weights, the seed and the
options, so the resumed path equals an uninterrupted one. A file with another
fingerprint (other data or settings) is never used: the lambda is trained again and the
file overwritten. Like the benchmark store's task keys, the fingerprint does not cover
psilon's own code: after changing how training works, delete the folder.

Independent path. Its one stacked run has no finished lambda to save, so
:class:`RunCheckpoint` snapshots the whole training state instead (the working and the
caller's network, Adam's moments, the members' tracker with its best states and
patience counters, the batch streams' generators, the callbacks' state), at an
evaluation (every ``eval_every`` steps) once ``every`` seconds have passed since the
last snapshot. A later call with the same fingerprint loads the snapshot and continues
from its step; the result equals the uninterrupted run's bit for bit (the
``Projection`` callback projects once more on resuming: equal up to rounding).

The files are read with ``torch.load(weights_only=False)`` (the result holds NumPy arrays
and a DataFrame): point ``checkpoint`` only at folders that this code wrote.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import numpy as np
import torch

from psilon._files import atomic_write_bytes
from psilon.nn import WeightNormNet

from .engine import TrainResult
from .loop import network_from_state

__all__ = ["RUN_SNAPSHOT_SECONDS", "RunCheckpoint", "WarmCheckpoint", "fingerprint"]

#: Bumped when the file layout changes, so that old files are not read as new ones.
FORMAT = 1

#: Seconds between two snapshots of an independent run (:class:`RunCheckpoint`). A wide
#: 13-member snapshot is ~100 MB and takes well under a second to write.
RUN_SNAPSHOT_SECONDS = 300.0

_PLAIN = (type(None), bool, int, float, str)


def _plain(value) -> str:
    """A stable text for an option: its repr when plain data, else its type's name."""
    if isinstance(value, _PLAIN) or isinstance(value, (np.integer, np.floating)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_plain(v)}" for k, v in sorted(value.items())) + "}"
    return type(value).__qualname__


def _array_bytes(value) -> bytes:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.ascontiguousarray(np.asarray(value))
    return f"{arr.dtype.str}{arr.shape}".encode() + arr.tobytes()


def fingerprint(start: WeightNormNet, X, y, grid, folds, val_data, seed: int, options: dict,
                kind: str = "warm path") -> str:
    """SHA-256 of what determines a path: data, grid, folds, seed, start weights, options.

    ``options`` are the keyword arguments of :func:`~psilon.train.train_members`; values
    that are not plain data (callbacks) count by their type's name. ``kind``
    (``'warm path'`` or ``'run'``) keeps the two kinds of checkpoint apart.
    """
    h = hashlib.sha256(f"psilon {kind} v{FORMAT}; seed {int(seed)}; {type(start).__qualname__}".encode())
    for part in (X, y, grid):
        h.update(_array_bytes(part))
    for train_rows, val_rows in folds or ():
        h.update(_array_bytes(train_rows) + b"|" + _array_bytes(val_rows))
    for part in val_data or ():
        h.update(_array_bytes(part))
    h.update(_plain(start.config()).encode())
    for name, tensor in sorted(start.state_dict().items()):
        h.update(name.encode() + _array_bytes(tensor))
    h.update(_plain(options).encode())
    return h.hexdigest()


def _write(path: Path, record: dict) -> None:
    """``torch.save`` of ``record`` to ``path``, atomically."""
    buffer = io.BytesIO()
    torch.save(record, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _read(path: Path, fingerprint: str, device: torch.device | str = "cpu") -> dict | None:
    """The record in ``path`` (tensors on ``device``) if it carries ``fingerprint``, else
    ``None`` (missing, damaged or another run's file: work to redo, not an error)."""
    if not path.is_file():
        return None
    try:
        record = torch.load(path, map_location=device, weights_only=False)
    except Exception:
        return None
    if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
        return None
    return record


class WarmCheckpoint:
    """The finished lambdas of one warm path, in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike, fingerprint: str) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint

    def _file(self, fold: int, index: int) -> Path:
        return self.folder / f"fold{fold}-lambda{index}.pt"

    def save(self, fold: int, index: int, result: TrainResult) -> None:
        """Write lambda ``index`` of ``fold`` (``-1`` without folds) atomically."""
        record = {
            "fingerprint": self.fingerprint,
            "n_members": result.net.n_members,
            "state": {k: v.detach().cpu() for k, v in result.net.state_dict().items()},
            "fields": {name: getattr(result, name) for name in TrainResult.__dataclass_fields__ if name != "net"},
        }
        _write(self._file(fold, index), record)

    def load(self, fold: int, index: int, template: WeightNormNet) -> TrainResult | None:
        """Lambda ``index`` of ``fold`` if a file with this fingerprint holds it, else ``None``.

        ``template`` gives the network's class, configuration and device.
        """
        record = _read(self._file(fold, index), self.fingerprint)
        if record is None:
            return None
        net = network_from_state(template, record["n_members"], record["state"]).eval()
        return TrainResult(net=net, **record["fields"])


class RunCheckpoint:
    """Snapshots of one stacked run (``<folder>/run.pt``; see the module docstring).

    :class:`~psilon.train.loop.TrainLoop` asks :meth:`due` at each evaluation, hands
    :meth:`save` its state when it is, and starts from :meth:`load`'s state if any.
    ``every``: seconds between snapshots (0: at every evaluation).
    """

    FILE = "run.pt"

    def __init__(self, folder: str | os.PathLike, fingerprint: str, every: float = RUN_SNAPSHOT_SECONDS) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.every = float(every)
        self._last = time.monotonic()

    @property
    def file(self) -> Path:
        return self.folder / self.FILE

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every

    def save(self, state: dict) -> None:
        """Write ``state`` (tensors, arrays and plain data) atomically."""
        _write(self.file, {"fingerprint": self.fingerprint, "state": state})
        self._last = time.monotonic()

    def load(self, device: torch.device | str = "cpu") -> dict | None:
        """The saved state (tensors on ``device``) if ``run.pt`` holds one with this
        fingerprint, else ``None``."""
        record = _read(self.file, self.fingerprint, device)
        return None if record is None else record["state"]
