"""The lambda path, shaped like scikit-learn's ``lasso_path``: :func:`lambda_path`.

Two modes (``path=``):

* ``'independent'`` (default): one member per lambda (times per CV fold) in a single
  stacked network, every member from the *same* initial weights and the same batches,
  so member k is exactly "this lambda trained alone with this seed".
* ``'warm'``: the reference code's sequential path. The lambdas are trained one after
  the other in the given order, each starting from the previous lambda's final (kept)
  weights with a fresh Adam and schedule; with folds, each fold runs its own path.
  Member k then equals training lambda k from member k-1's weights.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet, WeightNormNet
from psilon.nn.checks import check_choice, check_lambdas
from psilon.nn.init import init_lengths_

from .checkpoint import RunCheckpoint, WarmCheckpoint, fingerprint
from .engine import TrainResult, train_members
from .loop import network_from_state, take_members

__all__ = ["PAPER_LAMBDAS", "build_network", "lambda_path"]

#: The paper's lambda grid (P1.7), smallest to largest.
PAPER_LAMBDAS: tuple[float, ...] = (
    5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1, 2.5e-1, 5e-1,
)

MODELS = ("psilon", "standard")
ARCHITECTURES = ("mlp", "resnet")
PATHS = ("independent", "warm")
#: Ablation options of the network family that :func:`build_network` passes through.
VARIANT_OPTIONS = ("norm", "shared", "penalty", "bound")


def build_network(
    model: str,
    in_features: int,
    out_features: int,
    *,
    architecture: str = "mlp",
    width: int = 500,
    depth: int = 3,
    members: int | None = None,
    seed: int = 0,
    init: str = "paper",
    **variant,
) -> WeightNormNet:
    """A network of the family, initialized from ``seed``; with ``members`` all start equal.

    ``model='psilon'`` gives :class:`~psilon.nn.PSiLONNet` (``architecture='mlp'``) or
    :class:`~psilon.nn.PSiLONResNet` (``'resnet'``); ``'standard'`` the
    :class:`~psilon.nn.StandardNet` baseline with that architecture. ``init``: the
    lengths' scheme of :func:`psilon.nn.init.init_lengths_` (``'paper'``: g = 1).
    ``**variant``: ablation options of :class:`~psilon.nn.WeightNormNet` (``norm``,
    ``shared``, ``penalty``, ``bound``) overriding the model's defaults. One network is initialized; the members are copies of it. The global torch random
    state is not touched.
    """
    check_choice("model", model, MODELS)
    check_choice("architecture", architecture, ARCHITECTURES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        unknown = sorted(set(variant) - set(VARIANT_OPTIONS))
        if unknown:
            raise ValueError(f"unknown network option(s) {unknown}; the variant options are {VARIANT_OPTIONS}")
        kw = dict(width=width, depth=depth, **variant)
        if model == "standard":
            one = StandardNet(in_features, out_features, architecture=architecture, **kw)
        elif architecture == "mlp":
            one = PSiLONNet(in_features, out_features, **kw)
        else:
            one = PSiLONResNet(in_features, out_features, **kw)
    init_lengths_(one, init)
    if members is None:
        return one
    return take_members(one, [0] * int(members))


def _concat(nets: list[WeightNormNet]) -> WeightNormNet:
    """One network whose members are the members of ``nets``, in order."""
    stacked = {name for name, _ in nets[0].named_parameters()}
    states = [n.state_dict() for n in nets]
    state = {name: (torch.cat([s[name] for s in states]) if name in stacked else t.clone())
             for name, t in states[0].items()}
    return network_from_state(nets[0], sum(n.n_members for n in nets), state).eval()


def _merge(results: list[TrainResult], folds: np.ndarray) -> TrainResult:
    history = [r.history.assign(member=i) for i, r in enumerate(results)]
    diverged = [d | {"member": i, "fold": int(folds[i])} for i, r in enumerate(results) for d in r.diverged]
    return TrainResult(
        net=_concat([r.net for r in results]),
        lambdas=np.concatenate([r.lambdas for r in results]),
        folds=folds,
        status=[s for r in results for s in r.status],
        kept_step=np.concatenate([r.kept_step for r in results]),
        val_loss=np.concatenate([r.val_loss for r in results]),
        history=pd.concat(history, ignore_index=True).assign(fold=lambda h: folds[h.member.to_numpy()]),
        diverged=diverged,
        steps=sum(r.steps for r in results),
        member_steps=sum(r.member_steps for r in results),
    )


def _warm(start: WeightNormNet, X, y, grid: np.ndarray, folds, val_data, seed: int, kw: dict,
          checkpoint: WarmCheckpoint | None = None) -> TrainResult:
    """Sequential warm-started path (see the module docstring); with ``checkpoint``, each
    finished lambda is saved and a saved one is loaded instead of trained."""
    runs = [(None, None, -1)] if folds is None else [(f[0], f[1], i) for i, f in enumerate(folds)]
    results, fold_ids = [], []
    for train_rows, val_rows, fold in runs:
        current = start
        for index, lam in enumerate(grid):
            res = None if checkpoint is None else checkpoint.load(fold, index, start)
            if res is None:
                res = train_members(
                    take_members(current, [0]), X, y, lambdas=float(lam), val_data=val_data, seed=seed,
                    train_indices=None if train_rows is None else [train_rows],
                    val_indices=None if val_rows is None else [val_rows], **kw,
                )
                if checkpoint is not None:
                    checkpoint.save(fold, index, res)
            results.append(res)
            fold_ids.append(fold)
            current = res.net
    return _merge(results, np.asarray(fold_ids))


def lambda_path(
    X,
    y,
    *,
    lambdas=PAPER_LAMBDAS,
    loss: str = "mse",
    model: str = "psilon",
    architecture: str = "mlp",
    width: int = 500,
    depth: int = 3,
    out_features: int | None = None,
    folds: Sequence[tuple] | None = None,
    val_data: tuple | None = None,
    seed: int = 0,
    init: str = "paper",
    path: str = "independent",
    network: dict | None = None,
    checkpoint: str | os.PathLike | None = None,
    **train_kwargs,
) -> TrainResult:
    """Train one member per lambda (times per fold): see the module docstring for ``path``.

    Args:
        X, y: training data (see :func:`~psilon.train.train_members`).
        lambdas: positive grid (default :data:`PAPER_LAMBDAS`) or one float; the warm
            path visits them in the given order.
        loss: ``'mse'``, ``'bce'`` or ``'ce'``.
        model, architecture, width, depth, init: see :func:`build_network`.
        out_features: network outputs (default: columns of ``y``; classes for ``'ce'``).
        folds: optional ``[(train_rows, val_rows), ...]``: members become
            ``folds x lambdas`` (fold-major: member ``f * L + l``), validated on their
            fold's rows. Exclusive with ``val_data``.
        val_data: ``(X_val, y_val)`` validating every member.
        seed: initial weights and batch streams.
        path: ``'independent'`` or ``'warm'``.
        network: ablation options of the network (``norm``, ``shared``, ``penalty``,
            ``bound``), see :func:`build_network`.
        checkpoint: a folder for the path's checkpoints. The warm path saves each finished
            lambda there; the independent path snapshots its stacked run every few
            minutes. A later call with the same data and settings loads them and trains
            only the rest, with the same result as an uninterrupted run (see
            :mod:`~psilon.train.checkpoint`). The files stay: delete the folder when done.
        **train_kwargs: passed to :func:`~psilon.train.train_members` (``max_steps``,
            ``batch_size``, ``learning_rate``, ``eval_every``, ``restore``, ``patience``,
            ``prune_steps``, ``device``, ``verbose``, ...).
    """
    grid = check_lambdas(lambdas)
    check_choice("path", path, PATHS)
    X_arr = X if isinstance(X, Tensor) else torch.as_tensor(np.asarray(X, dtype=np.float32))
    if X_arr.dim() != 2:
        raise ValueError(f"X must be 2-d (n, features), got shape {tuple(X_arr.shape)}")
    if out_features is None:
        y_arr = np.asarray(y)
        out_features = int(y_arr.max()) + 1 if loss == "ce" else (1 if y_arr.ndim == 1 else y_arr.shape[1])
    if folds is not None and val_data is not None:
        raise ValueError("pass either folds or val_data, not both")
    n_folds = 1 if folds is None else len(folds)
    kw = dict(loss=loss, **train_kwargs)
    if path == "warm":
        start = build_network(model, X_arr.shape[1], out_features, architecture=architecture, width=width,
                              depth=depth, members=None, seed=seed, init=init, **(network or {}))
        saved = None
        if checkpoint is not None:
            saved = WarmCheckpoint(checkpoint, fingerprint(start, X_arr, y, grid, folds, val_data, seed, kw))
        return _warm(start, X_arr, y, grid, folds, val_data, seed, kw, saved)
    net = build_network(model, X_arr.shape[1], out_features, architecture=architecture, width=width, depth=depth,
                        members=n_folds * grid.size, seed=seed, init=init, **(network or {}))
    member_lambdas = np.tile(grid, n_folds)
    if checkpoint is not None:
        kw["checkpoint"] = RunCheckpoint(
            checkpoint, fingerprint(net, X_arr, y, member_lambdas, folds, val_data, seed, kw, kind="run"))
    if folds is None:
        return train_members(net, X_arr, y, lambdas=member_lambdas, val_data=val_data, seed=seed, **kw)
    return train_members(
        net, X_arr, y, lambdas=member_lambdas, train_indices=[f[0] for f in folds for _ in grid],
        val_indices=[f[1] for f in folds for _ in grid], folds=np.repeat(np.arange(n_folds), grid.size),
        seed=seed, **kw,
    )
