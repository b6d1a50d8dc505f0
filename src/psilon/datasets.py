"""Offline-first dataset registry and loaders.

Every dataset has a qualified name ``"<source>:<name>"``:

``sklearn:<name>``
    scikit-learn's bundled sets (always offline): ``diabetes`` (regression),
    ``breast_cancer`` (binary), ``wine``, ``iris``, ``digits`` (multiclass).
``pmlb:<name>``
    Penn Machine Learning Benchmark, read from a local cache folder with the ``pmlb``
    package's layout ``<data_dir>/pmlb/<name>/<name>.tsv.gz`` (tab-separated, header row,
    target column ``target``). When the file is not there and the optional ``pmlb``
    package is installed, it is fetched (online) into that cache folder.
    A numeric prefix may be left out when unambiguous (``pmlb:cpu_act`` is
    ``pmlb:197_cpu_act``).
``uci:<name>``
    The UCI regression sets with 10 fixed splits,
    ``<data_dir>/uci/<name>/data.csv.gz`` (no header, last column is the target) and
    ``<data_dir>/uci/<name>/test_mask.csv.gz`` (column k is 1 for rows in split k's test set).
``openml:<dataset id>``
    An OpenML dataset through the optional ``openml`` package (online only).
    :func:`openml_suite_datasets` lists the datasets of a benchmark suite (the paper uses
    suites 336 and 337, and 334/335 with categorical features).

A bare name (``"magic"``) is resolved against the sources that have it locally; when it
is ambiguous (``"wine"`` is both ``sklearn:wine`` and ``uci:wine``) the error lists the
qualified names to choose from.

The data folder comes from the ``data_dir`` argument, else the environment variable
``PSILON_DATA_DIR``, else ``../shared/data`` relative to the current directory when it
exists. Data files are read in place: nothing is copied into the repository.

Task type: scikit-learn sets are known; UCI sets are regression; OpenML follows the
target's type; PMLB uses the ``pmlb`` package's classification/regression lists when it
is installed, else the target's dtype (PMLB stores class labels as integers and
regression targets as floats), which agrees with the lists for every set in the cache.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "DATA_DIR_ENV",
    "Dataset",
    "DatasetError",
    "DatasetUnavailableError",
    "SOURCES",
    "SKLEARN_DATASETS",
    "find_data_dir",
    "infer_task",
    "list_datasets",
    "load_dataset",
    "openml_suite_datasets",
    "resolve_name",
]

#: Environment variable naming the data folder (holding ``pmlb/`` and ``uci/``).
DATA_DIR_ENV = "PSILON_DATA_DIR"

#: Known sources, in the order bare names are resolved.
SOURCES: tuple[str, ...] = ("sklearn", "uci", "pmlb", "openml")

TaskType = Literal["regression", "binary", "multiclass"]

#: scikit-learn's bundled (offline) datasets: name -> (loader function name, task type).
SKLEARN_DATASETS: dict[str, tuple[str, TaskType]] = {
    "diabetes": ("load_diabetes", "regression"),
    "breast_cancer": ("load_breast_cancer", "binary"),
    "wine": ("load_wine", "multiclass"),
    "iris": ("load_iris", "multiclass"),
    "digits": ("load_digits", "multiclass"),
}


class DatasetError(ValueError):
    """A dataset name or data folder is wrong; the message says how to fix it."""


class DatasetUnavailableError(DatasetError):
    """The dataset exists but cannot be obtained here (offline, optional package missing)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset.

    Attributes
    ----------
    name:
        Qualified name, ``"<source>:<name>"``.
    source:
        One of :data:`SOURCES`.
    X:
        Features, shape ``(n_rows, n_features)``.
    y:
        Target, shape ``(n_rows,)``; float for regression, labels for classification.
    task:
        ``"regression"``, ``"binary"`` or ``"multiclass"``.
    test_masks:
        For fixed-split sets (UCI): boolean array ``(n_rows, n_splits)``, column k marks
        the test rows of split k. ``None`` otherwise.
    """

    name: str
    source: str
    X: pd.DataFrame
    y: pd.Series
    task: TaskType
    test_masks: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_splits(self) -> int:
        """Number of fixed splits (0 when the dataset has none)."""
        return 0 if self.test_masks is None else int(self.test_masks.shape[1])

    def fixed_split(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices ``(train, test)`` of fixed split ``k`` (UCI sets)."""
        if self.test_masks is None:
            raise DatasetError(f"{self.name} has no fixed splits; use a shuffled split instead")
        if not 0 <= k < self.n_splits:
            raise DatasetError(f"{self.name} has splits 0..{self.n_splits - 1}, not {k}")
        mask = self.test_masks[:, k]
        return np.flatnonzero(~mask), np.flatnonzero(mask)

    def __repr__(self) -> str:
        splits = f", n_splits={self.n_splits}" if self.test_masks is not None else ""
        return (
            f"Dataset({self.name!r}, task={self.task!r}, "
            f"n_rows={self.n_rows}, n_features={self.n_features}{splits})"
        )


