"""The ``psilon`` command line: a thin layer over :mod:`psilon.bench` and :mod:`psilon.recovery`.

Each command group lives in its own module, which exposes ``register(subparsers)``;
``register`` adds its sub-commands and sets ``func`` (called with the parsed args,
returning an exit code) as a default on each of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that contribute sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "psilon.bench.cli",
    "psilon.recovery.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psilon",
        description="Sparse, Lipschitz-certified neural networks for small tabular data.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed, for the provenance log
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
