"""Sparsity of psilon networks: L1-ball projection, sparsity measures, compaction.

The pruning schedule itself is a method of the networks
(:meth:`~psilon.nn.WeightNormNet.start_pruning`, ``advance_pruning``,
``finish_pruning``); it uses :func:`project_l1_ball`.

Measures (paper notes P1.6), on every neuron's effective weight vector ``w in R^d``
(for a CReLU layer: the row of ``W~ = max(|W+|, |W-|)``):

* near-sparsity ``ns(w) = 1 - exp(H(p)) / d`` with ``p = |w| / ||w||_1`` and
  ``H(p) = -sum p log p`` (``exp(H)`` is the effective number of non-zeros);
  a zero vector counts as fully sparse (``ns = 1``).
* exact sparsity: the fraction of exact zeros among the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from psilon.nn import CReLULinear, WeightNormNet, crelu, project_l1_ball

__all__ = ["project_l1_ball", "near_sparsity", "exact_sparsity", "compact", "CompactNet"]


def _layer_names(model: WeightNormNet) -> list[str]:
    n_hidden = len(model.hidden)
    kind = "block" if model.architecture == "resnet" else "hidden"
    return ["embed", *(f"{kind}{i + 1}" for i in range(n_hidden)), "head"]


def _neuron_matrix(layer) -> Tensor:
    """Per-neuron effective weights ``(K, out, d)`` (``W~`` for CReLU layers)."""
    return layer.abs_weight().detach()


def _ns_rows(w: Tensor) -> Tensor:
    """Near-sparsity of each row of ``w`` ``(..., d)`` -> ``(...)``."""
    a = w.abs()
    total = a.sum(-1, keepdim=True)
    p = torch.where(total > 0, a / total.clamp_min(torch.finfo(a.dtype).tiny), torch.zeros_like(a))
    h = -torch.special.xlogy(p, p).sum(-1)
    ns = 1.0 - torch.exp(h) / w.shape[-1]
    return torch.where(total.squeeze(-1) > 0, ns, torch.ones_like(ns))


def _finish(model: WeightNormNet, per_layer: dict[str, Tensor], overall: Tensor) -> dict[str, Tensor]:
    out = dict(per_layer) | {"overall": overall}
    return {k: (v[0] if model.members is None else v) for k, v in out.items()}


def near_sparsity(model: WeightNormNet) -> dict[str, Tensor]:
    """Near-sparsity per layer (mean over its neurons) and ``'overall'`` (mean over all neurons).

    Values are tensors of shape ``()`` or ``(members,)``.
    """
    per_layer, all_rows = {}, []
    for name, layer in zip(_layer_names(model), model.layers()):
        ns = _ns_rows(_neuron_matrix(layer))  # (K, out)
        per_layer[name] = ns.mean(-1)
        all_rows.append(ns)
    return _finish(model, per_layer, torch.cat(all_rows, dim=-1).mean(-1))


def exact_sparsity(model: WeightNormNet) -> dict[str, Tensor]:
    """Fraction of exact zeros per layer and ``'overall'`` (over all weights).

    For CReLU layers both ``W+`` and ``W-`` are counted. Shapes as :func:`near_sparsity`.
    """
    per_layer, zeros, total = {}, 0, 0
    for name, layer in zip(_layer_names(model), model.layers()):
        w = layer.weight().detach()
        z = (w == 0).sum(dim=(-2, -1)).to(w.dtype)
        per_layer[name] = z / w[0].numel()
        zeros, total = zeros + z, total + w[0].numel()
    return _finish(model, per_layer, zeros / total)


# ---------------------------------------------------------------------- compaction
@dataclass(frozen=True)
class _Dense:
    weight: Tensor  # (out, in)
    bias: Tensor  # (out,)


class CompactNet(nn.Module):
    """A plain (unnormalized) network equivalent to a pruned psilon network.

    MLP: ``x -> W_1 x + b_1 -> [relu -> W_l . + b_l]* -> relu -> W_K . + b_K`` with
    per-layer widths. ResNet: embedder, CReLU residual blocks on a reduced residual
    stream, CReLU predictor. It reads only the selected input features: feed it
    ``X[:, feature_indices]``. Input ``(batch, n_selected)``, output ``(batch, out)``.
    """

    def __init__(self, architecture: str, layers: list[_Dense], feature_indices: Tensor, in_features: int):
        super().__init__()
        self.architecture = architecture
        self.in_features = in_features
        self.register_buffer("feature_indices", feature_indices)
        self.weights = nn.ParameterList(nn.Parameter(l.weight.clone()) for l in layers)
        self.biases = nn.ParameterList(nn.Parameter(l.bias.clone()) for l in layers)

    @property
    def n_selected(self) -> int:
        return int(self.feature_indices.numel())

    def widths(self) -> list[int]:
        """Output width of every layer (residual-stream width for ResNet blocks)."""
        return [int(b.numel()) for b in self.biases]

    def n_parameters(self) -> int:
        return sum(int(p.numel()) for p in self.parameters())

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_selected:
            raise ValueError(
                f"CompactNet expects (batch, {self.n_selected}) inputs holding the selected features "
                f"X[:, feature_indices]; got {tuple(x.shape)}"
            )
        w, b = list(self.weights), list(self.biases)
        z = F.linear(x, w[0], b[0])
        for wl, bl in zip(w[1:-1], b[1:-1]):
            if self.architecture == "mlp":
                z = F.linear(F.relu(z), wl, bl)
            else:
                z = z + F.linear(crelu(z), wl, bl)
        last = F.relu(z) if self.architecture == "mlp" else crelu(z)
        return F.linear(last, w[-1], b[-1])


def _compact_mlp(model: WeightNormNet) -> tuple[list[_Dense], Tensor]:
    layers = [_Dense(l.weight()[0].detach().clone(), l.bias[0].detach().clone()) for l in model.layers()]
    # Forward pass: a neuron with an all-zero incoming row is the constant relu(b):
    # fold its contribution into the next layer's bias and drop it.
    for i in range(len(layers) - 1):
        cur, nxt = layers[i], layers[i + 1]
        dead = (cur.weight == 0).all(dim=1)
        const = F.relu(cur.bias[dead])
        nxt_bias = nxt.bias + nxt.weight[:, dead] @ const
        keep = ~dead
        layers[i] = _Dense(cur.weight[keep], cur.bias[keep])
        layers[i + 1] = _Dense(nxt.weight[:, keep], nxt_bias)
    # Backward pass: a neuron nobody reads (all-zero outgoing column) is dropped.
    for i in range(len(layers) - 1, 0, -1):
        cur, prev = layers[i], layers[i - 1]
        keep = (cur.weight != 0).any(dim=0)
        layers[i] = _Dense(cur.weight[:, keep], cur.bias)
        layers[i - 1] = _Dense(prev.weight[keep], prev.bias[keep])
    used = (layers[0].weight != 0).any(dim=0)
    layers[0] = _Dense(layers[0].weight[:, used], layers[0].bias)
    return layers, used.nonzero().flatten()


def _compact_resnet(model: WeightNormNet) -> tuple[list[_Dense], Tensor]:
    mods = model.layers()
    embed = _Dense(mods[0].weight()[0].detach().clone(), mods[0].bias[0].detach().clone())
    cre = [_Dense(m.weight()[0].detach().clone(), m.bias[0].detach().clone()) for m in mods[1:]]
    h = model.width
    # A stream coordinate is needed if some block or the predictor reads it (a non-zero
    # column in either CReLU half); unread coordinates only carry themselves forward.
    read = torch.zeros(h, dtype=torch.bool)
    for d in cre:
        read |= (d.weight[:, :h] != 0).any(0) | (d.weight[:, h:] != 0).any(0)
    keep2 = torch.cat([read, read])
    layers = [_Dense(embed.weight[read], embed.bias[read])]
    for d in cre[:-1]:
        layers.append(_Dense(d.weight[read][:, keep2], d.bias[read]))
    layers.append(_Dense(cre[-1].weight[:, keep2], cre[-1].bias))
    used = (layers[0].weight != 0).any(dim=0)
    layers[0] = _Dense(layers[0].weight[:, used], layers[0].bias)
    return layers, used.nonzero().flatten()


def compact(model: WeightNormNet) -> tuple[CompactNet, Tensor]:
    """An equivalent smaller network without dead neurons and unused input features.

    For MLPs, hidden neurons whose incoming weights are all zero are constants and are
    folded into the next bias; neurons whose outgoing weights are all zero are dropped;
    input features with all-zero embedder columns are dropped. For ResNets, residual
    stream coordinates that no block and not the predictor reads are dropped, then
    unused input features. Best after pruning (:meth:`~psilon.nn.WeightNormNet.finish_pruning`).

    Returns ``(compact_net, feature_indices)``: ``compact_net(X[:, feature_indices])``
    equals ``model(X)`` up to float rounding. ``feature_indices`` (a LongTensor) are the
    input features the network still uses: a sparse PSiLON Net is a feature selector.
    """
    if not isinstance(model, WeightNormNet):
        raise ValueError(f"compact expects a psilon network, got {type(model).__name__}")
    if model.members is not None:
        raise ValueError("compact works on one network: pass model.member(k) for a members network")
    with torch.no_grad():
        layers, idx = (_compact_mlp if model.architecture == "mlp" else _compact_resnet)(model)
    net = CompactNet(model.architecture, layers, idx, model.in_features)
    return net, idx
