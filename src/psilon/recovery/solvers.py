"""GD and weight-normalized GD (WN-GD) on depth-L diagonal linear networks, batched.

Model (``N`` features, depth ``L >= 2``, parameters ``u`` of length ``P``):

* non-negative: ``P = N`` and ``x = u**L`` (elementwise power);
* signed:       ``P = 2N``, ``u = [u+, u-]`` and ``x = u+**L - u-**L`` (the non-negative
  model on ``[A, -A]``).

Loss ``f(u) = 0.5 * ||A x(u) - b||_2^2``. With ``g = A^T (A x - b)`` (length ``N``) the
gradient is ``grad_u f = L * u**(L-1) * [g]`` (non-negative) or ``L * u**(L-1) * [g, -g]``
(signed).

**GD** (plain gradient descent on ``u``)::

    u_0 = alpha * 1,          u_{k+1} = u_k - lr * grad_u f(u_k)

**WN-GD** (gradient descent on polar coordinates ``u = r * v / ||v||_2``)::

    v_0 = 1 / sqrt(P) * 1  (unit norm),    r_0 = alpha * sqrt(P)   (so u_0 = alpha * 1)
    grad_r = <grad_u f, v^>                              with v^ = v / ||v||
    grad_v = (r / ||v||) * (grad_u f - grad_r * v^)      (orthogonal to v)
    v_{k+1} = v_k - lr * grad_v,      r_{k+1} = r_k - eta_ratio * lr * grad_r

``lr`` is the directional learning rate, ``eta_ratio * lr`` the radial one (the paper's
learning-rate ratio eta~). Because ``grad_v`` is orthogonal to ``v``, ``||v||`` is constant
under the gradient flow; a discrete step grows it by the factor
``sqrt(1 + lr^2 ||grad_v||^2 / ||v||^2)``, so it stays nearly constant for small steps.

**Batching.** ``T`` problems (trials) are run at once, each with ``K`` *columns* (one per
configuration: method, alpha, eta~). Parameters live in arrays of shape ``(T, K, P)``; the
two products per step are batched matmuls ``(T, K, N) @ (T, N, M)`` and
``(T, K, M) @ (T, M, N)`` shared by all columns of a trial (GD and WN-GD columns included).

**Stopping.** A column stops (is frozen, its parameters no longer change) at the first
iterate whose loss is ``< tol``; otherwise after ``max_steps`` updates. Each trial keeps
its own list of running columns, packed to the front of its row; the batch width shrinks
to the busiest trial's count and finished trials are dropped ("compaction"), so the cost
follows the number of running problems.
Freezing makes each column's result independent of what else is in the batch: a batched
run and a loop over single problems produce the same iterates (up to rounding).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .problems import RecoveryProblems

METHODS = ("gd", "wn")


# --------------------------------------------------------------------------- model math
def _check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)):
        raise ValueError(f"depth L must be an integer >= 2, got {depth!r}")
    if depth < 2:
        raise ValueError(
            f"depth L={depth} is not overparameterized: the diagonal linear network needs "
            f"L >= 2 (L = 1 is plain least squares); use depth=2 or 3"
        )
    return int(depth)


def _power(u: np.ndarray, p: int) -> np.ndarray:
    if p == 1:
        return u
    if p == 2:
        return u * u
    return u**p


def model_output(u: np.ndarray, depth: int, signed: bool) -> np.ndarray:
    """``x(u)``: ``u**L`` (shape ``(..., N)``) or ``u[..., :N]**L - u[..., N:]**L``.

    ``u`` has shape ``(..., P)`` with ``P = N`` (non-negative) or ``P = 2N`` (signed).
    """
    p = _power(u, depth)
    if signed:
        n = u.shape[-1] // 2
        return p[..., :n] - p[..., n:]
    return p


def gradient_u(u: np.ndarray, g: np.ndarray, depth: int, signed: bool) -> np.ndarray:
    """``grad_u f`` from ``g = A^T (A x - b)``.

    ``u``: ``(..., P)``; ``g``: ``(..., N)``; returns ``(..., P)`` equal to
    ``L u**(L-1) * g`` (non-negative) or ``L u**(L-1) * [g, -g]`` (signed).
    """
    if signed:
        g = np.concatenate([g, -g], axis=-1)
    return depth * _power(u, depth - 1) * g


def polar_gradient(grad_u: np.ndarray, r: np.ndarray, v: np.ndarray, v_norm: np.ndarray):
    """Chain rule through ``u = r v / ||v||``.

    ``grad_u``, ``v``: ``(..., P)``; ``r``, ``v_norm``: ``(..., 1)``. Returns
    ``(grad_r (..., 1), grad_v (..., P))`` with ``grad_r = <grad_u, v^>`` and
    ``grad_v = (r / ||v||) (grad_u - grad_r v^)``.
    """
    v_hat = v / v_norm
    grad_r = np.einsum("...p,...p->...", grad_u, v_hat)[..., None]
    grad_v = (r / v_norm) * (grad_u - grad_r * v_hat)
    return grad_r, grad_v


def gd_loss_and_grad(A, b, u, depth: int = 2, signed: bool = False):
    """Loss and gradient of the plain parameterization for one problem.

    ``A`` (M, N), ``b`` (M,), ``u`` (P,). Returns ``(f(u), grad_u f)`` with
    ``f(u) = 0.5 ||A x(u) - b||^2``.
    """
    depth = _check_depth(depth)
    A, b, u = (np.asarray(a, dtype=np.float64) for a in (A, b, u))
    res = A @ model_output(u, depth, signed) - b
    return 0.5 * float(res @ res), gradient_u(u, A.T @ res, depth, signed)


def wn_loss_and_grad(A, b, r, v, depth: int = 2, signed: bool = False):
    """Loss and gradients of the polar parameterization ``u = r v / ||v||`` for one problem.

    ``A`` (M, N), ``b`` (M,), ``r`` scalar, ``v`` (P,). Returns ``(f, df/dr, df/dv)``.
    """
    depth = _check_depth(depth)
    A, b, v = (np.asarray(a, dtype=np.float64) for a in (A, b, v))
    nv = np.sqrt(v @ v)
    u = r * v / nv
    res = A @ model_output(u, depth, signed) - b
    gu = gradient_u(u, A.T @ res, depth, signed)
    gr, gv = polar_gradient(gu, np.array([r], dtype=np.float64), v, np.array([nv]))
    return 0.5 * float(res @ res), float(gr[0]), gv


# --------------------------------------------------------------------------- results
@dataclass
class SolverResult:
    """Outcome of a batched run over ``T`` trials and ``K`` columns.

    Attributes
    ----------
    x : (T, K, N)         final estimate ``x(u)`` of each trial and column
    loss : (T, K)         ``0.5 ||A x - b||^2`` at ``x``
    steps : (T, K) int    updates applied (= ``max_steps`` when the tolerance was not met)
    converged : (T, K)    loss < tol reached within the budget
    v_norm : (T, K)       final ``||v||`` (WN-GD columns; NaN for GD)
    radius : (T, K)       final ``r`` (WN-GD; NaN for GD)
    method, alpha, eta_ratio : (K,)   the columns (eta_ratio NaN for GD)
    depth, lr, tol, max_steps, signed : the shared settings
    history_steps : (H,) or None      iterations at which the history was recorded
    history_loss, history_error : (H, T, K) or None  loss and ``||x - x_star||_2``
    wall_time : float     seconds spent in the solver loop
    """

    x: np.ndarray
    loss: np.ndarray
    steps: np.ndarray
    converged: np.ndarray
    v_norm: np.ndarray
    radius: np.ndarray
    method: np.ndarray
    alpha: np.ndarray
    eta_ratio: np.ndarray
    depth: int
    lr: float
    tol: float
    max_steps: int
    signed: bool
    history_steps: np.ndarray | None = None
    history_loss: np.ndarray | None = None
    history_error: np.ndarray | None = None
    wall_time: float = 0.0

    def error(self, x_ref: np.ndarray, relative: bool = False) -> np.ndarray:
        """``||x - x_ref||_2`` per trial and column, shape (T, K); ``x_ref`` is (T, N).

        With ``relative=True`` divided by ``||x_ref||_2``.
        """
        x_ref = np.asarray(x_ref, dtype=np.float64)
        if x_ref.shape != (self.x.shape[0], self.x.shape[2]):
            raise ValueError(
                f"x_ref has shape {x_ref.shape}, expected (trials, N) = "
                f"{(self.x.shape[0], self.x.shape[2])}"
            )
        err = np.linalg.norm(self.x - x_ref[:, None, :], axis=-1)
        if relative:
            err = err / np.linalg.norm(x_ref, axis=-1)[:, None]
        return err


# --------------------------------------------------------------------------- the solver
def _as_columns(method, alpha, eta_ratio):
    try:
        method, alpha, eta_ratio = np.broadcast_arrays(
            np.atleast_1d(np.asarray(method, dtype=object)),
            np.atleast_1d(np.asarray(alpha, dtype=np.float64)),
            np.atleast_1d(np.asarray(eta_ratio, dtype=np.float64)),
        )
    except ValueError:
        raise ValueError(
            "method, alpha and eta_ratio must broadcast to one list of columns; got lengths "
            f"{np.size(method)}, {np.size(alpha)}, {np.size(eta_ratio)} (use equal lengths or "
            "scalars; build a grid with np.meshgrid first)"
        ) from None
    if method.ndim != 1:
        raise ValueError("method, alpha and eta_ratio must be scalars or 1-D sequences")
    method = np.array([str(m).lower() for m in method])
    bad = sorted(set(method) - set(METHODS))
    if bad:
        raise ValueError(f"unknown method(s) {bad}; use 'gd' or 'wn'")
    if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0):
        raise ValueError(
            f"initialization scale alpha must be > 0 and finite (u_0 = alpha * 1; alpha = 0 is "
            f"a stationary point), got {alpha.tolist()}"
        )
    is_wn = method == "wn"
    if np.any(~np.isfinite(eta_ratio[is_wn])) or np.any(eta_ratio[is_wn] <= 0):
        raise ValueError(
            f"learning-rate ratio eta_ratio must be > 0 and finite for WN-GD columns, got "
            f"{eta_ratio[is_wn].tolist()}"
        )
    eta_ratio = np.where(is_wn, eta_ratio, np.nan)
    return method, alpha.copy(), eta_ratio


@dataclass(frozen=True)
class _Settings:
    """The shared settings of one :func:`solve` call (checked)."""

    depth: int
    lr: float
    tol: float
    max_steps: int
    record_every: int | None
    compact: bool
    signed: bool

    @property
    def fast(self) -> bool:
        """``L = 2``, non-negative: ``x = u * u`` and ``grad_u f = 2 u * g`` without powers."""
        return self.depth == 2 and not self.signed


def _check_settings(problems, depth, lr, tol, max_steps, record_every, compact) -> _Settings:
    if not isinstance(problems, RecoveryProblems):
        raise ValueError(
            "problems must be a RecoveryProblems; wrap arrays with "
            "RecoveryProblems.from_arrays(A, b, x_star)"
        )
    depth = _check_depth(depth)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate lr must be > 0 and finite, got {lr!r}")
    if not (tol >= 0):
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 0:
        raise ValueError(f"max_steps must be an integer >= 0, got {max_steps!r}")
    if record_every is not None and (
        not isinstance(record_every, (int, np.integer)) or record_every < 1
    ):
        raise ValueError(f"record_every must be a positive integer or None, got {record_every!r}")
    return _Settings(depth, lr, tol, max_steps, record_every, compact, problems.signed)


@dataclass
class _Outputs:
    """Full-size ``(T, K, ...)`` results; they also hold the current value of finished columns."""

    x: np.ndarray
    loss: np.ndarray
    steps: np.ndarray
    converged: np.ndarray
    v_norm: np.ndarray
    radius: np.ndarray
    hist_steps: list = field(default_factory=list)
    hist_loss: list = field(default_factory=list)
    hist_err: list = field(default_factory=list)

    @classmethod
    def empty(cls, T: int, K: int, N: int, max_steps: int) -> _Outputs:
        return cls(
            x=np.zeros((T, K, N)),
            loss=np.full((T, K), np.nan),
            steps=np.full((T, K), int(max_steps), dtype=np.int64),
            converged=np.zeros((T, K), dtype=bool),
            v_norm=np.full((T, K), np.nan),
            radius=np.full((T, K), np.nan),
        )

    def write_back(self, batch: _Batch, xb, loss, nv) -> None:
        """Copy the running slots' ``x``, loss, ``||v||`` and ``r`` to their original columns."""
        kg = batch.gmap.shape[1]
        rows = batch.tr[:, None]
        self.x[rows, batch.gmap] = xb[:, :kg]
        self.loss[rows, batch.gmap] = loss[:, :kg]
        self.x[rows, batch.wmap] = xb[:, kg:]
        self.loss[rows, batch.wmap] = loss[:, kg:]
        if batch.wmap.shape[1]:
            self.v_norm[rows, batch.wmap] = nv[..., 0]
            self.radius[rows, batch.wmap] = batch.R[..., 0]

    def record(self, k: int, x_star) -> None:
        self.hist_steps.append(k)
        self.hist_loss.append(self.loss.copy())
        if x_star is not None:
            self.hist_err.append(np.linalg.norm(self.x - x_star[:, None, :], axis=-1))


