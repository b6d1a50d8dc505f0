"""Torch modules of psilon: weight-normalized layers and the PSiLON network family."""

from .layers import CReLULinear, NormalizedLinear, crelu, project_l1_ball
from .networks import PSiLONNet, PSiLONResNet, StandardNet, WeightNormNet, stack_members

__all__ = [
    "CReLULinear",
    "NormalizedLinear",
    "PSiLONNet",
    "PSiLONResNet",
    "StandardNet",
    "WeightNormNet",
    "crelu",
    "project_l1_ball",
    "stack_members",
]
