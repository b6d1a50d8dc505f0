"""The one-cycle cosine schedule: same values as torch's OneCycleLR, and its shape."""

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from psilon.train import one_cycle_lr


@settings(max_examples=25, deadline=None)
@given(
    total=st.integers(2, 150),
    lr=st.floats(1e-5, 1.0),
    warmup=st.floats(0.05, 0.6),
    div=st.floats(2.0, 100.0),
    final_div=st.floats(10.0, 1e5),
)
def test_matches_torch_one_cycle(total, lr, warmup, div, final_div):
    assume(abs(warmup * total - 1.0) > 1e-9)  # torch divides by zero there
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=total, pct_start=warmup, div_factor=div, final_div_factor=final_div,
        anneal_strategy="cos", cycle_momentum=False,
    )
    for step in range(total):
        ours = one_cycle_lr(step, total, lr=lr, warmup=warmup, div_factor=div, final_div_factor=final_div)
        assert math.isclose(ours, opt.param_groups[0]["lr"], rel_tol=1e-9, abs_tol=1e-15)
        opt.step()
        sched.step()


@settings(max_examples=25, deadline=None)
@given(total=st.integers(20, 800), lr=st.floats(1e-4, 1e-1))
def test_shape_of_the_paper_schedule(total, lr):
    values = [one_cycle_lr(s, total, lr=lr) for s in range(total)]
    peak = max(range(total), key=values.__getitem__)
    assert math.isclose(values[0], lr / 20, rel_tol=1e-9)
    assert math.isclose(values[-1], lr / 20 / 1e4, rel_tol=1e-6)
    assert values[peak] <= lr * (1 + 1e-12)
    assert abs(peak - (0.2 * total - 1)) <= 1.0  # the 20% warm-up ends at the peak
    assert all(a <= b + 1e-15 for a, b in zip(values[:peak], values[1 : peak + 1]))  # rises
    assert all(a >= b - 1e-15 for a, b in zip(values[peak:], values[peak + 1 :]))  # falls


def test_bad_arguments():
    with pytest.raises(ValueError, match="total_steps"):
        one_cycle_lr(0, 0)
    with pytest.raises(ValueError, match="step"):
        one_cycle_lr(5, 5)
    with pytest.raises(ValueError, match="warmup"):
        one_cycle_lr(0, 5, warmup=1.0)
