"""Small helpers several test modules share (on ``sys.path`` through pytest's ``pythonpath``)."""

from __future__ import annotations

import numpy as np


def regression_data(n: int = 60, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 rows of ``d`` standard normal features and a smooth noisy target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] - 0.5 * X[:, 1] ** 2 + 0.1 * rng.normal(size=n)).astype(np.float32)
    return X, y


def max_state_diff(a, b) -> float:
    """Largest absolute difference between two modules' state dicts (same keys), in float64."""
    sa, sb = a.state_dict(), b.state_dict()
    return max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa)
