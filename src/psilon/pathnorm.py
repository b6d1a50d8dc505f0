"""Path norms, closed forms and Lipschitz certificates of psilon networks.

All functions accept any :class:`~psilon.nn.WeightNormNet` (MLP or CReLU ResNet, every
ablation option, with or without members) and are differentiable. Results carry the
members dimension when the network has one: shape ``(members, out)`` per output or
``(members,)`` summed; ``(out,)`` / ``()`` for ``members=None``.

Definitions (paper notes P1.2-P1.4). Write ``u_0 = 1`` (a vector over inputs) and
propagate non-negative path sums layer by layer:

* MLP, 1-path-norm: ``u <- |W_l| u`` for every layer. ``Phi_k = (|W_K| ... |W_1| 1)_k``.
* CReLU ResNet, 1-path-norm = **original all-paths bound**: every skip connection is a
  path of weight 1 through each half of the CReLU, so a block maps
  ``u <- 2 u + (|W+| + |W-|) u`` and the predictor ``u <- (|W+_K| + |W-_K|) u``.
* CReLU ResNet, **improved bound**: ``u <- (I + W~) u`` with ``W~ = max(|W+|, |W-|)``,
  predictor ``W~_K``. Entrywise ``I + W~ <= 2I + |W+| + |W-|``, so improved <= original.
* :func:`lipschitz_bound` uses the tightest entrywise bound on each block's Jacobian
  ``I + W+ D+ + W- D-`` (``D+ + D- = I``), namely ``max(|I + W+|, |I + W-|)``, which is
  entrywise <= ``I + W~``: certificate <= improved bound <= original bound.

With ``include_bias=True`` the paths that start at a bias are added
(``u <- M u + |b|`` at each layer); that is for reporting, not a Lipschitz bound.

For ``||x - y||_inf``-perturbations, ``|f_k(x) - f_k(y)| <= bound_k ||x - y||_inf``.

The propagation itself lives in the model layer: each layer contributes its step
(:meth:`psilon.nn.NormalizedLinear.path_step`, :meth:`psilon.nn.CReLULinear.path_step`),
:meth:`psilon.nn.WeightNormNet.path_chain` chains them, and the shared-L1 closed forms
are :meth:`~psilon.nn.WeightNormNet.closed_form_path_norm` and
:meth:`~psilon.nn.WeightNormNet.closed_form_improved_bound`. This module is the public,
checked API over them (shapes as above).
"""

from __future__ import annotations

import torch
from torch import Tensor

from psilon.nn import WeightNormNet
from psilon.nn.checks import check_bool, check_int, check_positive_float

__all__ = [
    "path_norm",
    "path_norm_closed_form",
    "improved_bound",
    "improved_bound_closed_form",
    "original_bound",
    "lipschitz_bound",
    "lipschitz_lower_bound",
    "training_penalty",
]


def _check_model(model) -> WeightNormNet:
    if not isinstance(model, WeightNormNet):
        raise ValueError(
            f"expected a psilon network (PSiLONNet, PSiLONResNet, StandardNet), got {type(model).__name__}"
        )
    return model


def _finish(model: WeightNormNet, values: Tensor, per_output: bool) -> Tensor:
    """``(K, out)`` values, summed over outputs unless ``per_output``; ``K`` dropped for ``members=None``."""
    out = values if check_bool("per_output", per_output) else values.sum(-1)
    return out[0] if model.members is None else out


def path_norm(model: WeightNormNet, *, include_bias: bool = False, per_output: bool = False) -> Tensor:
    """Exact 1-path-norm by the matrix chain (for ResNets: the original all-paths bound).

    Args:
        model: any psilon network.
        include_bias: also count the paths that start at a bias.
        per_output: return one value per output instead of the sum.
    """
    _check_model(model)
    return _finish(model, model.path_chain("paths", include_bias=include_bias), per_output)


def original_bound(model: WeightNormNet, *, per_output: bool = False) -> Tensor:
    """The original all-paths Lipschitz bound of a CReLU ResNet (its 1-path-norm)."""
    if _check_model(model).architecture != "resnet":
        raise ValueError("original_bound is defined for CReLU ResNets; for an MLP use path_norm")
    return _finish(model, model.path_chain("paths"), per_output)


def improved_bound(model: WeightNormNet, *, per_output: bool = False) -> Tensor:
    """The improved bound ``1^T W~_K (I + W~_{K-1}) ... (I + W~_2) |W_1| 1`` of a CReLU ResNet."""
    if _check_model(model).architecture != "resnet":
        raise ValueError("improved_bound is defined for CReLU ResNets; for an MLP use path_norm")
    return _finish(model, model.path_chain("improved"), per_output)


