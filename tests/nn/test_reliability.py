"""Regression tests: integer-like sizes, strict booleans, input dtypes, the NaN scan's mode."""

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from psilon.nn import CReLULinear, NormalizedLinear, PSiLONNet, PSiLONResNet, StandardNet, WeightNormNet


# ------------------------------------------------------------------ sizes: any numbers.Integral
@pytest.mark.parametrize("cls", [PSiLONNet, PSiLONResNet, StandardNet])
def test_numpy_integer_sizes_are_accepted(cls):
    net = cls(np.int64(4), np.int32(1), width=np.int64(8), depth=np.int64(3), members=np.int16(2))
    assert net(torch.randn(5, 4)).shape == (2, 5, 1)
    assert type(net.width) is int and type(net.depth) is int and type(net.members) is int
    assert net.config() == cls(4, 1, width=8, depth=3, members=2).config()
    if net.norm == "l1":
        net.start_pruning(np.int64(3))


def test_numpy_integer_sizes_in_the_layers():
    assert NormalizedLinear(np.int64(3), np.uint8(2), members=np.int64(2)).direction.shape == (2, 2, 3)
    assert CReLULinear(np.int32(3), np.int32(3)).direction.shape == (1, 3, 6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(width=True), "width must be a positive integer"),
        (dict(width=8.0), "width must be a positive integer"),
        (dict(depth=np.int64(1)), "depth must be an integer >= 2"),
        (dict(depth=False), "depth must be an integer >= 2"),
        (dict(members=np.int64(0)), "members must be a positive integer"),
    ],
)
def test_bad_sizes_still_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PSiLONNet(4, 1, **kwargs)


# ------------------------------------------------------------------ strict booleans
@pytest.mark.parametrize("bad", ["no", "False", 0, 1, 1.0])
def test_shared_must_be_a_bool(bad):
    with pytest.raises(ValueError, match="shared must be True or False"):
        PSiLONNet(4, 1, width=4, shared=bad)


def test_bool_options_of_the_layers():
    with pytest.raises(ValueError, match="shared must be True or False"):
        NormalizedLinear(3, 2, shared="yes")
    with pytest.raises(ValueError, match="tied_init must be True or False"):
        CReLULinear(3, 2, tied_init="no")
    assert PSiLONNet(4, 1, width=4, shared=np.bool_(False)).shared is False


# ------------------------------------------------------------------ input dtype
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_floating_inputs_are_cast_to_the_network_dtype(dtype):
    net = PSiLONNet(4, 1)
    x = torch.randn(2, 4)
    out = net(x.to(dtype))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, net(x.to(dtype).to(torch.float32)), rtol=0, atol=0)
    assert PSiLONNet(4, 1)(torch.zeros(2, 4, dtype=torch.float64)).shape == (2, 1)


def test_double_network_casts_float32_input():
    net = PSiLONResNet(3, 2, width=5, members=2).double()
    assert net(torch.randn(4, 3)).dtype == torch.float64
    assert net.forward_members(torch.randn(2, 4, 3)).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_non_floating_input_is_a_clear_error(dtype):
    net = PSiLONNet(4, 1, width=4)
    with pytest.raises(ValueError, match=f"input has dtype {dtype}"):
        net(torch.zeros(2, 4, dtype=dtype))


# ------------------------------------------------------------------ the NaN scan
def _nan_input():
    x = torch.randn(5, 3)
    x[1, 2] = float("nan")
    return x


@pytest.mark.parametrize("members", [None, 2])
def test_eval_mode_scans_the_input(members):
    net = PSiLONNet(3, 1, width=4, members=members).eval()
    with pytest.raises(ValueError, match="NaN or inf"):
        net(_nan_input())
    with pytest.raises(ValueError, match="NaN or inf"):
        net.forward_members(_nan_input())


class _Reductions(TorchFunctionMode):
    """Records the shapes of the tensors that ``sum``, ``isfinite`` or ``all`` read."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("sum", "isfinite", "all") and args and isinstance(args[0], torch.Tensor):
            self.shapes.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


def _scanned(net, x):
    with _Reductions() as rec:
        net(x)
    return rec.shapes


def test_training_mode_does_not_scan_a_finite_input():
    """Training mode checks only the sum of the output; the input is scanned only if that is not finite."""
    net = WeightNormNet(3, 1, width=4, depth=3)
    x = torch.randn(50, 3)
    assert (50, 3) not in _scanned(net.train(), x)
    assert (50, 3) in _scanned(net.eval(), x)
    net.train()
    with pytest.raises(ValueError, match="NaN or inf"):  # a NaN input is still caught, lazily
        net(torch.full((50, 3), float("nan")))
