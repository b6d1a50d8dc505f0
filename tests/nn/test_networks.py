"""psilon.nn: shapes, members, initialization, normalization and input validation."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from psilon.nn import (
    CReLULinear,
    NormalizedLinear,
    PSiLONNet,
    PSiLONResNet,
    StandardNet,
    WeightNormNet,
    stack_members,
)

CLASSES = [PSiLONNet, PSiLONResNet, StandardNet]


def _randomize(net: WeightNormNet, seed: int = 0) -> WeightNormNet:
    """Random lengths (both signs) and biases so that tests don't sit at the init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in net.layers():
            layer.length.copy_(torch.rand(layer.length.shape, generator=gen) * 2 - 1)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen) * 0.1)
    return net


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("members", [None, 1, 3])
def test_output_shapes(cls, members):
    net = cls(7, 3, width=11, depth=4, members=members)
    x = torch.randn(5, 7)
    y = net(x)
    if members is None:
        assert y.shape == (5, 3)
        assert net.regularizer().shape == ()
    else:
        assert y.shape == (members, 5, 3)
        assert net.regularizer().shape == (members,)
        assert net(torch.randn(members, 5, 7)).shape == (members, 5, 3)


@settings(max_examples=20, deadline=None)
@given(
    cls=st.sampled_from(CLASSES),
    k=st.integers(1, 4),
    width=st.integers(1, 9),
    depth=st.integers(2, 5),
    seed=st.integers(0, 10_000),
)
def test_members_equal_separate_networks(cls, k, width, depth, seed):
    torch.manual_seed(seed)
    singles = [_randomize(cls(4, 2, width=width, depth=depth), seed + i) for i in range(k)]
    stacked = stack_members(singles)
    x = torch.randn(6, 4)
    xs = torch.randn(k, 6, 4)
    y_shared, y_each = stacked(x), stacked(xs)
    for i, net in enumerate(singles):
        torch.testing.assert_close(y_shared[i], net(x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(y_each[i], net(xs[i]), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(stacked.regularizer()[i], net.regularizer(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(stacked.member(i)(x), net(x), rtol=0, atol=0)


def test_member_copy_is_independent():
    net = PSiLONNet(3, 1, width=4, members=2)
    single = net.member(1)
    with torch.no_grad():
        single.embed.length.fill_(5.0)
    assert float(net.embed.length[1, 0].detach()) == 1.0


@pytest.mark.parametrize("cls", [PSiLONNet, PSiLONResNet])
def test_shared_l1_rows_have_norm_g(cls):
    net = _randomize(cls(5, 2, width=8, depth=4, members=2))
    for layer in net.layers():
        row_l1 = layer.abs_weight().sum(-1)  # (K, out); W~ rows for CReLU layers
        expected = layer.length.abs().expand_as(row_l1)
        torch.testing.assert_close(row_l1, expected, rtol=1e-5, atol=1e-6)


def test_l2_per_neuron_rows():
    net = _randomize(StandardNet(5, 2, width=8, depth=3))
    for layer in net.layers():
        norms = torch.linalg.vector_norm(layer.weight(), dim=-1)
        torch.testing.assert_close(norms, layer.length.abs(), rtol=1e-5, atol=1e-6)


def test_negative_length_flips_sign():
    layer = NormalizedLinear(4, 3, shared=True)
    w = layer.weight().detach().clone()
    with torch.no_grad():
        layer.length.fill_(-1.0)
    torch.testing.assert_close(layer.weight().detach(), -w)


def test_init_matches_paper():
    net = PSiLONResNet(6, 2, width=10, depth=5)
    x = torch.randn(8, 6)
    # blocks start as the identity (length 0), with W+ = W- (looks linear)
    z = net.embed(x.unsqueeze(0))
    for block in net.hidden:
        assert float(block.length.detach().abs().max()) == 0.0
        torch.testing.assert_close(block(z), block.bias.unsqueeze(1).expand_as(z))
        plus, minus = block.weight_pair()
        torch.testing.assert_close(plus, minus)
    # orthogonal directions, unit lengths, zero biases
    v = net.embed.direction[0]  # (10, 6): orthonormal columns
    torch.testing.assert_close(v.T @ v, torch.eye(6), atol=1e-5, rtol=0)
    v = net.hidden[0].direction[0, :, :10]  # square: orthogonal matrix
    torch.testing.assert_close(v @ v.T, torch.eye(10), atol=1e-5, rtol=0)
    assert torch.all(net.embed.length == 1) and torch.all(net.embed.bias == 0)


def test_crelu_layer_matches_definition():
    torch.manual_seed(1)
    layer = CReLULinear(5, 3, tied_init=False)
    with torch.no_grad():
        layer.bias.normal_()
    z = torch.randn(1, 7, 5)
    plus, minus = layer.weight_pair()
    expected = torch.relu(z) @ plus[0].T + (-torch.relu(-z)) @ minus[0].T + layer.bias[0]
    torch.testing.assert_close(layer(z), expected)


def test_resnet_forward_matches_definition():
    torch.manual_seed(2)
    net = _randomize(PSiLONResNet(4, 2, width=6, depth=4))
    x = torch.randn(9, 4)
    w1 = net.embed.weight()[0]
    z = x @ w1.T + net.embed.bias[0]
    for block in net.hidden:
        p, m = block.weight_pair()
        z = z + torch.relu(z) @ p[0].T - torch.relu(-z) @ m[0].T + block.bias[0]
    p, m = net.head.weight_pair()
    out = torch.relu(z) @ p[0].T - torch.relu(-z) @ m[0].T + net.head.bias[0]
    torch.testing.assert_close(net(x), out)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(width=0), "width must be a positive integer"),
        (dict(depth=1), "depth must be an integer >= 2"),
        (dict(members=0), "members must be a positive integer"),
        (dict(norm="l3"), "norm must be one of"),
        (dict(architecture="cnn"), "architecture must be one of"),
        (dict(penalty="l2"), "penalty must be one of"),
        (dict(bound="loose"), "bound must be one of"),
    ],
)
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WeightNormNet(3, 1, **kwargs)


@pytest.mark.parametrize("members", [None, 2])
def test_bad_inputs(members):
    net = PSiLONNet(3, 1, width=4, members=members)
    with pytest.raises(ValueError, match="input has 4 features, but the network was built with in_features=3"):
        net(torch.randn(5, 4))
    for bad in (float("nan"), float("inf")):
        x = torch.randn(5, 3)
        x[2, 1] = bad
        with pytest.raises(ValueError, match="NaN or inf"):
            net(x)
    with pytest.raises(ValueError, match="must be \\(batch, 3\\)"):
        net(torch.randn(3))
    if members is None:
        with pytest.raises(ValueError, match="members=None"):
            net(torch.randn(1, 5, 3))
    else:
        with pytest.raises(ValueError, match="one batch per member"):
            net(torch.randn(3, 5, 3))


def test_stack_members_rejects_mismatch():
    with pytest.raises(ValueError, match="config"):
        stack_members([PSiLONNet(3, 1, width=4), PSiLONNet(3, 1, width=5)])
    with pytest.raises(ValueError, match="at least one"):
        stack_members([])


class _Penalty(torch.nn.Module):
    """Wraps ``net.regularizer()`` as a forward pass, for ``functional_call``."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self):
        return self.inner.regularizer()


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("arch", ["mlp", "resnet"])
def test_regularizer_gradient_matches_finite_differences(cls, arch):
    torch.manual_seed(3)
    net = _randomize(cls(3, 2, width=4, depth=4, members=2, architecture=arch)).double()
    wrapper = _Penalty(net)
    names = [f"inner.{n}" for n, _ in net.named_parameters()]

    def penalty(*values):
        return torch.func.functional_call(wrapper, dict(zip(names, values)), ())

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in net.parameters())
    assert torch.autograd.gradcheck(penalty, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


VARIANTS = [
    dict(architecture="mlp"),
    dict(architecture="mlp", norm="l2", shared=False),
    dict(architecture="resnet"),
    dict(architecture="resnet", norm="l2", shared=False),
]


@pytest.mark.parametrize("opts", VARIANTS)
def test_forward_gradient_matches_finite_differences(opts):
    """The hand-written backward of the normalization against finite differences."""
    torch.manual_seed(4)
    net = _randomize(WeightNormNet(3, 2, width=4, depth=3, members=2, **opts)).double()
    with torch.no_grad():
        for layer in net.layers():
            layer.direction.normal_()  # untie W+ / W- and leave the init
    x = torch.randn(5, 3, dtype=torch.float64)
    names = list(dict(net.named_parameters()))

    def out(*values):
        return torch.func.functional_call(net, dict(zip(names, values)), (x,))

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in net.parameters())
    assert torch.autograd.gradcheck(out, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def _reference_weight(layer):
    """``g * v / ||v||`` (or ``||W~||`` for CReLU pairs) written with plain autograd ops."""
    v = layer.direction
    p = 1 if layer.norm == "l1" else 2
    if isinstance(layer, CReLULinear):
        h = layer.in_features
        rows = torch.maximum(v[..., :h].abs(), v[..., h:].abs())
    else:
        rows = v
    return layer.length.unsqueeze(-1) * v / rows.norm(p=p, dim=-1, keepdim=True)


@settings(max_examples=25, deadline=None)
@given(opts=st.sampled_from(VARIANTS), seed=st.integers(0, 10_000))
def test_normalization_backward_equals_autograd_formula(opts, seed):
    torch.manual_seed(seed)
    net = _randomize(WeightNormNet(3, 2, width=5, depth=3, **opts), seed).double()
    for layer in net.layers():
        with torch.no_grad():
            layer.direction.normal_()
        g_out = torch.randn(layer.direction.shape, dtype=torch.float64)
        params = [layer.direction, layer.length]
        fast = torch.autograd.grad((layer.weight() * g_out).sum(), params)
        slow = torch.autograd.grad((_reference_weight(layer) * g_out).sum(), params)
        torch.testing.assert_close(layer.weight(), _reference_weight(layer), rtol=1e-12, atol=1e-14)
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shape=st.sampled_from([(1,), (3, 4), (2, 5, 3)]))
def test_crelu_equals_relu_pair_with_gradients(seed, shape):
    """``crelu`` (one buffer, one ``where`` backward) equals ``cat([relu(z), -relu(-z)])``."""
    from psilon.nn import crelu

    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=gen, dtype=torch.float64)
    z.view(-1)[0] = 0.0  # an exact zero: the pair's kink
    g = torch.randn(*shape[:-1], 2 * shape[-1], generator=gen, dtype=torch.float64)
    a = z.clone().requires_grad_(True)
    b = z.clone().requires_grad_(True)
    fast = crelu(a)
    slow = torch.cat([torch.relu(b), -torch.relu(-b)], dim=-1)
    assert torch.equal(fast, slow)
    (fast * g).sum().backward()
    (slow * g).sum().backward()
    nonzero = z != 0
    # (g+ - g-) + g- rounds: equal to the last bits
    torch.testing.assert_close(a.grad[nonzero], b.grad[nonzero], rtol=1e-15, atol=1e-15)
    # at z = 0 the pair has a kink: crelu takes the derivative from below (the W- half)
    h = shape[-1]
    torch.testing.assert_close(a.grad[~nonzero], g[..., h:][~nonzero], rtol=1e-15, atol=1e-15)
    assert torch.autograd.gradcheck(crelu, (torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_(True),))
