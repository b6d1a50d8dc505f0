"""psilon: sparse, Lipschitz-certified neural networks for small tabular data."""

__version__ = "0.1.0"

from psilon.estimators import PSiLONClassifier, PSiLONRegressor
from psilon.train import PAPER_LAMBDAS, lambda_path, train_members

__all__ = ["PAPER_LAMBDAS", "PSiLONClassifier", "PSiLONRegressor", "lambda_path", "train_members"]
