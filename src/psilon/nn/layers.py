"""Weight-normalized linear layers with an optional leading ``members`` dimension.

Every layer stores its parameters with a leading dimension ``K`` (the number of
independent *members*; ``K = 1`` for a plain layer) so that K networks run as one
batched computation. The math, for member k and output neuron j::

    w_kj = g_kj * v_kj / ||v_kj||_p            (p = 1 or 2)

``g`` is either one scalar per member shared by all neurons of the layer
(``shared=True``; the "PSiLON" parameter sharing) or one length per neuron. The
length may be negative. Biases stay outside the normalization.

The CReLU pair (:class:`CReLULinear`) computes ``W+ relu(z) + W- (-relu(-z)) + b``
with ``W+`` and ``W-`` normalized jointly by the rows of ``W~ = max(|V+|, |V-|)``.

Pruning (paper P1.5): when ``prune_alpha = a > 0`` the effective direction is the
blend ``(1 - a) v/||v||_1 + a P(v)`` where ``P(v)`` is the Euclidean projection of
``v / ||v||_2`` onto the unit L1 ball. Because ``||v/||v||_2||_1 >= 1`` the
projection lands on the unit L1 *sphere* and is exactly sparse; it is invariant to
the scale of ``v`` like the normalization itself. Signs agree between the two terms,
so every row of the blend keeps unit L1 norm and the closed-form path norm stays
exact throughout pruning. At ``a = 1`` the weights are exactly sparse.

Compiled kernels: every layer has a boolean attribute ``compiled_kernels``, **False by
default (eager kernels)**. When it is True and the layer's ``direction`` has at least
``compile_min_numel`` (default :data:`FUSE_MIN_NUMEL`) elements, the normalization and
its backward run through ``torch.compile`` (one fused loop instead of 4-6 passes over
the weight). :meth:`psilon.nn.WeightNormNet.set_compiled_kernels` switches a whole
network. If compilation fails (e.g. no C++ compiler) psilon warns and turns that
layer's flag off; the compiled functions themselves are cached per process
(:func:`clear_compiled_kernels` empties that cache).

Path steps: each layer contributes its own step of the path-sum chains of
:mod:`psilon.pathnorm` (:meth:`NormalizedLinear.path_step`,
:meth:`CReLULinear.path_step`): ``u <- M u (+ skip term) (+ |b|)`` with ``M`` built from
``|W|`` (or ``W~`` / ``|W+| + |W-|`` / the tight Jacobian bound for a CReLU pair).
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .checks import check_bool, check_choice, check_int

_NORMS = ("l1", "l2")
#: Modes of the path-sum chains (see :meth:`NormalizedLinear.path_step`).
PATH_MODES = ("paths", "improved", "tight")


def project_l1_ball(v: Tensor, radius: float = 1.0) -> Tensor:
    """Euclidean projection of each row of ``v`` onto the L1 ball of ``radius``.

    Sort-based algorithm (Duchi et al., 2008): rows already inside the ball are
    returned unchanged; otherwise ``sign(v) * max(|v| - tau, 0)`` with the threshold
    ``tau`` chosen so that the result has L1 norm ``radius``. Ties are handled
    (equal magnitudes get the same treatment), zero rows stay zero, ``d = 1`` works.

    Args:
        v: ``(..., d)`` tensor; the projection acts on the last dimension.
        radius: positive radius of the ball.

    Returns:
        ``(..., d)`` tensor, the projection of every row.
    """
    if not isinstance(v, Tensor):
        v = torch.as_tensor(v)
    if v.dim() == 0:
        raise ValueError("project_l1_ball needs at least one dimension, got a scalar; pass v[None]")
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"radius must be a positive finite number, got {radius!r}")
    if not torch.isfinite(v).all():
        raise ValueError("v contains NaN or inf; the L1 projection is defined for finite inputs only")
    a = v.abs()
    mu, _ = torch.sort(a, dim=-1, descending=True)
    css = torch.cumsum(mu, dim=-1) - radius
    ind = torch.arange(1, v.shape[-1] + 1, device=v.device, dtype=v.dtype)
    cond = mu - css / ind > 0
    # rho: the number of kept coordinates (the last index where cond holds).
    rho = (cond * ind).amax(dim=-1, keepdim=True).clamp_min(1)
    tau = torch.gather(css, -1, rho.long() - 1) / rho
    proj = torch.sign(v) * (a - tau).clamp_min(0)
    inside = a.sum(dim=-1, keepdim=True) <= radius
    return torch.where(inside, v, proj)


def _row_norm(w: Tensor, norm: str) -> Tensor:
    """Row norms ``(..., 1)``, floored at the dtype's tiny so that an all-zero row maps to 0, not NaN."""
    if norm == "l1":
        n = w.abs().sum(dim=-1, keepdim=True)
    else:
        n = torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    return n.clamp_min(torch.finfo(w.dtype).tiny)