def _take(a: np.ndarray, keep_t: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Rows ``keep_t`` of ``a`` (T, K[, ...]), each row's slots reordered by ``order`` (T', K')."""
    a = a[keep_t]
    idx = order if a.ndim == 2 else order[..., None]
    return np.take_along_axis(a, idx, axis=1)


@dataclass
class _Batch:
    """Running state. Every trial row keeps its own list of running columns ("slots"):
    ``gmap``/``wmap`` (T', Kg') / (T', Kw') give the original column of each GD / WN-GD slot.
    When columns finish, each row's running slots are packed to the front and the width
    shrinks to the busiest row; finished rows are dropped (:meth:`compact`).
    """

    tr: np.ndarray  # original trial of each row
    A: np.ndarray
    At: np.ndarray
    b: np.ndarray
    gmap: np.ndarray
    wmap: np.ndarray
    U: np.ndarray  # GD parameters (T', Kg', P)
    V: np.ndarray  # WN-GD directions (T', Kw', P)
    R: np.ndarray  # WN-GD radii (T', Kw', 1)
    lr_r: np.ndarray  # WN-GD radial step sizes (T', Kw', 1)
    act: np.ndarray  # running slots (T', Kg' + Kw'), GD slots first
    buffers: tuple | None = None  # x, residual and A^T residual, reallocated after packing

    @classmethod
    def start(cls, problems: RecoveryProblems, cg, cw, alpha, eta_ratio, lr: float) -> _Batch:
        A = problems.A
        T, _, N = A.shape
        P = 2 * N if problems.signed else N
        return cls(
            tr=np.arange(T),
            A=A,
            At=np.ascontiguousarray(A.transpose(0, 2, 1)),
            b=problems.b[:, None, :],
            gmap=np.broadcast_to(cg, (T, cg.size)).copy(),
            wmap=np.broadcast_to(cw, (T, cw.size)).copy(),
            U=np.broadcast_to(alpha[cg][None, :, None], (T, cg.size, P)).copy(),
            V=np.full((T, cw.size, P), 1.0 / np.sqrt(P)),
            R=np.broadcast_to((alpha[cw] * np.sqrt(P))[None, :, None], (T, cw.size, 1)).copy(),
            lr_r=np.broadcast_to((eta_ratio[cw] * lr)[None, :, None], (T, cw.size, 1)).copy(),
            act=np.ones((T, cg.size + cw.size), dtype=bool),
        )

    @property
    def kg(self) -> int:
        return self.gmap.shape[1]

    @property
    def kw(self) -> int:
        return self.wmap.shape[1]

    def forward(self, cfg: _Settings):
        """``x`` of every slot and one residual product for all of them.

        Returns ``(xb, res, loss, polar)`` with ``polar = (||v||, v^, u)`` of the WN-GD slots
        (``None`` each when there are none).
        """
        kg, (_, M, N) = self.kg, self.A.shape
        shape = (self.tr.size, kg + self.kw)
        if self.buffers is None or self.buffers[0].shape[:2] != shape:
            self.buffers = (np.empty(shape + (N,)), np.empty(shape + (M,)), np.empty(shape + (N,)))
        xb, resb, _ = self.buffers
        if kg:
            if cfg.fast:
                np.multiply(self.U, self.U, out=xb[:, :kg])
            else:
                xb[:, :kg] = model_output(self.U, cfg.depth, cfg.signed)
        polar = (None, None, None)
        if self.kw:
            nv = np.sqrt(np.einsum("tkp,tkp->tk", self.V, self.V))[..., None]
            Vh = self.V / nv
            Uw = self.R * Vh
            if cfg.fast:
                np.multiply(Uw, Uw, out=xb[:, kg:])
            else:
                xb[:, kg:] = model_output(Uw, cfg.depth, cfg.signed)
            polar = (nv, Vh, Uw)
        res = np.matmul(xb, self.At, out=resb)
        res -= self.b
        loss = 0.5 * np.einsum("tkm,tkm->tk", res, res)
        return xb, res, loss, polar

    def freeze_converged(self, out: _Outputs, loss, tol: float, k: int) -> np.ndarray:
        """Stop the running slots whose loss is below ``tol`` at iterate ``k``; returns them."""
        done_now = self.act & (loss < tol)
        if done_now.any():
            ti, ki = np.nonzero(done_now)
            cmap = np.concatenate([self.gmap, self.wmap], axis=1)
            out.steps[self.tr[ti], cmap[ti, ki]] = k
            out.converged[self.tr[ti], cmap[ti, ki]] = True
            self.act &= ~done_now
        return done_now

    def compact(self, out: _Outputs, xb, loss, res, polar):
        """Pack each row's running slots to the front, keep the busiest width, drop finished rows.

        Returns ``res`` and ``polar`` in the new layout (unchanged when nothing shrinks).
        """
        kg = self.kg
        act_g, act_w = self.act[:, :kg], self.act[:, kg:]
        keep_t = self.act.any(axis=1)
        wg = int(act_g[keep_t].sum(axis=1).max(initial=0))
        ww = int(act_w[keep_t].sum(axis=1).max(initial=0))
        if keep_t.all() and wg >= kg and ww >= self.kw:
            return res, polar
        out.write_back(self, xb, loss, polar[0])
        og = np.argsort(~act_g[keep_t], axis=1, kind="stable")[:, :wg]
        ow = np.argsort(~act_w[keep_t], axis=1, kind="stable")[:, :ww]
        self.tr, self.A, self.At, self.b = self.tr[keep_t], self.A[keep_t], self.At[keep_t], self.b[keep_t]
        res = np.concatenate([_take(res[:, :kg], keep_t, og), _take(res[:, kg:], keep_t, ow)], axis=1)
        self.act = np.concatenate([_take(act_g, keep_t, og), _take(act_w, keep_t, ow)], axis=1)
        self.gmap, self.U = _take(self.gmap, keep_t, og), _take(self.U, keep_t, og)
        self.wmap, self.V = _take(self.wmap, keep_t, ow), _take(self.V, keep_t, ow)
        self.R, self.lr_r = _take(self.R, keep_t, ow), _take(self.lr_r, keep_t, ow)
        if self.kw:
            polar = tuple(_take(a, keep_t, ow) for a in polar)
        return res, polar

    def update(self, cfg: _Settings, res, polar) -> None:
        """One gradient step of every running slot (frozen slots get a zero step)."""
        xb, resb, gxb = self.buffers
        if res.shape[:2] != gxb.shape[:2]:
            gxb = np.empty(res.shape[:2] + (self.A.shape[2],))
            self.buffers = (xb, resb, gxb)
        gx = np.matmul(res, self.A, out=gxb)
        if self.kg:
            self._step_gd(cfg, gx[:, : self.kg])
        if self.kw:
            self._step_wn(cfg, gx[:, self.kg :], polar)

    def _step_gd(self, cfg: _Settings, g) -> None:
        mask = self.act[:, : self.kg]
        if cfg.fast:  # L = 2, non-negative: grad = 2 u * g
            grad = self.U * g
            grad *= (2.0 * cfg.lr * mask)[..., None]
        else:
            grad = gradient_u(self.U, g, cfg.depth, cfg.signed)
            grad *= (cfg.lr * mask)[..., None]
        self.U -= grad

    def _step_wn(self, cfg: _Settings, g, polar) -> None:
        nv, Vh, Uw = polar
        if cfg.fast:  # grad_u = 2 u * g; the factor 2 is folded into the step sizes
            gu = Uw * g
            grad_r = np.einsum("tkp,tkp->tk", gu, Vh)[..., None]
            scale_v, grad_r_factor = 2.0 * cfg.lr, 2.0
        else:
            gu = gradient_u(Uw, g, cfg.depth, cfg.signed)
            grad_r = np.einsum("tkp,tkp->tk", gu, Vh)[..., None]
            scale_v, grad_r_factor = cfg.lr, 1.0
        mask = self.act[:, self.kg :, None]
        gu -= grad_r * Vh
        gu *= (scale_v * self.R / nv) * mask
        grad_r *= grad_r_factor
        self.V -= gu
        self.R -= self.lr_r * grad_r * mask


class _Progress:
    """A tqdm bar over iterations, updated every 500 of them."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = tqdm(total=total, desc=desc, disable=not enabled, leave=False)
        self.enabled = enabled
        self.k = 0
        self.shown = 0

    def tick(self, k: int, act: np.ndarray) -> None:
        self.k = k
        if self.enabled and (k - self.shown >= 500):
            self.bar.update(k - self.shown)
            self.shown = k
            self.bar.set_postfix(running=int(act.sum()), refresh=False)

    def close(self) -> None:
        self.bar.update(max(self.k - self.shown, 0))
        self.bar.close()


def _iterate(batch: _Batch, out: _Outputs, cfg: _Settings, x_star, bar: _Progress) -> None:
    """Run every column until it converges or the budget is spent (see the module docstring)."""
    k = 0
    while True:
        xb, res, loss, polar = batch.forward(cfg)
        done_now = batch.freeze_converged(out, loss, cfg.tol, k)
        finished = (k >= cfg.max_steps) or not batch.act.any()
        if cfg.record_every is not None and (k % cfg.record_every == 0 or finished):
            out.write_back(batch, xb, loss, polar[0])
            out.record(k, x_star)
        if finished:
            out.write_back(batch, xb, loss, polar[0])
            return
        if cfg.compact and done_now.any():
            res, polar = batch.compact(out, xb, loss, res, polar)
        batch.update(cfg, res, polar)
        k += 1
        bar.tick(k, batch.act)


def solve(
    problems: RecoveryProblems,
    method="wn",
    alpha=0.1,
    eta_ratio=0.01,
    *,
    depth: int = 2,
    lr: float = 0.1,
    tol: float = 1e-16,
    max_steps: int = 20_000,
    record_every: int | None = None,
    compact: bool = True,
    progress: bool = False,
    desc: str | None = None,
) -> SolverResult:
    """Run GD and/or WN-GD columns on every problem of the batch.

    Parameters
    ----------
    problems : RecoveryProblems with ``A`` (T, M, N), ``b`` (T, M).
    method, alpha, eta_ratio : scalar or (K,)
        The columns, broadcast together: ``method[k]`` in {"gd", "wn"}, initialization
        scale ``alpha[k] > 0`` (``u_0 = alpha 1``), learning-rate ratio ``eta_ratio[k] > 0``
        (WN-GD only; radial rate = ``eta_ratio * lr``).
    depth : int >= 2
        ``L``.
    lr : float > 0
        GD step size and WN-GD directional step size.
    tol : float >= 0
        Stop a column at the first iterate with loss < tol.
    max_steps : int >= 0
        Update budget per column.
    record_every : int or None
        Record loss (and error, if ``x_star`` is known) of every column at iterations
        0, record_every, 2 record_every, ... and at the end.
    compact : bool
        Drop finished trials/columns from the batch (results are identical either way).
    progress : bool
        Show a tqdm bar over iterations.

    Returns
    -------
    SolverResult with arrays of shape (T, K, ...).
    """
    cfg = _check_settings(problems, depth, lr, tol, max_steps, record_every, compact)
    method, alpha, eta_ratio = _as_columns(method, alpha, eta_ratio)
    T, _, N = problems.A.shape
    out = _Outputs.empty(T, method.size, N, max_steps)
    cg = np.flatnonzero(method == "gd")  # original column indices of GD columns
    cw = np.flatnonzero(method == "wn")
    batch = _Batch.start(problems, cg, cw, alpha, eta_ratio, lr)
    bar = _Progress(max_steps, desc or "recovery", progress)
    t0 = time.perf_counter()
    try:
        _iterate(batch, out, cfg, problems.x_star, bar)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    return _result(out, method, alpha, eta_ratio, cfg, wall)


def _result(out: _Outputs, method, alpha, eta_ratio, cfg: _Settings, wall: float) -> SolverResult:
    recorded = cfg.record_every is not None
    return SolverResult(
        x=out.x,
        loss=out.loss,
        steps=out.steps,
        converged=out.converged,
        v_norm=out.v_norm,
        radius=out.radius,
        method=method,
        alpha=alpha,
        eta_ratio=eta_ratio,
        depth=cfg.depth,
        lr=float(cfg.lr),
        tol=float(cfg.tol),
        max_steps=int(cfg.max_steps),
        signed=cfg.signed,
        history_steps=np.array(out.hist_steps) if recorded else None,
        history_loss=np.stack(out.hist_loss) if recorded else None,
        history_error=np.stack(out.hist_err) if (recorded and out.hist_err) else None,
        wall_time=wall,
    )


def run_gd(problems: RecoveryProblems, alpha=0.1, **kwargs) -> SolverResult:
    """GD from ``u_0 = alpha 1`` for every alpha (one column each). See :func:`solve`."""
    return solve(problems, "gd", alpha, np.nan, **kwargs)


def run_wngd(problems: RecoveryProblems, alpha=0.1, eta_ratio=0.01, **kwargs) -> SolverResult:
    """WN-GD for every (alpha, eta_ratio) pair (broadcast; one column each). See :func:`solve`."""
    return solve(problems, "wn", alpha, eta_ratio, **kwargs)
