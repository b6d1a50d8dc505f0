"""Certificates users can act on: bounds in the units of ``X``, certified radii, prediction
intervals, per-feature path norms and the accuracy-robustness frontier (issue 14).

Scales. The network sees the preprocessed features ``z``. The default preprocessing maps a
numeric column to ``z_j = (x_j / 2**e_j - m_j) / c_j``, an affine map with slope
``1 / s_j``, ``s_j = 2**e_j * c_j``. A perturbation with ``max_j |dx_j| <= r`` (l_inf, in
the units of ``X``) moves ``z_j`` by at most ``r / s_j``, so the certified bound of the
composed map ``x -> f(z(x))`` is the network's path chain started from ``u_0 = w`` with
``w_j = 1 / s_j`` (:func:`psilon.pathnorm.weighted_lipschitz_bound`): the exact path bound
of the network whose first layer's columns are divided by ``s_j``.

Convention for the columns that are not numeric: only numeric columns are perturbed.
One-hot columns of categorical features and the missing-value indicators are held fixed
(``w_j = 0``), and so is a numeric entry that is missing in the row (it is imputed to a
constant; the bound, computed for all numeric columns, covers this as a special case).
``space='standardized'`` instead certifies the network's own input space: every
preprocessed feature may move by ``r`` (the bound is then ``lipschitz_bound_``).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.utils.validation import check_is_fitted

from psilon.estimators._preprocessing import FrozenPreprocessor
from psilon.pathnorm import feature_path_norms, pairwise_lipschitz_bound, weighted_lipschitz_bound

__all__ = [
    "CertificatesMixin",
    "SPACES",
    "certified_radius",
    "module_feature_path_norms",
    "warn_refit_budget",
    "feature_columns",
    "input_weights",
    "output_bound",
    "pair_bounds",
    "plot_frontier",
    "radii",
    "check_eps",
]

SPACES = ("input", "standardized")


def _check_space(space) -> str:
    if not isinstance(space, str) or space not in SPACES:
        raise ValueError(
            f"space must be 'input' (units of X as passed to fit/predict) or 'standardized' "
            f"(the network's preprocessed input space), got {space!r}"
        )
    return space


def _numeric_scales(est) -> np.ndarray | None:
    """Per numeric column ``s_j = 2**e_j * scale_j`` of the default preprocessing; ``None`` if it is not the default."""
    pre = est.preprocessor_
    if isinstance(pre, FrozenPreprocessor):
        num = pre.state["num"]
        if num is None:
            return np.zeros(0)
        return np.ldexp(np.asarray(num["scale"], dtype=float), np.asarray(num["exponent"], dtype=int))
    if isinstance(pre, ColumnTransformer) and est.preprocessor is None:
        for name, pipe, cols in pre.transformers_:
            if name == "num" and len(cols):
                scale = pipe.named_steps["scale"]
                return np.ldexp(np.asarray(scale.scale_, dtype=float), np.asarray(scale.exponent_, dtype=int))
        return np.zeros(0)
    return None


def input_weights(est, space: str) -> np.ndarray:
    """Per preprocessed feature, how far it may move per unit of the perturbation's l_inf norm.

    ``'standardized'``: ones. ``'input'``: ``1 / s_j`` for the numeric columns of the
    default preprocessing (they come first), 0 for indicators and one-hot columns; ones
    without preprocessing (``preprocessor='passthrough'``). A custom preprocessor is not
    an affine map psilon knows: ValueError pointing to ``space='standardized'``.
    """
    check_is_fitted(est, "module_")
    d = est.n_preprocessed_features_
    if _check_space(space) == "standardized" or est.preprocessor_ is None:
        return np.ones(d)
    scales = _numeric_scales(est)
    if scales is None:
        raise ValueError(
            f"{type(est).__name__}: certificates in the units of X (space='input') need the default "
            "preprocessing or preprocessor='passthrough'; with a custom preprocessor use space='standardized' "
            "(the bounds then hold in the preprocessed feature space)"
        )
    w = np.zeros(d)
    w[: scales.size] = 1.0 / scales
    return w


def output_bound(est, space: str) -> np.ndarray:
    """Certified Lipschitz bound per output in the units of the outputs (y / logits) and of ``space``."""
    w = torch.as_tensor(input_weights(est, space), dtype=torch.float64)
    with torch.no_grad():
        bound = weighted_lipschitz_bound(_double(est.module_), w).numpy()
    return bound * est._output_scale()


def pair_bounds(est, space: str) -> np.ndarray:
    """``L_ij`` for the logit differences ``f_i - f_j`` (see :func:`psilon.pathnorm.pairwise_lipschitz_bound`)."""
    w = torch.as_tensor(input_weights(est, space), dtype=torch.float64)
    with torch.no_grad():
        return pairwise_lipschitz_bound(_double(est.module_), w).numpy()


def _double(module):
    """A float64 copy of ``module`` (the predictions are computed in float64 too)."""
    return copy.deepcopy(module).double()


def radii(logits: np.ndarray, bound: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Certified l_inf radius per row of ``logits`` ``(n, out)``.

    One logit (binary): ``|f| / L``. Several: with ``t`` the top logit,
    ``min_{j != t} (f_t - f_j) / L_tj``; a pair with ``L_tj = 0`` (a constant difference)
    never flips. Ties give 0.
    """
    if logits.shape[1] == 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.abs(logits[:, 0]) / bound[0]
        return np.where(np.abs(logits[:, 0]) == 0, 0.0, r)
    top = np.argmax(logits, axis=1)
    margin = logits[np.arange(len(top)), top][:, None] - logits  # (n, out), >= 0
    lip = pairs[top]  # (n, out): L_{top, j}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(lip > 0, margin / lip, np.inf)
    ratio = np.where(margin <= 0, 0.0, ratio)
    ratio[np.arange(len(top)), top] = np.inf
    return ratio.min(axis=1)


