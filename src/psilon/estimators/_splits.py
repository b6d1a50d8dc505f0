"""Which rows train and which validate the lambda path: ``eval_set``, a holdout or CV folds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

__all__ = ["ValidationPlan", "cv_plan", "eval_set_plan", "holdout_plan"]


@dataclass
class ValidationPlan:
    """``train_rows`` train, validated on ``val_data`` ``(Z_val, y_val)``; or ``folds`` (train, val) row pairs."""

    train_rows: np.ndarray
    val_data: tuple | None = None
    folds: list | None = None

    @property
    def n_train(self) -> int:
        """Rows of the smallest training set."""
        return len(self.train_rows) if self.folds is None else min(len(f[0]) for f in self.folds)


def eval_set_plan(n: int, val_data: tuple) -> ValidationPlan:
    """Train on all ``n`` rows, validate on the given data."""
    return ValidationPlan(np.arange(n), val_data=val_data)


def holdout_plan(Z, y_enc, *, fraction: float, stratify, rs, owner: str) -> ValidationPlan:
    """A random ``fraction`` of the rows validates (stratified by ``stratify`` when every class has 2 rows)."""
    n = len(y_enc)
    if n < 2:
        raise ValueError(f"{owner}: selection='holdout' needs at least 2 samples, got {n} sample")
    strat = stratify if stratify is not None and np.bincount(stratify).min() >= 2 else None
    n_val = max(1, int(round(fraction * n)))
    if strat is not None:
        n_val = max(n_val, int(np.unique(strat).size))
    n_val = min(n_val, n - 1)
    try:
        train_rows, val_rows = train_test_split(np.arange(n), test_size=n_val, random_state=rs, stratify=strat)
    except ValueError:
        train_rows, val_rows = train_test_split(np.arange(n), test_size=n_val, random_state=rs)
    return ValidationPlan(train_rows, val_data=(Z[val_rows], y_enc[val_rows]))


def cv_plan(n: int, *, cv: int, stratify, rs, owner: str) -> ValidationPlan:
    """``cv`` shuffled folds (stratified when every class has ``cv`` rows)."""
    if n < cv:
        raise ValueError(f"{owner}: selection='cv' with cv={cv} needs at least {cv} samples")
    if stratify is not None and np.bincount(stratify).min() >= cv:
        splitter = StratifiedKFold(cv, shuffle=True, random_state=rs)
    else:
        splitter = KFold(cv, shuffle=True, random_state=rs)
    folds = list(splitter.split(np.zeros((n, 1)), stratify if stratify is not None else np.zeros(n)))
    return ValidationPlan(np.arange(n), folds=folds)
