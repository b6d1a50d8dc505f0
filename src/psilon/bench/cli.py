"""``psilon bench``, ``psilon report`` and ``psilon status``: thin commands over :mod:`psilon.bench`."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

__all__ = ["register"]


def _csv(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list, e.g. a,b")
    return items


def _split_ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated split ids such as 0,1,2, got {text!r}") from None
    if any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError(f"split ids are >= 0, got {text!r}")
    return ids


def _positive_or_all(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"expected a positive number of processes, or -1 for all cores, got {text!r}")
    return value


def register(subparsers) -> None:
    """Add the ``bench``, ``report`` and ``status`` sub-commands."""
    from psilon.bench.models import MODELS
    from psilon.recovery.options import int_at_least
    from psilon.bench.protocols import PROTOCOLS

    protocols = "\n".join(f"  {name:14s} {p.description}" for name, p in PROTOCOLS.items())
    models = "\n".join(f"  {name:14s} {e.description}" for name, e in MODELS.items())
    bench = subparsers.add_parser(
        "bench",
        help="run a benchmark protocol into a resumable result store, then write its report",
        description=(
            "Run the tasks (dataset x split x model) of a protocol. Results are appended to "
            "OUT/results.jsonl as they finish; re-running the same command skips finished tasks, "
            "so an interrupted run resumes. The report (OUT/report.md, OUT/summary.json, "
            "OUT/plots/) is written at the end."
        ),
        epilog=f"protocols:\n{protocols}\n\nmodel entries:\n{models}\n\n"
        "example: psilon bench smoke --out results/smoke --jobs 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("protocol", metavar="PROTOCOL", help="a built-in protocol name or a protocol .json file")
    bench.add_argument(
        "--data-dir",
        help="folder holding pmlb/ and uci/ (default: $PSILON_DATA_DIR, else ../shared/data if it exists)",
    )
    bench.add_argument("--out", help="output folder (default: results/PROTOCOL)")
    bench.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask cluster, e.g. tcp://127.0.0.1:8786")
    bench.add_argument("--jobs", type=_positive_or_all, default=1, help="parallel local processes (default 1; -1: all cores)")
    bench.add_argument(
        "--threads", type=int_at_least(1, "threads inside one task"), default=1, help="threads inside one task (default 1)"
    )
    bench.add_argument(
        "--device",
        help="where the PyTorch models train: auto (CUDA when available), cpu, cuda, cuda:N "
        "(default: each model's own: auto for psilon's estimators, cpu for the deep ablation); "
        "not part of the task keys, recorded in each row",
    )
    bench.add_argument("--datasets", type=_csv, help="comma-separated datasets to run instead of the protocol's")
    bench.add_argument("--models", type=_csv, help="comma-separated model labels of the protocol to run")
    bench.add_argument("--splits", type=_split_ids, help="comma-separated split ids to run (e.g. 0,1,2; default: all)")
    bench.add_argument(
        "--reuse", action="append", metavar="STORE",
        help="another run's store (folder or results.jsonl): a task whose fit it has already made (same dataset, "
        "split rows, preprocessing, model entry and params, whatever the protocol or label) copies that row instead "
        "of running; repeatable",
    )
    bench.add_argument("--reuse-only", action="store_true",
                       help="copy the rows --reuse finds and run nothing else (e.g. an ablation's end points that "
                       "another run is still making: copy them as they come, never run them twice)")
    bench.add_argument(
        "--finish-by", metavar="TIME",
        help="start a task only if it should finish by TIME (21:30, 2026-12-01T21:30 or +2h30m), estimated from the "
        "store's finished tasks of the same model; the others stay to do for the next run. For runs that will be "
        "stopped at a known time: short tasks fill the end instead of a long one that would be lost",
    )
    bench.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.set_defaults(func=_bench)

    report = subparsers.add_parser(
        "report",
        help="write the Markdown/JSON report and plots of a result store",
        description=(
            "Read a result store (the results.jsonl written by 'psilon bench', or its folder), or several, and "
            "write report.md, summary.json and plots/*.png."
        ),
    )
    report.add_argument(
        "results", metavar="RESULTS", nargs="+",
        help="results.jsonl or the folder holding it; several stores make one report of all their protocols "
        "(with --out), opening with the claim overview when two of them are the paper-30 recipes",
    )
    report.add_argument("--out", help="output folder (default: the store's folder; required for several stores)")
    report.set_defaults(func=_report)
    _register_status(subparsers)


def _register_status(subparsers) -> None:
    status = subparsers.add_parser(
        "status",
        help="where a benchmark store stands: tasks finished, tasks in flight and how far, the rest's estimate",
        description=(
            "Read a store that 'psilon bench' is writing (or has written) without touching the run: how many of "
            "its protocol's tasks are finished, whether a run holds the store now, the tasks in flight from "
            "their checkpoints (a warm lambda path: k of n lambdas and the time left; an independent run: its "
            "snapshot's step) and the core-hours the rest should take."
        ),
        epilog="example: psilon status docs/results/paper-exact docs/results/default-recipe-30",
    )
    status.add_argument("results", metavar="STORE", nargs="+", help="a store folder (or its results.jsonl)")
    status.set_defaults(func=_status)


def _bench(args: argparse.Namespace) -> int:
    from psilon.bench.deadline import parse_finish_by
    from psilon.bench.protocols import get_protocol
    from psilon.bench.report import write_report
    from psilon.bench.runner import STORE_NAME, run_protocol
    from psilon.bench.store import StoreLockedError
    from psilon.datasets import DatasetError

    try:
        finish_by = None if args.finish_by is None else parse_finish_by(args.finish_by)
        protocol = get_protocol(args.protocol)
        out = Path(args.out) if args.out else Path("results") / protocol.name
        summary = run_protocol(
            protocol,
            out,
            data_dir=args.data_dir,
            jobs=args.jobs,
            scheduler=args.scheduler,
            datasets=args.datasets,
            models=args.models,
            splits=args.splits,
            threads=args.threads,
            device=args.device,
            progress=not args.no_progress,
            command=_command_line(args),
            reuse=args.reuse,
            reuse_only=args.reuse_only,
            finish_by=finish_by,
        )
    except (DatasetError, StoreLockedError, ValueError, RuntimeError, OSError) as exc:  # OSError: scheduler unreachable
        print(f"psilon bench: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{protocol.name}: {summary.total} tasks, {summary.already_done} already done, "
        + (f"{summary.reused} reused, " if summary.reused else "")
        + f"{summary.ok} ok, {summary.skipped} skipped, {summary.error} failed in {summary.seconds:.1f} s"
    )
    for note in summary.notes:
        print(f"  skipped: {note}")
    if summary.deferred:
        print(f"  {len(summary.deferred)} tasks left for a later run: they would not have finished by "
              f"{finish_by:%Y-%m-%d %H:%M}")
        for dataset, label, split, seconds in summary.deferred[:10]:
            print(f"    {label} on {dataset}, split {split}: about {seconds / 60:.0f} min")
        if len(summary.deferred) > 10:
            print(f"    ... and {len(summary.deferred) - 10} more")
    for error in summary.errors:
        print(f"  failed: {error}", file=sys.stderr)
    if not args.no_report:
        write_report(out / STORE_NAME, warn=_warner("bench"))
        print(f"report: {out / 'report.md'}")
    return 1 if summary.error else 0


def _report(args: argparse.Namespace) -> int:
    from psilon.bench.report import write_report

    try:
        write_report(args.results[0] if len(args.results) == 1 else args.results, args.out, warn=_warner("report"))
    except (ValueError, OSError) as exc:  # OSError: a file of the report could not be replaced
        print(f"psilon report: error: {exc}", file=sys.stderr)
        return 2
    first = Path(args.results[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    print(f"report: {out / 'report.md'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from psilon.bench.status import format_status, store_status

    code = 0
    for i, results in enumerate(args.results):
        try:
            text = format_status(store_status(results))
        except (ValueError, OSError) as exc:  # OSError: an unreadable file in the folder
            print(f"psilon status: error: {exc}", file=sys.stderr)
            code = 2
            continue
        try:
            print(("\n" if i else "") + text, flush=True)
        except BrokenPipeError:  # the reader has gone (`psilon status ... | head`): stop without a traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit would fail again
            return code
    return code


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed (``args.argv``, set by ``main``; else ``sys.argv``), for ``commands.txt``."""
    argv = getattr(args, "argv", None)
    return "psilon " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))


def _warner(command: str):
    """A ``warn`` callback for :func:`~psilon.bench.report.write_report`: one line on stderr."""

    def warn(message: str) -> None:
        print(f"psilon {command}: warning: {message}", file=sys.stderr)

    return warn


def main(argv: list[str] | None = None) -> int:
    """Run ``bench``/``report`` without the top-level ``psilon`` parser: ``python -m psilon.bench.cli``."""
    parser = argparse.ArgumentParser(prog="python -m psilon.bench.cli", description=__doc__)
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
