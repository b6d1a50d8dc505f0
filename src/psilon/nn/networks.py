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
:meth:`WeightNormNet.forward_members` and :meth:`WeightNormNet.regularizer_members`
always carry the members dimension (``K = 1`` for ``members=None``).

Path sums (paper P1.2-P1.4) are propagated here, one layer's
:meth:`~psilon.nn.NormalizedLinear.path_step` at a time (:meth:`WeightNormNet.path_chain`),
and the shared-L1 closed forms they collapse to live next to them
(:meth:`WeightNormNet.closed_form_path_norm`,
:meth:`WeightNormNet.closed_form_improved_bound`). :mod:`psilon.pathnorm` is the public
API over these methods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .checks import check_bool, check_choice, check_int
from .layers import _NORMS, FUSE_MIN_NUMEL, PATH_MODES, CReLULinear, NormalizedLinear

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
            Sizes accept any :class:`numbers.Integral` (numpy integers too), not bools.
        norm: ``'l1'`` or ``'l2'``.
        shared: share the length across each hidden layer (a bool).
        penalty: ``'path'`` or ``'squared'`` (what :meth:`regularizer` returns).
        bound: for ResNets, ``'improved'`` or ``'original'`` path bound as regularizer.

    Kernels: eager by default; :meth:`set_compiled_kernels` switches the
    ``torch.compile``'d normalization kernels on for the large layers.
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
        given = dict(architecture=architecture, norm=norm, shared=shared, penalty=penalty, bound=bound)
        opts = {k: (self.DEFAULTS[k] if v is None else v) for k, v in given.items()}
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.width = check_int("width", width)
        self.depth = check_int("depth", depth, low=2)
        self.members = None if members is None else check_int("members", members)
        self.architecture = check_choice("architecture", opts["architecture"], _ARCHITECTURES)
        self.norm = check_choice("norm", opts["norm"], _NORMS)
        self.shared = check_bool("shared", opts["shared"])
        self.penalty = check_choice("penalty", opts["penalty"], _PENALTIES)
        self.bound = check_choice("bound", opts["bound"], _BOUNDS)
        self.embed, self.hidden, self.head = self._build_layers()
        self.register_buffer("prune_step", torch.zeros((), dtype=torch.long))
        self.register_buffer("prune_steps", torch.zeros((), dtype=torch.long))

    def _build_layers(self) -> tuple[NormalizedLinear, nn.ModuleList, NormalizedLinear | CReLULinear]:
        """Embedder, hidden layers / residual blocks and predictor for the checked options."""
        h, opts = self.width, dict(members=self.n_members, norm=self.norm)
        embed = NormalizedLinear(self.in_features, h, shared=self.shared, **opts)
        if self.architecture == "mlp":
            hidden = [NormalizedLinear(h, h, shared=self.shared, **opts) for _ in range(self.depth - 2)]
            return embed, nn.ModuleList(hidden), NormalizedLinear(h, self.out_features, shared=False, **opts)
        hidden = [
            CReLULinear(h, h, shared=self.shared, init_length=0.0, tied_init=True, **opts)
            for _ in range(self.depth - 2)
        ]
        head = CReLULinear(h, self.out_features, shared=False, tied_init=True, **opts)
        return embed, nn.ModuleList(hidden), head

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

    # ------------------------------------------------------------------ kernels
    def set_compiled_kernels(self, enabled: bool, *, min_numel: int = FUSE_MIN_NUMEL) -> WeightNormNet:
        """Switch the ``torch.compile``'d normalization kernels on or off for every layer.

        The default of a new network is off (eager kernels). When on, each layer whose
        ``direction`` has at least ``min_numel`` elements (default
        :data:`~psilon.nn.layers.FUSE_MIN_NUMEL`, 2^20: e.g. the ``(13, 500, 500)`` hidden
        layer of a paper-size lambda path) runs the normalization and its backward through
        ``torch.compile``: one fused loop instead of 4-6 passes over the weight, after a
        one-off compilation of several seconds per process. Worth it only for long fits.
        A layer whose compilation fails warns and switches itself back to eager.
        Returns ``self``.
        """
        enabled = check_bool("enabled", enabled)
        min_numel = check_int("min_numel", min_numel, low=0)
        for layer in self.layers():
            layer.compiled_kernels = enabled
            layer.compile_min_numel = min_numel
        return self

    # ------------------------------------------------------------------ forward
    def _validate_input(self, x: Tensor, check_finite: bool = True) -> Tensor:
        """Shape and feature checks; floating inputs are cast to the network's dtype.

        The finiteness scan of ``x`` runs in eval mode only; in training mode it runs
        only when the output came out non-finite (see :meth:`_check_output`). With
        ``check_finite=False`` (the training engine, which validated its data once up
        front) no value is read back at all.
        """
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
        dtype = self.embed.direction.dtype
        if x.dtype != dtype:
            if not x.is_floating_point():
                raise ValueError(
                    f"input has dtype {x.dtype}; the network computes in {dtype}: pass a floating-point "
                    f"tensor (e.g. x.to({dtype}))"
                )
            x = x.to(dtype)
        if check_finite and not self.training:
            _check_finite(x)
        return x

    def _check_output(self, x: Tensor, out: Tensor) -> None:
        """In training mode: check the sum of the (small) output; scan the input only if it is not finite."""
        if self.training and not math.isfinite(out.detach().sum().item()):
            _check_finite(x)

    def forward_members(self, x: Tensor, *, check_finite: bool = True) -> Tensor:
        """The output with the members dimension always present: ``(K, batch, out)``.

        ``x``: ``(batch, in)`` (shared by all members) or ``(K, batch, in)``, one batch per
        member; for ``members=None`` (``K = 1``) a ``(1, batch, in)`` input is accepted.
        Floating inputs are cast to the network's dtype. ``check_finite=False`` skips
        the NaN/inf checks (for callers that validated ``x`` already): the forward then
        never waits for the device.
        """
        x = self._validate_input(x, check_finite)
        if self.members is None:
            x = x[0] if x.dim() == 3 else x
            x = x.unsqueeze(0)  # (1, batch, in): the K = 1 fast path inside the layers
        out = self._forward(x)
        if check_finite:
            self._check_output(x, out)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, out)`` for ``members=None``, else ``(members, batch, out)``."""
        if self.members is None and isinstance(x, Tensor) and x.dim() == 3:
            self._validate_input(x)
            raise ValueError(
                f"this network has members=None: pass (batch, {self.in_features}); "
                f"got {tuple(x.shape)}"
            )
        out = self.forward_members(x)
        return out[0] if self.members is None else out

    def _forward(self, x: Tensor) -> Tensor:
        z = self.embed(x)
        if self.architecture == "mlp":
            for layer in self.hidden:
                z = layer(F.relu(z))
            return self.head(F.relu(z))
        for block in self.hidden:
            z = z + block(z)
        return self.head(z)

    # ------------------------------------------------------------------ path sums
    def path_chain(self, mode: str = "paths", *, include_bias: bool = False) -> Tensor:
        """Path sums propagated from ``u = 1`` over the inputs through every layer: ``(K, out)``.

        ``mode``: ``'paths'`` (the 1-path-norm; for a ResNet the original all-paths
        bound), ``'improved'`` (ResNet: the ``I + W~`` chain) or ``'tight'`` (ResNet: the
        ``max(|I + W+|, |I + W-|)`` chain; for an MLP every mode is the 1-path-norm).
        Each layer contributes its own step (:meth:`~psilon.nn.NormalizedLinear.path_step`);
        the residual blocks add their skip terms. ``include_bias`` adds the paths that
        start at a bias. Differentiable.
        """
        check_choice("mode", mode, PATH_MODES)
        ref = self.embed.direction
        u = torch.ones(self.n_members, self.in_features, dtype=ref.dtype, device=ref.device)
        u = self.embed.path_step(u, mode, include_bias=include_bias)
        residual = self.architecture == "resnet"
        for layer in self.hidden:
            u = layer.path_step(u, mode, skip=residual, include_bias=include_bias)
        return self.head.path_step(u, mode, include_bias=include_bias)

    def _shared_l1_lengths(self, what: str) -> tuple[Tensor, Tensor]:
        """Hidden lengths ``(K, depth - 1)`` and predictor lengths ``(K, out)``."""
        if self.norm != "l1" or not self.shared:
            raise ValueError(
                f"the closed form of the {what} needs shared L1 normalization (norm='l1', shared=True); "
                f"this network has norm={self.norm!r}, shared={self.shared}: use the explicit chain"
            )
        layers = self.layers()
        hidden = torch.cat([layer.length for layer in layers[:-1]], dim=-1)
        return hidden, layers[-1].length

    def closed_form_path_norm(self) -> Tensor:
        """PSiLON Net's collapsed 1-path-norm ``|g_1 ... g_{K-1}| * |g_K,j|`` (P1.3), ``(K, out)``.

        Every row of a shared-L1 layer sums to ``|g_l|`` in absolute value, so the chain
        ``|W_K| ... |W_1| 1`` collapses to a product of lengths. MLPs with shared L1 only.
        """
        if self.architecture != "mlp":
            raise ValueError(
                "the 1-path-norm closed form is for MLPs; for a ResNet use the improved bound's closed form"
            )
        hidden, head = self._shared_l1_lengths("1-path-norm")
        return hidden.abs().prod(-1, keepdim=True) * head.abs()

    def closed_form_improved_bound(self) -> Tensor:
        """PSiLON ResNet's improved bound ``|g_1| prod_l (1 + |g_l|) |g_K,j|`` (P1.4), ``(K, out)``.

        The chain ``W~_K (I + W~_{K-1}) ... (I + W~_2) |W_1| 1`` collapses because every
        row of ``W~_l`` sums to ``|g_l|``. ResNets with shared L1 only.
        """
        if self.architecture != "resnet":
            raise ValueError(
                "the improved bound's closed form is for ResNets; for an MLP use the 1-path-norm closed form"
            )
        hidden, head = self._shared_l1_lengths("improved bound")
        g = hidden.abs()
        return (g[:, :1] * (1.0 + g[:, 1:]).prod(-1, keepdim=True)) * head.abs()

    # ------------------------------------------------------------------ penalty
    def regularizer_members(self) -> Tensor:
        """The penalty the paper trains with, one value per member: shape ``(K,)`` always.

        * ``penalty='squared'``: sum over layers of the squared Frobenius norms of the
          effective weights (for L2 normalization: the sum of squared lengths).
        * ``penalty='path'``, MLP: the 1-path-norm (closed form for shared L1,
          explicit chain otherwise), summed over outputs.
        * ``penalty='path'``, ResNet: the improved bound (closed form for shared L1) or
          the original all-paths bound, summed over outputs.

        Differentiable.
        """
        if self.penalty == "squared":
            return sum(layer.weight().pow(2).sum(dim=(-2, -1)) for layer in self.layers())
        closed = self.norm == "l1" and self.shared
        if self.architecture == "mlp":
            per_output = self.closed_form_path_norm() if closed else self.path_chain("paths")
        elif self.bound == "original":
            per_output = self.path_chain("paths")
        else:
            per_output = self.closed_form_improved_bound() if closed else self.path_chain("improved")
        return per_output.sum(-1)

    def regularizer(self) -> Tensor:
        """:meth:`regularizer_members` as ``()`` for ``members=None``, else ``(members,)``."""
        value = self.regularizer_members()
        return value[0] if self.members is None else value

    # ------------------------------------------------------------------ projected gradient
    def project_directions_(self) -> WeightNormNet:
        """Put every row of every layer's direction on the unit L1 sphere, in place (no grad).

        For the projected-gradient variant ("Projected PSiLON" of the paper's deep
        ablation): call it after each optimizer step. Afterwards every row of every
        ``direction`` (for a CReLU pair every row of ``W~ = max(|V+|, |V-|)``) has L1
        norm 1 up to rounding, except all-zero rows, which stay zero.

        What changes: a row whose L1 norm exceeded 1 is replaced by its Euclidean
        projection onto the unit L1 ball, ``sign(v) max(|v| - tau, 0)`` (for CReLU pairs
        ``tau`` comes from ``W~`` and thresholds both halves, as pruning does), so its
        effective weight ``g v / ||v||_1`` becomes ``g sign(v) max(|v| - tau, 0)``:
        soft-thresholded, with exact zeros. A row inside the ball is only rescaled, which
        leaves its effective weight unchanged (the normalization is scale-invariant).
        Lengths, biases and the pruning state are untouched; the call is idempotent.
        Note the threshold acts on the raw scale of ``v``: on a fresh network (orthogonal
        rows of unit L2 norm, L1 norm up to ``sqrt(in)``) the first call sparsifies strongly.
        Only for ``norm='l1'`` (ValueError otherwise). Returns ``self``.
        """
        if self.norm != "l1":
            raise ValueError(
                f"project_directions_ projects onto the unit L1 sphere and needs norm='l1'; "
                f"this network has norm={self.norm!r}"
            )
        for layer in self.layers():
            layer.project_direction_()
        return self

    # ------------------------------------------------------------------ pruning
    def start_pruning(self, steps: int) -> None:
        """Start the pruning schedule of P1.5 over the next ``steps`` training steps.

        Each call to :meth:`advance_pruning` (once per optimizer step) moves the blend
        factor ``a = min(t / steps, 1)`` toward 1; at ``a = 1`` weights are exactly sparse.
        Requires L1 normalization.
        """
        if self.norm != "l1":
            raise ValueError("pruning needs norm='l1' (the projection is onto the L1 sphere)")
        steps = check_int("steps", steps)
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
        return self.embed._alpha

    def _set_alpha(self, a: float) -> None:
        for layer in self.layers():
            layer.set_prune_alpha(a)

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


def _check_finite(x: Tensor) -> None:
    """Raise on NaN or inf in ``x``.

    A finite sum proves every element finite (NaN and inf propagate through a sum) in
    one vectorized pass; only a non-finite sum (a bad value, or an overflow of large
    finite ones) needs the elementwise scan.
    """
    if not math.isfinite(x.sum().item()) and not bool(torch.isfinite(x).all()):
        raise ValueError("input contains NaN or inf; impute or drop those values first")


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
