"""Run a protocol's tasks, locally (joblib) or on a Dask cluster, into a resumable store.

Layout of an output folder ``out``:

- ``out/results.jsonl``: the :class:`~psilon.bench.store.ResultStore`, one row per task;
- ``out/commands.txt``: the command lines that ran tasks into the folder, one per run;
- ``out/protocol.json``: the protocol of the latest run;
- ``out/curves/<task key>.json``: training curves of a task, when its model has them
  (written atomically by the main process, so Dask workers need no shared output folder;
  they do need to see the data folder).

A run expands the protocol into tasks, drops those already finished in the store, and
executes the rest; each result is appended as soon as it arrives, so killing the run
loses only the tasks in flight. Tasks that failed or were skipped are retried next time.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from itertools import islice
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler

from psilon.bench.deadline import TaskTimes, within_deadline
from psilon.bench.metrics import PRIMARY_METRIC, evaluate, predict_for_metrics
from psilon.bench.models import ModelUnavailableError, get_model
from psilon.bench.protocols import Protocol, Task, canonical_json
from psilon.bench.reuse import ReuseIndex, reuse_rows
from psilon.bench.store import CHECKPOINTS_DIR, STARTED_NAME, STORE_NAME, ResultStore, atomic_write_text
from psilon.datasets import Dataset, DatasetUnavailableError, find_data_dir, load_dataset, load_image_benchmark
from psilon.train import resolve_device, tune_allocator
from psilon.recovery.options import prepare_out_dir

__all__ = ["PreparedSplit", "RunSummary", "STORE_NAME", "execute_task", "prepare_image_split", "prepare_split", "run_protocol"]

#: File name of the log of the commands that ran into an output folder.
COMMANDS_NAME = "commands.txt"
CURVES_DIR = "curves"


@dataclass
class PreparedSplit:
    """Preprocessed arrays of one split; ``target_center``/``target_scale`` undo the target scaling."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int | None = None
    target_center: float = 0.0
    target_scale: float = 1.0
    description: str | None = None


def prepare_split(task: Task, dataset: Dataset) -> PreparedSplit:
    """Split ``dataset`` as ``task`` says and preprocess it, fitting on the training rows only.

    Continuous features are standardized (categorical ones one-hot encoded); regression
    targets are scaled to ``(y - median) / (IQR / 2)`` (IQR 0 falls back to the standard
    deviation, then 1); class labels become integers ``0..K-1`` over the whole dataset.
    """
    train, val, test = task.split.split(dataset, task.split_id)
    X = dataset.X
    categorical = [c for c in X.columns if not np.issubdtype(X[c].dtype, np.number)]
    numeric = [c for c in X.columns if c not in categorical]
    transformers = []
    if numeric:
        transformers.append(("num", StandardScaler() if task.preprocessing.standardize else "passthrough", numeric))
    if categorical:
        transformers.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical))
    features = ColumnTransformer(transformers, sparse_threshold=0.0)
    X_train = features.fit_transform(X.iloc[train]).astype(float)
    X_val = features.transform(X.iloc[val]).astype(float)
    X_test = features.transform(X.iloc[test]).astype(float)

    if dataset.task == "regression":
        y = dataset.y.to_numpy(dtype=float)
        center, scale = 0.0, 1.0
        if task.preprocessing.target_scaling == "robust":
            from psilon.estimators import robust_target_scaling  # bench sits above estimators
            center, scale = robust_target_scaling(y[train])
        y = (y - center) / scale
        return PreparedSplit(X_train, y[train], X_val, y[val], X_test, y[test], "regression",
                             target_center=float(center), target_scale=float(scale))
    encoder = LabelEncoder().fit(dataset.y)
    y = encoder.transform(dataset.y)
    return PreparedSplit(X_train, y[train], X_val, y[val], X_test, y[test], dataset.task,
                         n_classes=len(encoder.classes_))


