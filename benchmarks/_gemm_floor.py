"""The matrix products of a training step, recorded once and replayed alone.

A step's GEMMs (``mm``, ``addmm``, ``bmm``, ``baddbmm`` at the ATen level, forward and
backward) are captured with a ``TorchDispatchMode``; replaying exactly those calls, on
tensors of the same shapes and memory layouts and with nothing else in between, gives
the *GEMM floor*: the time the step would take if everything but its matrix products
were free. ``step time - floor`` is what the elementwise work, the optimizer and Python
cost; ``floor`` itself says how well the BLAS does at the step's shapes.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_ops = torch.ops.aten
GEMMS = {_ops.mm.default, _ops.addmm.default, _ops.bmm.default, _ops.baddbmm.default}


def _like(t):
    if isinstance(t, torch.Tensor):
        out = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype)
        out.copy_(t.detach())
        return out
    return t


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in GEMMS:
            self.calls.append((func, [_like(a) for a in args], {k: _like(v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)


def record_gemms(step, nets=()) -> tuple[callable, float]:
    """Run ``step()`` once; return ``(replay, flops)``: a function replaying its GEMMs and their FLOPs.

    ``nets``: the psilon networks the step trains. Compiled kernels cannot run under a
    dispatch mode, so their layers run eager while recording (the GEMMs are the same)
    and get their ``compiled_kernels`` flags back afterwards. Networks are eager unless
    ``set_compiled_kernels(True)`` was called on them.
    """
    layers = [layer for net in nets for layer in net.layers()]
    flags = [layer.compiled_kernels for layer in layers]
    rec = _Recorder()
    try:
        for layer in layers:
            layer.compiled_kernels = False
        with rec:
            step()
    finally:
        for layer, flag in zip(layers, flags):
            layer.compiled_kernels = flag
    calls = rec.calls
    flops = sum(_flops(func, args) for func, args, _ in calls)

    def replay() -> None:
        for func, args, kwargs in calls:
            func(*args, **kwargs)

    replay.calls = calls
    return replay, flops


def _flops(func, args) -> float:
    a, b = (args[0], args[1]) if func in (_ops.mm.default, _ops.bmm.default) else (args[1], args[2])
    batch = a.shape[0] if a.dim() == 3 else 1
    return 2.0 * batch * a.shape[-2] * a.shape[-1] * b.shape[-1]


def per_call(replay, time_fn, mm_gflops: float) -> list[str]:
    """One line per recorded GEMM: operation, operand shapes, median ms, fraction of the mm rate."""
    lines = []
    for func, args, kwargs in replay.calls:
        seconds = time_fn(lambda: func(*args, **kwargs))
        shapes = " x ".join(str(tuple(a.shape)) for a in args if isinstance(a, torch.Tensor))
        lines.append(f"    {func.__name__.split('.')[0]:8s} {shapes:52s} {seconds * 1e3:8.3f} ms  "
                     f"frac {_flops(func, args) / seconds / 1e9 / mm_gflops:.2f}")
    return lines
