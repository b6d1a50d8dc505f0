"""psilon: sparse, Lipschitz-certified neural networks for small tabular data."""

__version__ = "0.1.0"
