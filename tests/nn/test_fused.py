"""The switch of the torch.compile'd (fused) weight-normalization kernels.

Networks start eager; ``set_compiled_kernels(True)`` turns compilation on for the layers
whose weight has at least ``min_numel`` elements (default ``FUSE_MIN_NUMEL``, paper-size
stacked layers). These tests pass ``min_numel=0`` so that tiny networks take the compiled
path, and replace the public ``torch.compile`` where they need a failing or counted one.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from psilon.nn import FUSE_MIN_NUMEL, PSiLONNet, WeightNormNet, clear_compiled_kernels

needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="torch.compile on CPU needs a C++ compiler (g++, c++ or clang++ on PATH)",
)

VARIANTS = [
    dict(architecture="mlp", norm="l1", shared=True),  # PSiLON Net
    dict(architecture="mlp", norm="l2", shared=False, penalty="squared"),  # StandardNet
    dict(architecture="resnet", norm="l1", shared=True),  # PSiLON ResNet (CReLU pairs)
]


@pytest.fixture(autouse=True)
def _fresh_kernel_cache():
    """Every test starts and ends with an empty process-wide cache of compiled kernels,
    so that a replaced ``torch.compile`` is really called and its results never leak."""
    clear_compiled_kernels()
    yield
    clear_compiled_kernels()


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


def _counting_compile(monkeypatch):
    """Replace ``torch.compile`` by a wrapper that records the compiled functions' names."""
    real, names = torch.compile, []

    def compile_and_count(fn, **kwargs):
        names.append(fn.__name__)
        return real(fn, **kwargs)

    monkeypatch.setattr(torch, "compile", compile_and_count)
    return names


def test_default_is_eager_and_the_switch_sets_every_layer():
    net = PSiLONNet(4, 1, width=8, depth=4)
    assert all(layer.compiled_kernels is False for layer in net.layers())
    assert net.set_compiled_kernels(True) is net
    assert all(layer.compiled_kernels and layer.compile_min_numel == FUSE_MIN_NUMEL for layer in net.layers())
    net.set_compiled_kernels(False, min_numel=np.int64(10))
    assert all(not layer.compiled_kernels and layer.compile_min_numel == 10 for layer in net.layers())
    with pytest.raises(ValueError, match="enabled must be True or False"):
        net.set_compiled_kernels("yes")
    with pytest.raises(ValueError, match="min_numel must be an integer >= 0"):
        net.set_compiled_kernels(True, min_numel=-1)


@needs_compiler
@pytest.mark.parametrize("opts", VARIANTS, ids=["psilon-net", "standard-net", "psilon-resnet"])
def test_fused_kernels_equal_eager(opts, monkeypatch):
    names = _counting_compile(monkeypatch)
    net = _randomized(opts, 0).set_compiled_kernels(True, min_numel=0)
    x = torch.randn(5, 4, dtype=torch.float64)
    fused_out, fused_grads = _outputs_and_grads(net, x)
    assert all(layer.compiled_kernels for layer in net.layers()), "the fused path fell back to eager"
    assert sorted(names) == ["_normalization_backward", "_normalize"]
    net.set_compiled_kernels(False)
    eager_out, eager_grads = _outputs_and_grads(net, x)
    torch.testing.assert_close(fused_out, eager_out, rtol=1e-12, atol=1e-12)
    for a, b in zip(fused_grads, eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler found")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    net = _randomized(VARIANTS[0], 1)
    x = torch.randn(5, 4, dtype=torch.float64)
    ref_out, ref_grads = _outputs_and_grads(net, x)  # eager (the default)
    net.set_compiled_kernels(True, min_numel=0)
    with pytest.warns(RuntimeWarning, match="torch.compile of the weight-normalization kernels failed"):
        out, grads = _outputs_and_grads(net, x)
    assert not any(layer.compiled_kernels for layer in net.layers()), "a failed layer must switch itself off"
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_only_the_large_layers_compile(monkeypatch):
    names = _counting_compile(monkeypatch)
    net = _randomized(VARIANTS[0], 2).set_compiled_kernels(True)  # default threshold: all tiny
    _outputs_and_grads(net, torch.randn(5, 4, dtype=torch.float64))
    assert names == [], "weights below FUSE_MIN_NUMEL must not trigger a compilation"
    assert all(layer.compiled_kernels for layer in net.layers()), "the switch stays on; the size decides"


def test_eager_network_never_compiles(monkeypatch):
    names = _counting_compile(monkeypatch)
    net = _randomized(VARIANTS[2], 3)
    for layer in net.layers():
        layer.compile_min_numel = 0  # would compile at any size, but the switch is off
    _outputs_and_grads(net, torch.randn(5, 4, dtype=torch.float64))
    assert names == []


@needs_compiler
@pytest.mark.parametrize("opts", [VARIANTS[0], VARIANTS[1]], ids=["psilon", "standard"])
def test_fewer_members_reuse_the_compiled_kernels(opts):
    """Early stopping shrinks the member count K; the compiled kernels are traced with K
    symbolic, so a network with fewer members must run them without recompiling (torch
    keeps parameters' shapes static unless the kernels receive plain tensors)."""
    x = torch.randn(5, 4, dtype=torch.float64)
    for members in (5, 4):  # 5 traces the kernels; 4 (any count > 1) must reuse them
        torch.manual_seed(members)
        net = WeightNormNet(4, 2, width=7, depth=3, members=members, **opts).double()
        net.set_compiled_kernels(True, min_numel=0)
        with torch._dynamo.config.patch(error_on_recompile=members == 4):
            out, grads = _outputs_and_grads(net, x)
        assert all(layer.compiled_kernels for layer in net.layers()), "the compiled path fell back to eager"
        net.set_compiled_kernels(False)
        ref_out, ref_grads = _outputs_and_grads(net, x)
        torch.testing.assert_close(out, ref_out)
        for g, ref in zip(grads, ref_grads):
            torch.testing.assert_close(g, ref)
