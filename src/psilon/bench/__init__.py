"""Benchmarks as data: protocols expand to tasks, the runner fills a resumable store, the report reads it.

Entry points: :func:`psilon.bench.runner.run_protocol` and
:func:`psilon.bench.report.write_report`; the ``psilon bench`` / ``psilon report`` commands
(:mod:`psilon.bench.cli`) wrap them.
"""
