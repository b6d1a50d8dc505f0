"""The problem generator: statistics, exact sparsity, seeds, and input validation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psilon.recovery import RecoveryProblems, make_problems


def test_gaussian_entries_have_variance_one_over_m():
    P = make_problems(50, 40, 100, 5, seed=1)
    a = P.A.ravel()  # 200,000 entries
    assert abs(a.mean()) < 5 * np.sqrt(1 / 40 / a.size)
    assert a.var() == pytest.approx(1 / 40, rel=0.02)
    # column norms squared average to 1 (the N(0, 1/M) normalization)
    assert np.mean(np.sum(P.A**2, axis=1)) == pytest.approx(1.0, rel=0.02)


def test_sparsity_magnitudes_and_measurements():
    P = make_problems(30, 20, 60, 7, magnitude_range=(0.5, 1.5), seed=2)
    nnz = np.count_nonzero(P.x_star, axis=1)
    assert np.all(nnz == 7)
    vals = P.x_star[P.x_star != 0]
    assert vals.min() >= 0.5 and vals.max() <= 1.5
    assert vals.mean() == pytest.approx(1.0, abs=0.1)  # U[0.5, 1.5] has mean 1
    np.testing.assert_allclose(P.b, np.einsum("tmn,tn->tm", P.A, P.x_star))
    assert not P.signed


def test_support_is_uniform():
    P = make_problems(400, 5, 20, 4, seed=3)
    freq = np.count_nonzero(P.x_star, axis=0) / 400  # expected 4/20 = 0.2 each
    assert np.all(np.abs(freq - 0.2) < 0.08)


def test_signed_has_both_signs_about_equally():
    P = make_problems(100, 20, 50, 6, signed=True, seed=4)
    vals = P.x_star[P.x_star != 0]
    assert P.signed
    assert 0.4 < np.mean(vals > 0) < 0.6
    assert np.all(np.abs(vals) >= 0.5)


def test_other_magnitude_laws():
    c = make_problems(5, 10, 30, 3, magnitude="constant", magnitude_range=(2.0, 3.0))
    assert set(np.unique(c.x_star[c.x_star != 0])) == {2.0}
    h = make_problems(200, 10, 30, 3, magnitude="halfnormal", seed=5)
    v = h.x_star[h.x_star != 0]
    assert v.mean() == pytest.approx(np.sqrt(2 / np.pi), rel=0.1)


def test_seed_reproducible_and_trials_are_prefix_stable():
    a = make_problems(10, 15, 40, 3, seed=7)
    b = make_problems(3, 15, 40, 3, seed=7)
    c = make_problems(3, 15, 40, 3, seed=8)
    np.testing.assert_array_equal(a.A[:3], b.A)
    np.testing.assert_array_equal(a.x_star[:3], b.x_star)
    assert not np.allclose(b.A, c.A)
    sub = a.subset([1, 4])
    np.testing.assert_array_equal(sub.A, a.A[[1, 4]])


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(1, 4),
    M=st.integers(1, 12),
    N=st.integers(1, 30),
    data=st.data(),
    signed=st.booleans(),
)
def test_shapes_and_exact_sparsity_property(T, M, N, data, signed):
    s = data.draw(st.integers(1, N))
    P = make_problems(T, M, N, s, signed=signed, seed=data.draw(st.integers(0, 10**6)))
    assert P.A.shape == (T, M, N) and P.b.shape == (T, M) and P.x_star.shape == (T, N)
    assert np.all(np.count_nonzero(P.x_star, axis=1) == s)
    assert P.A.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_trials=2, n_measurements=5, n_features=10, sparsity=11), "s=11 exceeds the dimension N=10"),
        (dict(n_trials=0), "n_trials must be >= 1"),
        (dict(sparsity=0), "sparsity must be >= 1"),
        (dict(magnitude="lognormal"), "magnitude must be one of"),
        (dict(magnitude_range=(1.0, 0.5)), "0 < lo <= hi"),
        (dict(n_features=10.5), "n_features must be an integer"),
    ],
)
def test_bad_generator_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_problems(**kwargs)


def test_from_arrays_validates_shapes():
    A = np.ones((2, 3, 5))
    with pytest.raises(ValueError, match=r"b has shape \(2, 4\).*must be \(trials, M\) = \(2, 3\)"):
        RecoveryProblems.from_arrays(A, np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"x_star has shape \(2, 4\)"):
        RecoveryProblems.from_arrays(A, np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="b must be a vector of length 3"):
        RecoveryProblems.from_arrays(np.ones((3, 5)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="pass signed=True"):
        RecoveryProblems.from_arrays(np.ones((3, 5)), np.ones(3), -np.ones(5), signed=False)
    with pytest.raises(ValueError, match="must have shape"):
        RecoveryProblems.from_arrays(np.ones(5), np.ones(5))
    one = RecoveryProblems.from_arrays(np.ones((3, 5)), np.ones(3), -np.ones(5))
    assert one.A.shape == (1, 3, 5) and one.signed
