"""psilon: sparse, Lipschitz-certified neural networks for small tabular data.

Layers (each imports only from the ones above it): :mod:`psilon.nn` (modules),
:mod:`psilon.pathnorm` and :mod:`psilon.sparsity` (certificates, pruning, measures),
:mod:`psilon.train` (the lambda path), :mod:`psilon.estimators` (scikit-learn API),
:mod:`psilon.datasets` and :mod:`psilon.bench` (experiments), and the independent
:mod:`psilon.recovery` (diagonal linear networks of the second paper).
"""

__version__ = "0.1.0"

from psilon.estimators import PSiLONClassifier, PSiLONRegressor
from psilon.nn import PSiLONNet, PSiLONResNet, StandardNet, WeightNormNet, stack_members
from psilon.pathnorm import lipschitz_bound, lipschitz_lower_bound, path_norm
from psilon.sparsity import compact, exact_sparsity, near_sparsity, project_l1_ball
from psilon.train import PAPER_LAMBDAS, lambda_path, train_members

__all__ = [
    "PAPER_LAMBDAS",
    "PSiLONClassifier",
    "PSiLONNet",
    "PSiLONRegressor",
    "PSiLONResNet",
    "StandardNet",
    "WeightNormNet",
    "compact",
    "exact_sparsity",
    "lambda_path",
    "lipschitz_bound",
    "lipschitz_lower_bound",
    "near_sparsity",
    "path_norm",
    "project_l1_ball",
    "stack_members",
    "train_members",
]
