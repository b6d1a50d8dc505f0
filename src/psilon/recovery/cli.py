"""``psilon recovery FIGURE``: run one figure of the implicit-regularization lab.

Writes ``<out>/<figure>.png`` and ``<out>/<figure>.csv`` (atomically) and prints a summary.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import experiments as ex
from .options import float_list, int_at_least, positive_float, prepare_out_dir, real_at_least

_CHOICES = sorted(ex.FIGURES) + sorted(ex.ALIASES)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``recovery`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "recovery",
        help="diagonal linear networks: GD vs WN-GD figures (arXiv 2305.05448)",
        description=(
            "Run one figure of the implicit-regularization lab and write FIGURE.png + "
            "FIGURE.csv. Figures: fig1 (alpha sweep), fig2 (history), fig3 (eta~ sweep), "
            "fig4 (depth 2 vs 3), fig5 (signed), fig6 (phase transitions). Unset options "
            "keep each figure's defaults (see docs/recovery.md)."
        ),
    )
    p.add_argument("figure", metavar="FIGURE", choices=_CHOICES, help="one of " + ", ".join(_CHOICES))
    p.add_argument("--out", default="docs/results/recovery", help="output directory (default: %(default)s)")
    p.add_argument("--trials", type=int, help="independent problems per configuration")
    p.add_argument("--seed", type=int_at_least(0), help="root seed of the problem generator")
    p.add_argument("--max-steps", type=int_at_least(1, "updates per run"), dest="max_steps", help="update budget per run")
    p.add_argument("--tol", type=real_at_least(0.0), help="stop a run when the loss is below this")
    p.add_argument("--lr", type=positive_float, help="GD step / WN-GD directional step")
    p.add_argument("--eta", type=positive_float, dest="eta_ratio", help="WN-GD learning-rate ratio eta~")
    p.add_argument("--M", type=int_at_least(1), dest="M", help="measurements (not fig6)")
    p.add_argument("--N", type=int_at_least(1), dest="N", help="dimension")
    p.add_argument("--s", type=int_at_least(1), dest="s", help="sparsity (not fig6)")
    p.add_argument("--alphas", type=float_list(), help="comma-separated alphas (fig1, fig4, fig5)")
    p.add_argument("--etas", type=float_list(), help="comma-separated eta~ values (fig3)")
    p.add_argument(
        "--etas-l3", type=float_list(positive=False), dest="etas_l3",
        help="comma-separated eta~ values of the L = 3 WN-GD columns (fig4; default 0.01,0.3; "
        "--eta sets L = 2's)",
    )
    p.add_argument("--deltas", type=float_list(), help="comma-separated M/N values (fig6)")
    p.add_argument("--rhos", type=float_list(), help="comma-separated s/M values (fig6)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    name = ex.ALIASES.get(args.figure, args.figure)
    kwargs = {k: getattr(args, k) for k in ("trials", "seed", "max_steps", "tol", "lr", "eta_ratio", "M", "N", "s")}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    grids = {"alphas": args.alphas, "etas": args.etas, "etas_l3": args.etas_l3, "deltas": args.deltas, "rhos": args.rhos}
    allowed = {"fig1": {"alphas"}, "fig3": {"etas"}, "fig4": {"alphas", "etas_l3"}, "fig5": {"alphas"}, "fig6": {"deltas", "rhos"}}
    for key, val in grids.items():
        if val is None:
            continue
        if key not in allowed.get(name, set()):
            return _error(f"--{key.replace('_', '-')} does not apply to {name}")
        kwargs[key] = val
    if name == "fig6" and ({"M", "s"} & kwargs.keys()):
        return _error("fig6 sweeps M and s through --deltas/--rhos; do not pass --M/--s")
    t0 = time.perf_counter()
    try:
        out = prepare_out_dir(args.out)  # before the run: never compute a figure that cannot be saved
        result = ex.FIGURES[name](progress=not args.no_progress, **kwargs)
    except ValueError as exc:
        return _error(str(exc))
    try:
        png, csv = ex.save(result, out)
    except OSError as exc:  # e.g. FIGURE.png is a folder
        return _error(f"cannot write the figure to {out}: {exc}")
    print(ex.summary_text(result))
    print(f"wrote {png} and {csv} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _error(message: str) -> int:
    print(f"psilon recovery: error: {message}", file=sys.stderr)
    return 2
