"""GD and WN-GD: gradients vs finite differences, the batched loop vs single runs,
||v|| along WN-GD, stopping, implicit bias, and input validation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psilon.recovery import (
    RecoveryProblems,
    gd_loss_and_grad,
    make_problems,
    run_gd,
    run_wngd,
    solve,
    wn_loss_and_grad,
)


def _fd(f, z, h=1e-6):
    g = np.zeros_like(z)
    for i in range(z.size):
        e = np.zeros_like(z)
        e[i] = h
        g[i] = (f(z + e) - f(z - e)) / (2 * h)
    return g


@settings(max_examples=30, deadline=None)
@given(
    depth=st.sampled_from([2, 3, 4]),
    signed=st.booleans(),
    seed=st.integers(0, 10**6),
    M=st.integers(1, 6),
    N=st.integers(1, 7),
)
def test_gd_gradient_matches_finite_differences(depth, signed, seed, M, N):
    rng = np.random.default_rng(seed)
    A, b = rng.normal(size=(M, N)), rng.normal(size=M)
    u = rng.uniform(0.2, 1.2, size=2 * N if signed else N)
    _, g = gd_loss_and_grad(A, b, u, depth, signed)
    fd = _fd(lambda z: gd_loss_and_grad(A, b, z, depth, signed)[0], u)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    depth=st.sampled_from([2, 3]),
    signed=st.booleans(),
    seed=st.integers(0, 10**6),
    M=st.integers(1, 6),
    N=st.integers(1, 7),
)
def test_wn_gradients_match_finite_differences(depth, signed, seed, M, N):
    rng = np.random.default_rng(seed)
    A, b = rng.normal(size=(M, N)), rng.normal(size=M)
    P = 2 * N if signed else N
    v = rng.uniform(0.1, 1.0, size=P)
    r = float(rng.uniform(0.5, 2.0))
    _, gr, gv = wn_loss_and_grad(A, b, r, v, depth, signed)
    fd_r = (wn_loss_and_grad(A, b, r + 1e-6, v, depth, signed)[0] - wn_loss_and_grad(A, b, r - 1e-6, v, depth, signed)[0]) / 2e-6
    fd_v = _fd(lambda z: wn_loss_and_grad(A, b, r, z, depth, signed)[0], v)
    assert gr == pytest.approx(fd_r, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(gv, fd_v, rtol=1e-5, atol=1e-6)
    assert abs(gv @ v) <= 1e-9 * (1 + np.abs(gv).sum() * np.abs(v).sum())  # grad_v is orthogonal to v


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("depth", [2, 3])  # depth 2 non-negative takes the solver's fast path
def test_one_solver_step_is_the_tested_gradient_step(signed, depth):
    P = make_problems(2, 8, 12, 2, signed=signed, seed=3)
    lr, eta, alpha = 0.05, 0.3, 0.4
    res = solve(P, ["gd", "wn"], alpha, eta, depth=depth, lr=lr, tol=0.0, max_steps=1)
    Pdim = 24 if signed else 12
    for t in range(2):
        u0 = np.full(Pdim, alpha)
        _, g = gd_loss_and_grad(P.A[t], P.b[t], u0, depth, signed)
        u1 = u0 - lr * g
        x1 = u1[:12] ** depth - u1[12:] ** depth if signed else u1**depth
        np.testing.assert_allclose(res.x[t, 0], x1, rtol=1e-12, atol=1e-15)
        v0, r0 = np.full(Pdim, 1 / np.sqrt(Pdim)), alpha * np.sqrt(Pdim)
        _, gr, gv = wn_loss_and_grad(P.A[t], P.b[t], r0, v0, depth, signed)
        v1, r1 = v0 - lr * gv, r0 - eta * lr * gr
        w = r1 * v1 / np.linalg.norm(v1)
        xw = w[:12] ** depth - w[12:] ** depth if signed else w**depth
        np.testing.assert_allclose(res.x[t, 1], xw, rtol=1e-12, atol=1e-15)
        assert res.radius[t, 1] == pytest.approx(r1)
        assert res.v_norm[t, 1] == pytest.approx(np.linalg.norm(v1))


def test_zero_steps_returns_the_initialization():
    P = make_problems(2, 5, 9, 2, seed=0)
    res = solve(P, ["gd", "wn"], [0.3, 0.3], 0.1, depth=3, max_steps=0, tol=0.0)
    np.testing.assert_allclose(res.x, 0.3**3)
    assert np.all(res.steps == 0) and not res.converged.any()


def test_v_norm_nearly_constant_for_small_steps_and_grows_for_large():
    P = make_problems(3, 20, 40, 3, seed=5)
    small = run_wngd(P, 0.1, 0.1, lr=0.005, tol=0.0, max_steps=3000)
    assert np.all(small.v_norm >= 1.0)
    assert np.all(small.v_norm - 1.0 < 2e-3)
    big = run_wngd(P, 0.1, 0.1, lr=0.2, tol=0.0, max_steps=3000)
    assert np.all(big.v_norm - 1.0 > 10 * (small.v_norm - 1.0))  # discrete steps grow ||v||


def test_batched_run_equals_one_trial_at_a_time_and_compaction_is_transparent():
    P = make_problems(4, 15, 30, 2, seed=11)
    meth, alphas, etas = ["gd", "wn", "wn", "gd"], [0.05, 0.1, 0.3, 0.5], [np.nan, 0.05, 1.0, np.nan]
    kw = dict(lr=0.1, tol=1e-14, max_steps=1500, record_every=250)
    full = solve(P, meth, alphas, etas, **kw)
    plain = solve(P, meth, alphas, etas, compact=False, **kw)
    assert full.converged.any() and not full.converged.all()  # stopping masks are exercised
    for t in range(4):
        for k in range(4):
            one = solve(P.subset(t), meth[k], alphas[k], etas[k], **kw)
            np.testing.assert_allclose(one.x[0, 0], full.x[t, k], rtol=1e-9, atol=1e-13)
            assert one.steps[0, 0] == full.steps[t, k]
            h = one.history_error.shape[0]  # a single run's history ends when it stops
            np.testing.assert_allclose(one.history_error[:, 0, 0], full.history_error[:h, t, k], rtol=1e-8, atol=1e-13)
            np.testing.assert_allclose(full.history_error[h - 1 :, t, k], one.history_error[-1, 0, 0], rtol=1e-8)
    np.testing.assert_array_equal(full.steps, plain.steps)
    np.testing.assert_allclose(full.x, plain.x, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(full.history_loss, plain.history_loss, rtol=1e-10, atol=1e-30)


def test_stopping_by_tolerance_and_budget():
    P = make_problems(3, 20, 40, 3, seed=2)
    res = run_gd(P, [0.1, 0.5], lr=0.1, tol=1e-3, max_steps=20000)
    assert res.converged.all()
    assert np.all(res.loss < 1e-3)
    assert np.all(res.steps < 20000)
    # the stopping iterate is the first one below tol: one step fewer is still above it
    for t in range(3):
        for k, a in enumerate([0.1, 0.5]):
            before = run_gd(P.subset(t), a, lr=0.1, tol=0.0, max_steps=int(res.steps[t, k]) - 1)
            assert before.loss[0, 0] >= 1e-3
    capped = run_gd(P, 0.1, lr=0.1, tol=1e-30, max_steps=50)
    assert not capped.converged.any() and np.all(capped.steps == 50)


def test_wn_gd_finds_the_sparse_solution_where_gd_does_not():
    P = make_problems(5, 40, 100, 5, seed=0)
    res = solve(P, ["gd", "wn"], 0.1, 0.01, lr=0.1, tol=1e-16, max_steps=8000)
    err = res.error(P.x_star)
    assert np.median(err[:, 0]) > 0.05  # GD at alpha = 0.1: far from x*
    assert np.median(err[:, 1]) < 1e-3 * np.median(err[:, 0])
    assert np.all(res.loss[:, 1] < 1e-6)


def test_signed_model_recovers_signed_ground_truth():
    P = make_problems(3, 40, 100, 4, signed=True, seed=1)
    res = run_wngd(P, 0.05, 0.01, lr=0.1, tol=1e-14, max_steps=8000)
    assert np.median(res.error(P.x_star)[:, 0]) < 1e-3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=0.0), "alpha must be > 0"),
        (dict(alpha=-1.0), "alpha must be > 0"),
        (dict(depth=1), "L >= 2"),
        (dict(depth=2.5), "depth L must be an integer"),
        (dict(eta_ratio=0.0), "eta_ratio must be > 0"),
        (dict(method="adam"), "unknown method"),
        (dict(lr=-0.1), "lr must be > 0"),
        (dict(max_steps=-1), "max_steps must be an integer >= 0"),
        (dict(alpha=[0.1, 0.2], eta_ratio=[0.1, 0.2, 0.3]), "must broadcast"),
    ],
)
def test_bad_solver_settings_raise(kwargs, match):
    P = make_problems(1, 5, 10, 2)
    args = dict(method="wn", alpha=0.1, eta_ratio=0.1, max_steps=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        solve(P, args.pop("method"), args.pop("alpha"), args.pop("eta_ratio"), **args)


def test_solver_rejects_raw_arrays_and_gradient_helpers_check_depth():
    with pytest.raises(ValueError, match="RecoveryProblems.from_arrays"):
        solve((np.ones((1, 2, 3)), np.ones((1, 2))))
    with pytest.raises(ValueError, match="L >= 2"):
        gd_loss_and_grad(np.ones((2, 3)), np.ones(2), np.ones(3), depth=1)
    P = RecoveryProblems.from_arrays(np.eye(2, 3), np.ones(2))
    with pytest.raises(ValueError, match=r"x_ref has shape"):
        run_gd(P, 0.1, max_steps=1).error(np.ones((1, 2)))
