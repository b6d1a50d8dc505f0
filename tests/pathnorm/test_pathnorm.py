"""psilon.pathnorm: closed forms vs chains vs brute force, and the certificates."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from psilon import pathnorm as P
from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet, WeightNormNet


def _random_net(arch, width, depth, members, seed, scale=1.0, **opts) -> WeightNormNet:
    torch.manual_seed(seed)
    net = WeightNormNet(4, 2, architecture=arch, width=width, depth=depth, members=members, **opts)
    with torch.no_grad():
        for layer in net.layers():
            layer.length.uniform_(-scale, scale)  # both signs
            layer.bias.normal_(0, 0.1)
            if getattr(layer, "in_features", 0) and arch == "resnet" and layer is not net.embed:
                layer.direction.normal_()  # untie W+ and W- so the halves differ
    return net.double()


net_args = dict(
    width=st.integers(1, 12),
    depth=st.integers(2, 6),
    members=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 100_000),
)


@settings(max_examples=40, deadline=None)
@given(**net_args)
def test_mlp_closed_form_equals_chain(width, depth, members, seed):
    net = _random_net("mlp", width, depth, members, seed)
    closed = P.path_norm_closed_form(net, per_output=True)
    chain = P.path_norm(net, per_output=True)
    torch.testing.assert_close(closed, chain, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(net.regularizer(), chain.sum(-1), rtol=1e-5, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(**net_args)
def test_resnet_improved_closed_form_equals_chain(width, depth, members, seed):
    net = _random_net("resnet", width, depth, members, seed)
    closed = P.improved_bound_closed_form(net, per_output=True)
    chain = P.improved_bound(net, per_output=True)
    torch.testing.assert_close(closed, chain, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(net.regularizer(), chain.sum(-1), rtol=1e-5, atol=1e-12)


def _brute_force_mlp(net: WeightNormNet, include_bias: bool) -> torch.Tensor:
    """Sum over every input-output path (and bias-started path) of |weights|, by enumeration."""
    ws = [layer.weight()[0].detach() for layer in net.layers()]
    bs = [layer.bias[0].detach() for layer in net.layers()]
    out = torch.zeros(net.out_features, dtype=ws[0].dtype)
    for start in range(len(ws)):  # start=0: paths from inputs; start=l>0: from bias of layer l-1
        if start > 0 and not include_bias:
            break
        first_dim = ws[0].shape[1] if start == 0 else ws[start - 1].shape[0]
        dims = [first_dim] + [w.shape[0] for w in ws[start:]]
        for path in itertools.product(*(range(d) for d in dims)):
            prod = 1.0 if start == 0 else abs(float(bs[start - 1][path[0]]))
            for layer, (i, j) in enumerate(zip(path[:-1], path[1:]), start=start):
                prod *= abs(float(ws[layer][j, i]))
            out[path[-1]] += prod
    if include_bias:
        out += bs[-1].abs()
    return out


@pytest.mark.parametrize("include_bias", [False, True])
@pytest.mark.parametrize("opts", [dict(), dict(norm="l2", shared=False)])
def test_mlp_chain_equals_path_enumeration(include_bias, opts):
    net = _random_net("mlp", 3, 4, None, 7, **opts)
    torch.testing.assert_close(
        P.path_norm(net, per_output=True, include_bias=include_bias).detach(),
        _brute_force_mlp(net, include_bias),
        rtol=1e-10,
        atol=1e-12,
    )


def _sampled_ratio(net, n_pairs, seed, spread):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_pairs, net.in_features, generator=gen, dtype=torch.float64) * spread
    y = x + torch.randn(n_pairs, net.in_features, generator=gen, dtype=torch.float64) * spread * torch.rand(
        n_pairs, 1, generator=gen, dtype=torch.float64
    )
    with torch.no_grad():
        fx, fy = net(x), net(y)
    if net.members is not None:
        fx, fy = fx, fy
    return (fx - fy).abs() / (x - y).abs().amax(-1, keepdim=True)


VARIANTS = [
    ("mlp", dict()),
    ("mlp", dict(norm="l2", shared=False)),
    ("mlp", dict(norm="l1", shared=False)),
    ("resnet", dict()),
    ("resnet", dict(norm="l2")),
    ("resnet", dict(shared=False)),
    ("resnet", dict(bound="original")),
]


@settings(max_examples=12, deadline=None)
@given(
    variant=st.sampled_from(VARIANTS),
    width=st.integers(2, 10),
    depth=st.integers(2, 5),
    seed=st.integers(0, 100_000),
    scale=st.sampled_from([0.3, 1.0, 3.0]),
)
def test_certificate_holds_on_10000_pairs(variant, width, depth, seed, scale):
    arch, opts = variant
    net = _random_net(arch, width, depth, None, seed, scale=scale, **opts)
    bound = P.lipschitz_bound(net).detach()  # (out,)
    ratio = _sampled_ratio(net, 10_000, seed, spread=1.0)
    assert torch.all(ratio <= bound * (1 + 1e-9) + 1e-12), (ratio.amax(0), bound)
    lower = P.lipschitz_lower_bound(net, torch.randn(50, 4, dtype=torch.float64), n_pairs=2000)
    assert torch.all(lower <= bound * (1 + 1e-9) + 1e-12)
    if arch == "resnet":
        improved = P.improved_bound(net, per_output=True).detach()
        original = P.original_bound(net, per_output=True).detach()
        assert torch.all(bound <= improved * (1 + 1e-12))
        assert torch.all(improved <= original * (1 + 1e-12))
        assert torch.all(lower <= improved)
    else:
        torch.testing.assert_close(bound, P.path_norm(net, per_output=True).detach())


def test_lower_bound_is_tight_for_a_linear_network():
    # depth-2 network with positive activations everywhere: f is linear, so the
    # gradient bound is attained exactly.
    net = PSiLONNet(3, 1, width=2, depth=2).double()
    with torch.no_grad():
        net.embed.bias.fill_(100.0)
    lower = P.lipschitz_lower_bound(net, torch.zeros(4, 3, dtype=torch.float64), n_pairs=100)
    upper = P.lipschitz_bound(net)
    w = net.head.weight()[0] @ net.embed.weight()[0]
    torch.testing.assert_close(lower, w.abs().sum(-1).detach())
    assert torch.all(lower <= upper + 1e-12)


def test_members_lower_bound_per_member():
    net = _random_net("mlp", 5, 3, 3, 11)
    lower = P.lipschitz_lower_bound(net, torch.randn(20, 4, dtype=torch.float64), n_pairs=500)
    assert lower.shape == (3, 2)
    for k in range(3):
        single = P.lipschitz_lower_bound(net.member(k), torch.randn(20, 4, dtype=torch.float64), n_pairs=500)
        assert single.shape == (2,)
    assert torch.all(lower <= P.lipschitz_bound(net).detach() + 1e-12)


def test_bias_paths_add():
    net = _random_net("resnet", 5, 4, 2, 3)
    assert torch.all(P.path_norm(net, include_bias=True) > P.path_norm(net))


def test_closed_form_exact_during_pruning():
    for arch, fn, chain in [
        ("mlp", P.path_norm_closed_form, P.path_norm),
        ("resnet", P.improved_bound_closed_form, P.improved_bound),
    ]:
        net = _random_net(arch, 8, 4, 2, 5)
        net.start_pruning(4)
        for _ in range(2):
            net.advance_pruning()
        assert 0 < net.prune_alpha < 1
        torch.testing.assert_close(fn(net), chain(net), rtol=1e-6, atol=1e-12)


def test_regularizer_per_configuration():
    std = StandardNet(4, 2, width=5, depth=3)
    expected = sum(layer.length.pow(2).sum() for layer in std.layers())
    torch.testing.assert_close(std.regularizer(), expected)
    orig = PSiLONResNet(4, 2, width=5, depth=3, bound="original")
    torch.testing.assert_close(orig.regularizer(), P.original_bound(orig))
    l2 = PSiLONNet(4, 2, width=5, depth=3, norm="l2")
    torch.testing.assert_close(l2.regularizer(), P.path_norm(l2))


def test_closed_form_errors():
    with pytest.raises(ValueError, match="shared L1"):
        P.path_norm_closed_form(StandardNet(3, 1, width=4))
    with pytest.raises(ValueError, match="for MLPs"):
        P.path_norm_closed_form(PSiLONResNet(3, 1, width=4))
    with pytest.raises(ValueError, match="CReLU ResNets"):
        P.improved_bound(PSiLONNet(3, 1, width=4))
    with pytest.raises(ValueError, match="psilon network"):
        P.path_norm(torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="X must have shape"):
        P.lipschitz_lower_bound(PSiLONNet(3, 1, width=4), torch.randn(5, 2))
