"""Torch modules of psilon: weight-normalized layers and the PSiLON network family.

The model layer of psilon: it imports nothing else from psilon. Path sums and their
closed forms are methods of the layers and networks; :mod:`psilon.pathnorm` is the
public API over them.
"""

from .layers import FUSE_MIN_NUMEL, CReLULinear, NormalizedLinear, clear_compiled_kernels, crelu, project_l1_ball
from .networks import PSiLONNet, PSiLONResNet, StandardNet, WeightNormNet, stack_members

__all__ = [
    "FUSE_MIN_NUMEL",
    "CReLULinear",
    "NormalizedLinear",
    "PSiLONNet",
    "PSiLONResNet",
    "StandardNet",
    "WeightNormNet",
    "clear_compiled_kernels",
    "crelu",
    "project_l1_ball",
    "stack_members",
]
