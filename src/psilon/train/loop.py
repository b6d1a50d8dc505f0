"""The training loop: K stacked members, one objective, small parts (paper P1.7).

Per member: ``loss_k = 0.5 * data_loss_k + 0.5 * lambda_k * regularizer_k``. The
optimized objective is the **sum** over members of ``loss_k`` (each ``data_loss_k`` a
mean over the member's batch). Because Adam is elementwise and every parameter belongs
to exactly one member, member k's trajectory does not depend on the other members:
training K members together equals training each alone (same seed, same batches).

Parts: :func:`~psilon.train.data.prepare_data` checks the inputs once; a
:class:`_Work` holds the *working* network (the members still training), its
optimizer and per-member tensors; the :class:`~psilon.train.tracker.MemberTracker`
keeps status, best states and history; :mod:`~psilon.train.callbacks` plug features
in (pruning, projection, successive halving, progress). :class:`TrainLoop` calls them.

Finished members leave the working network. When members stop (early stopping,
divergence, successive halving) the working network is rebuilt from the members still
running, with their Adam state, so the stacked step gets cheaper as K shrinks; the
leaving members' parameters are written back into the caller's network first.

No host round trip per step: divergence (a non-finite loss) is masked on the device and
read at the next evaluation, every ``eval_every`` steps.
"""

from __future__ import annotations

import pickle
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from psilon.nn import WeightNormNet

from .callbacks import Callback
from .data import TrainData, elementwise_loss
from .runtime import flush_denormals, make_optimizer
from .schedule import one_cycle_lr
from .tracker import MemberTracker

__all__ = ["TrainLoop", "objective", "take_members"]


def forward_members(net: WeightNormNet, x: Tensor) -> Tensor:
    """Network output as ``(K, batch, out)`` whatever ``net.members`` is (inputs validated already)."""
    return net.forward_members(x, check_finite=False)


def objective(net: WeightNormNet, xb: Tensor, yb: Tensor, lam: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """``(per-member objective, per-member data loss)``, each ``(K,)``."""
    data = elementwise_loss(forward_members(net, xb), yb, loss).mean(1)
    return 0.5 * data + 0.5 * lam * net.regularizer_members(), data


@torch.no_grad()
def validation_losses(net: WeightNormNet, X: Tensor, y: Tensor, loss: str, masks: Tensor | None,
                      chunk: int = 2048) -> Tensor:
    """Mean validation loss per member ``(K,)``; ``masks`` ``(K, n)`` selects each member's rows."""
    parts = [elementwise_loss(forward_members(net, X[s : s + chunk]), y[s : s + chunk], loss)
             for s in range(0, X.shape[0], chunk)]
    per = torch.cat(parts, dim=1)
    if masks is None:
        return per.mean(1)
    per = torch.where(masks, per, torch.zeros((), dtype=per.dtype, device=per.device))
    return per.sum(1) / masks.sum(1)


def network_from_state(template: WeightNormNet, members: int, state: dict[str, Tensor]) -> WeightNormNet:
    """A network like ``template`` with ``members`` members, holding ``state``.

    Built on the ``meta`` device and filled from ``state``, so no initialization is
    computed only to be overwritten.
    """
    ref = template.embed.direction
    with torch.device("meta"):
        new = type(template)(**(template.config() | {"members": members}))
    new = new.to_empty(device=ref.device).to(dtype=ref.dtype)
    new.load_state_dict(state)
    return new


def take_members(net: WeightNormNet, idx) -> WeightNormNet:
    """A new network holding members ``idx`` of ``net`` (copies; an index may repeat)."""
    idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.long, device=net.embed.direction.device)
    stacked = {name for name, _ in net.named_parameters()}
    state = {name: (t.index_select(0, idx_t) if name in stacked else t).clone() for name, t in net.state_dict().items()}
    return network_from_state(net, len(idx_t), state).train(net.training)


def _write_members(full: WeightNormNet, net: WeightNormNet, rows, members) -> None:
    """Copy rows ``rows`` of ``net``'s parameters into members ``members`` of ``full``."""
    full_params = dict(full.named_parameters())
    with torch.no_grad():
        for name, p in net.named_parameters():
            dest = torch.as_tensor(np.asarray(members), dtype=torch.long, device=p.device)
            src = torch.as_tensor(np.asarray(rows), dtype=torch.long, device=p.device)
            full_params[name][dest] = p.detach()[src]


