"""Random sparse-recovery problems: Gaussian measurements of an s-sparse ground truth.

A batch of ``T`` independent problems (trials) is stored as

* ``A``      ``(T, M, N)`` measurement matrices, entries i.i.d. ``N(0, 1/M)`` (columns have
  unit expected squared norm),
* ``x_star`` ``(T, N)`` ground truths with exactly ``s`` non-zeros on a uniformly random
  support,
* ``b``      ``(T, M)`` noiseless measurements ``b = A x_star``.

Trial ``i`` of ``make_problems(..., seed=k)`` is generated from its own child seed
``SeedSequence(k).spawn(T)[i]``, so it does not depend on how many trials are drawn:
``make_problems(T=20, seed=0)`` and ``make_problems(T=3, seed=0)`` share their first three
problems. That makes a batched run and a one-trial-at-a-time loop directly comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Magnitude distributions of the non-zero entries of ``x_star``.
MAGNITUDES = ("uniform", "constant", "halfnormal")


@dataclass(frozen=True)
class RecoveryProblems:
    """A batch of noiseless sparse-recovery problems ``b = A x_star``.

    Attributes
    ----------
    A : ndarray, shape (T, M, N)
        Measurement matrices (float64).
    b : ndarray, shape (T, M)
        Measurements.
    x_star : ndarray of shape (T, N), or None
        Ground truths (None when the problems were given without one).
    signed : bool
        Whether the ground truth may have negative entries. Selects the model the solvers
        fit: ``x = u**L`` (False) or ``x = u**L - w**L`` (True).
    settings : dict
        How the problems were generated (M, N, s, magnitude law, seed); echoed into every
        figure's output.
    """

    A: np.ndarray
    b: np.ndarray
    x_star: np.ndarray | None = None
    signed: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def n_trials(self) -> int:
        return int(self.A.shape[0])

    @property
    def n_measurements(self) -> int:
        return int(self.A.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.A.shape[2])

    def subset(self, index) -> "RecoveryProblems":
        """The problems selected by ``index`` (an int, slice or index array) along trials."""
        idx = np.atleast_1d(np.arange(self.n_trials)[index])
        return RecoveryProblems(
            A=self.A[idx],
            b=self.b[idx],
            x_star=None if self.x_star is None else self.x_star[idx],
            signed=self.signed,
            settings=dict(self.settings),
        )

    @classmethod
    def from_arrays(cls, A, b, x_star=None, *, signed: bool | None = None) -> "RecoveryProblems":
        """Validate user arrays and wrap them.

        ``A`` may be one matrix ``(M, N)`` (then ``b`` is ``(M,)`` and ``x_star`` ``(N,)``)
        or a batch ``(T, M, N)`` (then ``b`` is ``(T, M)``, ``x_star`` ``(T, N)``).
        ``signed`` defaults to whether ``x_star`` has a negative entry (False without one).
        """
        A = np.asarray(A, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if A.ndim == 2:
            A = A[None]
            if b.ndim != 1:
                raise ValueError(
                    f"A is one matrix of shape {A.shape[1:]}, so b must be a vector of length "
                    f"{A.shape[1]}, but b has shape {b.shape}"
                )
            b = b[None]
            if x_star is not None:
                x_star = np.asarray(x_star, dtype=np.float64)
                if x_star.ndim != 1:
                    raise ValueError(
                        f"A is one matrix, so x_star must be a vector of length {A.shape[2]}, "
                        f"but x_star has shape {x_star.shape}"
                    )
                x_star = x_star[None]
        if A.ndim != 3:
            raise ValueError(
                f"A must have shape (M, N) or (trials, M, N); got {A.ndim} dimensions {A.shape}"
            )
        T, M, N = A.shape
        if T < 1 or M < 1 or N < 1:
            raise ValueError(f"A must be non-empty; got shape {A.shape}")
        if b.shape != (T, M):
            raise ValueError(
                f"b has shape {b.shape}, but A has shape {A.shape}: b must be (trials, M) = "
                f"{(T, M)} (one measurement vector per trial)"
            )
        if x_star is not None:
            x_star = np.asarray(x_star, dtype=np.float64)
            if x_star.shape != (T, N):
                raise ValueError(
                    f"x_star has shape {x_star.shape}, but A has shape {A.shape}: x_star must be "
                    f"(trials, N) = {(T, N)}"
                )
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(b))):
            raise ValueError("A and b must be finite (found NaN or inf)")
        if signed is None:
            signed = bool(x_star is not None and np.any(x_star < 0))
        elif not signed and x_star is not None and np.any(x_star < 0):
            raise ValueError(
                "x_star has negative entries but signed=False: the non-negative model "
                "x = u**L cannot represent it; pass signed=True"
            )
        return cls(A=A, b=b, x_star=x_star, signed=bool(signed), settings={"source": "arrays"})


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def make_problems(
    n_trials: int = 20,
    n_measurements: int = 40,
    n_features: int = 100,
    sparsity: int = 5,
    *,
    signed: bool = False,
    magnitude: str = "uniform",
    magnitude_range: tuple[float, float] = (0.5, 1.5),
    seed: int = 0,
) -> RecoveryProblems:
    """Draw ``n_trials`` independent problems ``b = A x_star``.

    Parameters
    ----------
    n_trials, n_measurements, n_features, sparsity : int
        ``T``, ``M``, ``N`` and ``s`` (``1 <= s <= N``; ``M >= 1``; ``M < N`` is the
        interesting regime but not required).
    signed : bool
        If True each non-zero gets an independent random sign (probability 1/2 each).
    magnitude : {"uniform", "constant", "halfnormal"}
        Law of the non-zero magnitudes: ``U[lo, hi]`` with ``(lo, hi) = magnitude_range``;
        the constant ``lo``; or ``|N(0, 1)|`` (range ignored).
    magnitude_range : (lo, hi)
        ``0 < lo <= hi``.
    seed : int
        Root seed; trial ``i`` uses ``SeedSequence(seed).spawn(n_trials)[i]``.

    Returns
    -------
    RecoveryProblems with ``A`` (T, M, N), ``b`` (T, M), ``x_star`` (T, N).
    """
    T = _check_int("n_trials", n_trials, 1)
    M = _check_int("n_measurements", n_measurements, 1)
    N = _check_int("n_features", n_features, 1)
    s = _check_int("sparsity", sparsity, 1)
    if s > N:
        raise ValueError(
            f"sparsity s={s} exceeds the dimension N={N}: an s-sparse vector in R^N needs "
            f"s <= N; lower sparsity or raise n_features"
        )
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {MAGNITUDES}, got {magnitude!r}")
    lo, hi = (float(v) for v in magnitude_range)
    if not (0 < lo <= hi and np.isfinite(hi)):
        raise ValueError(
            f"magnitude_range must satisfy 0 < lo <= hi < inf, got {magnitude_range!r}"
        )
    A = np.empty((T, M, N))
    x_star = np.zeros((T, N))
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(T)):
        rng = np.random.default_rng(child)
        A[i] = rng.normal(0.0, 1.0 / np.sqrt(M), size=(M, N))
        support = rng.choice(N, size=s, replace=False)
        if magnitude == "uniform":
            mags = rng.uniform(lo, hi, size=s)
        elif magnitude == "constant":
            mags = np.full(s, lo)
        else:
            mags = np.abs(rng.normal(size=s))
        if signed:
            mags = mags * rng.choice(np.array([-1.0, 1.0]), size=s)
        x_star[i, support] = mags
    b = np.einsum("tmn,tn->tm", A, x_star)
    settings = {
        "M": M,
        "N": N,
        "s": s,
        "signed": bool(signed),
        "magnitude": {
            "uniform": f"U[{lo:g},{hi:g}]",
            "constant": f"constant {lo:g}",
            "halfnormal": "|N(0,1)|",
        }[magnitude],
        "A": "N(0,1/M)",
        "seed": int(seed),
        "trials": T,
    }
    return RecoveryProblems(A=A, b=b, x_star=x_star, signed=bool(signed), settings=settings)
