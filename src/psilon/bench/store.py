"""Append-only JSON-lines result store, safe against being killed at any moment.

One line per finished task: a JSON object with at least ``key`` (the task id) and
``status`` (``"ok"``, ``"error"`` or ``"skipped"``).

Writing: each row is serialized to one complete line and written with a single
``os.write`` on a descriptor opened with ``O_APPEND``, then ``fsync``-ed. A writer holds an
exclusive ``flock`` on the store, so two runs cannot interleave; when it opens the store
it cuts a trailing partial line (a row whose write was interrupted: never a result).

Reading skips a trailing partial line and undecodable lines, and keeps one row per key:
the first ``"ok"`` row if there is one (an ``ok`` task is never re-run), otherwise the
latest row (a failed or skipped task is retried by the next run). :meth:`ResultStore.scan`
also says which lines it skipped and why.

Big artefacts go to side files written atomically by :func:`atomic_write_bytes`
(temporary file in the same folder, fsync, ``os.replace``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psilon._files import atomic_write_bytes, atomic_write_text
from psilon.bench.protocols import canonical_json

__all__ = ["CHECKPOINTS_DIR", "STARTED_NAME", "STORE_NAME", "ResultStore", "StoreLockedError", "StoreScan", "atomic_write_bytes", "atomic_write_text"]

#: File name of the store inside an output folder of ``psilon bench``.
STORE_NAME = "results.jsonl"
#: Per-task checkpoints (``<key>/``) of models that save partial work (the warm lambda
#: path): a task killed midway resumes from them; removed once the task's row is stored.
CHECKPOINTS_DIR = "checkpoints"
#: In ``CHECKPOINTS_DIR/<key>/``: written when a task starts, by every model (its modification
#: time is the start; it holds the process id and host), so ``psilon status`` can name the
#: tasks in flight that save nothing midway (forests, linear models, boosted trees).
STARTED_NAME = "started.json"

NOT_JSON = "not JSON (a store line is one JSON object)"
NOT_A_ROW = "not a JSON object with a 'key'"
TORN = "torn last line (no newline at the end: its write was interrupted; the next 'psilon bench' run cuts it)"


class StoreLockedError(RuntimeError):
    """Another process is writing to the same store."""


@dataclass
class StoreScan:
    """What a read of the store found: the rows (one per key) and the lines it skipped.

    ``skipped`` holds ``(line number, reason)`` pairs, lines counted from 1.
    """

    rows: list[dict[str, Any]]
    skipped: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0


class ResultStore:
    """The JSON-lines file at ``path`` (created on first write)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    # ------------------------------------------------------------------ reading
    def _lines(self, skipped: list[tuple[int, str]]) -> Iterator[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        complete, _, partial = data.rpartition(b"\n")
        lines = complete.split(b"\n") if complete or data.endswith(b"\n") else []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:  # not JSON, or not UTF-8
                skipped.append((number, NOT_JSON))
                continue
            if isinstance(row, dict) and "key" in row:
                yield row
            else:
                skipped.append((number, NOT_A_ROW))
        if partial.strip():
            skipped.append((len(lines) + 1, TORN))

    def scan(self) -> StoreScan:
        """One row per task key (see the module docstring for which one), in file order,
        and the lines skipped with the reason."""
        skipped: list[tuple[int, str]] = []
        chosen: dict[str, dict[str, Any]] = {}
        count = 0
        for row in self._lines(skipped):
            count += 1
            previous = chosen.get(row["key"])
            if previous is not None and previous.get("status") == "ok":
                continue
            chosen[row["key"]] = row
        return StoreScan(list(chosen.values()), skipped, count + len(skipped))

    def rows(self) -> list[dict[str, Any]]:
        """One row per task key (see the module docstring for which one), in file order."""
        return self.scan().rows

    def finished_keys(self) -> set[str]:
        """Keys of the tasks that finished successfully (a re-run skips them)."""
        return {row["key"] for row in self.rows() if row.get("status") == "ok"}

    # ------------------------------------------------------------------ writing
    def __enter__(self) -> ResultStore:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Open for appending: take the lock and cut a trailing partial line."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"another process is writing to {self.path}; wait for it or use another --out folder"
            ) from None
        self._fd = fd
        self._repair_tail()

    def _repair_tail(self) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as handle:
            handle.seek(max(0, size - 1))
            if handle.read(1) == b"\n":
                return
            data = handle.seek(0) or handle.read()
        os.truncate(self.path, data.rfind(b"\n") + 1)
        os.fsync(self._fd)

    def append(self, row: dict[str, Any]) -> None:
        """Append one row durably (one ``os.write`` of a complete line, then ``fsync``)."""
        if "key" not in row:
            raise ValueError("a result row needs a 'key'")
        if self._fd is None:
            raise RuntimeError("open the store (ResultStore.open() or a with block) before appending")
        line = (canonical_json(row) + "\n").encode("utf-8")
        written = os.write(self._fd, line)
        if written != len(line):  # pragma: no cover - only on a full disk
            raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
