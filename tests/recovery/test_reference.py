"""Basis pursuit (non-negative and signed), Lasso and OMP."""

import numpy as np
import pytest

from psilon.recovery import make_problems
from psilon.recovery.reference import basis_pursuit, basis_pursuit_batch, lasso, omp


@pytest.mark.parametrize("signed", [False, True])
def test_basis_pursuit_recovers_exactly_inside_the_phase_transition(signed):
    # M/N = 0.4, s/M = 0.125: far inside the (signed and non-negative) transition
    P = make_problems(10, 40, 100, 5, signed=signed, seed=3)
    x = basis_pursuit_batch(P)
    assert np.max(np.linalg.norm(x - P.x_star, axis=1) / np.linalg.norm(P.x_star, axis=1)) < 1e-10


@pytest.mark.parametrize("signed", [False, True])
def test_basis_pursuit_is_feasible_and_minimal_beyond_the_transition(signed):
    # s/M = 0.75: recovery fails, but the LP answer is still the minimal-L1 interpolant
    P = make_problems(5, 20, 60, 15, signed=signed, seed=4)
    x = basis_pursuit_batch(P)
    for t in range(5):
        np.testing.assert_allclose(P.A[t] @ x[t], P.b[t], atol=1e-8)
        assert np.abs(x[t]).sum() <= np.abs(P.x_star[t]).sum() + 1e-8
        if not signed:
            assert x[t].min() >= -1e-12
        # any other interpolant (x + null-space direction, kept feasible) is not smaller
        rng = np.random.default_rng(t)
        _, _, Vt = np.linalg.svd(P.A[t])
        for _ in range(20):
            z = x[t] + 1e-3 * Vt[20:].T @ rng.normal(size=40)
            if signed or z.min() >= 0:
                assert np.abs(z).sum() >= np.abs(x[t]).sum() - 1e-9
    assert np.median(np.linalg.norm(x - P.x_star, axis=1)) > 1e-3  # it really is beyond


def test_nonnegative_basis_pursuit_reports_infeasibility():
    A = np.ones((1, 4))
    with pytest.raises(RuntimeError, match="LP failed"):
        basis_pursuit(A, np.array([-1.0]), nonnegative=True)
    x = basis_pursuit(A, np.array([-1.0]), nonnegative=False)
    assert np.abs(x).sum() == pytest.approx(1.0)


def test_omp_and_lasso():
    P = make_problems(1, 40, 100, 5, seed=6)
    A, b, xs = P.A[0], P.b[0], P.x_star[0]
    np.testing.assert_allclose(omp(A, b, 5), xs, atol=1e-10)
    xl = lasso(A, b, 1e-5, nonnegative=True)
    assert np.linalg.norm(xl - xs) < 1e-2
    assert xl.min() >= 0
    big = lasso(A, b, 1e-1)
    assert np.count_nonzero(big) < np.count_nonzero(xl) or np.abs(big).sum() < np.abs(xl).sum()


def test_reference_shape_errors():
    with pytest.raises(ValueError, match="b must have length M = 3"):
        basis_pursuit(np.ones((3, 5)), np.ones(4))
    with pytest.raises(ValueError, match="A must be a matrix"):
        omp(np.ones(5), np.ones(5), 1)
    with pytest.raises(ValueError, match="n_nonzero"):
        omp(np.ones((3, 5)), np.ones(3), 4)
    with pytest.raises(ValueError, match="lam must be > 0"):
        lasso(np.ones((3, 5)), np.ones(3), 0.0)
