"""Reference solvers: basis pursuit (linear programs), Lasso and orthogonal matching pursuit.

Basis pursuit (the minimal-L1 interpolant) as a linear program solved by HiGHS
(``scipy.optimize.linprog(method="highs")``):

* non-negative: ``min 1^T x  s.t.  A x = b, x >= 0``;
* signed:       ``x = p - q`` with ``min 1^T (p + q)  s.t.  [A, -A] [p; q] = b, p, q >= 0``.

The LP returns a vertex, i.e. a solution supported on at most ``M`` columns. Its accuracy
is limited by the LP tolerances (~1e-7 on the equality constraints), which is too coarse
to compare with WN-GD iterates at the 1e-8 level, so the vertex is *polished*: on the
support ``S`` found by HiGHS, ``x_S`` is recomputed as the least-squares solution of
``A_S x_S = b`` (exact when ``A_S`` has full column rank, which holds for a vertex). The
polish is kept only if it keeps the signs, the constraints, and does not raise the L1 norm
by more than 1e-9 relative; otherwise the raw LP solution is returned.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import linprog

from .problems import RecoveryProblems


def _check_single(A, b):
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"A must be a matrix (M, N), got shape {A.shape}")
    if b.shape != (A.shape[0],):
        raise ValueError(
            f"b has shape {b.shape}, but A has shape {A.shape}: b must have length M = {A.shape[0]}"
        )
    return A, b


def basis_pursuit(A, b, *, nonnegative: bool = True, polish: bool = True) -> np.ndarray:
    """Minimal-L1 solution of ``A x = b`` (optionally with ``x >= 0``) for one problem.

    ``A`` (M, N), ``b`` (M,); returns ``x`` (N,). Raises RuntimeError if the LP is
    infeasible (e.g. no non-negative solution exists) or HiGHS fails.
    """
    A, b = _check_single(A, b)
    M, N = A.shape
    if nonnegative:
        A_eq, c = A, np.ones(N)
    else:
        A_eq, c = np.hstack([A, -A]), np.ones(2 * N)
    out = linprog(c, A_eq=A_eq, b_eq=b, bounds=(0, None), method="highs")
    if out.status != 0:
        raise RuntimeError(f"basis pursuit LP failed (HiGHS status {out.status}): {out.message}")
    z = out.x
    x = z if nonnegative else z[:N] - z[N:]
    if not polish:
        return x
    support = np.flatnonzero(np.abs(x) > 1e-9 * max(1.0, np.abs(x).max()))
    if support.size == 0 or support.size > M:
        return x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xs, *_ = np.linalg.lstsq(A[:, support], b, rcond=None)
    cand = np.zeros(N)
    cand[support] = xs
    same_sign = np.all(np.sign(xs) == np.sign(x[support]))
    feasible = np.linalg.norm(A @ cand - b) <= np.linalg.norm(A @ x - b) + 1e-12
    no_worse = np.abs(cand).sum() <= np.abs(x).sum() * (1 + 1e-9) + 1e-15
    return cand if (same_sign and feasible and no_worse) else x


def basis_pursuit_batch(problems: RecoveryProblems, *, polish: bool = True) -> np.ndarray:
    """Basis pursuit for every trial: ``(T, N)``; non-negative unless ``problems.signed``."""
    return np.stack(
        [
            basis_pursuit(problems.A[i], problems.b[i], nonnegative=not problems.signed, polish=polish)
            for i in range(problems.n_trials)
        ]
    )


def lasso(A, b, lam: float, *, nonnegative: bool = False, max_iter: int = 100_000) -> np.ndarray:
    """Lasso ``argmin (1/(2M)) ||A x - b||^2 + lam ||x||_1`` (scikit-learn, no intercept).

    ``A`` (M, N), ``b`` (M,); returns ``x`` (N,). ``nonnegative`` adds ``x >= 0``.
    """
    from sklearn.linear_model import Lasso

    A, b = _check_single(A, b)
    if not lam > 0:
        raise ValueError(f"lam must be > 0 (use basis_pursuit for lam -> 0), got {lam!r}")
    model = Lasso(alpha=lam, fit_intercept=False, positive=nonnegative, max_iter=max_iter, tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(A, b)
    return model.coef_.copy()


def omp(A, b, n_nonzero: int) -> np.ndarray:
    """Orthogonal matching pursuit with ``n_nonzero`` atoms (scikit-learn, no intercept).

    ``A`` (M, N), ``b`` (M,); returns ``x`` (N,) with at most ``n_nonzero`` non-zeros.
    """
    from sklearn.linear_model import OrthogonalMatchingPursuit

    A, b = _check_single(A, b)
    if not (1 <= int(n_nonzero) <= min(A.shape)):
        raise ValueError(f"n_nonzero must be in [1, min(M, N)] = [1, {min(A.shape)}], got {n_nonzero}")
    model = OrthogonalMatchingPursuit(n_nonzero_coefs=int(n_nonzero), fit_intercept=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(A, b)
    return model.coef_.copy()
