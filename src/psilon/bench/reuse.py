"""Reuse finished rows of other result stores (``psilon bench --reuse STORE``).

Two protocols often share fits: paper-exact and default-recipe-30 fit the same linear
model and random forest on the same split 0 rows, and an ablation's end points are the
runs it starts and ends from. A task's key hashes its protocol and label, so those fits
would run again. Here a task whose :meth:`~psilon.bench.protocols.Task.fit_identity`
(dataset, split id, the fields that decide the split's rows, preprocessing, model entry
and params) equals that of an ``ok`` row of another store takes a copy of that row: the
row gets the task's own identity and key, keeps the source's results, timing, host and
versions, and says where it came from in ``reused_from`` (store, key, protocol, label).
Its curves file is copied too.

Like a task key, a fit identity covers parameters, not psilon's code: reuse rows that
today's code would reproduce (the stores' tests pin the recipes they were made with).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from psilon._files import atomic_write_text
from psilon.bench.protocols import Task, row_fit_identity
from psilon.bench.store import STORE_NAME, ResultStore

__all__ = ["ReuseIndex", "reuse_rows"]


class ReuseIndex:
    """The ``ok`` rows of some stores by fit identity (the first store that has one wins)."""

    def __init__(self, stores: list[str | os.PathLike], out_store: Path | None = None):
        self._rows: dict[str, tuple[Path, dict[str, Any]]] = {}
        for given in stores:
            path = Path(given)
            file = path / STORE_NAME if path.is_dir() else path
            if not file.is_file():
                raise ValueError(f"--reuse {given}: no result store there (give a folder holding {STORE_NAME}, or the file)")
            if out_store is not None and file.resolve() == out_store.resolve():
                raise ValueError(f"--reuse {given} is the output store itself; name another run's store")
            for row in ResultStore(file).rows():
                identity = row_fit_identity(row) if row.get("status") == "ok" else None
                if identity is not None:
                    self._rows.setdefault(identity, (file.parent, row))

    def find(self, task: Task) -> tuple[Path, dict[str, Any]] | None:
        """``(source folder, row)`` with ``task``'s fit identity, or ``None``."""
        return self._rows.get(task.fit_identity())


def _reused_row(task: Task, folder: Path, row: dict[str, Any], out_dir: Path, curves_dir: str) -> dict[str, Any]:
    new = {k: v for k, v in row.items() if k != "curves_file"}
    new.update(task.identity())
    new["key"] = task.key
    new["reused_from"] = {"store": str(folder), "key": row["key"], "protocol": row.get("protocol"),
                          "model": row.get("model")}
    source = folder / row["curves_file"] if row.get("curves_file") else None
    if source is not None and source.is_file():
        relative = f"{curves_dir}/{task.key}.json"
        atomic_write_text(out_dir / relative, source.read_text())
        new["curves_file"] = relative
    return new


def reuse_rows(todo: list[Task], index: ReuseIndex, out_dir: Path, curves_dir: str) -> tuple[list[dict], list[Task]]:
    """The rows ``todo``'s tasks take from ``index`` (curves copied into ``out_dir``), and the
    tasks left to run."""
    rows, left = [], []
    for task in todo:
        found = index.find(task)
        if found is None:
            left.append(task)
        else:
            rows.append(_reused_row(task, *found, out_dir, curves_dir))
    return rows, left
