"""From a :class:`psilon.train.TrainResult` to the estimator's ``path_``, ``history_`` and selected network.

Members are fold-major (member ``f * L + l`` is fold ``f``, lambda ``l``); a lambda's
validation loss is the mean over its folds, and a lambda is out of the selection when any
of its members diverged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from psilon.pathnorm import lipschitz_bound
from psilon.sparsity import compact, near_sparsity

__all__ = ["frozen", "history_frame", "lambda_path_frame", "module_certificates", "used_features"]


def _path_status(ok: np.ndarray, status: np.ndarray) -> list[str]:
    return [
        "diverged" if not o else ("early_stopped" if (s == "early_stopped").any() else "ok")
        for o, s in zip(ok, status.T)
    ]


def lambda_path_frame(
    result, grid: np.ndarray, *, is_cv: bool, output_scale: np.ndarray, owner: str, lipschitz_max: float | None = None
):
    """``(path_, best)``: one row per lambda, the lowest mean validation loss selected; ``best`` its position.

    ``lipschitz_bound`` is scaled by ``output_scale`` (per output; the largest output is
    kept). RuntimeError when every lambda diverged. With ``lipschitz_max`` only the
    lambdas whose ``lipschitz_bound`` is at most the budget are candidates (column
    ``within_budget``); ValueError naming the smallest bound reached when none is.
    """
    k_l = grid.size
    n_folds = result.net.n_members // k_l
    val = result.val_loss.reshape(n_folds, k_l)
    status = np.asarray(result.status, dtype=object).reshape(n_folds, k_l)
    ok = ~(status == "diverged").any(0)
    score = np.where(ok, val.mean(0), np.nan)
    if not np.isfinite(score).any():
        raise RuntimeError(
            f"{owner}: every lambda diverged (loss NaN/inf, or a runaway loss): {result.diverged}; "
            "try a smaller learning_rate or check the inputs"
        )
    with torch.no_grad():
        ns = near_sparsity(result.net)["overall"].reshape(n_folds, k_l).double().numpy().mean(0)
        lip = lipschitz_bound(result.net).double().numpy() * output_scale[None, :]
    lip = lip.max(-1).reshape(n_folds, k_l).mean(0)
    path = pd.DataFrame(
        {
            "val_loss": score,
            "near_sparsity": np.where(ok, ns, np.nan),
            "lipschitz_bound": np.where(ok, lip, np.nan),
            "status": _path_status(ok, status),
            "kept_step": result.kept_step.reshape(n_folds, k_l).min(0),
        },
        index=pd.Index(grid, name="lambda"),
    )
    if is_cv:
        path.insert(1, "val_loss_std", np.where(ok, val.std(0), np.nan))
    if lipschitz_max is not None:
        within = ok & (lip <= lipschitz_max)
        path["within_budget"] = within
        _check_budget(within, lip, ok, grid, lipschitz_max, owner)
        score = np.where(within, score, np.nan)
    best = int(np.nanargmin(score))
    path["selected"] = np.arange(k_l) == best
    return path, best


def _check_budget(within, lip, ok, grid, lipschitz_max: float, owner: str) -> None:
    if within.any():
        return
    i = int(np.nanargmin(np.where(ok, lip, np.nan)))
    raise ValueError(
        f"{owner}: no lambda has a certified Lipschitz bound <= lipschitz_max={lipschitz_max:g}; the smallest "
        f"bound reached is {lip[i]:.4g} (lambda={grid[i]:g}, the largest lambda of the grid is {grid.max():g}). "
        f"Add larger lambdas (stronger path-norm regularization, e.g. lambdas=[..., {10 * grid.max():g}]) "
        "or raise lipschitz_max"
    )


def history_frame(result) -> pd.DataFrame:
    """Validation loss per evaluation step (rows, ``step``) and lambda (columns; mean over folds)."""
    hist = result.history
    if not len(hist):
        return pd.DataFrame(index=pd.Index([], name="step"))
    wide = hist.pivot_table(index="step", columns="lambda", values="val_loss", aggfunc="mean")
    wide.columns = pd.Index(wide.columns.astype(float), name="lambda")
    return wide


def frozen(module):
    """``module`` on the CPU in eval mode without gradients (what the estimators keep as ``module_``)."""
    module = module.cpu()
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def module_certificates(module, output_scale: np.ndarray):
    """``(lipschitz_bound, near_sparsity)`` of one network; the bound in the units of the outputs.

    The bound is a float for one output, an array for several.
    """
    with torch.no_grad():
        lip = lipschitz_bound(module).double().numpy() * output_scale
        sparsity = float(near_sparsity(module)["overall"])
    return (float(lip[0]) if lip.size == 1 else lip), sparsity


def used_features(module, names: np.ndarray) -> np.ndarray:
    """Names of the input features a pruned network still uses."""
    _, features = compact(module)
    return names[np.asarray(features, dtype=int).reshape(-1)]