def prepare_image_split(task: Task, data_dir: str | None = None) -> PreparedSplit:
    """The image benchmark's split of ``task.dataset`` (``images:<name>``), seed = the split id.

    Train / validation / test come from :func:`psilon.datasets.load_image_benchmark`
    (features as loaded: float32 pixels in [-1, 1]; labels 0-9); ``description`` says
    which data were loaded and how they were split.
    """
    source, _, name = task.dataset.partition(":")
    if source != "images":
        raise ValueError(f"the image benchmark split needs an images:<name> dataset, not {task.dataset!r}")
    try:
        s = load_image_benchmark(data_dir, name, seed=task.split_id)
    except DatasetUnavailableError as exc:
        raise DatasetUnavailableError(
            f"{exc}. To run this protocol on the data that is here, pass --datasets images:mnist-10k "
            "(the report then names MNIST-10k)"
        ) from None
    return PreparedSplit(s.X_train, s.y_train, s.X_val, s.y_val, s.X_test, s.y_test, "multiclass",
                         n_classes=10, description=s.description)


def _prepared(task: Task, data_dir: str | None) -> PreparedSplit:
    if task.split.kind == "images":
        return prepare_image_split(task, data_dir)
    return prepare_split(task, load_dataset(task.dataset, data_dir))


def _versions() -> dict[str, str]:
    import sklearn

    import psilon

    return {"python": platform.python_version(), "sklearn": sklearn.__version__, "psilon": psilon.__version__}


@contextlib.contextmanager
def _thread_limit(threads: int | None):
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")  # only when a model already uses it
    previous = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(previous)


def execute_task(
    task: Task, data_dir: str | None = None, threads: int | None = None, device: str | None = None,
    checkpoints: str | None = None,
) -> dict[str, Any]:
    """Run one task and return its result row (never raises for a model or data failure).

    The row holds the task identity, ``status`` (``ok`` / ``error`` / ``skipped``), test and
    validation metrics, selected hyper-parameters, the validation path, near-sparsity,
    Lipschitz bound, timing, and ``curves`` (popped by the runner into a side file).
    ``device`` (``'auto'``, ``'cpu'``, ``'cuda'``...) goes to the models that train with
    PyTorch (their row records the device they ran on); ``None`` keeps each model's own.
    ``checkpoints``: a folder; models that save partial work (``ModelEntry.checkpoints``)
    get ``checkpoint_dir=<checkpoints>/<task key>``, so a task killed midway resumes there;
    the row of a resumed task says how many checkpoint files it found
    (``restored_checkpoints``): its ``fit_seconds`` are this run's only. Every task (that is
    not skipped) marks its start there (``started.json``) for ``psilon status``.
    Benchmarks opt in to :func:`psilon.train.tune_allocator` (wide networks' temporaries
    stay in the heap) in whichever process runs the task.
    """
    tune_allocator()
    row: dict[str, Any] = {"key": task.key, **task.identity(), "host": socket.gethostname(), "versions": _versions()}
    entry = get_model(task.model.entry)
    reason = entry.unavailable_reason()
    if reason is not None:
        return {**row, "status": "skipped", "note": reason, "finished_at": _now()}
    _mark_started(checkpoints, task.key)
    started = time.perf_counter()
    try:
        data = _prepared(task, data_dir)
        params = {**task.model.params, "random_state": task.split_id}
        if device is not None and entry.device:
            params["device"] = str(resolve_device(device))
            row["device"] = params["device"]
        if checkpoints is not None and entry.checkpoints:
            params["checkpoint_dir"] = str(Path(checkpoints) / task.key)
            restored = len(list(Path(params["checkpoint_dir"]).glob("*.pt")))
            if restored:  # a resumed task: its fit time counts only this run's part of the work
                row["restored_checkpoints"] = restored
        with _thread_limit(threads):
            fit_started = time.perf_counter()
            result = entry.fit(data.X_train, data.y_train, data.X_val, data.y_val, data.task, params)
            fit_seconds = time.perf_counter() - fit_started
            scale = data.target_scale if task.preprocessing.metric_scale == "original" else 1.0
            metrics = {
                part: evaluate(y, predict_for_metrics(result.predictor, X, data.task, data.n_classes), data.task, scale=scale)
                for part, X, y in (("test", data.X_test, data.y_test), ("val", data.X_val, data.y_val))
            }
    except ModelUnavailableError as exc:
        return {**row, "status": "skipped", "note": str(exc), "finished_at": _now()}
    except Exception as exc:  # a failing model must not stop the benchmark
        return {
            **row,
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
            "seconds": time.perf_counter() - started,
            "finished_at": _now(),
        }
    return {
        **row,
        "status": "ok",
        "task_type": data.task,
        "primary_metric": PRIMARY_METRIC[data.task],
        "metrics": metrics,
        "n_train": len(data.y_train),
        "n_val": len(data.y_val),
        "n_test": len(data.y_test),
        "n_features": int(data.X_train.shape[1]),
        "target_scale": data.target_scale,
        **({} if data.description is None else {"data_description": data.description}),
        "selected": result.selected,
        "path": result.path,
        "near_sparsity": result.near_sparsity,
        "lipschitz_bound": result.lipschitz_bound,
        "extra": result.extra,
        "curves": result.curves,
        "fit_seconds": fit_seconds,
        "seconds": time.perf_counter() - started,
        "finished_at": _now(),
    }