def check_eps(eps, n: int) -> np.ndarray:
    """``eps`` as a ``(n,)`` float array of finite non-negative values (a scalar or one per row)."""
    arr = np.asarray(eps, dtype=float)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n):
        raise ValueError(f"eps must be a number or one value per row of X ({n}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    return np.broadcast_to(arr, (n,)).astype(float)


def feature_columns(est) -> np.ndarray:
    """For every preprocessed feature, the name of the user's column it comes from.

    Default preprocessing: numeric columns map to themselves, their missing indicators
    and one-hot columns to the column they encode. ``'passthrough'``: one to one. A
    custom preprocessor: ValueError (psilon does not know its mapping).
    """
    check_is_fitted(est, "module_")
    names_in = [str(c) for c in getattr(est, "feature_names_in_", [f"x{i}" for i in range(est.n_features_in_)])]
    pre = est.preprocessor_
    if pre is None:
        return np.asarray(names_in, dtype=object)
    if isinstance(pre, FrozenPreprocessor):
        num, cat = pre.state["num"], pre.state["cat"]
        parts = []
        if num is not None:
            parts.append((num["positions"], num["indicators"], None))
        if cat is not None:
            parts.append((cat["positions"], None, [len(c) for c in cat["categories"]]))
    elif isinstance(pre, ColumnTransformer) and est.preprocessor is None:
        parts = _fitted_parts(pre, names_in)
    else:
        raise ValueError(
            f"{type(est).__name__}: aggregating to the user's columns needs the default preprocessing or "
            "'passthrough'; use the per-feature values (preprocessed feature names: get_feature_names_out)"
        )
    out = []
    for positions, indicators, n_categories in parts:
        if n_categories is None:
            out += [names_in[p] for p in positions] + [names_in[positions[i]] for i in indicators]
        else:
            for p, n in zip(positions, n_categories):
                out += [names_in[p]] * n
    return np.asarray(out, dtype=object)


def _fitted_parts(ct: ColumnTransformer, names_in: list[str]) -> list:
    """``(positions, indicators, n_categories)`` per part of a fitted default preprocessing."""
    parts = []
    for name, pipe, cols in ct.transformers_:
        if name not in ("num", "cat") or not len(cols):
            continue
        positions = [int(c) if isinstance(c, (int, np.integer)) else names_in.index(str(c)) for c in cols]
        if name == "num":
            imp = pipe.named_steps["impute"]
            indicators = imp.indicator_.features_.tolist() if imp.indicator_ is not None else []
            parts.append((positions, indicators, None))
        else:
            parts.append((positions, None, [len(c) for c in pipe.named_steps["onehot"].categories_]))
    return parts


def plot_frontier(est, ax=None, *, annotate: bool = True):
    """Validation loss against the certified Lipschitz bound, one point per lambda of ``path_``.

    The accuracy-robustness frontier: moving right buys validation loss with a larger
    (weaker) certificate. The selected lambda is highlighted; with ``lipschitz_max`` the
    budget is drawn as a vertical line. Returns the matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    check_is_fitted(est, "path_")
    path = est.path_
    ok = np.isfinite(path["val_loss"].to_numpy()) & np.isfinite(path["lipschitz_bound"].to_numpy())
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    p = path[ok]
    ax.plot(p["lipschitz_bound"], p["val_loss"], "o-", color="tab:blue", label="lambda path")
    sel = p[p["selected"]]
    ax.plot(sel["lipschitz_bound"], sel["val_loss"], "*", ms=14, color="tab:red", label=f"selected (lambda={est.lambda_:g})")
    if annotate:
        for lam, row in p.iterrows():
            ax.annotate(f"{lam:g}", (row["lipschitz_bound"], row["val_loss"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    if getattr(est, "lipschitz_max", None) is not None:
        ax.axvline(est.lipschitz_max, color="gray", ls="--", label=f"lipschitz_max={est.lipschitz_max:g}")
    ax.set_xscale("log")
    # ticks at 1, 2, 5 x 10^k labelled as plain numbers: a path within a decade or two
    # would otherwise get one label or overlapping minor labels
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("certified Lipschitz bound (lipschitz_bound)")
    ax.set_ylabel("validation loss")
    ax.set_title("accuracy-robustness frontier")
    ax.legend(fontsize=8)
    return ax


def module_feature_path_norms(module) -> np.ndarray:
    """``feature_path_norms_``: the 1-path-norm of ``module`` per preprocessed input feature (float64)."""
    with torch.no_grad():
        return feature_path_norms(_double(module)).numpy()


def warn_refit_budget(est, lipschitz_max: float | None) -> None:
    """After a CV refit the kept network is not one of the members the budget was checked on: warn if it exceeds it."""
    if lipschitz_max is None:
        return
    bound = float(np.max(est.lipschitz_bound_))
    if bound > lipschitz_max:
        warnings.warn(
            f"{type(est).__name__}: the refit on all data (lambda={est.lambda_:g}) has lipschitz_bound_={bound:.4g} "
            f"> lipschitz_max={lipschitz_max:g} (the budget was met by the fold members' mean); use "
            "selection='holdout' for a budget that holds for the kept network, or a larger lambda",
            UserWarning,
            stacklevel=3,
        )


def certified_radius(est, X, norm: str, space: str) -> np.ndarray:
    """Per row of ``X`` the l_inf radius within which the predicted class cannot change (see :func:`radii`)."""
    if norm != "linf":
        raise ValueError(
            f"norm must be 'linf' (the certificate is for l_inf perturbations; an l_p ball of radius r lies in "
            f"the l_inf ball of radius r, so the l_inf radius holds for every l_p norm), got {norm!r}"
        )
    _check_space(space)
    logits = est._raw_predict(X)
    if logits.shape[1] == 1:
        return radii(logits, output_bound(est, space), np.zeros((1, 1)))
    return radii(logits, output_bound(est, space), pair_bounds(est, space))


class CertificatesMixin:
    """Certificates shared by both estimators (see the module docstring for the scales)."""

    def certified_lipschitz_bound(self, space: str = "input"):
        """Certified Lipschitz bound per output (a float for one output) in the units of the outputs.

        ``space='input'`` (default): w.r.t. ``max_j |dx_j|`` over the numeric columns of
        ``X`` in the units the user passes (categorical and indicator columns held fixed);
        ``'standardized'``: w.r.t. the l_inf norm of the preprocessed features (equals
        ``lipschitz_bound_``).
        """
        bound = output_bound(self, space)
        return float(bound[0]) if bound.size == 1 else bound

    def perturbation_weights(self, space: str = "input") -> np.ndarray:
        """Per preprocessed feature, how far it moves per unit of the perturbation's l_inf norm in ``space``.

        ``'input'``: ``1 / s_j`` for the numeric columns of the default preprocessing
        (``s_j`` their standardization scale), 0 for one-hot and missing-indicator columns
        (held fixed), ones for ``'passthrough'``; ``'standardized'``: ones. A perturbation
        of ``X`` with ``||dx||_inf <= r`` moves the network's input ``z`` within the box
        ``|dz_j| <= r w_j``: the set the certificates (and an attack checking them) cover.
        """
        return input_weights(self, space)

    def feature_importances(self, *, columns: bool = False) -> pd.Series:
        """``feature_path_norms_`` as a Series: per preprocessed feature, or summed per user column (``columns=True``)."""
        check_is_fitted(self, "feature_path_norms_")
        values = pd.Series(self.feature_path_norms_, index=self._feature_names_out(), name="path_norm")
        if not columns:
            return values
        return values.groupby(feature_columns(self), sort=False).sum()

    def plot_frontier(self, ax=None, *, annotate: bool = True):
        """Plot ``path_``'s validation loss against the certified bound (see :func:`plot_frontier`)."""
        return plot_frontier(self, ax, annotate=annotate)

    def export_onnx(self, path, *, preprocessing: str = "fold", dtype: str = "float64"):
        """Write the compacted network as ONNX, the default numeric preprocessing and target scaling folded in.

        ``preprocessing='fold'`` (default): the graph's input is ``X`` as passed to
        ``predict`` (numeric columns; NaN for missing values). ``'none'``: the input is
        the preprocessed features (for categorical columns or a custom preprocessor,
        which then stays a Python step). ``dtype``: ``'float64'`` (matches ``predict``) or
        ``'float32'``. Outputs: ``predictions`` (regressor) or ``logits`` and
        ``probabilities`` (classifier). Needs ``pip install 'psilon[onnx]'``. Returns the path.
        """
        from psilon.estimators._export import export_onnx

        return export_onnx(self, path, preprocessing=preprocessing, dtype=dtype)
