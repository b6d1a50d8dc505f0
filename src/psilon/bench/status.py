"""Where a benchmark store stands while its run goes on: ``psilon status``.

A long run (``psilon bench ... --no-progress`` in the background, for hours or across
sessions) shows nothing between two finished tasks. :func:`store_status` reads what the
store's folder holds, without touching the run:

- the protocol (``protocol.json``) and how many of its tasks are finished;
- whether a process is writing to the store now (it holds the store's lock);
- the tasks in flight, from their folders in ``checkpoints/<task key>/``: every task
  marks its start there (``started.json``), so a task that saves nothing midway (the
  forests, the linear models) is named with the time since it started and its model's
  recent mean fit time; a warm lambda
  path has one file per finished lambda, so it says *k of n lambdas* and, from the times
  between those files, when the path should end; an independent run has a snapshot
  (``run.pt``) that says its step, of how many (``max_steps``, resolved when ``'auto'``)
  and its training time so far, hence the time left if it runs all its steps;
- the estimate of the rest, as in the report (:func:`~psilon.bench.report.protocol_progress`).

A run of code older than the ``started.json`` markers shows its non-saving tasks only
once their row lands.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import statistics
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from psilon.bench.models import MODELS
from psilon.bench.protocols import Protocol, Task
from psilon.bench.report import claim_wait, protocol_progress, read_usable, split_superseded, summarize
from psilon.bench.store import CHECKPOINTS_DIR, STARTED_NAME, STORE_NAME, ResultStore
from psilon.train.checkpoint import RUN_SNAPSHOT_SECONDS

__all__ = ["InFlight", "StoreStatus", "format_status", "in_flight", "store_status"]

_WARM_FILE = re.compile(r"fold(-?\d+)-lambda(\d+)\.pt")
_RUN_FILE = "run.pt"


@dataclass
class InFlight:
    """One task with partial work in the store's ``checkpoints/`` folder.

    ``kind``: ``'warm path'`` (``done`` lambdas of ``total``), ``'run'`` (a snapshot at step
    ``done`` of ``total``; ``total`` is ``None`` when the model stops by itself),
    ``'started'`` (only the start marker: a model that saves nothing midway, or one that
    has not saved yet) or ``'unknown'`` (an empty folder). ``started``: when the task last
    started (its ``started.json``), ``None`` without a marker. ``task`` is ``None`` for a folder whose key no
    task of the protocol has (a checkpoint of another protocol version: delete it).
    ``gone``: the process that started the task (the pid and host in its marker) has ended,
    so nothing works on it even while another run holds the store's lock; ``False`` when
    that process lives or cannot be checked from here (another host, an older marker).
    ``seconds_left``: from ``last_write`` on. For a warm path, the lambdas left times the
    median time between two of its files (``None`` with fewer than two files); the median,
    so that a pause between two sessions does not count as a lambda's time. For a run, the
    steps left to ``total`` at the snapshot's pace (its training seconds per step; ``None``
    for snapshots without their time, or without a step count to reach). ``interval``: the
    seconds between two of its writes (the median gap of a warm path, the snapshot period
    of a run); a task not written for over twice that is idle, no run working on it now.
    """

    key: str
    task: Task | None
    kind: str
    done: int
    total: int | None
    last_write: datetime | None
    seconds_left: float | None = None
    interval: float | None = None
    started: datetime | None = None
    gone: bool = False


@dataclass
class StoreStatus:
    folder: Path
    protocol: str
    description: str
    tasks: int
    finished: int
    running: bool
    in_flight: list[InFlight] = field(default_factory=list)
    progress: dict[str, Any] | None = None
    #: Datasets outside the protocol's list that finished rows are on (a run with
    #: ``--datasets``), and how many of their tasks are finished.
    other_datasets: list[str] = field(default_factory=list)
    other_finished: int = 0


def _store_folder(results: str | os.PathLike) -> Path:
    path = Path(results)
    folder = path.parent if path.name == STORE_NAME else path
    if not (folder / "protocol.json").is_file():
        raise ValueError(
            f"{str(folder)!r} is not a benchmark store: it has no protocol.json. Pass the folder that "
            "'psilon bench --out' wrote (or its results.jsonl)"
        )
    return folder


def store_locked(path: Path) -> bool:
    """Whether a process holds ``path``'s lock (a ``psilon bench`` run writing to the store).

    Takes and drops a shared lock without waiting; a run starting in that instant would
    find the store busy and say so (``StoreLockedError``), never write half a row.
    """
    if not path.is_file():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock when it was taken
    return False


def _warm(key: str, task: Task | None, files: list[Path]) -> InFlight:
    times = sorted(f.stat().st_mtime for f in files)
    folds = {_WARM_FILE.fullmatch(f.name).group(1) for f in files}
    lambdas = task.model.params.get("lambdas") if task is not None else None
    total = len(lambdas) * len(folds) if isinstance(lambdas, list) and folds == {"-1"} else None
    gap = statistics.median(b - a for a, b in zip(times, times[1:])) if len(times) >= 2 else None
    left = (total - len(files)) * gap if total is not None and gap is not None else None
    return InFlight(key, task, "warm path", len(files), total, datetime.fromtimestamp(times[-1]), left, gap)


def _run(key: str, task: Task | None, file: Path) -> InFlight:
    written = datetime.fromtimestamp(file.stat().st_mtime)
    try:
        state = torch.load(file, map_location="cpu", weights_only=False, mmap=True)["state"]
        done = int(state["steps_done"])
    except Exception:  # being replaced, or damaged: the run rewrites it at its next snapshot
        return InFlight(key, task, "run", -1, None, written)
    max_steps = state.get("max_steps", task.model.params.get("max_steps") if task is not None else None)
    total = max_steps if isinstance(max_steps, int) else None
    left = None
    if total is not None and done > 0 and state.get("seconds"):  # snapshots since 2026-11-30 carry their time
        left = (total - done) * float(state["seconds"]) / done
    return InFlight(key, task, "run", done, total, written, left, RUN_SNAPSHOT_SECONDS)


def _starter_gone(marker: Path) -> bool:
    """Whether the process named in a ``started.json`` has ended: ``True`` only when the
    marker names a pid of this host that no process has now. A reused pid reads as alive
    (the safe side: the task shows as in flight, as it did before markers carried pids)."""
    try:
        info = json.loads(marker.read_text())
        pid, host = int(info["pid"]), info["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a process of another user has that pid
        return False
    return False


def in_flight(folder: Path, tasks: dict[str, Task], finished: set[str]) -> list[InFlight]:
    """The tasks with partial work in ``folder``'s ``checkpoints/``, leaving out the ``finished``
    keys; ``tasks`` by key name them (a folder of another key gets ``task=None``)."""
    found = []
    root = folder / CHECKPOINTS_DIR
    for sub in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if sub.name in finished:  # the row landed; the runner removes the folder right after
            continue
        task = tasks.get(sub.name)
        marker = sub / STARTED_NAME
        started = datetime.fromtimestamp(marker.stat().st_mtime) if marker.is_file() else None
        warm = [f for f in sub.iterdir() if _WARM_FILE.fullmatch(f.name)]
        if warm:
            flight = _warm(sub.name, task, warm)
        elif (sub / _RUN_FILE).is_file():
            flight = _run(sub.name, task, sub / _RUN_FILE)
        elif started is not None:
            flight = InFlight(sub.name, task, "started", 0, None, started)
        else:
            flight = InFlight(sub.name, task, "unknown", 0, None, None)
        flight.started = started
        flight.gone = started is not None and _starter_gone(marker)
        found.append(flight)
    return found


def store_status(results: str | os.PathLike) -> StoreStatus:
    """What ``results`` (a store folder or its ``results.jsonl``) holds now (see the module docstring)."""
    folder = _store_folder(results)
    info = json.loads((folder / "protocol.json").read_text())
    protocol = Protocol.from_dict(info)
    store = folder / STORE_NAME
    try:
        rows, _ = split_superseded(read_usable(store).rows, info)
    except ValueError:  # no usable row yet
        rows = []
    tasks = {t.key: t for t in protocol.tasks(resolve=False)}
    others = list(dict.fromkeys(r["dataset"] for r in rows if r["dataset"] not in protocol.datasets))
    other_tasks = {t.key: t for t in protocol.tasks(others, resolve=False)} if others else {}
    done = ResultStore(store).finished_keys() if store.is_file() else set()
    progress = None
    s = summarize(rows).get(protocol.name) if rows else None
    if s is not None and "ablation" not in s and s["datasets"]:
        progress = protocol_progress(s, info)
    return StoreStatus(folder, protocol.name, protocol.description, len(tasks), len(done & tasks.keys()),
                       store_locked(store), in_flight(folder, tasks | other_tasks, done), progress, others,
                       len(done & other_tasks.keys()))


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{seconds / 3600:.1f} h"


def _eta(f: InFlight, now: datetime, condition: str = "") -> str:
    """``seconds_left`` counted from the last write (the work after it is partly done) or from a
    later start (a resumed task starts the unsaved part again), or all of it when the task is
    idle: neither written nor started for over twice its ``interval``, or its starter ``gone``."""
    if f.seconds_left is None:
        return ""
    since = (now - max(f.last_write, f.started or f.last_write)).total_seconds()
    if f.gone or (f.interval is not None and since > 2 * f.interval):
        return f"; idle (no run is working on it): about {_duration(f.seconds_left)} left once one resumes it{condition}"
    left = f.seconds_left - since
    return f"; about {_duration(left)} left{condition}" if left > 30 else "; due about now"


def _started_line(what: str, f: InFlight, now: datetime, running: bool, mean: float | None) -> str:
    """A task with only its start marker: how long it has run, against its model's recent fits."""
    since = (now - f.started).total_seconds()
    if not running or f.gone:
        by = "a run that is no longer writing to the store" if not running else "a process that has ended"
        return f"  {what}: started {_duration(since)} ago by {by}; it saved nothing, so a re-run starts it again"
    entry = MODELS.get(f.task.model.entry) if f.task is not None else None
    saves = "nothing saved yet" if entry is not None and entry.checkpoints else "saves nothing midway"
    line = f"  {what}: started {_duration(since)} ago, {saves}"
    if mean is None:
        return line + " (its model has no finished fit to time yet)"
    if mean - since > 30:
        return line + f"; about {_duration(mean - since)} left at its model's recent mean fit time ({_duration(mean)})"
    return line + f"; past its model's recent mean fit time ({_duration(mean)})"


