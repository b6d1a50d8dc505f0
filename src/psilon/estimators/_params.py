"""The estimators' hyper-parameters: checked once, at ``fit`` (and ``load``), with :mod:`psilon.nn.checks`.

:func:`check_params` turns the stored parameters (scikit-learn keeps them exactly as given)
into a :class:`FitParams` of plain Python values; the fitting code uses only that.
Integers may be any :class:`numbers.Integral` (numpy integers from a parameter grid too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psilon.nn.checks import check_bool, check_choice, check_fraction, check_int, check_lambdas, check_positive_float
from psilon.train import PAPER_LAMBDAS

__all__ = ["FitParams", "check_params"]

CHOICES = {
    "model": ("psilon", "standard"),
    "architecture": ("mlp", "resnet"),
    "selection": ("holdout", "cv"),
    "restore": ("final", "best"),
}
PRUNE_FRACTION = 0.2  # prune=True: pruning over the last 20% of the steps


@dataclass(frozen=True)
class FitParams:
    """Validated hyper-parameters (see the estimators' docstrings for their meaning)."""

    model: str
    architecture: str
    width: int
    depth: int
    lambdas: np.ndarray
    selection: str
    validation_fraction: float
    cv: int
    max_steps: int | None
    epochs: int | None
    batch_size: int
    learning_rate: float
    eval_every: int | None
    restore: str
    patience: int | None
    prune: bool | int
    verbose: bool

    def n_steps(self, n_train: int) -> int:
        """Optimizer steps: ``max_steps``, or ``epochs`` times the batches per epoch of ``n_train`` rows."""
        if self.epochs is None:
            return self.max_steps
        return self.epochs * max(1, n_train // min(self.batch_size, n_train))

    def prune_steps(self, steps: int) -> int:
        """Length of the final pruning phase of a run of ``steps`` steps (0: no pruning)."""
        if self.prune is True:
            return max(1, int(round(PRUNE_FRACTION * steps)))
        return min(int(self.prune), steps)  # False: 0


def _optional_int(name: str, value, owner: str, low: int = 1) -> int | None:
    return None if value is None else check_int(name, value, low=low, owner=owner)


def _as_choice(name: str, value, owner: str) -> str:
    value = str(value) if isinstance(value, str) else value  # numpy strings from a parameter grid
    return check_choice(name, value, CHOICES[name], owner=owner)


def _check_prune(prune, owner: str) -> bool | int:
    if prune is None:
        return False
    if isinstance(prune, (bool, np.bool_)):
        return check_bool("prune", prune, owner=owner)
    try:
        return check_int("prune", prune, low=0, owner=owner)
    except ValueError:
        raise ValueError(
            f"{owner}: prune must be False, True (last 20% of steps) or a number of steps, got {prune!r}"
        ) from None


def check_params(params: dict, *, owner: str) -> FitParams:
    """Check the estimator parameters ``params`` (``get_params(deep=False)``); ValueError naming the bad one."""
    choices = {name: _as_choice(name, params[name], owner) for name in CHOICES}
    epochs = _optional_int("epochs", params["epochs"], owner)
    prune = _check_prune(params["prune"], owner)
    patience = _optional_int("patience", params["patience"], owner)
    if prune and (choices["restore"] != "final" or patience is not None):
        raise ValueError(
            f"{owner}: prune keeps the final (exactly sparse) state: use restore='final' and patience=None with prune"
        )
    return FitParams(
        **choices,
        width=check_int("width", params["width"], owner=owner),
        depth=check_int("depth", params["depth"], low=2, owner=owner),
        lambdas=check_lambdas(PAPER_LAMBDAS if params["lambdas"] is None else params["lambdas"], owner=owner),
        validation_fraction=check_fraction("validation_fraction", params["validation_fraction"], owner=owner),
        cv=check_int("cv", params["cv"], low=2, owner=owner),
        max_steps=check_int("max_steps", params["max_steps"], owner=owner) if epochs is None else None,
        epochs=epochs,
        batch_size=check_int("batch_size", params["batch_size"], owner=owner),
        learning_rate=check_positive_float("learning_rate", params["learning_rate"], owner=owner),
        eval_every=_optional_int("eval_every", params["eval_every"], owner),
        patience=patience,
        prune=prune,
        verbose=bool(params["verbose"]),
    )
