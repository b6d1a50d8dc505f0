"""The torch.compile'd (fused) weight-normalization kernels equal the eager ones.

Fusion normally starts at ``FUSE_MIN_NUMEL`` weight elements (paper-size stacked
layers); these tests lower the threshold to 0 so that tiny networks take the fused path.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from psilon.nn import WeightNormNet
from psilon.nn import layers as L

needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="torch.compile on CPU needs a C++ compiler (g++, c++ or clang++ on PATH)",
)

VARIANTS = [
    dict(architecture="mlp", norm="l1", shared=True),  # PSiLON Net
    dict(architecture="mlp", norm="l2", shared=False, penalty="squared"),  # StandardNet
    dict(architecture="resnet", norm="l1", shared=True),  # PSiLON ResNet (CReLU pairs)
]


def _outputs_and_grads(net, x):
    net.zero_grad(set_to_none=True)
    out = net(x)
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum() + net.regularizer().sum()
    loss.backward()
    return out.detach().clone(), [p.grad.clone() for p in net.parameters()]


def _randomized(opts, seed):
    torch.manual_seed(seed)
    net = WeightNormNet(4, 2, width=7, depth=3, members=3, **opts).double()
    with torch.no_grad():
        for layer in net.layers():
            layer.direction.normal_()
            layer.length.uniform_(-1.5, 1.5)
            layer.bias.normal_()
    return net


@needs_compiler
@pytest.mark.parametrize("opts", VARIANTS, ids=["psilon-net", "standard-net", "psilon-resnet"])
def test_fused_kernels_equal_eager(opts, monkeypatch):
    monkeypatch.setattr(L, "FUSE_MIN_NUMEL", 0)
    monkeypatch.setattr(L, "_FUSION_OK", True)
    net = _randomized(opts, 0)
    x = torch.randn(5, 4, dtype=torch.float64)
    fused_out, fused_grads = _outputs_and_grads(net, x)
    assert L._FUSION_OK, "the fused path fell back to eager"
    assert set(L._FUSED) == {L._normalize, L._normalization_backward}
    monkeypatch.setattr(L, "_FUSION_OK", False)
    eager_out, eager_grads = _outputs_and_grads(net, x)
    torch.testing.assert_close(fused_out, eager_out, rtol=1e-12, atol=1e-12)
    for a, b in zip(fused_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler found")

        return call

    monkeypatch.setattr(L, "FUSE_MIN_NUMEL", 0)
    monkeypatch.setattr(L, "_FUSION_OK", True)
    monkeypatch.setattr(L, "_FUSED", {})
    monkeypatch.setattr(torch, "compile", broken_compile)
    net = _randomized(VARIANTS[0], 1)
    x = torch.randn(5, 4, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="torch.compile of the weight-normalization kernels failed"):
        out, grads = _outputs_and_grads(net, x)
    assert not L._FUSION_OK
    monkeypatch.setattr(L, "FUSE_MIN_NUMEL", 1 << 62)
    ref_out, ref_grads = _outputs_and_grads(net, x)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_small_weights_stay_eager(monkeypatch):
    monkeypatch.setattr(L, "_FUSED", {})
    net = _randomized(VARIANTS[0], 2)
    _outputs_and_grads(net, torch.randn(5, 4, dtype=torch.float64))
    assert L._FUSED == {}, "weights below FUSE_MIN_NUMEL must not trigger a compilation"