def _mark_started(checkpoints: str | None, key: str) -> None:
    """Write ``checkpoints/key/started.json`` (see :data:`~psilon.bench.store.STARTED_NAME`);
    the runner removes the folder with the row. Best effort: a worker that cannot write there
    (a Dask worker on another machine) runs the task all the same. No-op without ``checkpoints``."""
    if checkpoints is None:
        return
    folder = Path(checkpoints) / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / STARTED_NAME, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    except OSError:
        pass


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunSummary:
    """What a run did: task counts by outcome, the skip notes, and wall time."""

    out_dir: Path
    total: int
    already_done: int
    ok: int = 0
    reused: int = 0
    error: int = 0
    skipped: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Tasks not started because they would not have finished by ``finish_by``:
    #: ``(dataset, model label, split id, estimated seconds)``.
    deferred: list[tuple[str, str, int, float]] = field(default_factory=list)


def _record(store: ResultStore, out_dir: Path, row: dict[str, Any], summary: RunSummary) -> None:
    curves = row.pop("curves", None)
    if curves:
        relative = f"{CURVES_DIR}/{row['key']}.json"
        atomic_write_text(out_dir / relative, canonical_json(curves))
        row["curves_file"] = relative
    store.append(row)
    shutil.rmtree(out_dir / CHECKPOINTS_DIR / row["key"], ignore_errors=True)  # the row holds the result now
    status = row["status"]
    setattr(summary, status, getattr(summary, status) + 1)
    if status == "skipped" and row.get("note") not in summary.notes:
        summary.notes.append(row["note"])
    if status == "error":
        summary.errors.append(f"{row['dataset']} / {row['model']} / split {row['split_id']}: {row['error']}")


