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
"""

from __future__ import annotations

import torch
from torch import Tensor

from psilon.nn import CReLULinear, WeightNormNet

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


def _finish(model: WeightNormNet, per_output: Tensor, reduce: bool) -> Tensor:
    out = per_output.sum(-1) if reduce else per_output
    return out[0] if model.members is None else out


def _matvec(m: Tensor, u: Tensor) -> Tensor:
    """``(K, out, in) @ (K, in) -> (K, out)``."""
    return torch.bmm(m, u.unsqueeze(-1)).squeeze(-1)


def _chain(model: WeightNormNet, mode: str, include_bias: bool) -> Tensor:
    """Propagate path sums through the network; returns ``(K, out)``.

    ``mode``: ``'paths'`` (1-path-norm / original bound), ``'improved'`` or ``'tight'``.
    """
    layers = model.layers()
    first = layers[0]
    u = torch.ones(first.members, first.in_features, dtype=first.direction.dtype, device=first.direction.device)
    for i, layer in enumerate(layers):
        is_block = model.architecture == "resnet" and 0 < i < len(layers) - 1
        if not isinstance(layer, CReLULinear):
            new = _matvec(layer.abs_weight(), u)
        elif mode == "paths":
            w_plus, w_minus = layer.weight_pair()
            new = _matvec(w_plus.abs() + w_minus.abs(), u) + (2.0 * u if is_block else 0.0)
        elif mode == "improved" or not is_block:
            # Predictor of a ResNet (and the improved bound everywhere): W~.
            new = _matvec(layer.abs_weight(), u) + (u if is_block else 0.0)
        else:  # tight, residual block
            w_plus, w_minus = layer.weight_pair()
            eye = torch.eye(layer.out_features, dtype=u.dtype, device=u.device)
            jac = torch.maximum((eye + w_plus).abs(), (eye + w_minus).abs())
            new = _matvec(jac, u)
        u = new + layer.bias.abs() if include_bias else new
    return u


def path_norm(model: WeightNormNet, *, include_bias: bool = False, per_output: bool = False) -> Tensor:
    """Exact 1-path-norm by the matrix chain (for ResNets: the original all-paths bound).

    Args:
        model: any psilon network.
        include_bias: also count the paths that start at a bias.
        per_output: return one value per output instead of the sum.
    """
    _check_model(model)
    return _finish(model, _chain(model, "paths", include_bias), not per_output)


def original_bound(model: WeightNormNet, *, per_output: bool = False) -> Tensor:
    """The original all-paths Lipschitz bound of a CReLU ResNet (its 1-path-norm)."""
    if _check_model(model).architecture != "resnet":
        raise ValueError("original_bound is defined for CReLU ResNets; for an MLP use path_norm")
    return _finish(model, _chain(model, "paths", False), not per_output)


def improved_bound(model: WeightNormNet, *, per_output: bool = False) -> Tensor:
    """The improved bound ``1^T W~_K (I + W~_{K-1}) ... (I + W~_2) |W_1| 1`` of a CReLU ResNet."""
    if _check_model(model).architecture != "resnet":
        raise ValueError("improved_bound is defined for CReLU ResNets; for an MLP use path_norm")
    return _finish(model, _chain(model, "improved", False), not per_output)


def _shared_l1_lengths(model: WeightNormNet, what: str) -> tuple[Tensor, Tensor]:
    """Hidden lengths ``(K, depth - 1)`` and predictor lengths ``(K, out)``."""
    if model.norm != "l1" or not model.shared:
        raise ValueError(
            f"the closed form of the {what} needs shared L1 normalization (norm='l1', shared=True); "
            f"this network has norm={model.norm!r}, shared={model.shared}: use the explicit chain"
        )
    layers = model.layers()
    hidden = torch.cat([layer.length for layer in layers[:-1]], dim=-1)
    return hidden, layers[-1].length


def _path_norm_closed(model: WeightNormNet) -> Tensor:
    """``|g_1 ... g_{K-1}| * |g_K,j|``, ``(K, out)``."""
    hidden, head = _shared_l1_lengths(model, "1-path-norm")
    return hidden.abs().prod(-1, keepdim=True) * head.abs()


def _improved_closed(model: WeightNormNet) -> Tensor:
    """``|g_1| prod_l (1 + |g_l|) |g_K,j|``, ``(K, out)``."""
    hidden, head = _shared_l1_lengths(model, "improved bound")
    g = hidden.abs()
    return (g[:, :1] * (1.0 + g[:, 1:]).prod(-1, keepdim=True)) * head.abs()


def path_norm_closed_form(model: WeightNormNet, *, per_output: bool = False) -> Tensor:
    """PSiLON Net's collapsed 1-path-norm ``|g_1 ... g_{K-1}| * |g_K,j|`` (P1.3)."""
    if _check_model(model).architecture != "mlp":
        raise ValueError("path_norm_closed_form is for MLPs; for a ResNet use improved_bound_closed_form")
    return _finish(model, _path_norm_closed(model), not per_output)


