""":func:`train_members`: the public entry of the training engine.

It checks its arguments once (scalars here, data in :func:`~psilon.train.data.prepare_data`),
assembles the loop's parts (tracker, callbacks) and returns a :class:`TrainResult`.

Validation. Every ``eval_every`` steps (and after the last step) each member's mean
validation data loss is computed (MSE, binary or multiclass log loss). ``restore='best'``
keeps each member's state with the lowest validation loss, ``'final'`` the last state.
``patience=p`` stops a member after ``p`` evaluations without improvement (its best
state is kept) and it leaves the stacked computation, which gets cheaper.

Pruning. ``prune_steps=n`` runs the pruning schedule of the modules (P1.5) over the
**last n of the max_steps steps**. The final, exactly sparse state is kept, so pruning
requires ``restore='final'`` and no ``patience``.

Failure. A member whose loss becomes NaN or inf is stopped (masked out of the
objective, never selected). So is a member whose training loss *ran away*: its final
training data loss is more than twice both its initial one and the constant predictor's
(``failure_check``). Both are reported in :attr:`TrainResult.diverged` and by a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from psilon.nn import WeightNormNet
from psilon.nn.checks import check_bool, check_choice, check_int, check_lambdas, check_positive_float

from .callbacks import Callback, Progress, Projection, Pruning
from .data import prepare_data, trivial_loss
from .loop import TrainLoop
from .runtime import resolve_device
from .tracker import MemberTracker

if TYPE_CHECKING:  # checkpoint.py imports this module
    from .checkpoint import RunCheckpoint

__all__ = ["COMPILE_MIN_STEPS", "TrainOptions", "TrainResult", "train_members"]

RESTORE = ("final", "best")
#: ``compile='auto'`` compiles the normalization kernels only for fits at least this long
#: (the one-time compilation costs ~7 s; the fused kernels save ~5% of a wide step).
COMPILE_MIN_STEPS = 2000


@dataclass
class TrainResult:
    """What :func:`train_members` / :func:`~psilon.train.lambda_path` return.

    Attributes:
        net: the trained network, every member holding its kept state (best or final),
            in eval mode. Diverged members hold whatever they had: never use them.
        lambdas: ``(K,)`` lambda of each member.
        folds: ``(K,)`` fold of each member (``-1`` when members are not folds).
        status: per member ``'ok'``, ``'early_stopped'``, ``'halved'`` or ``'diverged'``.
        kept_step: ``(K,)`` number of steps done when the kept state was reached.
        val_loss: ``(K,)`` validation loss of the kept state (NaN without validation
            data or for a diverged member).
        history: long DataFrame, one row per evaluation and member: ``step``, ``member``,
            ``lambda``, ``fold``, ``train_loss`` (mean objective since the previous
            evaluation), ``val_loss``.
        diverged: one dict per failed member: ``member``, ``lambda``, ``fold``, ``step``.
        steps: number of optimizer steps done.
        member_steps: total of the steps each member was trained (the work done).
    """

    net: WeightNormNet
    lambdas: np.ndarray
    folds: np.ndarray
    status: list[str]
    kept_step: np.ndarray
    val_loss: np.ndarray
    history: pd.DataFrame
    diverged: list[dict] = field(default_factory=list)
    steps: int = 0
    member_steps: int = 0


@dataclass
class TrainOptions:
    """The recipe of a run: every option of :func:`train_members` but the data and lambdas.

    Attributes:
        max_steps: number of optimizer steps (>= 1).
        batch_size: minibatch size (capped at the smallest training set).
        learning_rate, warmup, div_factor, final_div_factor: the one-cycle schedule, see
            :func:`~psilon.train.one_cycle_lr`.
        lr_step_every: the schedule advances once every this many steps (the reference
            code steps it once per epoch of 5 batches); 1 = every step.
        length_lr_scale: the lengths' learning rate relative to ``learning_rate``.
        eval_every: steps between validations (default ``max(1, max_steps // 100)``).
        restore: ``'final'`` or ``'best'`` state per member (``'best'`` needs validation).
        patience: evaluations without improvement before a member stops (needs
            validation); ``None`` disables early stopping.
        prune_steps: length of the pruning phase at the end (0 = no pruning).
        projected: projected gradient: directions projected onto the unit L1 sphere
            before every step (L1 networks only).
        seed: seed of the batch streams (initial weights are the caller's).
        verbose: show a tqdm progress bar over steps.
        device: where to train (``None``: the network's device; ``'auto'``: CUDA when
            available). The network is moved there and stays there.
        compile: ``'auto'`` compiles the normalization kernels of wide layers for fits of
            at least :data:`COMPILE_MIN_STEPS` steps; ``True``/``False`` force it.
        shrink: drop finished members from the stacked computation.
        monitor: what the best state (``restore='best'``) and ``patience`` compare:
            ``'data'``, the validation data loss, or ``'objective'``, the validation data
            loss plus ``lambda`` times the member's regularizer (the member's own training
            criterion). The kept ``val_loss`` is the data loss either way.
        failure_check: also fail members whose training loss ran away (module docstring).
    """

    max_steps: int = 5000
    batch_size: int = 400
    learning_rate: float = 2e-3
    warmup: float = 0.2
    div_factor: float = 20.0
    final_div_factor: float = 1e4
    lr_step_every: int = 1
    length_lr_scale: float = 1.0
    eval_every: int | None = None
    restore: str = "final"
    patience: int | None = None
    prune_steps: int = 0
    projected: bool = False
    seed: int = 0
    verbose: bool = False
    device: object = None
    compile: object = "auto"
    shrink: bool = True
    failure_check: bool = True
    monitor: str = "data"

    @classmethod
    def from_kwargs(cls, kwargs: dict) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"train_members got unknown option(s) {unknown}; the options are {sorted(known)}")
        return cls(**kwargs).checked()

    def checked(self) -> TrainOptions:
        """Validate every option once (values normalized in place); returns ``self``."""
        self.max_steps = check_int("max_steps", self.max_steps)
        self.batch_size = check_int("batch_size", self.batch_size)
        self.learning_rate = check_positive_float("learning_rate", self.learning_rate)
        self.lr_step_every = check_int("lr_step_every", self.lr_step_every)
        self.length_lr_scale = check_positive_float("length_lr_scale", self.length_lr_scale)
        check_choice("restore", self.restore, RESTORE)
        if self.patience is not None:
            self.patience = check_int("patience", self.patience)
        self.prune_steps = check_int("prune_steps", self.prune_steps or 0, low=0)
        if self.prune_steps > self.max_steps:
            raise ValueError(f"prune_steps must be in [0, max_steps={self.max_steps}], got {self.prune_steps}")
        if self.prune_steps and (self.restore != "final" or self.patience is not None):
            raise ValueError(
                "pruning keeps the final (exactly sparse) state: use restore='final' and patience=None with prune_steps"
            )
        self.eval_every = (max(1, self.max_steps // 100) if self.eval_every is None
                           else check_int("eval_every", self.eval_every))
        for name in ("projected", "shrink", "failure_check"):
            setattr(self, name, check_bool(name, getattr(self, name)))
        self.verbose = bool(self.verbose)
        check_choice("monitor", self.monitor, ("data", "objective"))
        if isinstance(self.compile, str):
            check_choice("compile", self.compile, ("auto",))
        else:
            check_bool("compile", self.compile)
        return self

    @property
    def compiled(self) -> bool:
        """Whether this run uses the compiled kernels (``'auto'``: long runs only)."""
        return self.max_steps >= COMPILE_MIN_STEPS if isinstance(self.compile, str) else bool(self.compile)

    def schedule(self) -> dict:
        return dict(lr=self.learning_rate, warmup=self.warmup, div_factor=self.div_factor,
                    final_div_factor=self.final_div_factor, every=self.lr_step_every)

    def callbacks(self, extra) -> list[Callback]:
        cbs: list[Callback] = []
        if self.projected:
            cbs.append(Projection())
        if self.prune_steps:
            cbs.append(Pruning(self.prune_steps))
        cbs.extend(extra or ())
        if self.verbose:
            cbs.append(Progress())
        return cbs


def _member_arrays(net, lambdas, folds) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(net, WeightNormNet):
        raise ValueError(f"net must be a psilon network, got {type(net).__name__}")
    k = net.n_members
    lam = check_lambdas(lambdas)
    if lam.size == 1 and k > 1:
        lam = np.repeat(lam, k)
    if lam.shape != (k,):
        raise ValueError(f"got {lam.size} lambdas for a network with {k} members")
    fold_of = np.full(k, -1) if folds is None else np.asarray(folds, dtype=int).reshape(-1)
    if fold_of.shape != (k,):
        raise ValueError(f"folds must give one fold per member ({k})")
    return lam, fold_of


def train_members(
    net: WeightNormNet,
    X,
    y,
    *,
    lambdas,
    loss: str = "mse",
    train_indices: Sequence | None = None,
    val_data: tuple | None = None,
    val_indices: Sequence | None = None,
    folds: Sequence[int] | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint: RunCheckpoint | None = None,
    **options,
) -> TrainResult:
    """Train the K members of ``net`` at once (one lambda and optionally one row set each).

    Args:
        net: a psilon network; ``members=K`` (or ``None`` for K = 1). Trained in place.
        X: ``(n, in)`` float features (array or tensor; cast to the network's dtype).
        y: targets: ``(n,)`` / ``(n, out)`` floats for ``'mse'``, 0/1 floats ``(n, 1)``
            for ``'bce'``, integer labels ``(n,)`` for ``'ce'``.
        lambdas: one positive lambda per member (a float is used for every member).
        loss: ``'mse'``, ``'bce'`` (binary, logits) or ``'ce'`` (multiclass, logits).
        train_indices: ``None`` (every member trains on all rows) or K row-index arrays.
        val_data: ``(X_val, y_val)`` shared by all members, or ``None``.
        val_indices: K row-index arrays of ``X`` validating each member (CV folds);
            exclusive with ``val_data``.
        folds: optional fold number per member (only reported).
        callbacks: extra :class:`~psilon.train.callbacks.Callback` objects.
        checkpoint: a :class:`~psilon.train.checkpoint.RunCheckpoint`: the run is
            snapshotted as it goes and starts from the snapshot it holds (same result as
            an uninterrupted run). :func:`~psilon.train.lambda_path` makes one from a folder.
        **options: the recipe, see :class:`TrainOptions` (``max_steps``, ``learning_rate``,
            ``restore``, ``patience``, ``prune_steps``, ``device``, ...).

    Returns:
        A :class:`TrainResult`.
    """
    lam, fold_of = _member_arrays(net, lambdas, folds)
    opt = TrainOptions.from_kwargs(options)
    if (opt.restore == "best" or opt.patience is not None) and val_data is None and val_indices is None:
        raise ValueError("restore='best' and patience need validation data (val_data or val_indices)")
    dev = net.embed.direction.device if opt.device is None else resolve_device(opt.device)
    net.to(dev)
    data = prepare_data(net, X, y, loss=loss, train_indices=train_indices, val_data=val_data,
                        val_indices=val_indices, batch_size=opt.batch_size, seed=opt.seed, device=dev)
    params = dict(net.named_parameters())
    tracker = MemberTracker(lam, fold_of, has_val=data.has_val, patience=opt.patience, params=params,
                            keep_best=opt.restore == "best" or opt.patience is not None)
    loop = TrainLoop(net, data, tracker, lambdas=lam, max_steps=opt.max_steps, eval_every=opt.eval_every,
                     schedule=opt.schedule(), callbacks=opt.callbacks(callbacks), shrink=opt.shrink,
                     length_lr_scale=opt.length_lr_scale, compiled=opt.compiled, monitor=opt.monitor,
                     checkpoint=checkpoint)
    loop.run()
    if opt.failure_check:
        tracker.check_runaway(loop.first_data, loop.last_data, trivial_loss(data.y, loss), loop.steps_done)
    kept_step, kept_val = tracker.restore(params, opt.restore, loop.steps_done)
    net.eval()
    return TrainResult(
        net=net, lambdas=lam, folds=fold_of, status=list(tracker.status), kept_step=kept_step, val_loss=kept_val,
        history=tracker.history(), diverged=tracker.diverged, steps=loop.steps_done, member_steps=loop.member_steps,
    )
