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

from psilon.nn import CReLULinear, WeightNormNet
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
    "weighted_lipschitz_bound",
    "pairwise_lipschitz_bound",
    "feature_path_norms",
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


# --------------------------------------------------------------------------- certificates for users
def _bound_mode(model: WeightNormNet) -> str:
    """The chain :func:`lipschitz_bound` uses: the 1-path-norm (MLP) or the tight Jacobian chain (ResNet)."""
    return "paths" if model.architecture == "mlp" else "tight"


def _input_weights(model: WeightNormNet, input_weights) -> Tensor:
    """``input_weights`` as a ``(K, in)`` tensor of finite non-negative values (``None``: ones)."""
    ref = model.embed.direction
    if input_weights is None:
        return torch.ones(model.n_members, model.in_features, dtype=ref.dtype, device=ref.device)
    w = torch.as_tensor(input_weights, dtype=ref.dtype, device=ref.device)
    if w.dim() == 1:
        w = w.expand(model.n_members, -1)
    if w.shape != (model.n_members, model.in_features):
        raise ValueError(
            f"input_weights must have shape ({model.in_features},) or ({model.n_members}, {model.in_features}), "
            f"got {tuple(w.shape)}"
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("input_weights must be finite and non-negative (0 holds a feature fixed)")
    return w


def _chain_to_head(model: WeightNormNet, u: Tensor, mode: str) -> Tensor:
    """The path sums ``(K, width)`` arriving at the predictor when the chain starts from ``u``."""
    u = model.embed.path_step(u, mode)
    residual = model.architecture == "resnet"
    for layer in model.hidden:
        u = layer.path_step(u, mode, skip=residual)
    return u


def weighted_lipschitz_bound(model: WeightNormNet, input_weights=None) -> Tensor:
    """Certified bound per output for perturbations bounded per input feature.

    If ``|x_j - y_j| <= w_j t`` for every input ``j`` (``w = input_weights``, ``w_j = 0``
    holds feature ``j`` fixed), then ``|f_k(x) - f_k(y)| <= B_k t`` with ``B = P w``,
    where ``P`` is the non-negative matrix chain of :func:`lipschitz_bound` (the
    product of the layers' ``|W|`` steps bounds the Jacobian entrywise:
    ``|J(x)| <= P`` for every ``x``). The chain is evaluated from ``u_0 = w`` instead of
    ``u_0 = 1``, so ``input_weights=None`` (ones) is exactly :func:`lipschitz_bound`.

    Use: an affine preprocessing ``z_j = (x_j - m_j) / s_j`` in front of the network
    turns an l_inf ball of radius ``r`` in ``x`` into ``|dz_j| <= r / s_j``: the bound of
    the composed map in the units of ``x`` is this function with ``w_j = 1 / s_j``
    (the exact path bound of the network whose first layer's columns are divided by
    ``s_j``). Shape ``(out,)`` or ``(members, out)``.
    """
    _check_model(model)
    mode = _bound_mode(model)
    u = _chain_to_head(model, _input_weights(model, input_weights), mode)
    return _finish(model, model.head.path_step(u, mode), True)


def pairwise_lipschitz_bound(model: WeightNormNet, input_weights=None) -> Tensor:
    """Certified bound ``L_ij`` on the Lipschitz constant of every logit difference ``f_i - f_j``.

    The predictor is linear in the last hidden representation ``h``: ``f_i - f_j`` is a
    network with the same hidden layers and the single output row ``W_K,i - W_K,j``
    (for a CReLU predictor the pair ``(W+_i - W+_j, W-_i - W-_j)``, whose Jacobian row
    picks, per coordinate, one of the two halves: bounded entrywise by
    ``max(|W+_i - W+_j|, |W-_i - W-_j|)``). Its path bound is that row's absolute
    value applied to the chain's path sums at the predictor, computed exactly here.
    Since ``|a - b| <= |a| + |b|`` entrywise, ``L_ij <= L_i + L_j`` (the per-output bounds
    of :func:`weighted_lipschitz_bound`), often much smaller when two logits share paths.
    ``input_weights`` as in :func:`weighted_lipschitz_bound`. Shape ``(out, out)`` or
    ``(members, out, out)``, symmetric with a zero diagonal.
    """
    _check_model(model)
    mode = _bound_mode(model)
    u = _chain_to_head(model, _input_weights(model, input_weights), mode)  # (K, h)
    head = model.head
    if isinstance(head, CReLULinear):
        w_plus, w_minus = head.weight_pair()
        d_plus = (w_plus[:, :, None, :] - w_plus[:, None, :, :]).abs()
        d_minus = (w_minus[:, :, None, :] - w_minus[:, None, :, :]).abs()
        rows = d_plus + d_minus if mode == "paths" else torch.maximum(d_plus, d_minus)
    else:
        w = head.weight()
        rows = (w[:, :, None, :] - w[:, None, :, :]).abs()  # (K, out, out, h)
    pair = (rows * u[:, None, None, :]).sum(-1)
    return pair[0] if model.members is None else pair


def feature_path_norms(model: WeightNormNet, *, per_output: bool = False) -> Tensor:
    """The 1-path-norm split by the input feature the paths start from.

    Entry ``j`` is the chain of :func:`path_norm` started from ``u_0 = e_j`` (the paths
    leaving input ``j``): ``(P e_j)_k = P_kj`` for the chain's non-negative matrix ``P``.
    The chain is linear in ``u_0``, so all columns come from one differentiation of
    ``u_0 -> P u_0`` (per output with ``per_output``), which is exact for a linear map;
    since ``1 = sum_j e_j`` the entries sum to :func:`path_norm` (to float rounding), and
    a feature whose embedder column is zero (removed by pruning;
    :func:`psilon.sparsity.compact` drops it) gets exactly 0. Shape ``(in,)`` (summed
    over outputs) or ``(out, in)`` with ``per_output``; a members dimension in front for
    a members network.
    """
    _check_model(model)
    per_output = check_bool("per_output", per_output)
    with torch.inference_mode(False), torch.enable_grad():
        u0 = _input_weights(model, None).clone().requires_grad_(True)
        out = model.head.path_step(_chain_to_head(model, u0, "paths"), "paths")  # (K, out)
        targets = [out[:, k].sum() for k in range(out.shape[1])] if per_output else [out.sum()]
        grads = [torch.autograd.grad(t, u0, retain_graph=True)[0] for t in targets]
    values = torch.stack(grads, dim=1) if per_output else grads[0]  # (K, out, in) or (K, in)
    values = values.detach()
    return values[0] if model.members is None else values
