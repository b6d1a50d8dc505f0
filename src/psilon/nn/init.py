"""Initial lengths of the weight-normalized networks.

Three schemes (``INIT_SCHEMES``):

* ``'paper'``: the paper's init, every length ``g = 1`` (ResNet blocks ``g = 0``), as the
  modules are constructed. With L1 normalization a neuron then outputs
  ``<v, x> / ||v||_1``, and for a row of fan-in ``n`` ``||v||_1 / ||v||_2`` is about
  ``sqrt(2 n / pi)``: every layer shrinks the signal by ~9 at width 128 and ~18 at
  width 500, and Adam needs thousands of steps to grow the lengths back.
* ``'variance'``: every length starts where the effective rows have unit L2 norm on
  average, as L2 weight normalization at ``g = 1`` gives, times ``sqrt(2)`` for a layer
  fed by a ReLU (He's gain): ``g = gain * ||v_i||_p / ||v_i||_2``, averaged over the rows
  of a layer with a shared length (``p`` the layer's norm; for a CReLU pair the rows of
  ``W~ = max(|V+|, |V-|)`` and of ``V+``). ResNet blocks keep ``g = 0`` (identity at
  init); the CReLU predictor has gain 1 (with tied halves it is linear in ``z``).
* ``'open'``: the paper's init with the ResNet's residual blocks open, ``g = 1`` like every
  other layer, instead of ``g = 0``. With tied halves a block is still linear at init
  (``z + W z``), but its directions get gradients from the first step. Measured on split 0
  of the UCI sets (``recipe-sweep``, ``docs/estimators.md``) it changes nothing on average,
  so the default keeps the blocks closed. For an MLP it is the paper's init.
"""

from __future__ import annotations

import math

import torch

from .checks import check_choice
from .layers import CReLULinear

__all__ = ["INIT_SCHEMES", "init_lengths_"]

INIT_SCHEMES = ("paper", "variance", "open")


def _row_ratio(layer) -> torch.Tensor:
    """``||rows||_p / ||rows||_2`` of the layer's normalization, ``(K, out)``."""
    v = layer.direction.detach()
    if isinstance(layer, CReLULinear):
        half = v.shape[-1] // 2
        plus = v[..., :half]
        denom_rows = torch.maximum(plus.abs(), v[..., half:].abs())
    else:
        plus = denom_rows = v
    p = 1 if layer.norm == "l1" else 2
    num = torch.linalg.vector_norm(denom_rows, ord=p, dim=-1)
    return num / torch.linalg.vector_norm(plus, dim=-1).clamp_min(torch.finfo(v.dtype).tiny)


@torch.no_grad()
def init_lengths_(net, scheme: str = "variance"):
    """Set the lengths of ``net`` (a :class:`~psilon.nn.WeightNormNet`) by ``scheme``, in place.

    Returns ``net``. ``'paper'`` leaves the constructed lengths (1; ResNet blocks 0);
    ``'open'`` sets the ResNet blocks' lengths to 1.
    """
    check_choice("init", scheme, INIT_SCHEMES)
    if scheme == "paper":
        return net
    layers = net.layers()
    resnet = net.architecture == "resnet"
    if scheme == "open":
        for layer in layers[1:-1] if resnet else ():
            layer.length.fill_(1.0)
        return net
    for i, layer in enumerate(layers):
        if resnet and 0 < i < len(layers) - 1:
            continue  # residual blocks start as the identity
        gain = math.sqrt(2.0) if (not resnet and i > 0) else 1.0
        ratio = _row_ratio(layer)
        if layer.length.shape[-1] == 1:
            ratio = ratio.mean(-1, keepdim=True)
        layer.length.copy_(gain * ratio)
    return net
