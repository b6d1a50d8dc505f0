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
from dataclasses import dataclass

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
    method, alpha, eta_ratio = _as_columns(method, alpha, eta_ratio)

    A_full, b_full = problems.A, problems.b
    x_star = problems.x_star
    signed = problems.signed
    T, M, N = A_full.shape
    K = method.size
    P = 2 * N if signed else N
    cg = np.flatnonzero(method == "gd")  # original column indices of GD columns
    cw = np.flatnonzero(method == "wn")

    # full-size outputs; also serve as the "current value" of finished columns
    x_out = np.zeros((T, K, N))
    loss_out = np.full((T, K), np.nan)
    steps_out = np.full((T, K), int(max_steps), dtype=np.int64)
    conv_out = np.zeros((T, K), dtype=bool)
    vnorm_out = np.full((T, K), np.nan)
    radius_out = np.full((T, K), np.nan)

    # Running state. Every trial row keeps its own list of running columns ("slots"):
    # gmap/wmap (T', Kg') / (T', Kw') give the original column of each GD / WN-GD slot.
    # When columns finish, each row's running slots are packed to the front and the
    # width shrinks to the busiest row; finished rows are dropped (see _pack).
    tr = np.arange(T)
    A = A_full
    At = np.ascontiguousarray(A.transpose(0, 2, 1))
    b = b_full[:, None, :]
    gmap = np.broadcast_to(cg, (T, cg.size)).copy()
    wmap = np.broadcast_to(cw, (T, cw.size)).copy()
    U = np.broadcast_to(alpha[cg][None, :, None], (T, cg.size, P)).copy()
    V = np.full((T, cw.size, P), 1.0 / np.sqrt(P))
    R = np.broadcast_to((alpha[cw] * np.sqrt(P))[None, :, None], (T, cw.size, 1)).copy()
    lr_r = np.broadcast_to((eta_ratio[cw] * lr)[None, :, None], (T, cw.size, 1)).copy()
    act = np.ones((T, cg.size + cw.size), dtype=bool)

    hist_steps: list[int] = []
    hist_loss: list[np.ndarray] = []
    hist_err: list[np.ndarray] = []

    def write_back(xb, loss, nv):
        kg = gmap.shape[1]
        rows = tr[:, None]
        x_out[rows, gmap] = xb[:, :kg]
        loss_out[rows, gmap] = loss[:, :kg]
        x_out[rows, wmap] = xb[:, kg:]
        loss_out[rows, wmap] = loss[:, kg:]
        if wmap.shape[1]:
            vnorm_out[rows, wmap] = nv[..., 0]
            radius_out[rows, wmap] = R[..., 0]

    def record(k):
        hist_steps.append(k)
        hist_loss.append(loss_out.copy())
        if x_star is not None:
            hist_err.append(np.linalg.norm(x_out - x_star[:, None, :], axis=-1))

    bar = tqdm(total=max_steps, desc=desc or "recovery", disable=not progress, leave=False)
    t0 = time.perf_counter()
    last_bar = 0
    k = 0
    fast = depth == 2 and not signed
    xb = resb = gxb = None
    try:
        while True:
            kg = gmap.shape[1]
            shape = (tr.size, kg + wmap.shape[1])
            if xb is None or xb.shape[:2] != shape:  # buffers, reallocated after packing
                xb, resb, gxb = np.empty(shape + (N,)), np.empty(shape + (M,)), np.empty(shape + (N,))
            # forward pass: x of every slot, one residual product for all of them
            if kg:
                if fast:
                    np.multiply(U, U, out=xb[:, :kg])
                else:
                    xb[:, :kg] = model_output(U, depth, signed)
            nv = Vh = Uw = None
            if wmap.shape[1]:
                nv = np.sqrt(np.einsum("tkp,tkp->tk", V, V))[..., None]
                Vh = V / nv
                Uw = R * Vh
                if fast:
                    np.multiply(Uw, Uw, out=xb[:, kg:])
                else:
                    xb[:, kg:] = model_output(Uw, depth, signed)
            res = np.matmul(xb, At, out=resb)
            res -= b
            loss = 0.5 * np.einsum("tkm,tkm->tk", res, res)
            done_now = act & (loss < tol)
            if done_now.any():
                ti, ki = np.nonzero(done_now)
                cmap = np.concatenate([gmap, wmap], axis=1)
                steps_out[tr[ti], cmap[ti, ki]] = k
                conv_out[tr[ti], cmap[ti, ki]] = True
                act &= ~done_now
            finished = (k >= max_steps) or not act.any()
            if record_every is not None and (k % record_every == 0 or finished):
                write_back(xb, loss, nv)
                record(k)
            if finished:
                write_back(xb, loss, nv)
                break
            if compact and done_now.any():
                act_g, act_w = act[:, :kg], act[:, kg:]
                keep_t = act.any(axis=1)
                wg = int(act_g[keep_t].sum(axis=1).max(initial=0))
                ww = int(act_w[keep_t].sum(axis=1).max(initial=0))
                if not keep_t.all() or wg < kg or ww < wmap.shape[1]:
                    write_back(xb, loss, nv)
                    # pack each row's running slots to the front, keep the busiest width
                    og = np.argsort(~act_g[keep_t], axis=1, kind="stable")[:, :wg]
                    ow = np.argsort(~act_w[keep_t], axis=1, kind="stable")[:, :ww]

                    def take(a, order):
                        a = a[keep_t]
                        idx = order if a.ndim == 2 else order[..., None]
                        return np.take_along_axis(a, idx, axis=1)

                    tr, A, At, b = tr[keep_t], A[keep_t], At[keep_t], b[keep_t]
                    res_g, res_w = take(res[:, :kg], og), take(res[:, kg:], ow)
                    res = np.concatenate([res_g, res_w], axis=1)
                    act = np.concatenate([take(act_g, og), take(act_w, ow)], axis=1)
                    gmap, U = take(gmap, og), take(U, og)
                    wmap, V, R, lr_r = take(wmap, ow), take(V, ow), take(R, ow), take(lr_r, ow)
                    if wmap.shape[1]:
                        nv, Vh, Uw = take(nv, ow), take(Vh, ow), take(Uw, ow)
                    kg = wg
            # backward pass and update of the running slots
            if res.shape[:2] != gxb.shape[:2]:
                gxb = np.empty(res.shape[:2] + (N,))
            gx = np.matmul(res, A, out=gxb)
            if kg:
                if fast:  # L = 2, non-negative: grad = 2 u * g
                    grad = U * gx[:, :kg]
                    grad *= (2.0 * lr * act[:, :kg])[..., None]
                else:
                    grad = gradient_u(U, gx[:, :kg], depth, signed)
                    grad *= (lr * act[:, :kg])[..., None]
                U -= grad
            if wmap.shape[1]:
                if fast:  # grad_u = 2 u * g; the factor 2 is folded into the step sizes
                    gu = Uw * gx[:, kg:]
                    grad_r = np.einsum("tkp,tkp->tk", gu, Vh)[..., None]
                    scale_v, grad_r_factor = 2.0 * lr, 2.0
                else:
                    gu = gradient_u(Uw, gx[:, kg:], depth, signed)
                    grad_r = np.einsum("tkp,tkp->tk", gu, Vh)[..., None]
                    scale_v, grad_r_factor = lr, 1.0
                mask = act[:, kg:, None]
                gu -= grad_r * Vh
                gu *= (scale_v * R / nv) * mask
                grad_r *= grad_r_factor
                V -= gu
                R -= lr_r * grad_r * mask
            k += 1
            if progress and (k - last_bar >= 500):
                bar.update(k - last_bar)
                last_bar = k
                bar.set_postfix(running=int(act.sum()), refresh=False)
    finally:
        bar.update(max(k - last_bar, 0))
        bar.close()
    wall = time.perf_counter() - t0

    return SolverResult(
        x=x_out,
        loss=loss_out,
        steps=steps_out,
        converged=conv_out,
        v_norm=vnorm_out,
        radius=radius_out,
        method=method,
        alpha=alpha,
        eta_ratio=eta_ratio,
        depth=depth,
        lr=float(lr),
        tol=float(tol),
        max_steps=int(max_steps),
        signed=signed,
        history_steps=np.array(hist_steps) if record_every is not None else None,
        history_loss=np.stack(hist_loss) if record_every is not None else None,
        history_error=np.stack(hist_err) if (record_every is not None and hist_err) else None,
        wall_time=wall,
    )


def run_gd(problems: RecoveryProblems, alpha=0.1, **kwargs) -> SolverResult:
    """GD from ``u_0 = alpha 1`` for every alpha (one column each). See :func:`solve`."""
    return solve(problems, "gd", alpha, np.nan, **kwargs)


def run_wngd(problems: RecoveryProblems, alpha=0.1, eta_ratio=0.01, **kwargs) -> SolverResult:
    """WN-GD for every (alpha, eta_ratio) pair (broadcast; one column each). See :func:`solve`."""
    return solve(problems, "wn", alpha, eta_ratio, **kwargs)