def _flight_line(f: InFlight, now: datetime, running: bool = True, mean: float | None = None) -> str:
    """One line of the tasks in flight; ``running``: a run holds the store; ``mean``: the
    recent mean fit seconds of the task's model (``None`` when unknown)."""
    what = (f"{f.task.model.label} on {f.task.dataset}, split {f.task.split_id}" if f.task is not None
            else f"task {f.key} (not in this protocol: a checkpoint of another version, safe to delete)")
    ago = "" if f.last_write is None else f", last written {_duration((now - f.last_write).total_seconds())} ago"
    if f.kind == "warm path":
        of = f" of {f.total}" if f.total is not None else ""
        basis = ""
        if f.seconds_left is None and mean is not None and f.total:  # one lambda file: no gap to time yet
            f = replace(f, seconds_left=mean * (f.total - f.done) / f.total, interval=mean / f.total)
            basis = " at its model's recent mean fit time"
        return f"  {what}: warm path, {f.done}{of} lambdas done{ago}{_eta(f, now, basis)}"
    if f.kind == "run":
        if f.done < 0:
            return f"  {what}: run snapshot unreadable right now{ago}"
        of = f" of {f.total:,}" if f.total is not None else " (stops by itself)"
        eta = _eta(f, now, " if it runs all its steps (early stopping may end it sooner)")
        return f"  {what}: run snapshot at step {f.done:,}{of}{ago}{eta}"
    if f.kind == "started":
        return _started_line(what, f, now, running, mean)
    return f"  {what}: checkpoint folder without a lambda file or snapshot yet"