def _take_optimizer(old: torch.optim.Optimizer, old_net, new_net, idx: Tensor) -> torch.optim.Optimizer:
    """A new Adam over ``new_net`` (same groups) carrying the state of members ``idx`` from ``old``."""
    groups = old.param_groups
    scale = groups[-1]["lr_scale"] / groups[0]["lr_scale"] if len(groups) > 1 else 1.0
    opt = make_optimizer(new_net, groups[0]["lr"], length_lr_scale=scale)
    for (_, p_old), (_, p_new) in zip(old_net.named_parameters(), new_net.named_parameters()):
        state = old.state.get(p_old)
        if not state:
            continue
        opt.state[p_new] = {
            key: (v.index_select(0, idx).clone() if isinstance(v, Tensor) and v.dim() >= 1
                  and v.shape[0] == p_old.shape[0] else (v.clone() if isinstance(v, Tensor) else v))
            for key, v in state.items()
        }
    return opt


#: Per-member tensors of :class:`_Work` (restored as they are by a snapshot).
_WORK_TENSORS = ("lam", "group_index", "val_masks", "alive", "diverged_at", "acc", "acc_data")


@dataclass
class _Work:
    """The working network (members still training) and its per-member tensors."""

    net: WeightNormNet
    optimizer: torch.optim.Optimizer
    members: np.ndarray  # original member index of each working member
    lam: Tensor
    group_index: Tensor
    val_masks: Tensor | None
    alive: Tensor  # not (yet seen) non-finite
    diverged_at: Tensor  # step of the first non-finite loss, -1 while finite
    acc: Tensor  # objective summed since the last evaluation
    acc_data: Tensor  # data loss summed since the last evaluation
    acc_n: int = 0
    compiled: bool = False

    def params(self) -> dict[str, Tensor]:
        return dict(self.net.named_parameters())

    def keep(self, local: np.ndarray, full: WeightNormNet) -> None:
        """Keep only the working members ``local``; write the others back into ``full``."""
        leaving = np.setdiff1d(np.arange(len(self.members)), local)
        _write_members(full, self.net, leaving, self.members[leaving])
        idx = torch.as_tensor(local, dtype=torch.long, device=self.lam.device)
        new_net = take_members(self.net, local).set_compiled_kernels(self.compiled)
        self.optimizer = _take_optimizer(self.optimizer, self.net, new_net, idx)
        self.net = new_net
        self.members = self.members[local]
        for name in _WORK_TENSORS:
            value = getattr(self, name)
            if value is not None:  # val_masks: only when members validate on their own rows
                setattr(self, name, value.index_select(0, idx))