def _tilde(w: Tensor) -> Tensor:
    """``W~ = max(|W+|, |W-|)`` of a CReLU pair stored as ``[W+, W-]`` ``(K, out, 2*in)`` -> ``(K, out, in)``."""
    half = w.shape[-1] // 2
    return torch.maximum(w[..., :half].abs(), w[..., half:].abs())


def _denominator(v: Tensor, norm: str, crelu: bool) -> Tensor:
    """Row norms of ``v`` ``(K, out, d)``, or of ``W~ = max(|V+|, |V-|)`` for a CReLU pair."""
    return _row_norm(_tilde(v) if crelu else v, norm)


def _denominator_grad(v: Tensor, n: Tensor, norm: str, crelu: bool) -> Tensor:
    """``d n_i / d v_ij`` for the denominators of :func:`_denominator`, ``(K, out, d)``."""
    d = torch.sign(v) if norm == "l1" else v / n
    if crelu:
        half = v.shape[-1] // 2
        a_plus, a_minus = v[..., :half].abs(), v[..., half:].abs()
        # The larger magnitude carries the gradient; ties share it (as autograd's maximum does).
        w_plus = (a_plus > a_minus).to(v.dtype) + 0.5 * (a_plus == a_minus).to(v.dtype)
        d = d * torch.cat([w_plus, 1.0 - w_plus], dim=-1)
    return d


