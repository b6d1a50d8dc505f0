"""project_directions_: the projected-gradient variant ("Projected PSiLON")."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet, WeightNormNet, project_l1_ball


def _row_l1(layer) -> torch.Tensor:
    """L1 norms of the direction's rows (of W~'s rows for a CReLU pair), ``(K, out)``."""
    v = layer.direction.detach()
    if layer._crelu:
        h = layer.in_features
        v = torch.maximum(v[..., :h].abs(), v[..., h:].abs())
    return v.abs().sum(-1)


def _random(cls, seed, members=2, scale=1.0):
    torch.manual_seed(seed)
    net = cls(5, 2, width=9, depth=4, members=members).double()
    with torch.no_grad():
        for layer in net.layers():
            layer.direction.normal_(0, scale)
            layer.length.uniform_(-1, 1)
            layer.bias.normal_()
    return net


@settings(max_examples=25, deadline=None)
@given(
    cls=st.sampled_from([PSiLONNet, PSiLONResNet]),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([1e-3, 0.05, 1.0, 30.0]),
)
def test_every_row_has_unit_l1_norm_afterwards(cls, seed, scale):
    net = _random(cls, seed, scale=scale)
    assert net.project_directions_() is net
    for layer in net.layers():
        torch.testing.assert_close(_row_l1(layer), torch.ones(layer.members, layer.out_features, dtype=torch.float64))
    before = [layer.direction.detach().clone() for layer in net.layers()]
    net.project_directions_()  # idempotent
    for layer, v in zip(net.layers(), before):
        torch.testing.assert_close(layer.direction.detach(), v, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cls", [PSiLONNet, PSiLONResNet])
def test_rows_inside_the_ball_keep_the_function(cls):
    net = _random(cls, 0, scale=1e-3)  # every row's L1 norm is far below 1
    x = torch.randn(20, 5, dtype=torch.float64)
    with torch.no_grad():
        before = net(x)
        net.project_directions_()
        torch.testing.assert_close(net(x), before, rtol=1e-12, atol=1e-12)


def test_rows_outside_the_ball_are_soft_thresholded():
    net = _random(PSiLONNet, 1, scale=3.0)
    v = net.embed.direction.detach().clone()
    net.project_directions_()
    expected = project_l1_ball(v)  # the Euclidean projection of the raw rows
    torch.testing.assert_close(net.embed.direction.detach(), expected, rtol=1e-12, atol=1e-14)
    assert bool((net.embed.direction == 0).any()), "the projection gives exact zeros"
    # effective weight g * P(v): the row has unit L1 norm, so the normalization is the identity
    torch.testing.assert_close(net.embed.weight().detach(), net.embed.length.detach()[..., None] * expected)


def test_crelu_pair_uses_the_threshold_of_w_tilde():
    net = _random(PSiLONResNet, 2, members=1, scale=3.0)
    block = net.hidden[0]
    v = block.direction.detach().clone()
    h = block.in_features
    tilde = torch.maximum(v[..., :h].abs(), v[..., h:].abs())
    tau = (tilde - project_l1_ball(tilde)).amax(-1, keepdim=True)
    expected = torch.sign(v) * (v.abs() - tau).clamp_min(0)
    net.project_directions_()
    torch.testing.assert_close(block.direction.detach(), expected, rtol=1e-12, atol=1e-14)


def test_zero_rows_stay_zero():
    net = PSiLONNet(3, 1, width=4, depth=2)
    with torch.no_grad():
        net.embed.direction[0, 1] = 0
    net.project_directions_()
    assert torch.all(net.embed.direction[0, 1] == 0)
    assert torch.all(torch.isfinite(net.embed.direction))


def test_needs_l1():
    with pytest.raises(ValueError, match="norm='l1'"):
        StandardNet(3, 1, width=4).project_directions_()
    with pytest.raises(ValueError, match="norm='l1'"):
        WeightNormNet(3, 1, width=4, norm="l2").project_directions_()


@pytest.mark.parametrize("cls", [PSiLONNet, PSiLONResNet])
def test_projected_training_still_reduces_the_loss(cls):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=gen)
    y = 2 * x[:, :1] - x[:, 1:2] + torch.relu(x[:, 2:3]) + 0.1 * torch.randn(256, 1, generator=gen)
    torch.manual_seed(0)
    net = cls(6, 1, width=16, depth=3).project_directions_()

    def loss():
        return 0.5 * torch.nn.functional.mse_loss(net(x), y) + 0.5 * 1e-3 * net.regularizer()

    with torch.no_grad():
        start = float(loss())
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(300):
        opt.zero_grad()
        loss().backward()
        opt.step()
        net.project_directions_()
    with torch.no_grad():
        end = float(loss())
    assert end < 0.5 * start, (start, end)
    for layer in net.layers():
        torch.testing.assert_close(_row_l1(layer).float(), torch.ones(1, layer.out_features))
