"""Argument checks shared by every layer of psilon: one validator per concept.

They live in the lowest layer (``psilon.nn``) so that every other layer can use them
without an upward import. Each check is called once, at a public boundary (a module
constructor, :func:`psilon.train.train_members`, an estimator's ``fit``); the code
behind that boundary trusts its inputs. Every check returns the normalized value and
raises a ``ValueError`` whose message names the argument, what was given and what is
allowed. ``owner`` (e.g. ``"PSiLONRegressor"``) prefixes the message when given.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

__all__ = [
    "check_bool",
    "check_choice",
    "check_fraction",
    "check_int",
    "check_lambdas",
    "check_positive_float",
]


def _prefix(owner: str | None) -> str:
    return f"{owner}: " if owner else ""


def check_int(name: str, value, *, low: int = 1, owner: str | None = None) -> int:
    """``value`` as an ``int >= low``; any :class:`numbers.Integral` (numpy integers too) but not bool."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{_prefix(owner)}{name} must be {what}, got {value!r}")
    return int(value)


def check_choice(name: str, value, allowed, *, owner: str | None = None):
    """``value`` if it is one of ``allowed`` (compared with ``==``, strings only match strings)."""
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise ValueError(f"{_prefix(owner)}{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_bool(name: str, value, *, owner: str | None = None) -> bool:
    """``value`` as a bool; only ``True``/``False`` (numpy booleans too), never a truthy string."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{_prefix(owner)}{name} must be True or False, got {value!r}")
    return bool(value)


def check_positive_float(name: str, value, *, owner: str | None = None) -> float:
    """``value`` as a positive finite float (numbers only, not bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{_prefix(owner)}{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_fraction(name: str, value, *, owner: str | None = None) -> float:
    """``value`` as a float in the open interval (0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) or not 0 < value < 1:
        raise ValueError(f"{_prefix(owner)}{name} must be in (0, 1), got {value!r}")
    return float(value)


def check_lambdas(lambdas, *, owner: str | None = None) -> np.ndarray:
    """Regularization strengths as a 1-d float array of positive finite values (a float gives one)."""
    try:
        grid = np.atleast_1d(np.asarray(lambdas, dtype=float)).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(
            f"{_prefix(owner)}lambdas must be a positive number or a sequence of them, got {lambdas!r}"
        ) from None
    if grid.size == 0:
        raise ValueError(f"{_prefix(owner)}lambdas is empty: give at least one positive value")
    if not (np.all(np.isfinite(grid)) and np.all(grid > 0)):
        raise ValueError(f"{_prefix(owner)}lambdas must be positive finite numbers, got {grid.tolist()}")
    return grid
