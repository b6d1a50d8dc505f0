"""The implicit-regularization lab of Chou, Rauhut & Ward (arXiv 2305.05448).

Diagonal linear networks ``x = u**L`` (or ``u+**L - u-**L``) fitted to ``b = A x_star`` by
gradient descent (GD) and by weight-normalized gradient descent (WN-GD) on polar
coordinates ``u = r v / ||v||``, batched over trials and configurations; reference
solvers (basis pursuit as a linear program, Lasso, OMP); and the figures of the paper
plus an empirical phase-transition diagram. Independent of :mod:`psilon.nn` / ``train``.
"""

from .problems import RecoveryProblems, make_problems
from .solvers import (
    SolverResult,
    gd_loss_and_grad,
    run_gd,
    run_wngd,
    solve,
    wn_loss_and_grad,
)

__all__ = [
    "RecoveryProblems",
    "SolverResult",
    "gd_loss_and_grad",
    "make_problems",
    "run_gd",
    "run_wngd",
    "solve",
    "wn_loss_and_grad",
]
