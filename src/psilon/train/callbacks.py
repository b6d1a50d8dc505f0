"""Extension points of the training loop.

A :class:`Callback` sees the :class:`~psilon.train.loop.TrainLoop` at five moments:
``on_train_begin``, ``on_step_begin(step)`` (before the batch is drawn, after the
learning rate is set), ``on_step_end(step)`` (after the optimizer step),
``on_evaluation(done)`` (after the members' validation losses were recorded in
``loop.tracker``) and ``on_train_end``. A snapshot of the run (:class:`~psilon.train.checkpoint.RunCheckpoint`)
keeps each callback's :meth:`Callback.state_dict` (its attributes by default). A callback may change the working network in
place (pruning, projection) or stop members with ``loop.stop_members``; it must not
replace ``loop.work.net`` itself. Features of the loop are callbacks:

* :class:`Pruning`: the pruning schedule of the modules over the last steps (P1.5);
* :class:`Projection`: projected gradient, directions projected onto the L1 sphere
  before every step (the paper's "Projected PSiLON");
* :class:`SuccessiveHalving`: drop members far behind on validation at given points;
* :class:`Progress`: a tqdm bar.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Callback", "Progress", "Projection", "Pruning", "SuccessiveHalving"]


class Callback:
    """Base class: every hook does nothing."""

    def on_train_begin(self, loop) -> None:
        pass

    def on_step_begin(self, loop, step: int) -> None:
        pass

    def on_step_end(self, loop, step: int) -> None:
        pass

    def on_evaluation(self, loop, done: int) -> None:
        pass

    def on_train_end(self, loop) -> None:
        pass

    def state_dict(self) -> dict:
        """What a snapshot of the run keeps of this callback (default: its attributes)."""
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


class Pruning(Callback):
    """Run the modules' pruning schedule over the last ``steps`` of ``max_steps`` steps."""

    def __init__(self, steps: int) -> None:
        self.steps = int(steps)

    def on_step_begin(self, loop, step: int) -> None:
        if step == loop.max_steps - self.steps:
            loop.work.net.start_pruning(self.steps)

    def on_step_end(self, loop, step: int) -> None:
        if step >= loop.max_steps - self.steps:
            loop.work.net.advance_pruning()


class Projection(Callback):
    """Projected gradient: before every step, project the directions onto the unit L1 sphere."""

    def on_train_begin(self, loop) -> None:
        loop.work.net.project_directions_()

    def on_step_begin(self, loop, step: int) -> None:
        loop.work.net.project_directions_()

    def on_train_end(self, loop) -> None:
        loop.work.net.project_directions_()


class SuccessiveHalving(Callback):
    """Drop members far behind on validation, so that the stacked step gets cheaper.

    At the first evaluation after each fraction in ``at`` of ``max_steps``, every running
    member whose best validation loss exceeds ``(1 + tolerance)`` times the best member's
    (among members with the same fold) stops with status ``'halved'``, but at least
    ``keep`` members per fold keep training. Needs validation data.
    """

    def __init__(self, at=(0.25, 0.5), tolerance: float = 0.1, keep: int = 2) -> None:
        self.at = sorted(float(a) for a in at)
        self.tolerance = float(tolerance)
        self.keep = int(keep)
        self._next = 0

    def on_evaluation(self, loop, done: int) -> None:
        if self._next >= len(self.at) or done < self.at[self._next] * loop.max_steps:
            return
        while self._next < len(self.at) and done >= self.at[self._next] * loop.max_steps:
            self._next += 1
        tracker = loop.tracker
        running = tracker.running()
        score = np.where(np.isfinite(tracker.best_val), tracker.best_val, tracker.last_val)
        for fold in np.unique(tracker.folds):
            members = np.flatnonzero(running & (tracker.folds == fold) & np.isfinite(score))
            if members.size <= self.keep:
                continue
            order = members[np.argsort(score[members], kind="stable")]
            best = score[order[0]]
            limit = best + self.tolerance * abs(best)
            for m in order[self.keep :]:
                if score[m] > limit:
                    tracker.stop(int(m), "halved", done)


class Progress(Callback):
    """A tqdm progress bar over the steps, showing the best validation loss."""

    def on_train_begin(self, loop) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=loop.max_steps, initial=loop.steps_done, desc=f"training {loop.n_members} member(s)",
                        unit="step")

    def on_step_end(self, loop, step: int) -> None:
        self.bar.update(1)

    def on_evaluation(self, loop, done: int) -> None:
        val = loop.tracker.last_val
        ok = np.isfinite(val)
        if ok.any():
            self.bar.set_postfix(best_val=float(np.min(val[ok])))

    def on_train_end(self, loop) -> None:
        self.bar.close()

    def state_dict(self) -> dict:
        return {}  # the bar is made anew (at the resumed step) by on_train_begin
