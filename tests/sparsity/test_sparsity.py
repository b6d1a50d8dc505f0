"""psilon.sparsity: L1 projection, sparsity measures, pruning schedule, compaction."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet
from psilon.sparsity import compact, exact_sparsity, near_sparsity, project_l1_ball


def _bisection_projection(v: np.ndarray, radius: float) -> np.ndarray:
    """Reference: find tau >= 0 with sum(max(|v| - tau, 0)) = radius by bisection."""
    a = np.abs(v)
    if a.sum() <= radius:
        return v.copy()
    lo, hi = 0.0, float(a.max())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.maximum(a - mid, 0).sum() > radius:
            lo = mid
        else:
            hi = mid
    return np.sign(v) * np.maximum(a - 0.5 * (lo + hi), 0)


@settings(max_examples=200, deadline=None)
@given(
    v=arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 12)),
             elements=st.one_of(st.floats(-5, 5), st.sampled_from([0.0, 1.0, -1.0, 0.5]))),
    radius=st.floats(0.01, 10),
)
def test_projection_matches_reference_and_is_optimal(v, radius):
    p = project_l1_ball(torch.from_numpy(v), radius).numpy()
    for row, prow in zip(v, p):
        ref = _bisection_projection(row, radius)
        np.testing.assert_allclose(prow, ref, atol=1e-9)
        assert np.abs(prow).sum() <= radius * (1 + 1e-12) + 1e-12
        # Variational inequality of the Euclidean projection onto a convex set:
        # (v - p) . (z - p) <= 0 for every z in the ball (check the ball's vertices).
        vertices = np.concatenate([np.eye(row.size), -np.eye(row.size)]) * radius
        assert np.all((vertices - prow) @ (row - prow) <= 1e-9)


def test_projection_edge_cases():
    torch.testing.assert_close(project_l1_ball(torch.zeros(3, 4)), torch.zeros(3, 4))
    torch.testing.assert_close(project_l1_ball(torch.tensor([[3.0]])), torch.tensor([[1.0]]))
    torch.testing.assert_close(project_l1_ball(torch.tensor([-3.0])), torch.tensor([-1.0]))
    # ties: equal magnitudes are treated alike
    torch.testing.assert_close(project_l1_ball(torch.tensor([2.0, -2.0, 2.0, 0.1])),
                               torch.tensor([1 / 3, -1 / 3, 1 / 3, 0.0]))
    with pytest.raises(ValueError, match="radius"):
        project_l1_ball(torch.ones(3), radius=0)
    with pytest.raises(ValueError, match="NaN"):
        project_l1_ball(torch.tensor([1.0, float("nan")]))


def test_near_sparsity_formula():
    net = PSiLONNet(4, 2, width=6, depth=3, members=2)
    ns = near_sparsity(net)
    rows = []
    for layer in net.layers():
        w = layer.weight().detach().abs().numpy()  # (K, out, in)
        p = w / w.sum(-1, keepdims=True)
        h = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(-1)
        rows.append(1 - np.exp(h) / w.shape[-1])
    expected = np.concatenate(rows, axis=-1).mean(-1)
    np.testing.assert_allclose(ns["overall"].numpy(), expected, rtol=1e-5)
    assert set(ns) == {"embed", "hidden1", "head", "overall"}


def test_near_sparsity_extremes():
    net = PSiLONNet(5, 1, width=3, depth=2)
    with torch.no_grad():
        net.embed.direction.fill_(1.0)  # uniform rows: ns = 0
        net.head.direction.zero_()
        net.head.direction[0, 0, 0] = 1.0  # one-hot row: ns = 1 - 1/3
    ns = near_sparsity(net)
    assert float(ns["embed"]) == pytest.approx(0.0, abs=1e-6)
    assert float(ns["head"]) == pytest.approx(1 - 1 / 3, abs=1e-6)
    ex = exact_sparsity(net)
    assert float(ex["head"]) == pytest.approx(2 / 3)
    assert float(ex["embed"]) == 0.0
    assert float(ex["overall"]) == pytest.approx(2 / 18)


def _toy_problem(seed=0, n=256, d=8):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = (2 * x[:, :1] - x[:, 1:2] + torch.relu(x[:, 2:3])) + 0.3 * torch.randn(n, 1, generator=gen)
    return x, y


def _train(net, x, y, steps, lr, lam=1e-3, prune=False):
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * torch.nn.functional.mse_loss(net(x), y) + 0.5 * lam * net.regularizer()
        loss.backward()
        opt.step()
        if prune:
            net.advance_pruning()
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(net(x), y))


@pytest.mark.parametrize("cls", [PSiLONNet, PSiLONResNet])
def test_pruning_gives_exact_zeros_and_keeps_loss(cls):
    torch.manual_seed(0)
    x, y = _toy_problem()
    net = cls(8, 1, width=32, depth=3)
    before = _train(net, x, y, 600, lr=5e-3)
    net.start_pruning(200)
    _train(net, x, y, 200, lr=2e-3, prune=True)
    assert net.prune_alpha == 1.0
    after = _train(net, x, y, 100, lr=1e-3)
    zeros = float(exact_sparsity(net)["overall"])
    assert zeros >= 0.5, zeros
    assert after <= 1.05 * before, (before, after)


@pytest.mark.parametrize("cls", [PSiLONNet, PSiLONResNet])
def test_compact_reproduces_outputs(cls):
    torch.manual_seed(1)
    x, y = _toy_problem(1)
    net = cls(8, 2, width=24, depth=4).double()
    with torch.no_grad():
        for layer in net.layers():
            layer.length.uniform_(-1, 1)
            layer.bias.normal_(0, 0.3)
        # make input features 3 and 6 unused and kill a few neurons
        if cls is PSiLONNet:
            net.embed.direction[0, :, 3] = 0
            net.embed.direction[0, :, 6] = 0
            net.hidden[0].direction[0, :5] = 0  # dead rows: constants folded into biases
            net.head.direction[0, :, 7:10] = 0  # unread neurons
        else:
            net.embed.direction[0, :, 3] = 0
            net.embed.direction[0, :, 6] = 0
    net.finish_pruning()
    c, idx = compact(net)
    xd = torch.randn(100, 8, dtype=torch.float64) * 2
    torch.testing.assert_close(c(xd[:, idx]), net(xd).detach(), rtol=1e-5, atol=1e-5)
    assert 3 not in idx.tolist() and 6 not in idx.tolist()
    n_orig = sum(p.numel() for p in net.parameters()) // (2 if cls is PSiLONResNet else 1)
    if cls is PSiLONNet:
        assert c.widths()[1] < 24 and c.widths()[2] < 24
    assert c.n_parameters() <= sum(p.numel() for p in net.parameters())


def test_compact_errors():
    with pytest.raises(ValueError, match="member"):
        compact(PSiLONNet(3, 1, width=4, members=2))
    c, idx = compact(PSiLONNet(3, 1, width=4))
    with pytest.raises(ValueError, match="feature_indices"):
        c(torch.randn(2, 5))


def test_pruning_needs_l1():
    with pytest.raises(ValueError, match="norm='l1'"):
        StandardNet(3, 1, width=4).start_pruning(10)
    with pytest.raises(RuntimeError, match="start_pruning"):
        PSiLONNet(3, 1, width=4).advance_pruning()