def _normalization_backward(ctx_needs: tuple[bool, bool], grad_w: Tensor, v: Tensor, g: Tensor, n: Tensor,
                            norm: str, crelu: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``W = g * v / n(v)`` w.r.t. ``v`` and ``g`` given ``G = dL/dW``.

    With ``r_i = sum_j G_ij v_ij``::

        dL/dg_i  = r_i / n_i                      (summed over rows for a shared g)
        dL/dv_ij = (g_i / n_i) * (G_ij - (r_i / n_i) * dn_i/dv_ij)
    """
    r_over_n = torch.linalg.vecdot(grad_w, v).unsqueeze(-1) / n  # (K, out, 1)
    grad_v = grad_g = None
    if ctx_needs[0]:
        scale = g.unsqueeze(-1) / n
        dn = _denominator_grad(v, n, norm, crelu)
        grad_v = torch.addcmul(grad_w, dn, r_over_n, value=-1.0).mul_(scale)
    if ctx_needs[1]:
        grad_g = r_over_n.squeeze(-1)
        if g.shape[-1] == 1:
            grad_g = grad_g.sum(-1, keepdim=True)
    return grad_v, grad_g


def _normalize(v: Tensor, g: Tensor, norm: str, crelu: bool) -> tuple[Tensor, Tensor]:
    """``(W, n)``: the effective weight ``W = g * v / n(v)`` and the row norms ``n``."""
    n = _denominator(v, norm, crelu)
    return v * (g.unsqueeze(-1) / n), n


# ----------------------------------------------------------------- compiled kernels
#: Layers with ``compiled_kernels`` on run the two functions above through
#: ``torch.compile`` when their weight has at least this many elements (the default of
#: ``compile_min_numel``). Below it the eager kernels are as fast and compiling would
#: only cost start-up time.
FUSE_MIN_NUMEL = 1 << 20
#: Process-wide cache ``eager function -> torch.compile'd function``: a cache, not a
#: switch (whether a layer uses it is the layer's ``compiled_kernels`` attribute).
_COMPILED: dict = {}


def clear_compiled_kernels() -> None:
    """Empty the process-wide cache of compiled kernels; the next compiled call compiles anew."""
    _COMPILED.clear()


def _kernel(fn, owner):
    """``fn`` itself (``owner`` None: eager), or a call of its ``torch.compile``'d version on
    behalf of the layer ``owner`` that falls back to ``fn`` if compilation fails."""
    if owner is None:
        return fn
    return functools.partial(_call_compiled, fn, owner)


def _call_compiled(fn, owner, *args):
    compiled = _COMPILED.get(fn)
    if compiled is None:
        compiled = _COMPILED[fn] = torch.compile(fn, dynamic=True, fullgraph=True)
    # Plain tensors, not nn.Parameters: torch keeps a parameter's shape static in the
    # guards, so every drop in the member count K (early stopping) would recompile. The
    # kernels run inside autograd Functions (no graph is recorded), so detaching is free.
    args = tuple(a.detach() if isinstance(a, torch.nn.Parameter) else a for a in args)
    try:
        return compiled(*args)
    except Exception as exc:  # noqa: BLE001 - any compiler failure: fall back, loudly
        owner.compiled_kernels = False
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        warnings.warn(
            f"psilon: torch.compile of the weight-normalization kernels failed ({type(exc).__name__}: "
            f"{first_line}); this layer now uses the eager kernels (slower on large weights). "
            "Call set_compiled_kernels(False) on the network to silence this.",
            RuntimeWarning,
            stacklevel=4,
        )
        return fn(*args)


def _still_compiled(owner):
    """``owner`` unless its compilation failed during the forward (then eager: ``None``)."""
    return owner if owner is not None and owner.compiled_kernels else None


class _NormalizedWeight(torch.autograd.Function):
    """``W = g * v / n(v)`` row-wise (``g``: ``(K, 1)`` or ``(K, out)``), hand-derived backward.

    Autograd through ``abs``, ``sum``, ``div`` and ``mul`` needs about twice as many
    passes over the weight matrix; see :func:`_normalization_backward` for the math.
    """

    @staticmethod
    def forward(ctx, v: Tensor, g: Tensor, norm: str, crelu: bool, owner) -> Tensor:
        w, n = _kernel(_normalize, owner)(v, g, norm, crelu)
        ctx.save_for_backward(v, g, n)
        ctx.norm, ctx.crelu, ctx.owner = norm, crelu, owner
        return w

    @staticmethod
    def backward(ctx, grad: Tensor):
        v, g, n = ctx.saved_tensors
        grad_v, grad_g = _kernel(_normalization_backward, _still_compiled(ctx.owner))(
            ctx.needs_input_grad[:2], grad, v, g, n, ctx.norm, ctx.crelu
        )
        return grad_v, grad_g, None, None, None


class _NormalizedLinear(torch.autograd.Function):
    """``y = x W^T + b`` with ``W = g * v / n(v)``, members batched, one fused backward.

    ``x``: ``(K, B, d)`` per member or ``(B, d)`` shared by all members; ``v``:
    ``(K, out, d)``; output ``(K, B, out)`` (for a shared input a view with the
    ``(B, K, out)`` memory layout). The backward computes
    ``dL/dW`` directly in ``v``'s layout (``G^T x``, a single GEMM for a shared input),
    so no transposed weight gradient is ever copied, and folds it into the
    normalization backward.
    """

    @staticmethod
    def forward(ctx, x: Tensor, v: Tensor, g: Tensor, b: Tensor, norm: str, crelu: bool, owner) -> Tensor:
        w, n = _kernel(_normalize, owner)(v, g, norm, crelu)
        k, out, d = w.shape
        if x.dim() == 2:
            y = torch.addmm(b.reshape(1, k * out), x, w.reshape(k * out, d).t())
            # (K, B, out) as a strided view of the (B, K*out) result: batched matmuls and
            # elementwise kernels accept it as is, so no copy is made here or in backward
            y = y.view(x.shape[0], k, out).transpose(0, 1)
        elif k == 1:  # one network: plain GEMMs (MKL's batched path is slower for a batch of 1)
            y = torch.addmm(b, x[0], w[0].t()).unsqueeze(0)
        else:
            y = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        ctx.save_for_backward(x, v, g, n, w)
        ctx.norm, ctx.crelu, ctx.owner = norm, crelu, owner
        return y

    @staticmethod
    def backward(ctx, gy: Tensor):
        x, v, g, n, w = ctx.saved_tensors
        k, out, d = w.shape
        grad_x = None
        if x.dim() == 2:
            gflat = gy.transpose(0, 1).reshape(x.shape[0], k * out)  # (B, K*out)
            grad_w = gflat.t().mm(x).view(k, out, d)
            if ctx.needs_input_grad[0]:
                grad_x = gflat.mm(w.reshape(k * out, d))
        elif k == 1:
            grad_w = gy[0].t().mm(x[0]).unsqueeze(0)
            if ctx.needs_input_grad[0]:
                grad_x = gy[0].mm(w[0]).unsqueeze(0)
        else:
            grad_w = torch.bmm(gy.transpose(1, 2), x)
            if ctx.needs_input_grad[0]:
                # a single output (the regression / binary head): an outer product, which a
                # broadcast multiply computes far faster than a GEMM with inner dimension 1
                grad_x = gy * w if out == 1 else torch.bmm(gy, w)
        grad_b = gy.sum(1) if ctx.needs_input_grad[3] else None
        grad_v, grad_g = _kernel(_normalization_backward, _still_compiled(ctx.owner))(
            ctx.needs_input_grad[1:3], grad_w, v, g, n, ctx.norm, ctx.crelu
        )
        return grad_x, grad_v, grad_g, grad_b, None, None, None


class _CReLU(torch.autograd.Function):
    """``crelu(z) = [relu(z), -relu(-z)] = [max(z, 0), min(z, 0)]`` along the last dimension.

    Written straight into the two halves of one buffer (no negations, no concatenation);
    the backward is ``dz = g+ where z > 0 else g-`` (at ``z = 0``, where the pair is not
    differentiable, the one-sided derivative from below is used).
    """

    @staticmethod
    def forward(ctx, z: Tensor) -> Tensor:
        h = z.shape[-1]
        out = z.new_empty(*z.shape[:-1], 2 * h)
        torch.clamp_min(z, 0, out=out[..., :h])
        torch.clamp_max(z, 0, out=out[..., h:])
        ctx.save_for_backward(z)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (z,) = ctx.saved_tensors
        h = z.shape[-1]
        g_plus, g_minus = grad[..., :h], grad[..., h:]
        # g- + [z > 0] (g+ - g-), via threshold_backward: on this CPU build torch.where is
        # ~5x slower than these three vectorized passes together
        return torch.ops.aten.threshold_backward(g_plus - g_minus, z, 0).add_(g_minus)


def crelu(z: Tensor) -> Tensor:
    """Concatenated ReLU ``[relu(z), -relu(-z)]`` of the last dimension, ``(..., 2 * d)``."""
    return _CReLU.apply(z)


def _linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """Plain autograd ``x W^T + b`` for members (used while pruning), output ``(K, B, out)``."""
    if x.dim() == 2:
        k, out, d = w.shape
        y = F.linear(x, w.reshape(k * out, d), b.reshape(k * out))
        return y.view(x.shape[0], k, out).transpose(0, 1)
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def _matvec(m: Tensor, u: Tensor) -> Tensor:
    """``(K, out, in) @ (K, in) -> (K, out)``."""
    return torch.bmm(m, u.unsqueeze(-1)).squeeze(-1)


def _shrink(v: Tensor, mag: Tensor) -> Tensor:
    """``sign(v) * max(|v| - tau, 0)`` with, per row, the threshold ``tau`` of the Euclidean
    projection of the magnitudes ``mag`` (``|v|``, or ``W~`` of a CReLU pair) onto the unit
    L1 ball; ``tau = 0`` for rows already inside the ball.

    The projection is ``max(mag - tau, 0)``: ``mag - P(mag)`` equals ``tau`` on the kept
    coordinates and is ``<= tau`` elsewhere, so its row maximum is ``tau``.
    """
    tau = (mag - project_l1_ball(mag)).amax(dim=-1, keepdim=True)
    return torch.sign(v) * (v.abs() - tau).clamp_min(0)


def _orthogonal(members: int, out_features: int, in_features: int) -> Tensor:
    v = torch.empty(members, out_features, in_features)
    for k in range(members):
        nn.init.orthogonal_(v[k])
    return v


class _NormalizedBase(nn.Module):
    """Shared parameter handling of the normalized layers (lengths, bias, pruning, kernels, path steps)."""

    #: True for the CReLU pair (normalized by ``W~ = max(|V+|, |V-|)``).
    _crelu = False
    #: Run the normalization through ``torch.compile``'d kernels. Default ``False`` (eager);
    #: set it with :meth:`psilon.nn.WeightNormNet.set_compiled_kernels`. Only weights of at
    #: least :attr:`compile_min_numel` elements compile; a compile failure warns and resets it.
    compiled_kernels: bool = False
    #: Smallest ``direction.numel()`` for which :attr:`compiled_kernels` takes effect.
    compile_min_numel: int = FUSE_MIN_NUMEL

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        members: int,
        norm: str,
        shared: bool,
        init_length: float,
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.members = check_int("members", members)
        self.norm = check_choice("norm", norm, _NORMS)
        self.shared = check_bool("shared", shared)
        self.compiled_kernels = False
        self.compile_min_numel = FUSE_MIN_NUMEL
        n_len = 1 if self.shared else self.out_features
        self.length = nn.Parameter(torch.full((self.members, n_len), float(init_length)))
        self.bias = nn.Parameter(torch.zeros(self.members, self.out_features))
        self.register_buffer("prune_alpha", torch.zeros(()))
        self._alpha = 0.0  # host copy of the buffer: a forward never reads a device value

    def set_prune_alpha(self, a: float) -> None:
        """Set the pruning blend factor ``a`` (the ``prune_alpha`` buffer and its host copy)."""
        self.prune_alpha.fill_(a)
        self._alpha = float(a)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        value = state_dict.get(prefix + "prune_alpha")
        if value is not None and value.device.type != "meta":
            self._alpha = float(value)

    def _scale(self) -> Tensor:
        """Lengths broadcastable against ``(K, out, in)``."""
        return self.length.unsqueeze(-1)

    def _kernel_owner(self):
        """``self`` when this layer runs the compiled kernels now, else ``None`` (eager)."""
        if self.compiled_kernels and self.direction.numel() >= self.compile_min_numel:
            return self
        return None

    def weight(self) -> Tensor:
        """Effective weight ``W = g * unit_weight()``, ``(K, out, d)``."""
        if self._alpha == 0.0:
            return _NormalizedWeight.apply(self.direction, self.length, self.norm, self._crelu, self._kernel_owner())
        return self._scale() * self.unit_weight()

    def _affine(self, x: Tensor) -> Tensor:
        """``x W^T + b`` for ``x`` ``(batch, d)`` or ``(K, batch, d)``, output ``(K, batch, out)``."""
        if self._alpha == 0.0:
            return _NormalizedLinear.apply(
                x, self.direction, self.length, self.bias, self.norm, self._crelu, self._kernel_owner()
            )
        return _linear(x, self.weight(), self.bias)

    def unit_weight(self) -> Tensor:
        """Normalized directions ``v / n(v)`` blended toward :meth:`pruned_direction` by
        ``prune_alpha`` (rows, or rows of ``W~`` for a CReLU pair, of unit norm), ``(K, out, d)``."""
        v = self.direction
        unit = v / _denominator(v, self.norm, self._crelu)
        a = self._alpha
        if a <= 0.0:
            return unit
        if self.norm != "l1":
            raise ValueError("pruning is defined for L1-normalized layers only (norm='l1')")
        return (1.0 - a) * unit + a * self.pruned_direction()

    # ------------------------------------------------------------ projected gradient
    @torch.no_grad()
    def project_direction_(self) -> None:
        """Put every row of ``direction`` (of ``W~`` for a CReLU pair) on the unit L1 sphere, in place.

        Rows whose L1 norm exceeds 1 are replaced by their Euclidean projection onto the
        unit L1 ball, ``sign(v) * max(|v| - tau, 0)``, which lies on the sphere (for a
        CReLU pair ``tau`` comes from ``W~`` and thresholds both halves, as in
        :meth:`CReLULinear.pruned_direction`). Rows inside the ball (the projection leaves
        them as they are) are scaled to unit L1 norm. All-zero rows stay zero.

        What changes in the layer's function: the effective weight ``g v / ||v||_1`` of a
        row that was outside the ball becomes ``g max(|v| - tau, 0) sign(v)``: the
        soft-thresholding (exact zeros, smaller entries shrunk by ``tau``, relative to the
        row's raw scale). Rows inside the ball keep their effective weight (to rounding:
        the normalization is scale-invariant). Lengths and biases are untouched. The
        operation is idempotent. Requires ``norm='l1'``.
        """
        if self.norm != "l1":
            raise ValueError(
                f"projecting directions onto the unit L1 sphere needs norm='l1'; this layer has norm={self.norm!r}"
            )
        v = self.direction
        p = _shrink(v, _tilde(v) if self._crelu else v.abs())
        # p is on the sphere up to rounding (or inside, if the row was): divide by its norm
        v.copy_(p / _denominator(p, "l1", self._crelu))

    # ------------------------------------------------------------ path sums
    def path_step(self, u: Tensor, mode: str = "paths", *, skip: bool = False, include_bias: bool = False) -> Tensor:
        """This layer's step of a path-sum chain: ``u`` ``(K, in)`` -> ``(K, out)``.

        ``u`` holds, per member, the non-negative path sums arriving at each input; the
        step returns ``M u``, plus this layer's skip term when it sits on a residual
        connection ``z + layer(z)`` (``skip=True``), plus ``|b|`` with ``include_bias``
        (paths that start at the bias). ``M`` and the skip term depend on ``mode``:

        * plain layer, every mode: ``M = |W|``; skip term ``u`` (``|I + W D| <= I + |W|``).
        * CReLU pair, ``'paths'`` (1-path-norm / original bound): ``M = |W+| + |W-|``; skip
          term ``2 u`` (the identity path through each half of the CReLU).
        * CReLU pair, ``'improved'``: ``M = W~ = max(|W+|, |W-|)``; skip term ``u``.
        * CReLU pair, ``'tight'``: on a residual connection ``max(|I + W+|, |I + W-|) u``
          (skip included); otherwise as ``'improved'``.
        """
        check_choice("mode", mode, PATH_MODES)
        if check_bool("skip", skip) and self.in_features != self.out_features:
            raise ValueError(
                f"a skip connection needs in_features == out_features, got {self.in_features} -> {self.out_features}"
            )
        new = self._path_propagate(u, mode, skip)
        return new + self.bias.abs() if check_bool("include_bias", include_bias) else new

    def _path_propagate(self, u: Tensor, mode: str, skip: bool) -> Tensor:
        new = _matvec(self.abs_weight(), u)
        return new + u if skip else new

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"members={self.members}, norm={self.norm!r}, shared={self.shared}"
        )


class NormalizedLinear(_NormalizedBase):
    """Linear layer with L1 or L2 weight normalization, members stacked in front.

    Parameters: ``direction`` ``(K, out, in)`` (orthogonal init per member),
    ``length`` ``(K, 1)`` if shared else ``(K, out)``, ``bias`` ``(K, out)``.
    Sizes are any positive integers (``numbers.Integral``, numpy integers included);
    ``shared`` must be a bool. Attribute ``compiled_kernels`` (default ``False``: eager
    kernels) switches the ``torch.compile``'d normalization on for large weights.

    Input ``(batch, in)`` (shared by all members) or ``(K, batch, in)``;
    output ``(K, batch, out)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        members: int = 1,
        norm: str = "l1",
        shared: bool = True,
        init_length: float = 1.0,
    ) -> None:
        super().__init__(
            in_features, out_features, members=members, norm=norm, shared=shared, init_length=init_length
        )
        self.direction = nn.Parameter(_orthogonal(self.members, self.out_features, self.in_features))

    def pruned_direction(self) -> Tensor:
        """``P(v)``: projection of ``v/||v||_2`` onto the unit L1 ball, ``(K, out, in)``."""
        v = self.direction
        return project_l1_ball(v / _row_norm(v, "l2"))

    def abs_weight(self) -> Tensor:
        """``|W|`` used by the path-norm chains, ``(K, out, in)``."""
        return self.weight().abs()

    def forward(self, x: Tensor) -> Tensor:
        return self._affine(x)


