"""PSiLON Net, PSiLON ResNet and the paper's baselines as options of one family.

:class:`WeightNormNet` is the family; :class:`PSiLONNet`, :class:`PSiLONResNet` and
:class:`StandardNet` only change its defaults. Ablations are options:

============  =====================================================================
option        meaning
============  =====================================================================
architecture  ``'mlp'``: embedder, ``depth - 2`` hidden ``W relu(z) + b`` layers, relu,
              predictor.  ``'resnet'``: embedder, ``depth - 2`` CReLU residual blocks
              ``z + W+ relu(z) + W- (-relu(-z)) + b`` (length 0 and W+ = W- at init),
              a final CReLU and a CReLU predictor (paper P1.4).
norm          ``'l1'`` or ``'l2'`` weight normalization.
shared        one length per hidden layer (``True``) or one per neuron. The predictor
              always has one length per output.
penalty       ``'path'``: a 1-path-norm bound (closed form when it exists, explicit
              chain otherwise); ``'squared'``: sum of squared normalized weights.
bound         ResNets only: ``'improved'`` (I + W~ chain) or ``'original'`` (all paths).
============  =====================================================================

Shapes: input ``(batch, in)`` (shared by all members) or ``(members, batch, in)``;
output ``(batch, out)`` when ``members is None`` else ``(members, batch, out)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .layers import CReLULinear, NormalizedLinear, _check_size

_ARCHITECTURES = ("mlp", "resnet")
_PENALTIES = ("path", "squared")
_BOUNDS = ("improved", "original")


class WeightNormNet(nn.Module):
    """A weight-normalized MLP or CReLU ResNet, optionally K members at once.

    Args:
        in_features: number of input features.
        out_features: number of outputs (1 for regression / binary logits).
        architecture: ``'mlp'`` or ``'resnet'`` (``None``: the class's :attr:`DEFAULTS`, as
            for ``norm``, ``shared``, ``penalty`` and ``bound``).
        width: hidden width ``h`` (>= 1).
        depth: number of weight layers ``K`` (>= 2): embedder + ``K - 2`` hidden layers
            or residual blocks + predictor.
        members: ``None`` for one network, or ``K >= 1`` independent networks stored as
            stacked parameters and evaluated in one batched computation.
        norm: ``'l1'`` or ``'l2'``.
        shared: share the length across each hidden layer.
        penalty: ``'path'`` or ``'squared'`` (what :meth:`regularizer` returns).
        bound: for ResNets, ``'improved'`` or ``'original'`` path bound as regularizer.
    """

    #: What an option left as ``None`` means; the subclasses only change these.
    DEFAULTS: dict = {"architecture": "mlp", "norm": "l1", "shared": True, "penalty": "path", "bound": "improved"}

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        width: int = 500,
        depth: int = 3,
        members: int | None = None,
        architecture: str | None = None,
        norm: str | None = None,
        shared: bool | None = None,
        penalty: str | None = None,
        bound: str | None = None,
    ) -> None:
        super().__init__()
        opts = dict(architecture=architecture, norm=norm, shared=shared, penalty=penalty, bound=bound)
        opts = {k: (self.DEFAULTS[k] if v is None else v) for k, v in opts.items()}
        architecture, norm, shared, penalty, bound = (opts[k] for k in ("architecture", "norm", "shared", "penalty", "bound"))
        _check_size("in_features", in_features)
        _check_size("out_features", out_features)
        _check_size("width", width)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2 (embedder + predictor), got {depth!r}")
        if members is not None:
            _check_size("members", members)
        if architecture not in _ARCHITECTURES:
            raise ValueError(f"architecture must be one of {_ARCHITECTURES}, got {architecture!r}")
        if penalty not in _PENALTIES:
            raise ValueError(f"penalty must be one of {_PENALTIES}, got {penalty!r}")
        if bound not in _BOUNDS:
            raise ValueError(f"bound must be one of {_BOUNDS}, got {bound!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.architecture = architecture
        self.width = width
        self.depth = depth
        self.members = members
        self.norm = norm
        self.shared = bool(shared)
        self.penalty = penalty
        self.bound = bound
        k = 1 if members is None else members
        opts = dict(members=k, norm=norm)
        self.embed = NormalizedLinear(in_features, width, shared=shared, **opts)
        if architecture == "mlp":
            self.hidden = nn.ModuleList(
                NormalizedLinear(width, width, shared=shared, **opts) for _ in range(depth - 2)
            )
            self.head = NormalizedLinear(width, out_features, shared=False, **opts)
        else:
            self.hidden = nn.ModuleList(
                CReLULinear(width, width, shared=shared, init_length=0.0, tied_init=True, **opts)
                for _ in range(depth - 2)
            )
            self.head = CReLULinear(width, out_features, shared=False, tied_init=True, **opts)
        self.register_buffer("prune_step", torch.zeros((), dtype=torch.long))
        self.register_buffer("prune_steps", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ structure
    @property
    def n_members(self) -> int:
        """Number of stacked members (1 when ``members is None``)."""
        return 1 if self.members is None else self.members

    def layers(self) -> list[NormalizedLinear | CReLULinear]:
        """The weight layers in order: embedder, hidden layers / blocks, predictor."""
        return [self.embed, *self.hidden, self.head]

    def config(self) -> dict:
        """Constructor arguments (enough to rebuild an identical, untrained network)."""
        return dict(
            in_features=self.in_features,
            out_features=self.out_features,
            architecture=self.architecture,
            width=self.width,
            depth=self.depth,
            members=self.members,
            norm=self.norm,
            shared=self.shared,
            penalty=self.penalty,
            bound=self.bound,
        )

    # ------------------------------------------------------------------ forward
    def _validate_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise ValueError(f"expected a torch.Tensor input, got {type(x).__name__}")
        if x.dim() not in (2, 3):
            raise ValueError(
                f"input must be (batch, {self.in_features}) or (members, batch, {self.in_features}), "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"input has {x.shape[-1]} features, but the network was built with "
                f"in_features={self.in_features}"
            )
        if x.dim() == 3 and x.shape[0] != self.n_members:
            raise ValueError(
                f"a 3-d input must hold one batch per member: expected shape "
                f"({self.n_members}, batch, {self.in_features}), got {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise ValueError("input contains NaN or inf; impute or drop those values first")

    def forward(self, x: Tensor) -> Tensor:
        self._validate_input(x)
        if x.dim() == 3 and self.members is None:
            raise ValueError(
                f"this network has members=None: pass (batch, {self.in_features}); "
                f"got {tuple(x.shape)}"
            )
        if x.dim() == 2 and self.members is None:
            x = x.unsqueeze(0)  # (1, batch, in): the K = 1 fast path inside the layers
        z = self.embed(x)
        if self.architecture == "mlp":
            for layer in self.hidden:
                z = layer(F.relu(z))
            out = self.head(F.relu(z))
        else:
            for block in self.hidden:
                z = z + block(z)
            out = self.head(z)
        return out[0] if self.members is None else out

    # ------------------------------------------------------------------ penalty
    def regularizer(self) -> Tensor:
        """The penalty the paper trains with for this configuration.

        * ``penalty='squared'``: sum over layers of the squared Frobenius norms of the
          effective weights (for L2 normalization: the sum of squared lengths).
        * ``penalty='path'``, MLP: the 1-path-norm (closed form for shared L1,
          explicit chain otherwise), summed over outputs.
        * ``penalty='path'``, ResNet: the improved bound (closed form for shared L1) or
          the original all-paths bound, summed over outputs.

        Returns a differentiable tensor of shape ``()`` or ``(members,)``.
        """
        from psilon.pathnorm import training_penalty  # local: pathnorm sits below nn

        value = training_penalty(self)
        return value[0] if self.members is None else value

    # ------------------------------------------------------------------ pruning
    def start_pruning(self, steps: int) -> None:
        """Start the pruning schedule of P1.5 over the next ``steps`` training steps.

        Each call to :meth:`advance_pruning` (once per optimizer step) moves the blend
        factor ``a = min(t / steps, 1)`` toward 1; at ``a = 1`` weights are exactly sparse.
        Requires L1 normalization.
        """
        if self.norm != "l1":
            raise ValueError("pruning needs norm='l1' (the projection is onto the L1 sphere)")
        _check_size("steps", steps)
        self.prune_steps.fill_(steps)
        self.prune_step.zero_()
        self._set_alpha(0.0)

    def advance_pruning(self) -> float:
        """Advance the schedule by one step; returns the new blend factor ``a``."""
        if int(self.prune_steps) == 0:
            raise RuntimeError("call start_pruning(steps) before advance_pruning()")
        self.prune_step.add_(1)
        a = min(int(self.prune_step) / int(self.prune_steps), 1.0)
        self._set_alpha(a)
        return a

    def finish_pruning(self) -> None:
        """Jump to the end of the schedule (``a = 1``): exactly sparse weights."""
        if self.norm != "l1":
            raise ValueError("pruning needs norm='l1' (the projection is onto the L1 sphere)")
        self._set_alpha(1.0)

    @property
    def prune_alpha(self) -> float:
        return float(self.embed.prune_alpha)

    def _set_alpha(self, a: float) -> None:
        for layer in self.layers():
            layer.prune_alpha.fill_(a)

    # ------------------------------------------------------------------ members
    def member(self, k: int) -> WeightNormNet:
        """A ``members=None`` copy of member ``k`` (parameters copied, not shared)."""
        if not 0 <= k < self.n_members:
            raise ValueError(f"member index {k} out of range for {self.n_members} members")
        ref = self.embed.direction
        net = type(self)(**(self.config() | {"members": None})).to(dtype=ref.dtype, device=ref.device)
        state = {
            name: (t[k : k + 1].clone() if t.dim() >= 1 and name.split(".")[-1] in _STACKED else t.clone())
            for name, t in self.state_dict().items()
        }
        net.load_state_dict(state)
        return net


#: Parameter names that carry the leading members dimension.
_STACKED = ("direction", "length", "bias")


def stack_members(nets: Sequence[WeightNormNet]) -> WeightNormNet:
    """One ``members=len(nets)`` network holding the parameters of single networks."""
    if len(nets) == 0:
        raise ValueError("stack_members needs at least one network")
    cfg0 = nets[0].config()
    for i, n in enumerate(nets):
        if n.members is not None:
            raise ValueError(f"network {i} already has members={n.members}; pass members=None networks")
        if n.config() != cfg0:
            raise ValueError(f"network {i} has config {n.config()}, expected {cfg0}")
    ref = nets[0].embed.direction
    stacked = type(nets[0])(**(cfg0 | {"members": len(nets)})).to(dtype=ref.dtype, device=ref.device)
    states = [n.state_dict() for n in nets]
    new_state = {}
    for name, t in stacked.state_dict().items():
        if name.split(".")[-1] in _STACKED:
            new_state[name] = torch.cat([s[name] for s in states], dim=0)
        else:
            new_state[name] = states[0][name].clone()
    stacked.load_state_dict(new_state)
    return stacked


class PSiLONNet(WeightNormNet):
    """PSiLON Net (P1.3): MLP, shared-length L1 weight normalization, 1-path-norm penalty.

    ``PSiLONNet(in_features, out_features, *, width=500, depth=3, members=None)``;
    ablations through ``norm`` and ``shared``. Input ``(batch, in)`` or
    ``(members, batch, in)``; output ``(batch, out)`` or ``(members, batch, out)``.
    """


class PSiLONResNet(WeightNormNet):
    """PSiLON ResNet (P1.4): CReLU residual blocks, improved path bound as penalty.

    ``PSiLONResNet(in_features, out_features, *, width=500, depth=3, members=None)``;
    ablations through ``norm``, ``shared`` and ``bound``.
    """

    DEFAULTS = WeightNormNet.DEFAULTS | {"architecture": "resnet"}


class StandardNet(WeightNormNet):
    """The paper's baseline: L2 weight norm, per-neuron lengths, squared-weight penalty.

    ``architecture='resnet'`` gives the Standard CReLU ResNet of the deep ablation.
    """

    DEFAULTS = WeightNormNet.DEFAULTS | {"norm": "l2", "shared": False, "penalty": "squared"}