def format_status(st: StoreStatus, now: datetime | None = None) -> str:
    """Plain-text lines for ``psilon status``."""
    now = now or datetime.now()
    state = "a run is writing to it" if st.running else "no run is writing to it"
    lines = [f"{st.protocol} ({st.folder}): {st.finished} of {st.tasks} tasks finished; {state}"]
    if st.other_datasets:
        lines.append(f"besides, {st.other_finished} tasks finished on datasets outside the protocol's list "
                     f"(a run with --datasets): {', '.join(st.other_datasets)}")
    p = st.progress
    means = {label: m.get("seconds") for label, m in p["models"].items()} if p is not None else {}
    if st.in_flight:
        lines.append("in flight:")
        lines += [_flight_line(f, now, st.running, means.get(f.task.model.label) if f.task is not None else None)
                  for f in st.in_flight]
    elif st.running:
        lines.append("in flight: no task marked yet (a run of code older than the tasks' started.json markers)")
    if p is not None and p["done"] < p["tasks"]:
        rest = f"about {p['hours_left']:.1f} core-hours"
        if p["unestimated"]:
            names = ", ".join(p["unestimated"])
            rest = (f"at least {p['hours_left']:.1f} core-hours ({names} not counted: no finished task to time)"
                    if p["hours_left"] > 0 else f"not estimated ({names}: no finished task to time)")
        lines.append(f"left: {p['tasks'] - p['done']} tasks, {rest} (as in the report's Progress section)")
        if p.get("claim") and p["claim"]["done"] < p["claim"]["tasks"]:
            lines.append(claim_wait(p["claim"]))
    return "\n".join(lines)