# ---------------------------------------------------------------------------------------
# data folder


def find_data_dir(data_dir: str | os.PathLike | None = None, *, required: bool = False) -> Path | None:
    """Locate the data folder: ``data_dir``, else ``$PSILON_DATA_DIR``, else ``./../shared/data``.

    An explicitly given folder (argument or environment variable) must exist. With
    ``required=True`` a missing folder raises :class:`DatasetError` saying what to set;
    otherwise ``None`` is returned.
    """
    for given, origin in ((data_dir, "data_dir"), (os.environ.get(DATA_DIR_ENV) or None, DATA_DIR_ENV)):
        if given is not None:
            path = Path(given).expanduser()
            if not path.is_dir():
                raise DatasetError(
                    f"data folder {str(path)!r} (from {origin}) does not exist; point {origin} "
                    "at the folder that holds pmlb/ and uci/"
                )
            return path.resolve()
    default = Path.cwd().parent / "shared" / "data"
    if default.is_dir():
        return default.resolve()
    if required:
        raise DatasetError(
            f"no data folder: pass data_dir (--data-dir on the command line) or set "
            f"{DATA_DIR_ENV} to the folder that holds pmlb/ and uci/ "
            f"(the default {str(default)!r} does not exist)"
        )
    return None


# ---------------------------------------------------------------------------------------
# names


def _split_name(name: str) -> tuple[str | None, str]:
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(f"a dataset name must be a non-empty string, not {name!r}")
    source, sep, rest = name.strip().partition(":")
    if not sep:
        return None, source
    if source not in SOURCES:
        raise DatasetError(f"unknown dataset source {source!r} in {name!r}; known sources: {', '.join(SOURCES)}")
    if not rest:
        raise DatasetError(f"{name!r} names no dataset after {source + ':'!r}")
    return source, rest


def _local_names(source: str, data_dir: Path | None) -> list[str]:
    if source == "sklearn":
        return sorted(SKLEARN_DATASETS)
    if data_dir is None or source not in ("pmlb", "uci"):
        return []
    folder = data_dir / source
    if not folder.is_dir():
        return []
    marker = "{n}.tsv.gz" if source == "pmlb" else "data.csv.gz"
    return sorted(p.name for p in folder.iterdir() if (p / marker.format(n=p.name)).is_file())


def _pmlb_match(name: str, names: list[str]) -> str | None:
    """``name`` itself, or the unique ``<digits>_name`` among ``names``."""
    if name in names:
        return name
    hits = [n for n in names if re.fullmatch(r"\d+_" + re.escape(name), n)]
    return hits[0] if len(hits) == 1 else None


def _pmlb_package_names() -> list[str]:
    try:
        import pmlb
    except ImportError:
        return []
    return sorted(pmlb.dataset_names)


