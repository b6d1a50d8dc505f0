"""The certificates' math (issue 14): closed forms against explicit computation, and the
bounds against sampled perturbations (property tests)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from psilon.nn import PSiLONNet, PSiLONResNet
from psilon.pathnorm import (
    feature_path_norms,
    lipschitz_bound,
    pairwise_lipschitz_bound,
    path_norm,
    weighted_lipschitz_bound,
)
from psilon.sparsity import compact

ARCH = {"mlp": PSiLONNet, "resnet": PSiLONResNet}


def _net(arch: str, d: int, out: int, seed: int, depth: int = 3, width: int = 6) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = ARCH[arch](d, out, width=width, depth=depth).double()
    with torch.no_grad():
        for layer in net.layers():  # random lengths and biases: ResNet blocks start at g = 0
            layer.length.uniform_(0.3, 1.5)
            layer.bias.normal_(0, 0.3)
    return net.eval()


nets = st.tuples(st.sampled_from(["mlp", "resnet"]), st.integers(1, 5), st.integers(1, 4), st.integers(0, 10_000),
                 st.integers(2, 4))


@settings(max_examples=30, deadline=None)
@given(nets)
def test_weighted_bound_with_ones_is_lipschitz_bound(spec):
    arch, d, out, seed, depth = spec
    net = _net(arch, d, out, seed, depth)
    with torch.no_grad():
        torch.testing.assert_close(weighted_lipschitz_bound(net), lipschitz_bound(net))
        torch.testing.assert_close(weighted_lipschitz_bound(net, torch.ones(d, dtype=torch.float64)), lipschitz_bound(net))


def test_weighted_bound_of_two_layer_mlp_is_explicit():
    net = _net("mlp", 4, 3, 1, depth=2)
    w = torch.tensor([0.5, 0.0, 2.0, 1.0], dtype=torch.float64)
    W1, W2 = net.embed.weight()[0], net.head.weight()[0]
    with torch.no_grad():
        expected = W2.abs() @ (W1.abs() @ w)
        torch.testing.assert_close(weighted_lipschitz_bound(net, w), expected)
        pair = torch.stack([torch.stack([(W2[i] - W2[j]).abs() @ (W1.abs() @ w) for j in range(3)]) for i in range(3)])
        torch.testing.assert_close(pairwise_lipschitz_bound(net, w), pair)


@settings(max_examples=30, deadline=None)
@given(nets, st.integers(0, 1000))
def test_weighted_bound_holds_for_sampled_perturbations(spec, seed):
    arch, d, out, net_seed, depth = spec
    net = _net(arch, d, out, net_seed, depth)
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(d, generator=gen, dtype=torch.float64) * 2
    w[torch.rand(d, generator=gen) < 0.3] = 0.0  # held-fixed features
    x = torch.randn(64, d, generator=gen, dtype=torch.float64) * 2
    t = torch.rand(64, 1, generator=gen, dtype=torch.float64) * 3
    dx = (2 * torch.rand(64, d, generator=gen, dtype=torch.float64) - 1) * w * t
    with torch.no_grad():
        change = (net(x + dx) - net(x)).abs()
        bound = weighted_lipschitz_bound(net, w)[None, :] * t
        pairs = pairwise_lipschitz_bound(net, w)
        fx, fy = net(x), net(x + dx)
        diff_change = ((fy[:, :, None] - fy[:, None, :]) - (fx[:, :, None] - fx[:, None, :])).abs()
    assert bool((change <= bound * (1 + 1e-9) + 1e-12).all())
    assert bool((diff_change <= pairs[None] * t[:, :, None] * (1 + 1e-9) + 1e-12).all())


@settings(max_examples=30, deadline=None)
@given(nets)
def test_pairwise_bound_is_symmetric_and_below_the_sum(spec):
    arch, d, out, seed, depth = spec
    net = _net(arch, d, out, seed, depth)
    with torch.no_grad():
        pair, single = pairwise_lipschitz_bound(net), lipschitz_bound(net)
    torch.testing.assert_close(pair, pair.T)
    assert bool((pair.diagonal() == 0).all())
    assert bool((pair <= single[:, None] + single[None, :] + 1e-12).all())


@settings(max_examples=30, deadline=None)
@given(nets)
def test_feature_path_norms_are_the_chain_from_unit_vectors(spec):
    arch, d, out, seed, depth = spec
    net = _net(arch, d, out, seed, depth)
    with torch.no_grad():
        per = feature_path_norms(net, per_output=True)
        total = feature_path_norms(net)
        for j in range(d):  # explicit: the chain of path_norm started from e_j
            u = torch.zeros(1, d, dtype=torch.float64)
            u[0, j] = 1
            u = net.embed.path_step(u, "paths")
            for layer in net.hidden:
                u = layer.path_step(u, "paths", skip=arch == "resnet")
            torch.testing.assert_close(per[:, j], net.head.path_step(u, "paths")[0])
        torch.testing.assert_close(total.sum(), path_norm(net))
        torch.testing.assert_close(per.sum(0), total)


@pytest.mark.parametrize("arch", ["mlp", "resnet"])
def test_feature_path_norms_zero_exactly_for_pruned_features(arch):
    net = _net(arch, 6, 2, 3)
    net.start_pruning(1)
    with torch.no_grad():
        net.embed.direction[:, :, [1, 4]] = 0.0  # features pruning removed
    net.finish_pruning()
    with torch.no_grad():
        values = feature_path_norms(net)
        _, kept = compact(net)
    assert values[1].item() == 0.0 and values[4].item() == 0.0
    assert set(kept.tolist()) == set(np.flatnonzero(values.numpy() > 0).tolist())
    torch.testing.assert_close(values.sum(), path_norm(net))


def test_input_weights_are_checked():
    net = _net("mlp", 3, 1, 0)
    with pytest.raises(ValueError, match="shape"):
        weighted_lipschitz_bound(net, torch.ones(4))
    with pytest.raises(ValueError, match="non-negative"):
        pairwise_lipschitz_bound(net, torch.tensor([1.0, -1.0, 0.0]))


@settings(max_examples=30, deadline=None)
@given(nets, st.integers(0, 1000))
def test_certified_radius_holds_for_sampled_perturbations(spec, seed):
    from psilon.estimators._certificates import radii

    arch, d, out, net_seed, depth = spec
    net = _net(arch, d, out, net_seed, depth)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(32, d, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        logits = net(x)
        r = radii(logits.numpy(), lipschitz_bound(net).numpy(), pairwise_lipschitz_bound(net).numpy())
        top = (logits[:, 0] > 0) if out == 1 else logits.argmax(1)
        radius = torch.as_tensor(np.where(np.isfinite(r), r, 1e3))[:, None]
        for _ in range(10):  # random points, and corners, strictly inside the radius
            u = 2 * torch.rand(32, d, generator=gen, dtype=torch.float64) - 1
            for dx in (u, u.sign()):
                moved = net(x + dx * radius * (1 - 1e-9))
                new_top = (moved[:, 0] > 0) if out == 1 else moved.argmax(1)
                keep = torch.as_tensor(r > 0)
                assert bool((new_top[keep] == top[keep]).all())
