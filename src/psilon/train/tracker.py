"""Per-member bookkeeping of a training run: status, best state, patience, history.

The :class:`MemberTracker` is indexed by the *original* member number, whatever subset
of members is still in the working network (finished members leave it, see
:mod:`psilon.train.loop`). Statuses:

* ``'ok'``: trained to the end (or still training);
* ``'early_stopped'``: ``patience`` evaluations without improvement; its best state is kept;
* ``'halved'``: dropped by successive halving (far behind on validation); its best
  state (``restore='best'``) or its state when dropped is kept;
* ``'diverged'``: its loss became NaN/inf, or (``failure_check``) its training loss
  ended far above where it started; never selected.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from torch import Tensor

__all__ = ["MemberTracker"]

#: A training loss below this is never a runaway (a constant target has a trivial loss of 0).
RUNAWAY_FLOOR = 1e-6

HISTORY_COLUMNS = ["step", "member", "lambda", "fold", "train_loss", "val_loss"]


class MemberTracker:
    """Status, best validation state, patience counters and history of K members.

    Args:
        lambdas, folds: ``(K,)`` per member (folds ``-1`` when members are not folds).
        has_val: whether validation losses are computed.
        keep_best: keep a copy of each member's best-validation state.
        patience: evaluations without improvement before a member stops (or None).
        params: the full network's parameters by name (``(K, ...)`` each), to clone.
    """

    def __init__(self, lambdas, folds, *, has_val: bool, keep_best: bool, patience: int | None,
                 params: dict[str, Tensor]) -> None:
        k = len(lambdas)
        self.lambdas = np.asarray(lambdas, dtype=float)
        self.folds = np.asarray(folds, dtype=int)
        self.has_val = has_val
        self.patience = patience
        self.status = ["ok"] * k
        self.best_val = np.full(k, np.inf)  # validation data loss of the best state
        self.best_score = np.full(k, np.inf)  # what early stopping compares (see record)
        self.best_step = np.zeros(k, dtype=int)
        self.since_best = np.zeros(k, dtype=int)
        self.last_val = np.full(k, np.nan)
        self.stop_step = np.zeros(k, dtype=int)
        self.best_state = {nm: p.detach().clone() for nm, p in params.items()} if keep_best else None
        self.records: list[tuple] = []
        self.diverged: list[dict] = []

    # ------------------------------------------------------------------ queries
    def running(self) -> np.ndarray:
        """``(K,)`` bool: members still training."""
        return np.array([s == "ok" for s in self.status])

    # ------------------------------------------------------------------ updates
    def mark_diverged(self, m: int, step: int, why: str = "loss NaN/inf") -> None:
        self.status[m] = "diverged"
        info = {"member": int(m), "lambda": float(self.lambdas[m]), "fold": int(self.folds[m]), "step": int(step)}
        self.diverged.append(info)
        fold = f", fold {info['fold']}" if info["fold"] >= 0 else ""
        warnings.warn(
            f"member {m} (lambda={info['lambda']:g}{fold}) diverged at step {step} ({why}); "
            "it was stopped and is excluded from the results",
            RuntimeWarning,
            stacklevel=5,
        )

    def stop(self, m: int, status: str, done: int) -> None:
        """Stop a running member with ``status`` (``'early_stopped'`` or ``'halved'``)."""
        self.status[m] = status
        self.stop_step[m] = done

    def record(self, done: int, members: np.ndarray, train_mean: np.ndarray, val: np.ndarray,
               params: dict[str, Tensor], score: np.ndarray | None = None) -> None:
        """One evaluation of the working ``members`` (original indices; ``params`` in their order).

        ``val``: validation data losses. ``score``: what the best state and patience compare
        (default ``val``; the loop passes the validation objective with ``monitor='objective'``).
        """
        score = val if score is None else score
        for local, m in enumerate(members):
            if self.status[m] != "ok":
                continue
            if self.has_val and not np.isfinite(val[local]):
                self.mark_diverged(m, done - 1)
                continue
            self.records.append((done, int(m), self.lambdas[m], self.folds[m], train_mean[local], val[local]))
            self.last_val[m] = val[local]
            if self.best_state is None or not self.has_val:
                continue
            if score[local] < self.best_score[m]:
                self.best_score[m], self.best_val[m] = score[local], val[local]
                self.best_step[m], self.since_best[m] = done, 0
                for nm, p in params.items():
                    self.best_state[nm][m].copy_(p.detach()[local])
            else:
                self.since_best[m] += 1
                if self.patience is not None and self.since_best[m] >= self.patience:
                    self.stop(m, "early_stopped", done)

    def check_runaway(self, first: np.ndarray, last: np.ndarray, trivial: float, done: int,
                      factor: float = 2.0) -> None:
        """Fail members whose training data loss ended ``factor`` x above both its start and the trivial model's.

        ``first``/``last``: ``(K,)`` mean data loss of the first and last evaluation windows;
        ``trivial``: the training data loss of the best constant prediction. Such a member
        ran away (learning rate too large) even though its loss stayed finite.
        """
        for m, status in enumerate(self.status):
            if status == "diverged" or not np.isfinite(last[m]):
                continue
            if last[m] > factor * max(first[m], trivial, RUNAWAY_FLOOR):
                self.mark_diverged(
                    m, done - 1,
                    f"runaway: training loss {last[m]:.3g} ended above {factor:g}x both its start {first[m]:.3g} "
                    f"and the constant predictor's {trivial:.3g}; lower the learning rate",
                )

    # ------------------------------------------------------------------ result
    def restore(self, params: dict[str, Tensor], restore: str, steps_done: int) -> tuple[np.ndarray, np.ndarray]:
        """Write the kept state of every member into ``params`` (full network).

        Returns ``(kept_step, kept_val)``.
        """
        k = len(self.status)
        kept_step = np.where(self.stop_step > 0, self.stop_step, steps_done)
        kept_val = self.last_val.astype(float).copy()
        with torch.no_grad():
            for m in range(k):
                status = self.status[m]
                use_best = status == "early_stopped" or (restore == "best" and status in ("ok", "halved"))
                if use_best and self.best_state is not None and np.isfinite(self.best_val[m]):
                    for nm, p in params.items():
                        p[m].copy_(self.best_state[nm][m])
                    kept_step[m], kept_val[m] = self.best_step[m], self.best_val[m]
                if status == "diverged":
                    kept_val[m] = np.nan
        if not self.has_val:
            kept_val[:] = np.nan
        return kept_step, kept_val

    def history(self) -> pd.DataFrame:
        return pd.DataFrame.from_records(self.records, columns=HISTORY_COLUMNS)
