"""The figures of the lab: each one is a function returning a :class:`FigureResult`.

Every figure uses the same default problem family unless it says otherwise
(``DEFAULTS``): ``A`` (M=40, N=100) with entries N(0, 1/M), s=5 non-zeros with magnitudes
U[0.5, 1.5] on a random support, 20 trials, seed 0; depth L=2; GD step and WN-GD
directional step ``lr = 0.1``; radial step ``eta~ * lr`` with ``eta~ = 0.01``; a column
stops at loss < 1e-16 or after 20,000 updates. Errors are ``||x - x_star||_2``. The paper's
exact settings are not available; these are ours, and every PNG and CSV states them.

* ``fig1``  error vs initialization scale alpha, GD and WN-GD, and their ratio
  (+ distance of both to basis pursuit).
* ``fig2``  error and training loss vs iteration, GD and WN-GD (alpha = 0.1).
* ``fig3``  error vs learning-rate ratio eta~ (WN-GD), GD as a baseline (alpha = 0.1).
* ``fig4``  depth L = 2 vs L = 3 (error vs alpha; lr = 0.05 for both depths: for L = 3
  the curvature on the largest entries, ~9 x^(4/3) lambda_max(A_S^T A_S) ~ 28, puts
  lr = 0.1 above the stability bound 2/28; budget 40,000). WN-GD at L = 2 uses eta~ = 0.01;
  at L = 3 two columns, eta~ = 0.01 and 0.3 (``etas_l3``). Why: for L >= 3 the direction
  flow ``dv^_i ~ -r^L v^_i (v^_i^(L-2) g_i - <v^^L, g>)`` is rich-get-richer, so with a
  slow radius and a small start the direction collapses onto one coordinate (a vertex
  of the sphere, an exact stationary point at L >= 3); a faster radius (eta~ = 0.3)
  avoids the collapse for alpha >= 0.01 (see docs/recovery.md).
* ``fig5``  signed ground truths (random signs), model ``u**L - w**L``, signed basis pursuit.
* ``fig6``  empirical phase transitions over delta = M/N in {0.2, ..., 0.8} and
  rho = s/M in {0.1, ..., 0.6} (N = 50, 10 trials per cell, alpha = 0.05, tol 1e-12,
  budget 30,000) for GD, WN-GD and basis pursuit side by side; success = relative
  error <= 1e-2. 42 cells x 10 trials = 420 problems in one batched run.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from psilon._files import atomic_write_bytes

from .problems import RecoveryProblems, make_problems
from .reference import basis_pursuit_batch
from .solvers import solve

DEFAULTS: dict[str, Any] = {
    "M": 40,
    "N": 100,
    "s": 5,
    "magnitude": "uniform",
    "magnitude_range": (0.5, 1.5),
    "trials": 20,
    "seed": 0,
    "depth": 2,
    "lr": 0.1,
    "eta_ratio": 0.01,
    "tol": 1e-16,
    "max_steps": 20_000,
}

FIG1_ALPHAS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
FIG3_ETAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
FIG4_ALPHAS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5)
FIG4_ETAS_L3 = (0.01, 0.3)
FIG5_ALPHAS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5)
FIG6_DELTAS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
FIG6_RHOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


@dataclass
class FigureResult:
    """Raw numbers (``table``: one row per trial and configuration), a summary table,
    the settings that produced them, and a function drawing the figure."""

    name: str
    title: str
    settings: dict[str, Any]
    table: pd.DataFrame
    summary: pd.DataFrame
    plot: Callable[["FigureResult"], Any]
    notes: list[str] = field(default_factory=list)

    def settings_text(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.settings.items())


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    return str(v)


def _settings(base: dict, **extra) -> dict:
    out = dict(base)
    out.update(extra)
    return out


def _problems(cfg: dict, signed: bool = False) -> RecoveryProblems:
    return make_problems(
        cfg["trials"],
        cfg["M"],
        cfg["N"],
        cfg["s"],
        signed=signed,
        magnitude=cfg["magnitude"],
        magnitude_range=cfg["magnitude_range"],
        seed=cfg["seed"],
    )


def _rows(res, problems, x_bp, extra=None) -> pd.DataFrame:
    """Long table: one row per (trial, column)."""
    err = res.error(problems.x_star)
    rel = res.error(problems.x_star, relative=True)
    T, K = err.shape
    data = {
        "trial": np.repeat(np.arange(T), K),
        "method": np.tile(res.method, T),
        "alpha": np.tile(res.alpha, T),
        "eta_ratio": np.tile(res.eta_ratio, T),
        "depth": res.depth,
        "error": err.ravel(),
        "rel_error": rel.ravel(),
        "loss": res.loss.ravel(),
        "steps": res.steps.ravel(),
        "converged": res.converged.ravel(),
        "v_norm": res.v_norm.ravel(),
    }
    if x_bp is not None:
        data["rel_dist_bp"] = res.error(x_bp, relative=True).ravel()
        data["bp_error"] = np.repeat(np.linalg.norm(x_bp - problems.x_star, axis=1), K)
    df = pd.DataFrame(data)
    for k, v in (extra or {}).items():
        df[k] = v
    return df


def _median_by(df, keys, cols):
    g = df.groupby(keys, dropna=False)
    out = g[cols].median()
    out.columns = [f"median_{c}" for c in cols]
    return out.reset_index()


# ------------------------------------------------------------------------------ figures
def figure1(*, alphas=FIG1_ALPHAS, progress=True, **overrides) -> FigureResult:
    """Error vs alpha for GD and WN-GD; per-trial ratio GD/WN-GD; distance to basis pursuit."""
    cfg = _settings(DEFAULTS, **overrides)
    P = _problems(cfg)
    alphas = np.asarray(alphas, dtype=float)
    meth = np.repeat(["gd", "wn"], alphas.size)
    res = solve(
        P, meth, np.tile(alphas, 2), cfg["eta_ratio"], depth=cfg["depth"], lr=cfg["lr"],
        tol=cfg["tol"], max_steps=cfg["max_steps"], progress=progress, desc="fig1",
    )
    x_bp = basis_pursuit_batch(P)
    df = _rows(res, P, x_bp)
    gd = df[df.method == "gd"].set_index(["trial", "alpha"])
    wn = df[df.method == "wn"].set_index(["trial", "alpha"])
    ratio = (gd["error"] / wn["error"]).rename("ratio").reset_index()
    summary = _median_by(df, ["alpha", "method"], ["error", "rel_dist_bp", "loss"]).pivot(
        index="alpha", columns="method"
    )
    summary.columns = [f"{a}_{m}" for a, m in summary.columns]
    summary["median_ratio_gd_over_wn"] = ratio.groupby("alpha")["ratio"].median()
    summary["max_rel_dist_bp_wn"] = df[df.method == "wn"].groupby("alpha")["rel_dist_bp"].max()
    summary["frac_converged_gd"] = df[df.method == "gd"].groupby("alpha")["converged"].mean()
    summary["frac_converged_wn"] = df[df.method == "wn"].groupby("alpha")["converged"].mean()
    summary = summary.reset_index()
    df = df.merge(ratio, on=["trial", "alpha"], how="left")
    df.loc[df.method == "gd", "ratio"] = np.nan  # ratio stored once, on the WN-GD row
    cfg["alphas"] = list(alphas)
    return FigureResult(
        "fig1", "Reconstruction error vs initialization scale", cfg, df, summary, _plot_fig1,
        notes=[f"sweep wall time {res.wall_time:.1f} s (solver loop)"],
    )


def figure2(*, alpha=0.1, record_every=100, progress=True, **overrides) -> FigureResult:
    """Error and loss against iteration (history recorded every ``record_every`` steps)."""
    cfg = _settings(DEFAULTS, **overrides)
    P = _problems(cfg)
    res = solve(
        P, ["gd", "wn"], alpha, cfg["eta_ratio"], depth=cfg["depth"], lr=cfg["lr"],
        tol=cfg["tol"], max_steps=cfg["max_steps"], record_every=record_every,
        progress=progress, desc="fig2",
    )
    H, T, K = res.history_loss.shape
    df = pd.DataFrame(
        {
            "step": np.repeat(res.history_steps, T * K),
            "trial": np.tile(np.repeat(np.arange(T), K), H),
            "method": np.tile(res.method, H * T),
            "error": res.history_error.ravel(),
            "loss": res.history_loss.ravel(),
        }
    )
    summary = _median_by(df, ["step", "method"], ["error", "loss"])
    final = _rows(res, P, None)
    summary_final = _median_by(final, ["method"], ["error", "loss", "steps"])
    cfg.update(alpha=alpha, record_every=record_every)
    out = FigureResult("fig2", "Error and training loss vs iteration", cfg, df, summary_final, _plot_fig2)
    out.curve = summary  # type: ignore[attr-defined]
    return out


def figure3(*, alpha=0.1, etas=FIG3_ETAS, progress=True, **overrides) -> FigureResult:
    """WN-GD error vs the learning-rate ratio eta~, with GD (same alpha) as a baseline."""
    cfg = _settings(DEFAULTS, **overrides)
    P = _problems(cfg)
    etas = np.asarray(etas, dtype=float)
    meth = np.array(["gd"] + ["wn"] * etas.size)
    res = solve(
        P, meth, alpha, np.concatenate([[np.nan], etas]), depth=cfg["depth"], lr=cfg["lr"],
        tol=cfg["tol"], max_steps=cfg["max_steps"], progress=progress, desc="fig3",
    )
    df = _rows(res, P, basis_pursuit_batch(P))
    gd_err = df[df.method == "gd"].set_index("trial")["error"]
    df["gd_err_over_err"] = gd_err.loc[df["trial"]].values / df["error"].values
    summary = _median_by(df, ["method", "eta_ratio"], ["error", "gd_err_over_err", "rel_dist_bp", "loss"])
    summary["frac_converged"] = df.groupby(["method", "eta_ratio"], dropna=False)["converged"].mean().values
    cfg.update(alpha=alpha, etas=list(etas))
    del cfg["eta_ratio"]
    return FigureResult("fig3", "Error vs learning-rate ratio eta~", cfg, df, summary, _plot_fig3)


def figure4(
    *, alphas=FIG4_ALPHAS, depths=(2, 3), etas_l3=FIG4_ETAS_L3, progress=True, **overrides
) -> FigureResult:
    """Depth L = 2 against L = 3, GD and WN-GD, error vs alpha.

    WN-GD at L = 2 uses ``eta_ratio`` (default 0.01); at every depth L >= 3 it runs one
    column per value in ``etas_l3`` (default 0.01 and 0.3). The table also holds the final
    radius, ``n_active``, the number of coordinates with ``x_i > 1e-6 max_j x_j``
    (1 = the direction collapsed onto a single coordinate), and ``diverged`` (non-finite
    loss: the iterate overflowed; its error is NaN and the medians leave it out).
    """
    overrides.setdefault("lr", 0.05)
    overrides.setdefault("max_steps", 40_000)
    cfg = _settings(DEFAULTS, **overrides)
    etas_l3 = np.atleast_1d(np.asarray(etas_l3, dtype=float))
    if etas_l3.size == 0 or not np.all(np.isfinite(etas_l3)) or np.any(etas_l3 <= 0):
        raise ValueError(f"etas_l3 must be positive finite numbers, got {etas_l3.tolist()}")
    P = _problems(cfg)
    alphas = np.asarray(alphas, dtype=float)
    frames = []
    for L in depths:
        etas = np.array([cfg["eta_ratio"]]) if int(L) == 2 else etas_l3
        meth = np.array(["gd"] * alphas.size + ["wn"] * (alphas.size * etas.size))
        col_alpha = np.concatenate([alphas, np.repeat(alphas, etas.size)])
        col_eta = np.concatenate([np.full(alphas.size, np.nan), np.tile(etas, alphas.size)])
        res = solve(
            P, meth, col_alpha, col_eta,
            depth=int(L), lr=cfg["lr"], tol=cfg["tol"], max_steps=cfg["max_steps"],
            progress=progress, desc=f"fig4 L={L}",
        )
        xmax = res.x.max(axis=-1, keepdims=True)
        n_active = (res.x > 1e-6 * np.maximum(xmax, 1e-300)).sum(axis=-1)
        frames.append(_rows(res, P, None, extra={"radius": res.radius.ravel(), "n_active": n_active.ravel()}))
    df = pd.concat(frames, ignore_index=True)
    df["diverged"] = ~np.isfinite(df["loss"])  # overflow (NaN error); medians skip these rows
    keys = ["depth", "method", "eta_ratio", "alpha"]
    summary = _median_by(df, keys, ["error", "loss", "steps", "n_active"])
    g = df.groupby(keys, dropna=False)
    summary["frac_error_below_1e-3"] = g["error"].apply(lambda e: float(np.mean(e < 1e-3))).values
    summary["frac_converged"] = g["converged"].mean().values
    summary["frac_diverged"] = g["diverged"].mean().values
    cfg["eta_ratio_L2"] = cfg.pop("eta_ratio")
    cfg.update(eta_ratios_L3=list(etas_l3), alphas=list(alphas), depths=list(depths))
    del cfg["depth"]
    return FigureResult("fig4", "Depth L=2 vs L=3", cfg, df, summary, _plot_fig4)


def figure5(*, alphas=FIG5_ALPHAS, progress=True, **overrides) -> FigureResult:
    """Signed ground truth: model u**L - w**L, error vs alpha, signed basis pursuit."""
    cfg = _settings(DEFAULTS, **overrides)
    P = _problems(cfg, signed=True)
    alphas = np.asarray(alphas, dtype=float)
    res = solve(
        P, np.repeat(["gd", "wn"], alphas.size), np.tile(alphas, 2), cfg["eta_ratio"],
        depth=cfg["depth"], lr=cfg["lr"], tol=cfg["tol"], max_steps=cfg["max_steps"],
        progress=progress, desc="fig5",
    )
    df = _rows(res, P, basis_pursuit_batch(P))
    summary = _median_by(df, ["method", "alpha"], ["error", "rel_dist_bp", "bp_error", "loss"])
    summary["frac_converged"] = df.groupby(["method", "alpha"])["converged"].mean().values
    cfg.update(alphas=list(alphas), signed=True)
    return FigureResult("fig5", "Signed ground truth", cfg, df, summary, _plot_fig5)


def figure6(
    *, deltas=FIG6_DELTAS, rhos=FIG6_RHOS, alpha=0.05, success_tol=1e-2, progress=True, **overrides
) -> FigureResult:
    """Phase transitions: success probability over (delta = M/N, rho = s/M).

    All cells share N; every (cell, trial) problem is padded with zero rows to the largest
    M (zero rows change neither loss nor gradient), so the whole diagram is one batched run
    with two columns (GD, WN-GD) per problem. Success: ``||x - x*|| / ||x*|| <= success_tol``.
    """
    overrides.setdefault("N", 50)
    overrides.setdefault("trials", 10)
    overrides.setdefault("tol", 1e-12)
    overrides.setdefault("max_steps", 30_000)
    cfg = _settings(DEFAULTS, **overrides)
    N = cfg["N"]
    cells, As, bs, xs = [], [], [], []
    M_max = max(max(1, round(d * N)) for d in deltas)
    for i, d in enumerate(deltas):
        M = max(1, round(d * N))
        for j, rho in enumerate(rhos):
            s = min(max(1, round(rho * M)), N)
            P = make_problems(
                cfg["trials"], M, N, s, magnitude=cfg["magnitude"],
                magnitude_range=cfg["magnitude_range"], seed=cfg["seed"] + 1000 * i + j,
            )
            A = np.zeros((P.n_trials, M_max, N))
            A[:, :M] = P.A
            b = np.zeros((P.n_trials, M_max))
            b[:, :M] = P.b
            As.append(A), bs.append(b), xs.append(P.x_star)
            bp = basis_pursuit_batch(P)
            for t in range(P.n_trials):
                cells.append((d, rho, M, s, t, np.linalg.norm(bp[t] - P.x_star[t]) / np.linalg.norm(P.x_star[t])))
    big = RecoveryProblems(A=np.concatenate(As), b=np.concatenate(bs), x_star=np.concatenate(xs))
    res = solve(
        big, ["gd", "wn"], alpha, cfg["eta_ratio"], depth=cfg["depth"], lr=cfg["lr"],
        tol=cfg["tol"], max_steps=cfg["max_steps"], progress=progress, desc="fig6",
    )
    rel = res.error(big.x_star, relative=True)
    meta = pd.DataFrame(cells, columns=["delta", "rho", "M", "s", "trial", "rel_error_bp"])
    meta["rel_error_gd"] = rel[:, 0]
    meta["rel_error_wn"] = rel[:, 1]
    meta["converged_gd"] = res.converged[:, 0]
    meta["converged_wn"] = res.converged[:, 1]
    for m in ("bp", "gd", "wn"):
        meta[f"success_{m}"] = meta[f"rel_error_{m}"] <= success_tol
    summary = (
        meta.groupby(["delta", "rho"])[
            ["success_bp", "success_gd", "success_wn", "converged_gd", "converged_wn"]
        ]
        .mean()
        .reset_index()
    )
    cfg.update(alpha=alpha, success_tol=success_tol, deltas=list(deltas), rhos=list(rhos))
    cfg.pop("M")
    cfg.pop("s")
    return FigureResult("fig6", "Empirical phase transitions", cfg, meta, summary, _plot_fig6,
                        notes=[f"solver wall time {res.wall_time:.1f} s for {big.n_trials} problems"])


FIGURES: dict[str, Callable[..., FigureResult]] = {
    "fig1": figure1,
    "fig2": figure2,
    "fig3": figure3,
    "fig4": figure4,
    "fig5": figure5,
    "fig6": figure6,
}
ALIASES = {
    "alpha": "fig1",
    "history": "fig2",
    "eta": "fig3",
    "depth": "fig4",
    "signed": "fig5",
    "phase": "fig6",
}


# ------------------------------------------------------------------------------ plotting
def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _band(ax, df, x, y, label, **kw):
    g = df.groupby(x)[y]
    med, lo, hi = g.median(), g.quantile(0.25), g.quantile(0.75)
    kw.setdefault("marker", "o" if len(med) <= 30 else None)
    line, = ax.plot(med.index, med.values, label=label, **kw)
    ax.fill_between(med.index, lo.values, hi.values, alpha=0.2, color=line.get_color())


def _caption(fig, result: FigureResult):
    text = "Settings: " + result.settings_text()
    fig.text(0.01, 0.005, "\n".join(textwrap.wrap(text, 150)), fontsize=6.5, va="bottom", ha="left")


def _new_fig(plt, ncols, result, nrows=1, size=(11, 4.6)):
    fig, axes = plt.subplots(nrows, ncols, figsize=size, squeeze=False)
    fig.suptitle(f"{result.name}: {result.title}")
    return fig, axes.ravel()


def _plot_fig1(r: FigureResult):
    plt = _plt()
    fig, (a0, a1) = _new_fig(plt, 2, r)
    for m, lab in (("gd", "GD"), ("wn", f"WN-GD (eta~={r.settings['eta_ratio']:g})")):
        _band(a0, r.table[r.table.method == m], "alpha", "error", lab)
    a0.set(xscale="log", yscale="log", xlabel="initialization scale alpha", ylabel="||x - x*||_2 (median, IQR)")
    a0.legend()
    _band(a1, r.table[r.table.method == "wn"], "alpha", "ratio", "GD error / WN-GD error", color="C2")
    a1.axhline(1e5, ls="--", color="gray", lw=0.8, label="1e5")
    a1.set(xscale="log", yscale="log", xlabel="alpha", ylabel="per-trial error ratio (median, IQR)")
    a1.legend()
    return fig


def _plot_fig2(r: FigureResult):
    plt = _plt()
    fig, (a0, a1) = _new_fig(plt, 2, r)
    for m, lab in (("gd", "GD"), ("wn", "WN-GD")):
        d = r.table[r.table.method == m]
        _band(a0, d, "step", "error", lab)
        _band(a1, d, "step", "loss", lab)
    a0.set(yscale="log", xlabel="iteration", ylabel="||x - x*||_2 (median, IQR)")
    a1.set(yscale="log", xlabel="iteration", ylabel="training loss (median, IQR)")
    a0.legend()
    return fig


def _plot_fig3(r: FigureResult):
    plt = _plt()
    fig, (a0, a1) = _new_fig(plt, 2, r)
    wn = r.table[r.table.method == "wn"]
    _band(a0, wn, "eta_ratio", "error", "WN-GD")
    gd = r.table[r.table.method == "gd"]["error"]
    a0.axhline(gd.median(), color="C1", label="GD (median)")
    a0.axhspan(gd.quantile(0.25), gd.quantile(0.75), color="C1", alpha=0.15)
    a0.set(xscale="log", yscale="log", xlabel="learning-rate ratio eta~", ylabel="||x - x*||_2")
    a0.legend()
    _band(a1, wn, "eta_ratio", "gd_err_over_err", "GD error / WN-GD error", color="C2")
    a1.axhline(1.0, ls="--", color="gray", lw=0.8)
    a1.set(xscale="log", yscale="log", xlabel="eta~", ylabel="per-trial ratio (median, IQR)")
    a1.legend()
    return fig


def _plot_fig4(r: FigureResult):
    plt = _plt()
    fig, (a0,) = _new_fig(plt, 1, r, size=(10, 5.4))
    colors = iter(f"C{i}" for i in range(10))
    for L in sorted(r.table.depth.unique()):
        ls = "-" if L == 2 else "--"
        d = r.table[(r.table.depth == L) & (r.table.method == "gd")]
        if len(d):
            _band(a0, d, "alpha", "error", f"GD, L={L}", ls=ls, color=next(colors))
        wn = r.table[(r.table.depth == L) & (r.table.method == "wn")]
        for eta in sorted(wn.eta_ratio.unique()):
            _band(a0, wn[wn.eta_ratio == eta], "alpha", "error", f"WN-GD, L={L}, eta~={eta:g}",
                  ls=ls, color=next(colors))
    a0.set(xscale="log", yscale="log", xlabel="alpha", ylabel="||x - x*||_2 (median, IQR)")
    a0.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _plot_fig5(r: FigureResult):
    plt = _plt()
    fig, (a0,) = _new_fig(plt, 1, r, size=(8, 5))
    for m, lab in (("gd", "GD"), ("wn", "WN-GD")):
        _band(a0, r.table[r.table.method == m], "alpha", "error", lab)
    a0.axhline(max(r.table["bp_error"].median(), 1e-16), color="k", ls=":", label="basis pursuit (median)")
    a0.set(xscale="log", yscale="log", xlabel="alpha", ylabel="||x - x*||_2 (median, IQR)")
    a0.legend()
    return fig


def _plot_fig6(r: FigureResult):
    plt = _plt()
    fig, axes = _new_fig(plt, 3, r, size=(13, 4.6))
    deltas, rhos = r.settings["deltas"], r.settings["rhos"]
    for ax, m, lab in zip(axes, ("gd", "wn", "bp"), ("GD", "WN-GD", "basis pursuit")):
        grid = r.summary.pivot(index="rho", columns="delta", values=f"success_{m}").loc[rhos, deltas]
        im = ax.imshow(grid.values, origin="lower", vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(deltas)), [f"{d:g}" for d in deltas])
        ax.set_yticks(range(len(rhos)), [f"{x:g}" for x in rhos])
        ax.set(xlabel="delta = M/N", ylabel="rho = s/M", title=lab)
    fig.colorbar(im, cax=fig.add_axes((0.88, 0.2, 0.015, 0.66)), label="success probability")
    return fig


# ------------------------------------------------------------------------------ output
def save(result: FigureResult, out_dir) -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.png`` and ``<name>.csv`` (raw rows, settings as comments)
    atomically (temporary file + ``os.replace``). Returns the two paths."""
    out_dir = Path(out_dir)
    png, csv = out_dir / f"{result.name}.png", out_dir / f"{result.name}.csv"
    fig = result.plot(result)
    if result.name == "fig6":  # colorbar axes: place by hand
        fig.subplots_adjust(left=0.05, right=0.86, bottom=0.2, top=0.86, wspace=0.3)
    else:
        fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    _caption(fig, result)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _plt().close(fig)
    atomic_write_bytes(png, buf.getvalue())
    header = f"# {result.name}: {result.title}\n# settings: {result.settings_text()}\n"
    atomic_write_bytes(csv, (header + result.table.to_csv(index=False)).encode())
    return png, csv


def summary_text(result: FigureResult) -> str:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3g}".format):
        body = result.summary.to_string(index=False)
    lines = [f"{result.name}: {result.title}", f"settings: {result.settings_text()}", body]
    lines += result.notes
    return "\n".join(lines)
