"""The one-cycle learning-rate schedule of the paper's recipe (P1.7)."""

from __future__ import annotations

import math

__all__ = ["one_cycle_lr"]


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
