"""Process, thread and device settings of training: allocator tuning, denormals, device, optimizer.

Nothing here changes the process as a side effect of training: the caller opts in to
:func:`tune_allocator`. The one setting that training makes itself,
:func:`flush_denormals`, is the calling thread's and its OpenMP pool threads', and is restored when
training ends.

Denormals (:func:`flush_denormals`). The L1 and L2 path penalties shrink the weights of
units that the data does not use, and along a lambda path such units' directions and
lengths reach 1e-20 and below: their products in the forward matrix products are
denormal floats (below 1.2e-38 in float32), which x86 CPUs handle in microcode, one
assist per operation. Measured on a paper-exact StandardNet after its second lambda
(width 500, 4 layers, 400 rows): one forward pass took 176 ms, against 7.3 ms with
denormals flushed to zero (and 3.7 ms for the same network after its first lambda), so
whole fits ran several times slower than their matrix products. Flushing them changes
only values below 1.2e-38, which no loss, metric or certificate can see.

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

import contextlib
import ctypes
import functools
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = ["flush_denormals", "flushing_denormals", "make_optimizer", "resolve_device", "tune_allocator"]

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


_TEAM_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@functools.cache
def _gomp_parallel():
    """``GOMP_parallel`` of the OpenMP runtime loaded in the process (torch's), or None.

    libgomp defines it, and Intel's libiomp5 exports it for GNU compatibility. Looked up
    among the process's global symbols (torch loads its OpenMP runtime globally).
    """
    try:
        fn = ctypes.CDLL(None).GOMP_parallel
    except (OSError, AttributeError, TypeError):  # no OpenMP runtime, or no dlopen(NULL) (Windows)
        return None
    fn.argtypes, fn.restype = [_TEAM_BODY, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint], None
    return fn


def _in_each_team_thread(fn: Callable[[], Any]) -> dict[int, Any]:
    """``fn()`` in each thread of the calling thread's OpenMP team, by thread id.

    The team is the one torch's intra-op parallelism and MKL run on from this thread: the
    calling thread and ``torch.get_num_threads() - 1`` pool threads (created here if they
    do not exist yet). Without an OpenMP runtime, or with one thread, only the calling
    thread runs ``fn``.
    """
    parallel, n = _gomp_parallel(), torch.get_num_threads()
    if parallel is None or n <= 1:
        return {threading.get_ident(): fn()}
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def body(_data) -> None:
        try:
            results[threading.get_ident()] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised below: ctypes would only print it
            errors.append(exc)

    parallel(_TEAM_BODY(body), None, n, 0)
    if errors:
        raise errors[0]
    return results


def flushing_denormals(team: bool = False) -> bool:
    """Whether the calling thread flushes float32 denormals to zero now (a product is probed).

    ``team=True``: whether every thread of its OpenMP team (the threads torch's matrix
    products run on from this thread) does.
    """

    def probe() -> bool:
        a = torch.tensor([1e-20], dtype=torch.float32)
        return bool((a * a).item() == 0.0)  # 1e-40 is a denormal float32: kept unless flushed

    return all(_in_each_team_thread(probe).values()) if team else probe()


@contextlib.contextmanager
def flush_denormals() -> Iterator[bool]:
    """Flush denormal floats to zero on the CPU inside the block, in the calling thread and its OpenMP team.

    Yields whether the CPU supports it (x86 with SSE3; elsewhere nothing changes). The
    setting is per thread: torch's matrix products run on the calling thread and on its
    OpenMP pool threads (``torch.get_num_threads()`` in all), and a pool created before
    the block (by any earlier multi-threaded operation) would not inherit the calling
    thread's setting. So the block sets it in each thread of the team, and on leaving
    gives each one its previous setting back (other threads created inside keep it). Without an
    OpenMP runtime only the calling thread is set. Measured with two threads on a
    paper-exact StandardNet's state after its second lambda (2dplanes; 161 of a layer's
    lengths and 203 head weights were denormal): 74 ms per training step with denormals
    kept, 54 ms with only the calling thread flushing them, 10.4 ms with the whole team
    (``benchmarks/bench_denormals.py --threads 2 --checkpoint <that lambda file>``). See the module
    docstring for why training uses it.
    """

    def flush_on() -> tuple[bool, bool]:
        before = flushing_denormals()
        return before, torch.set_flush_denormal(True)

    previous = _in_each_team_thread(flush_on)
    supported = all(ok for _, ok in previous.values())
    try:
        yield supported
    finally:
        if supported:
            caller = previous[threading.get_ident()]  # the calling thread is one of its team's

            def restore() -> None:  # a thread that joined the team inside the block: as the caller
                if not previous.get(threading.get_ident(), caller)[0]:
                    torch.set_flush_denormal(False)

            _in_each_team_thread(restore)


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