class CReLULinear(_NormalizedBase):
    """Concatenated-ReLU linear pair: ``y = W+ relu(z) + W- (-relu(-z)) + b``.

    ``W± = g * V± / ||max(|V+|, |V-|)||`` row-wise (L1 or L2 of ``W~``), so the rows of
    ``W~ = max(|W+|, |W-|)`` have norm ``|g|``. With ``tied_init`` (a bool) the two halves
    start equal (W+ = W-: the layer "looks linear" at init).

    Parameters: ``direction`` ``(K, out, 2*in)`` holding ``[V+, V-]``, ``length``,
    ``bias``. Input ``(K, batch, in)`` or ``(batch, in)``; output ``(K, batch, out)``.
    ``weight()`` returns ``[W+, W-]``, ``(K, out, 2*in)``. ``compiled_kernels`` as for
    :class:`NormalizedLinear` (default ``False``).
    """

    _crelu = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        members: int = 1,
        norm: str = "l1",
        shared: bool = True,
        init_length: float = 1.0,
        tied_init: bool = True,
    ) -> None:
        super().__init__(
            in_features, out_features, members=members, norm=norm, shared=shared, init_length=init_length
        )
        v = _orthogonal(self.members, self.out_features, self.in_features)
        tied = check_bool("tied_init", tied_init)
        v_minus = v.clone() if tied else _orthogonal(self.members, self.out_features, self.in_features)
        self.direction = nn.Parameter(torch.cat([v, v_minus], dim=-1))

    def _halves(self, w: Tensor) -> tuple[Tensor, Tensor]:
        return w[..., : self.in_features], w[..., self.in_features :]

    def pruned_direction(self) -> Tensor:
        """Both halves thresholded by the ``tau`` of ``W~``'s projection (P1.5), ``(K, out, 2*in)``."""
        v = self.direction
        tilde = _tilde(v)
        s = _row_norm(tilde, "l2")
        return _shrink(v / s, tilde / s)

    def weight_pair(self) -> tuple[Tensor, Tensor]:
        """``(W+, W-)``, each ``(K, out, in)``."""
        return self._halves(self.weight())

    def abs_weight(self) -> Tensor:
        """``W~ = max(|W+|, |W-|)``, ``(K, out, in)``: the entrywise Jacobian bound."""
        return _tilde(self.weight())

    def _path_propagate(self, u: Tensor, mode: str, skip: bool) -> Tensor:
        if mode == "paths":
            w_plus, w_minus = self.weight_pair()
            new = _matvec(w_plus.abs() + w_minus.abs(), u)
            return new + 2.0 * u if skip else new
        if mode == "improved" or not skip:
            return super()._path_propagate(u, mode, skip)
        # tight bound of a residual block's Jacobian I + W+ D+ + W- D- (D+ + D- = I)
        w_plus, w_minus = self.weight_pair()
        eye = torch.eye(self.out_features, dtype=u.dtype, device=u.device)
        return _matvec(torch.maximum((eye + w_plus).abs(), (eye + w_minus).abs()), u)

    def forward(self, z: Tensor) -> Tensor:
        return self._affine(crelu(z))