class TrainLoop:
    """One run of the engine over prepared data; see the module docstring."""

    def __init__(self, net: WeightNormNet, data: TrainData, tracker: MemberTracker, *, lambdas: np.ndarray,
                 max_steps: int, eval_every: int, schedule: dict, callbacks: list[Callback],
                 shrink: bool = True, length_lr_scale: float = 1.0, compiled: bool = False,
                 monitor: str = "data", checkpoint=None) -> None:
        self.full = net
        self.length_lr_scale = length_lr_scale
        self.checkpoint = checkpoint  # a RunCheckpoint (snapshots), or None
        self.data = data
        self.tracker = tracker
        self.max_steps = max_steps
        self.eval_every = eval_every
        self.schedule = dict(schedule)
        self.lr_every = self.schedule.pop("every", 1)
        self.callbacks = callbacks
        self.shrink = shrink
        self.monitor = monitor
        self.n_members = net.n_members
        dev, dtype = net.embed.direction.device, net.embed.direction.dtype
        k = net.n_members
        self.work = _Work(
            net=net, optimizer=make_optimizer(net, self.schedule["lr"], length_lr_scale=length_lr_scale), members=np.arange(k),
            lam=torch.as_tensor(lambdas, dtype=dtype, device=dev), group_index=data.group_of,
            val_masks=data.val_masks, alive=torch.ones(k, dtype=torch.bool, device=dev),
            diverged_at=torch.full((k,), -1, dtype=torch.long, device=dev),
            acc=torch.zeros(k, dtype=torch.float64, device=dev),
            acc_data=torch.zeros(k, dtype=torch.float64, device=dev), compiled=compiled,
        )
        net.set_compiled_kernels(compiled)
        self.first_data = np.full(k, np.nan)
        self.last_data = np.full(k, np.nan)
        self.steps_done = 0
        self.member_steps = 0
        self.seconds = 0.0  # training time before this process's part of the run (from a snapshot)
        self._started = time.monotonic()
        self.frozen: dict[int, dict[str, Tensor]] = {}  # stopped members' states (no shrink)

    # ------------------------------------------------------------------ parts
    def _set_lr(self, step: int) -> None:
        every = self.lr_every
        lr = one_cycle_lr(step // every, -(-self.max_steps // every), **self.schedule)
        for group in self.work.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]

    def _step(self, step: int) -> None:
        w = self.work
        xb, yb = self.data.batch(w.group_index)
        per, data = objective(w.net, xb, yb, w.lam, self.data.loss)
        finite = torch.isfinite(per)
        w.diverged_at = torch.where(w.alive & ~finite, torch.full_like(w.diverged_at, step), w.diverged_at)
        w.alive &= finite
        zero = torch.zeros((), dtype=per.dtype, device=per.device)
        total = torch.where(w.alive, per, zero).sum()
        w.optimizer.zero_grad(set_to_none=True)
        total.backward()
        w.optimizer.step()
        w.acc += torch.where(w.alive, per.detach(), zero).double()
        w.acc_data += torch.where(w.alive, data.detach(), zero).double()
        w.acc_n += 1

    def _evaluate(self, done: int) -> None:
        """Sync point: divergence, validation losses, tracker update (every ``eval_every`` steps)."""
        w, tr = self.work, self.tracker
        for j in np.flatnonzero(~w.alive.cpu().numpy()):
            m = int(w.members[j])
            if tr.status[m] in ("ok", "early_stopped", "halved"):
                tr.mark_diverged(m, int(w.diverged_at[j]))
        train_mean = (w.acc / max(w.acc_n, 1)).cpu().numpy()
        data_mean = (w.acc_data / max(w.acc_n, 1)).cpu().numpy()
        w.acc.zero_(), w.acc_data.zero_()
        w.acc_n = 0
        if self.data.has_val:
            w.net.eval()
            val = validation_losses(w.net, self.data.val_X, self.data.val_y, self.data.loss, w.val_masks)
            val = val.double().cpu().numpy()
            w.net.train()
        else:
            val = np.full(len(w.members), np.nan)
        first = np.isnan(self.first_data[w.members])
        self.first_data[w.members[first]] = data_mean[first]
        self.last_data[w.members] = data_mean
        score = None
        if self.monitor == "objective" and self.data.has_val:
            with torch.no_grad():
                score = val + (w.lam * w.net.regularizer_members()).double().cpu().numpy()
        tr.record(done, w.members, train_mean, val, w.params(), score)

    def _drop_finished(self) -> None:
        """Members that stopped leave the working network (or, without ``shrink``, are frozen).

        Either way a stopped member's parameters are those it had when it stopped.
        """
        w = self.work
        running = np.array([self.tracker.status[m] == "ok" for m in w.members])
        if self.shrink and running.any() and not running.all():
            w.keep(np.flatnonzero(running), self.full)
            return
        params = w.params()
        for j in np.flatnonzero(~running):
            m = int(w.members[j])
            if m not in self.frozen:
                self.frozen[m] = {name: p.detach()[j].clone() for name, p in params.items()}

    def stop_members(self, members, status: str, done: int) -> None:
        """Stop original ``members`` with ``status`` (for callbacks)."""
        for m in members:
            self.tracker.stop(int(m), status, done)

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        saved = None if self.checkpoint is None else self.checkpoint.load(self.full.embed.direction.device)
        if saved is not None:
            self._resume(saved)
        self._started = time.monotonic()
        self.work.net.train()
        with flush_denormals():  # shrunk units' denormal products slow CPUs many times (runtime.py)
            try:
                for cb in self.callbacks:
                    cb.on_train_begin(self)
                for step in range(self.steps_done, self.max_steps):
                    if not self._one_step(step):
                        break
            finally:
                for cb in self.callbacks:
                    cb.on_train_end(self)
        self._write_back()

    def _one_step(self, step: int) -> bool:
        self._set_lr(step)
        for cb in self.callbacks:
            cb.on_step_begin(self, step)
        self._step(step)
        self.member_steps += len(self.work.members)
        for cb in self.callbacks:
            cb.on_step_end(self, step)
        done = self.steps_done = step + 1
        if done % self.eval_every and done != self.max_steps:
            return True
        self._evaluate(done)
        for cb in self.callbacks:
            cb.on_evaluation(self, done)
        self._drop_finished()
        running = bool(self.tracker.running().any())
        if running and self.checkpoint is not None and self.checkpoint.due():
            self._snapshot()
        return running

    # ------------------------------------------------------------------ snapshots
    def state(self) -> dict:
        """Everything the run needs to go on from here (taken right after an evaluation)."""
        w = self.work
        work = {name: getattr(w, name) for name in _WORK_TENSORS} | {
            "members": w.members, "acc_n": w.acc_n, "optimizer": w.optimizer.state_dict(),
            "net": None if w.net is self.full else w.net.state_dict(),
        }
        return {
            "steps_done": self.steps_done, "member_steps": self.member_steps, "first_data": self.first_data,
            "last_data": self.last_data, "frozen": self.frozen, "full": self.full.state_dict(), "work": work,
            "tracker": dict(vars(self.tracker)), "streams": [s.state() for s in self.data.streams],
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            # not needed to go on; for readers of the snapshot (`psilon status`: the pace and the steps left)
            "max_steps": self.max_steps, "seconds": self.seconds + time.monotonic() - self._started,
        }

    def _resume(self, state: dict) -> None:
        """Continue from :meth:`state`'s snapshot (same data, members and options)."""
        w, ws = self.work, state["work"]
        self.full.load_state_dict(state["full"])
        if ws["net"] is not None:  # members had left: rebuild the working network and its Adam
            w.net = network_from_state(self.full, len(ws["members"]), ws["net"]).set_compiled_kernels(w.compiled)
            w.optimizer = make_optimizer(w.net, self.schedule["lr"], length_lr_scale=self.length_lr_scale)
        w.optimizer.load_state_dict(ws["optimizer"])
        for name in _WORK_TENSORS:
            setattr(w, name, ws[name])
        w.members, w.acc_n = ws["members"], ws["acc_n"]
        vars(self.tracker).update(state["tracker"])
        for stream, saved in zip(self.data.streams, state["streams"], strict=True):
            stream.set_state(saved)
        for cb, saved in zip(self.callbacks, state["callbacks"], strict=True):
            cb.load_state_dict(saved)
        self.steps_done, self.member_steps = state["steps_done"], state["member_steps"]
        self.seconds = float(state.get("seconds", 0.0))  # snapshots before this field have none
        self.first_data, self.last_data, self.frozen = state["first_data"], state["last_data"], state["frozen"]

    def _snapshot(self) -> None:
        try:
            self.checkpoint.save(self.state())
        except (TypeError, AttributeError, pickle.PicklingError, OSError) as exc:  # an unpicklable callback, a full disk
            warnings.warn(f"psilon: the training run cannot be snapshotted ({type(exc).__name__}: {exc}); "
                          "it goes on without snapshots", RuntimeWarning, stacklevel=2)
            self.checkpoint = None

    def _write_back(self) -> None:
        """Copy the working members' final parameters (and the frozen ones) into the caller's network."""
        w = self.work
        full_params = dict(self.full.named_parameters())
        if w.net is not self.full:
            _write_members(self.full, w.net, np.arange(len(w.members)), w.members)
        with torch.no_grad():
            if w.net is not self.full:
                full_buffers = dict(self.full.named_buffers())
                for name, b in w.net.named_buffers():
                    full_buffers[name].copy_(b)
                for layer in self.full.layers():
                    layer.set_prune_alpha(w.net.prune_alpha)
            for m, state in self.frozen.items():
                for name, t in state.items():
                    full_params[name][m].copy_(t)
