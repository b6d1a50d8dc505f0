"""The training engine: K stacked members, the lambda path (paper P1.7).

Entry points, shaped like scikit-learn's ``lasso_path``:

* :func:`train_members` trains an existing network with ``members=K`` (or a single
  ``members=None`` network): one lambda per member and, optionally, one training /
  validation row set per member (cross-validation folds as members).
* :func:`lambda_path` builds the network and trains the grid, independently (one
  stacked run) or as the reference code's warm-started sequence.

The recipe (defaults = the paper's small-tabular-data experiment): Adam, ``lr = 2e-3``,
no weight decay; minibatches of 400; the one-cycle cosine schedule
(:func:`one_cycle_lr`); per member ``0.5 * data_loss + 0.5 * lambda * regularizer``.

Where things live: :mod:`~psilon.train.schedule` (the schedule),
:mod:`~psilon.train.data` (input checks, batch streams, losses),
:mod:`~psilon.train.tracker` (per-member status, best states, patience, history),
:mod:`~psilon.train.callbacks` (pruning, projection, successive halving, progress: the
extension point), :mod:`~psilon.train.loop` (the loop and the working set of members),
:mod:`~psilon.train.engine` (:func:`train_members`), :mod:`~psilon.train.path`
(:func:`build_network`, :func:`lambda_path`), :mod:`~psilon.train.runtime` (explicit
process settings: :func:`tune_allocator`, devices, the optimizer).
"""

from .callbacks import Callback, Progress, Projection, Pruning, SuccessiveHalving
from .engine import COMPILE_MIN_STEPS, TrainOptions, TrainResult, train_members
from .loop import objective, take_members
from .path import PAPER_LAMBDAS, build_network, lambda_path
from .runtime import flush_denormals, flushing_denormals, make_optimizer, resolve_device, tune_allocator
from .schedule import one_cycle_lr

__all__ = [
    "COMPILE_MIN_STEPS",
    "Callback",
    "PAPER_LAMBDAS",
    "Progress",
    "Projection",
    "Pruning",
    "SuccessiveHalving",
    "TrainOptions",
    "TrainResult",
    "build_network",
    "flush_denormals",
    "flushing_denormals",
    "lambda_path",
    "make_optimizer",
    "objective",
    "one_cycle_lr",
    "resolve_device",
    "take_members",
    "train_members",
    "tune_allocator",
]