def run_protocol(
    protocol: Protocol,
    out_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    datasets: list[str] | None = None,
    models: list[str] | None = None,
    splits: list[int] | None = None,
    threads: int = 1,
    device: str | None = None,
    progress: bool = True,
    command: str | None = None,
    reuse: list[str | os.PathLike] | None = None,
    reuse_only: bool = False,
    finish_by: datetime | None = None,
) -> RunSummary:
    """Execute the unfinished tasks of ``protocol`` and append their rows to ``out_dir/results.jsonl``.

    ``jobs``: parallel local processes (joblib; ``-1`` for all cores). ``scheduler``: a
    Dask scheduler address (``tcp://host:port``); the tasks then run on its workers, which
    must be able to read the data folder. ``datasets``/``models`` restrict or replace the
    protocol's datasets and select model labels; ``splits`` selects split ids (e.g. the
    first three of ten, to see every dataset early and fill in the rest later).
    ``threads``: BLAS/OpenMP/torch threads inside one task (default 1: parallelism comes
    from running tasks side by side; on a shared machine, multi-threaded OpenMP in
    scikit-learn's gradient boosting can be twenty times slower than one thread).
    ``device``: where the PyTorch models train (``'auto'``: CUDA when available; ``None``:
    each model's default, ``'auto'`` for psilon's estimators and the CPU for the deep
    ablation); the task keys do not depend on it, and each row records it.
    ``reuse``: other stores (folders or ``results.jsonl`` files) whose ``ok`` rows with a
    task's fit identity are copied instead of running it (:mod:`psilon.bench.reuse`);
    ``reuse_only``: copy those and run nothing (the rest stays to do).
    ``finish_by``: a local time; a task starts only if it should finish by then
    (:mod:`psilon.bench.deadline`), the others stay to do (``RunSummary.deferred``).
    ``command``: the command line that started the
    run, appended to ``out_dir/commands.txt`` when its first result arrives; a command
    refused (bad options, the store locked by another run, no scheduler), killed before
    any task finished or with nothing left to do is not recorded. ``protocol.json`` is
    written once the run holds the store.
    """
    started = time.perf_counter()
    _check_options(jobs, threads, device, scheduler, reuse, reuse_only, finish_by)
    out_dir = Path(out_dir)
    folder = find_data_dir(data_dir)
    data_dir_str = None if folder is None else str(folder)
    tasks = _only_splits(protocol.tasks(datasets=datasets, models=models, data_dir=data_dir_str), splits)
    index = ReuseIndex(list(reuse), out_dir / STORE_NAME) if reuse else None
    prepare_out_dir(out_dir)
    with ResultStore(out_dir / STORE_NAME) as store:
        atomic_write_text(out_dir / "protocol.json", json.dumps(protocol.to_dict(), indent=2))
        done = store.finished_keys()
        todo = [t for t in tasks if t.key not in done]
        summary = RunSummary(out_dir, total=len(tasks), already_done=len(tasks) - len(todo))
        if index is not None:
            copies, todo = reuse_rows(todo, index, out_dir, CURVES_DIR)
            if copies and command:
                _log_command(out_dir / COMMANDS_NAME, command)
                command = None
            for row in copies:
                store.append(row)
            summary.reused = len(copies)
        if reuse_only:
            todo = []
        if finish_by is not None and todo:
            def times():  # read again for each task: the rows that land meanwhile count
                return TaskTimes.of_store(out_dir, store.rows(), tasks)

            todo = within_deadline(todo, finish_by, times, on_defer=lambda t, seconds: summary.deferred.append(
                (t.dataset, t.model.label, t.split_id, seconds)))
        rows = _execute_all(todo, data_dir_str, jobs=jobs, scheduler=scheduler, threads=threads, device=device,
                            checkpoints=str(out_dir.resolve() / CHECKPOINTS_DIR), lazy=finish_by is not None)
        _record_all(rows, store, summary, protocol.name, progress, command)
    summary.seconds = time.perf_counter() - started
    return summary


def _only_splits(tasks: list[Task], splits: list[int] | None) -> list[Task]:
    """The tasks of the given split ids (all when ``None``); an id the protocol lacks is an error."""
    if splits is None:
        return tasks
    wanted = set(splits)
    have = sorted({t.split_id for t in tasks})
    unknown = sorted(wanted - set(have))
    if unknown:
        raise ValueError(f"splits {unknown} are not in this protocol; its split ids are {have}")
    return [t for t in tasks if t.split_id in wanted]


def _check_options(jobs, threads, device, scheduler, reuse, reuse_only, finish_by) -> None:
    """Refuse options that cannot work together, before any task or file."""
    _check_parallelism(jobs, threads)
    if device is not None and scheduler is None:
        resolve_device(device)  # a device this machine lacks is refused before any work
    if reuse_only and not reuse:
        raise ValueError("reuse_only needs stores to reuse (--reuse STORE)")
    if finish_by is not None and scheduler is not None:
        raise ValueError("finish_by decides as each task starts, and a Dask scheduler is handed all the tasks at once: "
                         "drop --finish-by or --scheduler")


def _check_parallelism(jobs, threads) -> None:
    """Refuse ``jobs``/``threads`` with which every task would fail (before any task or file)."""
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or not (jobs >= 1 or jobs == -1):
        raise ValueError(f"jobs={jobs!r}: use a positive number of processes, or -1 for all cores")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise ValueError(f"threads={threads!r}: use a positive number of threads inside one task (default 1)")


def _log_command(path: Path, command: str) -> None:
    """Append one line to the command log (rewritten atomically: the old log or the new one)."""
    old = path.read_text() if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + command.strip() + "\n")


def _record_all(rows, store: ResultStore, summary: RunSummary, name: str, progress: bool, command: str | None) -> None:
    """Append each row as it arrives, with a progress bar over all of the protocol's tasks;
    log ``command`` before the first row."""
    from tqdm.auto import tqdm

    bar = tqdm(total=summary.total, initial=summary.already_done + summary.reused, desc=name, unit="task", disable=not progress)
    try:
        for row in rows:
            if command:
                _log_command(summary.out_dir / COMMANDS_NAME, command)
                command = None
            _record(store, summary.out_dir, row, summary)
            bar.set_postfix(ok=summary.ok, error=summary.error, skipped=summary.skipped, refresh=False)
            bar.update(1)
    finally:
        bar.close()