def path_norm_closed_form(model: WeightNormNet, *, per_output: bool = False) -> Tensor:
    """PSiLON Net's collapsed 1-path-norm ``|g_1 ... g_{K-1}| * |g_K,j|`` (P1.3)."""
    if _check_model(model).architecture != "mlp":
        raise ValueError("path_norm_closed_form is for MLPs; for a ResNet use improved_bound_closed_form")
    return _finish(model, model.closed_form_path_norm(), per_output)


def improved_bound_closed_form(model: WeightNormNet, *, per_output: bool = False) -> Tensor:
    """PSiLON ResNet's improved bound ``|g_1| prod_l (1 + |g_l|) |g_K,j|`` (P1.4)."""
    if _check_model(model).architecture != "resnet":
        raise ValueError("improved_bound_closed_form is for ResNets; for an MLP use path_norm_closed_form")
    return _finish(model, model.closed_form_improved_bound(), per_output)


def training_penalty(model: WeightNormNet) -> Tensor:
    """The penalty :meth:`WeightNormNet.regularizer` trains with, shape ``(K,)``.

    A thin wrapper of :meth:`~psilon.nn.WeightNormNet.regularizer_members`.
    """
    return _check_model(model).regularizer_members()


def lipschitz_bound(model: WeightNormNet) -> Tensor:
    """Certified upper bound on each output's Lipschitz constant w.r.t. ``||x||_inf``.

    MLPs: the 1-path-norm per output. ResNets: the chain of the tightest entrywise
    Jacobian bounds ``max(|I + W+|, |I + W-|)`` (<= improved <= original bound).
    Shape ``(out,)`` or ``(members, out)``.
    """
    mode = "paths" if _check_model(model).architecture == "mlp" else "tight"
    return _finish(model, model.path_chain(mode), True)


def lipschitz_lower_bound(
    model: WeightNormNet,
    X,
    *,
    n_pairs: int = 10_000,
    radius: float = 0.1,
    seed: int = 0,
) -> Tensor:
    """Empirical lower bound on each output's l_inf-Lipschitz constant.

    The maximum of (a) ``||grad_x f_k(x)||_1`` over the rows of ``X`` and of random
    points near them (for l_inf inputs the Lipschitz constant is the supremum of the
    gradient's l1 norm) and (b) ``|f_k(x) - f_k(y)| / ||x - y||_inf`` over ``n_pairs``
    sampled pairs (``x`` a row of ``X``, ``y = x + radius * u``, ``u ~ U[-1, 1]^d``).

    Works inside ``torch.no_grad()`` (gradients are enabled locally). Returns
    ``(out,)`` or ``(members, out)``; compare with :func:`lipschitz_bound`.
    """
    _check_model(model)
    n_pairs = check_int("n_pairs", n_pairs)
    radius = check_positive_float("radius", radius)
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.as_tensor(X, dtype=model.embed.direction.dtype).clone()
        if x.dim() != 2 or x.shape[1] != model.in_features or x.shape[0] == 0:
            raise ValueError(f"X must have shape (n >= 1, {model.in_features}), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("X contains NaN or inf; the lower bound needs finite points")
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, x.shape[0], (n_pairs,), generator=gen)
        a = x[idx]
        b = a + radius * (2 * torch.rand(a.shape, generator=gen, dtype=a.dtype) - 1)
        with torch.no_grad():
            fa, fb = model.forward_members(a), model.forward_members(b)  # (K, n, out)
        dist = (a - b).abs().amax(-1).clamp_min(1e-12)  # (n,)
        pair_ratio = ((fa - fb).abs() / dist[None, :, None]).amax(1)  # (K, out)
        grad_norm = _max_grad_l1(model, torch.cat([x, b]))  # (K, out)
    lower = torch.maximum(pair_ratio, grad_norm.to(pair_ratio.dtype))
    return _finish(model, lower, True)


def _max_grad_l1(model: WeightNormNet, pts: Tensor) -> Tensor:
    """``max_x ||grad f_k(x)||_1`` over the rows of ``pts``, per member and output: ``(K, out)``.

    Every member gets its own copy of the points, so one backward pass per output gives
    all members' input gradients at once.
    """
    p = pts.expand(model.n_members, *pts.shape).clone().requires_grad_(True)
    out = model.forward_members(p)  # (K, n, out)
    norms = []
    for k in range(out.shape[-1]):
        (g,) = torch.autograd.grad(out[..., k].sum(), p, retain_graph=k + 1 < out.shape[-1])
        norms.append(g.abs().sum(-1).amax(-1))  # (K,)
    return torch.stack(norms, dim=-1)