def list_datasets(source: str | None = None, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Qualified names of the datasets available offline (``sklearn`` and the local folder)."""
    sources = SOURCES if source is None else (source,)
    if source is not None and source not in SOURCES:
        raise DatasetError(f"unknown dataset source {source!r}; known sources: {', '.join(SOURCES)}")
    folder = find_data_dir(data_dir)
    return [f"{s}:{n}" for s in sources for n in _local_names(s, folder)]


def resolve_name(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """The qualified name ``"<source>:<name>"`` for ``name``, or a :class:`DatasetError`.

    Errors list close matches, or the data folder setting when the local folder is missing.
    """
    source, bare = _split_name(name)
    folder = find_data_dir(data_dir)
    if source == "openml":
        if not bare.isdigit():
            raise DatasetError(f"OpenML datasets are named by numeric id (e.g. 'openml:44132'), not {name!r}")
        return f"openml:{bare}"
    if source is not None:
        names = _local_names(source, folder)
        found = _pmlb_match(bare, names) if source == "pmlb" else (bare if bare in names else None)
        if found is None and source == "pmlb":
            found = _pmlb_match(bare, _pmlb_package_names())
        if found is not None:
            return f"{source}:{found}"
        if source in ("pmlb", "uci") and (folder is None or not (folder / source).is_dir()):
            where = "no data folder was found" if folder is None else f"{str(folder / source)!r} does not exist"
            hint = " (or install the optional 'pmlb' package to download)" if source == "pmlb" else ""
            raise DatasetError(
                f"cannot find {name!r}: {where}; pass data_dir (--data-dir) or set "
                f"{DATA_DIR_ENV} to the folder that holds {source}/{hint}"
            )
        raise DatasetError(_unknown_message(name, [f"{source}:{n}" for n in names]))
    # bare name: every local source that has it
    hits = []
    for s in ("sklearn", "uci", "pmlb"):
        names = _local_names(s, folder)
        found = _pmlb_match(bare, names) if s == "pmlb" else (bare if bare in names else None)
        if found is not None:
            hits.append(f"{s}:{found}")
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise DatasetError(f"dataset name {name!r} is ambiguous: use one of {', '.join(hits)}")
    if _pmlb_match(bare, _pmlb_package_names()) is not None:
        return f"pmlb:{_pmlb_match(bare, _pmlb_package_names())}"
    known = list_datasets(data_dir=folder) if folder is not None else list_datasets("sklearn")
    message = _unknown_message(name, known)
    if folder is None:
        message += f"; no data folder was found: set {DATA_DIR_ENV} or pass data_dir for PMLB/UCI sets"
    raise DatasetError(message)


def _unknown_message(name: str, known: list[str]) -> str:
    bare_known = {k.partition(":")[2]: k for k in known}
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    close += [bare_known[b] for b in difflib.get_close_matches(name.partition(":")[2] or name, bare_known, n=5, cutoff=0.6)]
    close = list(dict.fromkeys(close))[:5]
    if close:
        return f"unknown dataset {name!r}; did you mean {', '.join(close)}?"
    return f"unknown dataset {name!r}; available offline: {', '.join(known) or 'none'}"


# ---------------------------------------------------------------------------------------
# loading


def infer_task(y: pd.Series) -> TaskType:
    """Task type from a target: float -> regression; integer/bool/categorical/object -> classes."""
    if pd.api.types.is_float_dtype(y):
        return "regression"
    n_classes = pd.Series(y).nunique(dropna=True)
    if n_classes < 2:
        raise DatasetError(f"target has {n_classes} distinct value(s); it is neither regression nor classification")
    return "binary" if n_classes == 2 else "multiclass"


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset by (qualified or bare) name. See the module docstring for the sources."""
    qualified = resolve_name(name, data_dir)
    folder = find_data_dir(data_dir)
    return _load_cached(qualified, None if folder is None else str(folder))


@functools.lru_cache(maxsize=8)
def _load_cached(qualified: str, folder: str | None) -> Dataset:
    source, bare = qualified.split(":", 1)
    loader = {"sklearn": _load_sklearn, "pmlb": _load_pmlb, "uci": _load_uci, "openml": _load_openml}[source]
    return loader(bare, None if folder is None else Path(folder))


def _load_sklearn(name: str, folder: Path | None) -> Dataset:
    import sklearn.datasets

    function, task = SKLEARN_DATASETS[name]
    bunch = getattr(sklearn.datasets, function)(as_frame=True)
    X = bunch.data.astype(float)
    y = bunch.target.astype(float if task == "regression" else int).rename("target")
    return Dataset(f"sklearn:{name}", "sklearn", X, y, task)


def _load_pmlb(name: str, folder: Path | None) -> Dataset:
    path = None if folder is None else folder / "pmlb" / name / f"{name}.tsv.gz"
    if path is None or not path.is_file():
        _fetch_pmlb(name, folder)
    frame = pd.read_csv(path, sep="\t")
    if "target" not in frame.columns:
        raise DatasetError(f"{path} has no 'target' column; it is not in PMLB's layout")
    y = frame.pop("target")
    task = _pmlb_task(name, y)
    if task == "regression":
        y = y.astype(float)
    return Dataset(f"pmlb:{name}", "pmlb", frame, y, task)


def _pmlb_task(name: str, y: pd.Series) -> TaskType:
    try:
        import pmlb
    except ImportError:
        return infer_task(y)
    if name in pmlb.regression_dataset_names:
        return "regression"
    if name in pmlb.classification_dataset_names:
        return "binary" if y.nunique() == 2 else "multiclass"
    return infer_task(y)


def _fetch_pmlb(name: str, folder: Path | None) -> None:
    try:
        import pmlb
    except ImportError:
        where = f"under {str(folder / 'pmlb')!r}" if folder is not None else "(no data folder was found)"
        raise DatasetUnavailableError(
            f"PMLB dataset {name!r} is not in the local cache {where} and the optional 'pmlb' "
            f"package is not installed: set {DATA_DIR_ENV} to a folder holding pmlb/{name}/{name}.tsv.gz "
            "or install psilon[data] (needs network access)"
        ) from None
    if folder is None:
        raise DatasetUnavailableError(
            f"no data folder to cache PMLB dataset {name!r}: set {DATA_DIR_ENV} or pass data_dir"
        )
    try:
        pmlb.fetch_data(name, local_cache_dir=str(folder / "pmlb"), dropna=False)
    except Exception as exc:  # network errors come in many types
        raise DatasetUnavailableError(
            f"could not download PMLB dataset {name!r} ({type(exc).__name__}: {exc}); "
            f"this machine may be offline: put pmlb/{name}/{name}.tsv.gz under {DATA_DIR_ENV}"
        ) from None


def _load_uci(name: str, folder: Path | None) -> Dataset:
    assert folder is not None  # resolve_name checked the folder
    base = folder / "uci" / name
    data = pd.read_csv(base / "data.csv.gz", header=None).to_numpy(dtype=float)
    masks = pd.read_csv(base / "test_mask.csv.gz", header=None).to_numpy()
    if masks.shape[0] != data.shape[0]:
        raise DatasetError(f"{base}: test_mask has {masks.shape[0]} rows but data has {data.shape[0]}")
    if not np.isin(masks, (0, 1)).all():
        raise DatasetError(f"{base}: test_mask must hold only 0 and 1")
    X = pd.DataFrame(data[:, :-1], columns=[f"x{i}" for i in range(data.shape[1] - 1)])
    y = pd.Series(data[:, -1], name="target")
    return Dataset(f"uci:{name}", "uci", X, y, "regression", test_masks=masks.astype(bool))


def _import_openml():
    try:
        import openml
    except ImportError:
        raise DatasetUnavailableError(
            "OpenML datasets need the optional 'openml' package and network access: "
            "install psilon[data], or use the offline PMLB copies (pmlb:<name>) under "
            f"{DATA_DIR_ENV}"
        ) from None
    return openml


def _load_openml(name: str, folder: Path | None) -> Dataset:
    openml = _import_openml()
    try:
        dataset = openml.datasets.get_dataset(int(name), download_data=True)
        X, y, _, _ = dataset.get_data(target=dataset.default_target_attribute, dataset_format="dataframe")
    except Exception as exc:  # offline: requests/openml raise various types
        raise DatasetUnavailableError(
            f"could not fetch OpenML dataset {name} ({type(exc).__name__}: {exc}); "
            "this machine may be offline: use the PMLB copies (pmlb:<name>) instead"
        ) from None
    task = infer_task(y)
    y = y.astype(float) if task == "regression" else y
    return Dataset(f"openml:{name}", "openml", X, y.rename("target"), task)


def openml_suite_datasets(suite_id: int) -> list[str]:
    """Qualified ``openml:<id>`` names of the datasets of an OpenML benchmark suite (online).

    The paper's suites: 336 (regression, numerical), 337 (classification, numerical),
    335 and 334 (with categorical features).
    """
    openml = _import_openml()
    try:
        suite = openml.study.get_suite(int(suite_id))
    except Exception as exc:
        raise DatasetUnavailableError(
            f"could not fetch OpenML suite {suite_id} ({type(exc).__name__}: {exc}); "
            "this machine may be offline: use the PMLB copies (pmlb:<name>) instead"
        ) from None
    return [f"openml:{i}" for i in suite.data]