def _execute_all(todo: Iterable[Task], data_dir: str | None, *, jobs: int, scheduler: str | None, threads: int,
                 device: str | None = None, checkpoints: str | None = None, lazy: bool = False):
    """Yield result rows as tasks finish (unordered). ``lazy``: ``todo`` decides as it is
    consumed (a deadline), so processes take a task only when one of them is free."""
    if isinstance(todo, list) and not todo:
        return
    if scheduler is not None:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise RuntimeError("--scheduler needs dask[distributed]: install psilon[dask]") from None
        with Client(scheduler, timeout="30s") as client:
            futures = client.map(execute_task, todo, data_dir=data_dir, threads=threads, device=device,
                                 checkpoints=checkpoints, pure=False)
            for future in as_completed(futures):
                yield future.result()
        return
    if jobs == 1:
        for task in todo:
            yield execute_task(task, data_dir, threads, device, checkpoints)
        return
    if lazy:
        yield from _execute_as_processes_free(todo, jobs, data_dir, threads, device, checkpoints)
        return
    from joblib import Parallel, delayed, parallel_config

    # The backend (with the initializer) is fixed when Parallel is created.
    with parallel_config(backend="loky", initializer=exit_with_parent, initargs=(os.getpid(),)):
        parallel = Parallel(n_jobs=jobs, return_as="generator_unordered", pre_dispatch="n_jobs" if lazy else "2 * n_jobs")
    yield from parallel(delayed(execute_task)(task, data_dir, threads, device, checkpoints) for task in todo)


def _execute_as_processes_free(todo: Iterable[Task], jobs: int, *args):
    """Yield result rows of ``execute_task(task, *args)`` run by ``jobs`` loky processes, taking the
    next task from ``todo`` only when a process is free: a deadline (:func:`~psilon.bench.deadline.within_deadline`)
    checks a task when it is taken, so it must be taken when it can start. (joblib's ``Parallel``
    reads its input ahead of the free processes, even with ``pre_dispatch='n_jobs'``.)"""
    from concurrent.futures import FIRST_COMPLETED, wait

    # An executor of its own: loky's global reusable one is joblib's too, which expects its subclass.
    from joblib.externals.loky import ProcessPoolExecutor

    executor = ProcessPoolExecutor(max_workers=jobs, initializer=exit_with_parent, initargs=(os.getpid(),))
    queue, running = iter(todo), set()
    try:
        while True:
            running |= {executor.submit(execute_task, task, *args) for task in islice(queue, jobs - len(running))}
            if not running:
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
    finally:  # all done, or stopped early (an error, a closed generator): end the tasks still running
        executor.shutdown(wait=not running, kill_workers=bool(running))


#: Seconds between two checks of the watchdog thread of a worker.
WATCHDOG_INTERVAL = 0.5


def exit_with_parent(main_pid: int, interval: float | None = None) -> None:
    """Worker initializer: end this worker process soon after the run that started it dies.

    loky lets a worker finish its task and then keeps it idle for 5 minutes, so a killed
    run (SIGKILL, OOM killer) would leave its workers behind, each holding torch and the
    data (~0.5 GB). A daemon thread checks every ``interval`` seconds that the worker's
    parent is still the process it started with (a dead parent's children are re-parented
    at once) and, when that parent is not ``main_pid``, that ``main_pid`` still exists; if
    not, the worker exits with status 1. Unlike ``prctl(PR_SET_PDEATHSIG)``, this does not
    fire when merely the parent's *thread* that spawned the worker ends (loky re-spawns
    workers from a helper thread).
    """
    interval = WATCHDOG_INTERVAL if interval is None else interval
    start_parent = os.getppid()

    def parent_alive() -> bool:
        if os.getppid() != start_parent:
            return False
        if main_pid != start_parent:
            try:
                os.kill(main_pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:  # exists, owned by someone else
                pass
        return True

    def watch() -> None:
        while parent_alive():
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="psilon-exit-with-parent", daemon=True).start()