def improved_bound_closed_form(model: WeightNormNet, *, per_output: bool = False) -> Tensor:
    """PSiLON ResNet's improved bound ``|g_1| prod_l (1 + |g_l|) |g_K,j|`` (P1.4)."""
    if _check_model(model).architecture != "resnet":
        raise ValueError("improved_bound_closed_form is for ResNets; for an MLP use path_norm_closed_form")
    return _finish(model, _improved_closed(model), not per_output)


def training_penalty(model: WeightNormNet) -> Tensor:
    """The penalty :meth:`WeightNormNet.regularizer` trains with, shape ``(K,)``."""
    _check_model(model)
    if model.penalty == "squared":
        return sum(layer.weight().pow(2).sum(dim=(-2, -1)) for layer in model.layers())
    closed = model.norm == "l1" and model.shared
    if model.architecture == "mlp":
        per = _path_norm_closed(model) if closed else _chain(model, "paths", False)
    elif model.bound == "original":
        per = _chain(model, "paths", False)
    else:
        per = _improved_closed(model) if closed else _chain(model, "improved", False)
    return per.sum(-1)


def lipschitz_bound(model: WeightNormNet) -> Tensor:
    """Certified upper bound on each output's Lipschitz constant w.r.t. ``||x||_inf``.

    MLPs: the 1-path-norm per output. ResNets: the chain of the tightest entrywise
    Jacobian bounds ``max(|I + W+|, |I + W-|)`` (<= improved <= original bound).
    Shape ``(out,)`` or ``(members, out)``.
    """
    mode = "paths" if _check_model(model).architecture == "mlp" else "tight"
    return _finish(model, _chain(model, mode, False), False)


@torch.no_grad()
def _outputs(model: WeightNormNet, x: Tensor) -> Tensor:
    out = model(x)
    return out.unsqueeze(0) if model.members is None else out


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

    Returns ``(out,)`` or ``(members, out)``; compare with :func:`lipschitz_bound`.
    """
    _check_model(model)
    x = torch.as_tensor(X, dtype=model.embed.direction.dtype)
    if x.dim() != 2 or x.shape[1] != model.in_features or x.shape[0] == 0:
        raise ValueError(f"X must have shape (n >= 1, {model.in_features}), got {tuple(x.shape)}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, x.shape[0], (n_pairs,), generator=gen)
    a = x[idx]
    b = a + radius * (2 * torch.rand(a.shape, generator=gen, dtype=a.dtype) - 1)
    fa, fb = _outputs(model, a), _outputs(model, b)  # (K, n, out)
    dist = (a - b).abs().amax(-1).clamp_min(1e-12)  # (n,)
    pair_ratio = ((fa - fb).abs() / dist[None, :, None]).amax(1)  # (K, out)

    pts = torch.cat([x, b])
    nets = [model] if model.members is None else [model.member(m) for m in range(model.n_members)]
    grad_norm = torch.stack([_max_grad_l1(net, pts) for net in nets])  # (K, out)
    lower = torch.maximum(pair_ratio, grad_norm.to(pair_ratio.dtype))
    return lower[0] if model.members is None else lower


def _max_grad_l1(net: WeightNormNet, pts: Tensor) -> Tensor:
    """``max_x ||grad f_k(x)||_1`` over the rows of ``pts``, per output, for a single network."""
    p = pts.clone().requires_grad_(True)
    out = net(p)
    norms = []
    for k in range(out.shape[-1]):
        (g,) = torch.autograd.grad(out[:, k].sum(), p, retain_graph=k + 1 < out.shape[-1])
        norms.append(g.abs().sum(-1).amax())
    return torch.stack(norms)
