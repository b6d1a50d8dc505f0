"""Option checks shared by the ``psilon`` commands: argparse types and the ``--out`` folder.

Every option is checked when the command line is parsed, before any work starts, so a
bad value never costs a run or overwrites results. The argparse types raise
``argparse.ArgumentTypeError`` (argparse then prints the option, the problem and the
usage, and exits with code 2); :func:`prepare_out_dir` raises ``ValueError``, which the
commands print as one line before exiting with code 2.

This module sits in :mod:`psilon.recovery`, the lowest layer that has a command, so that
:mod:`psilon.bench.cli` can import it too (the layering forbids the other direction).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["float_list", "int_at_least", "positive_float", "prepare_out_dir", "real_at_least"]


def int_at_least(low: int, meaning: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number ``>= low``. ``meaning`` ends the error message."""
    hint = f" ({meaning})" if meaning else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}{hint}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}{hint}, got {value}")
        return value

    return parse


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number ``> 0``."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def real_at_least(low: float) -> Callable[[str], float]:
    """An argparse type: a finite number ``>= low``."""

    def parse(text: str) -> float:
        value = _finite(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low:g}, got {text}")
        return value

    return parse


def float_list(positive: bool = True) -> Callable[[str], tuple[float, ...]]:
    """An argparse type: comma-separated finite numbers (each ``> 0`` when ``positive``)."""

    def parse(text: str) -> tuple[float, ...]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected at least one number, e.g. 0.1,0.5")
        try:
            values = tuple(float(t) for t in items)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
        bad = [t for t, v in zip(items, values) if not math.isfinite(v) or (positive and v <= 0)]
        if bad:
            kind = "positive finite numbers" if positive else "finite numbers"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {', '.join(bad)} in {text!r}")
        return values

    return parse


def prepare_out_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder ``path`` if needed and check that a file can be written in it.

    Raises ValueError naming the folder, the problem and the fix: ``path`` is an existing
    file, or cannot be created or written (permissions, read-only file system, a file where
    a parent folder should be).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is an existing file, not a folder; pass a folder path (created if missing)")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"{option} {path} is below {blocker}, which is a file, not a folder; pass a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
        raise ValueError(f"cannot write to the {option} folder {path}: {problem}; choose a folder you can write to") from None
    return path
