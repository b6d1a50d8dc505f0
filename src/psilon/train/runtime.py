"""Explicit process and device settings of training: allocator tuning, device, optimizer.

Nothing here runs as a side effect of training: the caller opts in.

Allocator tuning (:func:`tune_allocator`). Large temporaries of the weight normalization
(13 x 500 x 500 floats = 13 MB per tensor at the paper's size) exceed glibc's dynamic
mmap threshold; each allocation then costs page faults, which made elementwise kernels
3-4x slower than the memory bandwidth allows. Raising only the mmap threshold is not
enough: glibc then returns the freed top of the heap to the kernel
(``M_TRIM_THRESHOLD``, 128 kB) and the next step faults the same pages in again.
:func:`tune_allocator` sets ``M_MMAP_THRESHOLD`` = 32 MB, ``M_TRIM_THRESHOLD`` = 256 MB
and ``M_TOP_PAD`` = 64 MB for the **whole process** (Linux/glibc only; the process then
keeps up to 256 MB of freed heap instead of returning it to the system). The
``psilon`` command line and the benchmarks call it; a library user calls it once if
they train wide networks. ``benchmarks/bench_lambda_path.py --no-malloc-tuning``
measures the difference.
"""

from __future__ import annotations

import ctypes
import sys

import torch

__all__ = ["make_optimizer", "resolve_device", "tune_allocator"]

_MALLOC_TUNED = False


def tune_allocator() -> bool:
    """Keep blocks up to 32 MB, and up to 256 MB of freed memory, in glibc's heap.

    Process-wide and idempotent. Returns True when the settings are in effect (glibc
    on Linux), False where there is nothing to tune.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 1024 * 1024)  # M_TRIM_THRESHOLD
        libc.mallopt(-2, 64 * 1024 * 1024)  # M_TOP_PAD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    _MALLOC_TUNED = True
    return True


def make_optimizer(net, lr: float, *, length_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """Adam without weight decay over ``net``'s parameters; the fused kernel when available.

    The lengths (parameters named ``*.length``) form their own group whose learning rate
    is ``length_lr_scale`` times the others' (each group's ``lr_scale``): Adam moves a
    parameter by about its learning rate per step, and a length may need to travel
    much further than a direction coordinate. On CPU the fused Adam is ~5x faster than
    the ``foreach`` one on (13, 500, 500) parameters.
    """
    named = list(net.named_parameters())
    lengths = [p for n, p in named if n.endswith("length")]
    others = [p for n, p in named if not n.endswith("length")]
    groups = [{"params": others, "lr_scale": 1.0}]
    if lengths:
        groups.append({"params": lengths, "lr_scale": float(length_lr_scale)})
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    fusable = all(p.device.type in ("cpu", "cuda") for _, p in named)
    if fusable:
        try:
            return torch.optim.Adam(groups, lr=lr, weight_decay=0.0, fused=True)
        except (RuntimeError, TypeError, ValueError):  # fused not supported for these tensors
            pass
    return torch.optim.Adam(groups, lr=lr, weight_decay=0.0)


def resolve_device(device) -> torch.device:
    """``'auto'`` (CUDA when available, else CPU), a device string or a ``torch.device``."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here; use 'cpu' or 'auto'")
    return dev
