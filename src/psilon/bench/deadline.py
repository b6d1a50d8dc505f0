"""Finish by a given time: ``psilon bench --finish-by``.

A long run that must stop at a known time (the end of a working session, a machine
that is shut down at night) loses whatever task is in flight when it is killed: a task
saves its work only when it finishes (or, for the warm lambda path, at each finished
lambda, in a folder that a new machine does not have). With a deadline the runner starts
a task only if it should finish in time, and otherwise leaves it for the next run and
tries the next task: the short tasks (forests, linear models, boosted trees) fill the
end of the run instead of a long one that would be lost.

How long a task should take (:class:`TaskTimes`):

- a task in flight (partial work in ``checkpoints/<key>/`` from a killed run of this
  folder) takes the time left that ``psilon status`` gives it
  (:func:`~psilon.bench.status.in_flight`), when it has one, but no more than its
  model's whole fit below: that time comes from its own earlier writes, which may be
  a slower machine's or code's (the 2dplanes StandardNet's first two lambdas were timed
  before denormals were flushed, and gave 3.3 h for the 11 left, where the label's whole
  fits since took 22-25 minutes);
- otherwise its model label's last finished tasks in the store set it: the 90th
  percentile of the fit times (``fit_seconds``, one thread each) of its last
  :data:`~psilon.bench.report.RECENT_FITS` to finish
  (:func:`~psilon.bench.report.recent_fits`), leaving out the resumed tasks, whose fit
  time is only their last run's part. A high quantile, because a task that overruns is lost entirely while one
  left for later costs nothing; the last ones, because the code and the machine change
  between runs (on 2026-11-30 flushing denormals made the paper-exact StandardNet's
  steps several times faster);
- a label with no finished task takes the longest estimate of the store's labels; in a
  store with no finished task at all, nothing is known and every task is started.

The estimates are read again before each task, so the tasks that finish during the
run count. They do not look at the dataset's size: set the time with a margin.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from psilon.bench.protocols import Task
from psilon.bench.report import recent_fits
from psilon.bench.status import in_flight

__all__ = ["QUANTILE", "TaskTimes", "parse_finish_by", "within_deadline"]

#: The quantile of a model's recent fit times that estimates its next task.
QUANTILE = 0.9

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_DURATION = re.compile(r"\+(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?")


def parse_finish_by(text: str, now: datetime | None = None) -> datetime:
    """The local time ``text`` names: ``HH:MM[:SS]`` (its next occurrence: tomorrow when
    today's has passed), an ISO date-time (``2026-12-01T21:30``), or a duration from
    ``now`` with a ``+``: ``+90m``, ``+2h``, ``+1h30m``, ``+2.5h``."""
    now = now or datetime.now()
    text = text.strip()
    clock = _CLOCK.fullmatch(text)
    if clock:
        hours, minutes, seconds = (int(g or 0) for g in clock.groups())
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ValueError(f"finish-by {text!r}: not a time of day (HH:MM with HH <= 23 and MM <= 59)")
        at = now.replace(hour=hours, minute=minutes, second=seconds, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    duration = _DURATION.fullmatch(text)
    if duration and any(duration.groups()):
        hours, minutes = (float(g or 0) for g in duration.groups())
        return now + timedelta(hours=hours, minutes=minutes)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"finish-by {text!r}: expected a time of day (21:30), an ISO date-time (2026-12-01T21:30) "
            "or a duration from now (+90m, +2h, +1h30m)"
        ) from None
    if at.tzinfo is not None:  # compare in local time, as the other forms do
        at = at.astimezone().replace(tzinfo=None)
    if at <= now:
        raise ValueError(f"finish-by {text!r} has already passed (it is {now:%Y-%m-%d %H:%M} now)")
    return at


class TaskTimes:
    """Seconds a task should take (see the module docstring).

    ``rows``: the store's rows (one per key); ``left``: the time left of tasks in flight,
    by task key (``None`` where their checkpoints give none).
    """

    def __init__(self, rows: Iterable[dict[str, Any]], left: dict[str, float | None] | None = None) -> None:
        self.by_label = {label: float(np.quantile(times, QUANTILE)) for label, times in recent_fits(list(rows)).items()}
        self.left = {key: s for key, s in (left or {}).items() if s is not None}

    @classmethod
    def of_store(cls, folder: str | Path, rows: Iterable[dict[str, Any]], tasks: Iterable[Task]) -> TaskTimes:
        """The estimates for ``tasks`` of the store in ``folder`` whose rows are ``rows``."""
        rows = list(rows)
        finished = {r["key"] for r in rows if r.get("status") == "ok"}
        flying = in_flight(Path(folder), {t.key: t for t in tasks}, finished)
        return cls(rows, {f.key: f.seconds_left for f in flying})

    def seconds(self, task: Task) -> float | None:
        """The estimate for ``task``; ``None`` when the store has timed nothing."""
        whole = self.by_label.get(task.model.label, max(self.by_label.values(), default=None))
        left = self.left.get(task.key)
        if left is None:
            return whole
        return left if whole is None else min(left, whole)


def within_deadline(
    tasks: Iterable[Task], finish_by: datetime, times: TaskTimes | Callable[[], TaskTimes],
    on_defer: Callable[[Task, float], None] | None = None, clock: Callable[[], float] = time.time,
) -> Iterator[Task]:
    """``tasks`` in order, but only those that should finish by ``finish_by`` when they
    start (asked lazily: each task is checked when the runner takes it). ``times``: the
    estimates, or a function that gives them afresh for each check. A task that would
    not fit is passed to ``on_defer`` with its estimate, and the next one is tried."""
    deadline = finish_by.timestamp()
    for task in tasks:
        seconds = (times if isinstance(times, TaskTimes) else times()).seconds(task)
        if seconds is not None and clock() + seconds > deadline:
            if on_defer is not None:
                on_defer(task, seconds)
            continue
        yield task
