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
``images:<name>``
    Image sets in the IDX format (see :func:`read_idx`), as 784 pixel features scaled to
    [-1, 1] and labels 0-9, with one fixed split whose test rows are the set's test images:
    ``images:fashion-mnist`` (the four standard Fashion-MNIST files, found in the first of
    :data:`FASHION_MNIST_DIRS` under the data folder that has them; official 60,000/10,000
    train/test split) and ``images:mnist-10k`` (``<data_dir>/mnist/``: the 10,000 official
    MNIST test images; test rows are the 2,000 of :func:`load_image_benchmark`'s stratified
    split). :func:`load_image_benchmark` gives the deep ablation's train/validation/test
    arrays.
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

Task type: scikit-learn sets are known; UCI sets are regression; image sets are
multiclass; OpenML follows the target's type; PMLB uses the ``pmlb`` package's
classification/regression lists when it is installed, else the target's dtype (PMLB
stores class labels as integers and regression targets as floats), which agrees with the
lists for every set in the cache.

A target option ``@regression`` after a name (``pmlb:wine_quality_white@regression``)
loads an integer-coded target as a regression target (float; e.g. wine quality, which
PMLB files as 7-class classification and the paper's OpenML suite has as regression).
The option is part of the qualified name, so a benchmark task's key records it.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import os
import re
import zlib
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
    "FASHION_MNIST_DIRS",
    "IDX_DTYPES",
    "IMAGE_DATASETS",
    "IMAGE_SPLIT_SEED",
    "IdxFormatError",
    "ImageSplits",
    "MNIST_DIR",
    "SOURCES",
    "SKLEARN_DATASETS",
    "TARGET_OPTIONS",
    "find_data_dir",
    "infer_task",
    "list_datasets",
    "load_dataset",
    "load_image_benchmark",
    "openml_suite_datasets",
    "read_idx",
    "resolve_name",
]

#: Environment variable naming the data folder (holding ``pmlb/`` and ``uci/``).
DATA_DIR_ENV = "PSILON_DATA_DIR"

#: Known sources, in the order bare names are resolved.
SOURCES: tuple[str, ...] = ("sklearn", "uci", "pmlb", "images", "openml")

TaskType = Literal["regression", "binary", "multiclass"]

#: Target options a name may end with (``<source>:<name>@<option>``): the task they force.
TARGET_OPTIONS: dict[str, TaskType] = {"regression": "regression"}

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
    if source == "images":
        return [n for n in IMAGE_DATASETS if data_dir is not None and _image_files(n, data_dir)[0] is not None]
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


def _split_option(name: str) -> tuple[str, str | None]:
    """``(name, option)`` of ``"<name>@<option>"``; the option must be one of :data:`TARGET_OPTIONS`."""
    if not isinstance(name, str) or "@" not in name:
        return name, None
    base, _, option = name.strip().rpartition("@")
    if option not in TARGET_OPTIONS:
        raise DatasetError(
            f"unknown target option {option!r} in {name!r}; known: "
            + ", ".join(f"@{o}" for o in TARGET_OPTIONS)
        )
    return base, option


def resolve_name(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """The qualified name ``"<source>:<name>"`` for ``name``, or a :class:`DatasetError`.

    A target option (``"wine_quality_white@regression"``) is kept at the end of the
    qualified name. Errors list close matches, or the data folder setting when the local
    folder is missing.
    """
    base, option = _split_option(name)
    qualified = _resolve_base(base, data_dir)
    return qualified if option is None else f"{qualified}@{option}"


def _resolve_base(name: str, data_dir: str | os.PathLike | None) -> str:
    source, bare = _split_name(name)
    folder = find_data_dir(data_dir)
    if source == "openml":
        if not bare.isdigit():
            raise DatasetError(f"OpenML datasets are named by numeric id (e.g. 'openml:44132'), not {name!r}")
        return f"openml:{bare}"
    if source == "images" and _canonical_image_name(bare) in IMAGE_DATASETS:
        image = _canonical_image_name(bare)
        _require_image_files(image, folder)  # a clear error naming the folders searched
        return f"images:{image}"
    if source is not None:
        names = list(IMAGE_DATASETS) if source == "images" else _local_names(source, folder)
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
    for s in ("sklearn", "uci", "pmlb", "images"):
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
    base, option = _split_option(qualified)
    dataset = _load_cached(base, None if folder is None else str(folder))
    return dataset if option is None else _with_target_option(dataset, option)


def _with_target_option(dataset: Dataset, option: str) -> Dataset:
    """``dataset`` with its target read as :data:`TARGET_OPTIONS` ``[option]`` says."""
    task = TARGET_OPTIONS[option]
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(dataset.y) or pd.api.types.is_bool_dtype(dataset.y):
            raise DatasetError(
                f"{dataset.name}@{option}: the target ({dataset.y.dtype}) is not numeric, so it cannot be a regression target"
            )
        y = dataset.y.astype(float)
    return Dataset(f"{dataset.name}@{option}", dataset.source, dataset.X, y, task, dataset.test_masks)


@functools.lru_cache(maxsize=8)
def _load_cached(qualified: str, folder: str | None) -> Dataset:
    source, bare = qualified.split(":", 1)
    loader = {
        "sklearn": _load_sklearn,
        "pmlb": _load_pmlb,
        "uci": _load_uci,
        "images": _load_images,
        "openml": _load_openml,
    }[source]
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


# ---------------------------------------------------------------------------------------
# IDX files and the image sets (Fashion-MNIST, MNIST-10k)


class IdxFormatError(DatasetError):
    """A file is not a well-formed IDX file (or an image set's files do not fit together)."""


#: IDX data type codes (third byte of the magic number) -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The image sets, by the name :class:`ImageSplits` and ``images:<name>`` use.
IMAGE_DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist-10k")

#: Folders under the data folder searched, in order, for the Fashion-MNIST files
#: (``FashionMNIST/raw`` is where ``torchvision.datasets.FashionMNIST(root=<data folder>)``
#: puts them).
FASHION_MNIST_DIRS: tuple[str, ...] = ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw")

#: Folder under the data folder holding the MNIST test set (``t10k-*`` files).
MNIST_DIR = "mnist"

#: Seed of the fixed stratified splits of :func:`load_image_benchmark` (numpy ``default_rng``).
IMAGE_SPLIT_SEED = 0

_IMAGE_FILES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ),
    "mnist-10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FASHION_SIZES = (10_000, 20_000)  # train, validation: drawn from the 60,000 training images
_MNIST_FRACTIONS = (0.6, 0.2)  # train, validation; the rest (20 %) is the test set


def _idx_type_list() -> str:
    return ", ".join(f"0x{code:02X} {dtype.newbyteorder('=').name}" for code, dtype in IDX_DTYPES.items())


def _read_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] != b"\x1f\x8b":  # gzip's magic; an IDX file starts with two zero bytes
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise IdxFormatError(f"{path}: corrupt or truncated gzip data ({exc})") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), raw or gzip-compressed.

    Layout: two zero bytes, a data type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64; see :data:`IDX_DTYPES`), the number of dimensions ``d``,
    then ``d`` big-endian uint32 sizes, then the data, big-endian, in C order. Compression
    is recognised from the content (gzip's magic bytes), not the file name.

    Returns a new (writable, native byte order) array of the declared shape and type.
    Raises :class:`IdxFormatError`, naming the file, on a bad magic number, an unknown type
    code, a truncated header or data, or bytes after the declared data.
    """
    path = Path(path)
    raw = _read_maybe_gzip(path)
    if len(raw) < 4:
        raise IdxFormatError(f"{path}: truncated file: {len(raw)} byte(s), less than the 4-byte IDX magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(
            f"{path}: bad magic number {raw[:4].hex(' ')}: not an IDX file (it must start with two zero "
            "bytes, then a data type code and the number of dimensions)"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise IdxFormatError(f"{path}: unknown IDX data type code 0x{code:02X} (known: {_idx_type_list()})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxFormatError(
            f"{path}: truncated file: {ndim} dimension(s) need a {header}-byte header, but the file has "
            f"{len(raw)} bytes"
        )
    shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    count = int(np.prod(shape, dtype=object)) if shape else 1
    expected, found = count * dtype.itemsize, len(raw) - header
    what = f"shape {shape} of {dtype.newbyteorder('=').name} needs {expected} data bytes after the {header}-byte header"
    if found < expected:
        raise IdxFormatError(f"{path}: truncated file: {what}, found {found} ({expected - found} missing)")
    if found > expected:
        raise IdxFormatError(f"{path}: {found - expected} trailing byte(s): {what}, found {found}")
    data = np.frombuffer(raw, dtype, count=count, offset=header)
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


@dataclass(frozen=True, eq=False)
class ImageSplits:
    """An image set split for the deep ablation (:func:`load_image_benchmark`).

    ``name`` is the set actually loaded (``"fashion-mnist"`` or ``"mnist-10k"``), and
    ``description`` says where the files came from and how they were split. Features are
    float32 ``(n, 784)``, pixels ``x / 127.5 - 1`` in [-1, 1]; labels int64 in 0-9.
    """

    name: str
    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    description: str = field(repr=False)
    seed: int = IMAGE_SPLIT_SEED

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def sizes(self) -> tuple[int, int, int]:
        """Rows in ``(train, validation, test)``."""
        return len(self.y_train), len(self.y_val), len(self.y_test)

    def __repr__(self) -> str:
        n_train, n_val, n_test = self.sizes
        return (
            f"ImageSplits({self.name!r}, n_train={n_train}, n_val={n_val}, n_test={n_test}, "
            f"n_features={self.n_features}, seed={self.seed})"
        )


def _canonical_image_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _image_files(name: str, data_dir: Path) -> tuple[list[Path] | None, str, bool]:
    """``(files, why not, partial)``: the files of image set ``name`` from the first candidate
    folder that has all of them; else ``None``, the reason, and whether some folder held
    only some of them."""
    folders = [data_dir / d for d in (FASHION_MNIST_DIRS if name == "fashion-mnist" else (MNIST_DIR,))]
    problems = []
    for folder in folders:
        if not folder.is_dir():
            continue
        found = [_find_idx(folder, stem) for stem in _IMAGE_FILES[name]]
        if all(found):
            return found, "", False  # type: ignore[return-value]
        missing = [f"{stem}(.gz)" for stem, path in zip(_IMAGE_FILES[name], found) if path is None]
        problems.append(f"{folder} lacks {', '.join(missing)}")
    if problems:
        return None, "; ".join(problems), True
    return None, f"none of {', '.join(str(f) for f in folders)} exists", False


def _require_image_files(name: str, data_dir: Path | None, context: str = "") -> list[Path]:
    if data_dir is None:
        raise DatasetError(
            f"cannot find images:{name}: no data folder was found; pass data_dir (--data-dir) or set "
            f"{DATA_DIR_ENV} to the folder that holds {MNIST_DIR}/ or {FASHION_MNIST_DIRS[0]}/"
        )
    files, reason, _ = _image_files(name, data_dir)
    if files is None:
        stems = ", ".join(f"{s}(.gz)" for s in _IMAGE_FILES[name])
        raise DatasetUnavailableError(
            f"images:{name} is not available offline: {reason}; it needs the IDX files {stems}{context}"
        )
    return files


def _read_images(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """28 x 28 uint8 images and their 0-9 labels as float32 ``(n, 784)`` in [-1, 1] and int64."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise IdxFormatError(
            f"{images_path}: expected n x 28 x 28 unsigned-byte images, found shape {images.shape} of {images.dtype}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise IdxFormatError(
            f"{labels_path}: expected a 1-d unsigned-byte label file, found shape {labels.shape} of {labels.dtype}"
        )
    if len(labels) != len(images):
        raise IdxFormatError(f"{labels_path} has {len(labels)} labels but {images_path} has {len(images)} images")
    if len(labels) and labels.max() > 9:
        raise IdxFormatError(f"{labels_path}: labels must be 0-9, found {int(labels.max())}")
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return X, labels.astype(np.int64)


def _stratified_split(y: np.ndarray, sizes: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Disjoint row indices of the given sizes, each holding every class in proportion to ``y``.

    Class counts per part are apportioned by largest remainders (exact totals); rows are
    drawn per class from ``np.random.default_rng(seed)``, and each part is shuffled. Rows
    beyond ``sum(sizes)`` are left out.
    """
    n = len(y)
    if sum(sizes) > n:
        raise DatasetError(f"cannot split {n} rows into parts of {', '.join(map(str, sizes))}")
    parts = list(sizes) + ([n - sum(sizes)] if sum(sizes) < n else [])
    classes, inverse = np.unique(y, return_inverse=True)
    remaining, left = np.bincount(inverse, minlength=len(classes)).astype(np.int64), n
    allocation = []
    for size in parts[:-1]:
        base, rest = np.divmod(remaining * size, left)
        base[np.argsort(-rest, kind="stable")[: size - int(base.sum())]] += 1
        allocation.append(base)
        remaining, left = remaining - base, left - size
    allocation.append(remaining)
    bounds = np.cumsum(np.vstack([np.zeros(len(classes), np.int64), *allocation]), axis=0)
    rng = np.random.default_rng(seed)
    chunks: list[list[np.ndarray]] = [[] for _ in parts]
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == c))
        for k in range(len(parts)):
            chunks[k].append(members[bounds[k, c] : bounds[k + 1, c]])
    return [rng.permutation(np.concatenate(chunks[k])) for k in range(len(sizes))]


def _fashion_splits(files: list[Path], seed: int) -> ImageSplits:
    X_pool, y_pool = _read_images(files[0], files[1])
    X_test, y_test = _read_images(files[2], files[3])
    if len(y_pool) < sum(_FASHION_SIZES):
        raise IdxFormatError(
            f"{files[0]} has {len(y_pool)} images; the Fashion-MNIST split draws {_FASHION_SIZES[0]:,} training "
            f"and {_FASHION_SIZES[1]:,} validation images from the (60,000) training images"
        )
    train, val = _stratified_split(y_pool, _FASHION_SIZES, seed)
    description = (
        f"Fashion-MNIST from {files[0].parent}: {len(train):,} training and {len(val):,} validation images drawn "
        f"stratified from the {len(y_pool):,} official training images (numpy default_rng seed {seed}), and the "
        f"{len(y_test):,} official test images; 784 features x/127.5 - 1 in [-1, 1], labels 0-9"
    )
    return ImageSplits(
        "fashion-mnist", X_pool[train], y_pool[train], X_pool[val], y_pool[val], X_test, y_test, description, seed
    )


def _mnist_10k_parts(y: np.ndarray, seed: int) -> list[np.ndarray]:
    n_train, n_val = (int(round(f * len(y))) for f in _MNIST_FRACTIONS)
    return _stratified_split(y, (n_train, n_val, len(y) - n_train - n_val), seed)


def _mnist_10k_splits(files: list[Path], seed: int, note: str) -> ImageSplits:
    X, y = _read_images(files[0], files[1])
    train, val, test = _mnist_10k_parts(y, seed)
    description = (
        f"MNIST-10k from {files[0].parent}: the {len(y):,} official MNIST test images, split stratified into "
        f"{len(train):,} training, {len(val):,} validation and {len(test):,} test images "
        f"(numpy default_rng seed {seed}); 784 features x/127.5 - 1 in [-1, 1], labels 0-9{note}"
    )
    return ImageSplits("mnist-10k", X[train], y[train], X[val], y[val], X[test], y[test], description, seed)


def load_image_benchmark(
    data_dir: str | os.PathLike | None = None, dataset: str = "auto", *, seed: int = IMAGE_SPLIT_SEED
) -> ImageSplits:
    """The deep ablation's image data, split into train / validation / test, and its name.

    ``dataset``:

    ``"fashion-mnist"``
        The paper's data: 10,000 training and 20,000 validation images drawn (stratified
        by class, disjoint) from the 60,000 Fashion-MNIST training images, and the official
        10,000 test images. The four files ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
        (each raw or ``.gz``) are looked for in ``<data_dir>/fashion-mnist/``, then
        ``fashion_mnist/``, then ``FashionMNIST/raw/`` (:data:`FASHION_MNIST_DIRS`).
        Missing files raise :class:`DatasetUnavailableError` naming the folders searched.
    ``"mnist-10k"``
        The 10,000 official MNIST test images in ``<data_dir>/mnist/`` (``t10k-images-idx3-ubyte``
        and ``t10k-labels-idx1-ubyte``, raw or ``.gz``), split stratified by class into
        6,000 training, 2,000 validation and 2,000 test images (60/20/20 %).
    ``"auto"`` (default)
        Fashion-MNIST when its files are there, else MNIST-10k. This never passes one for
        the other silently: the result's ``name`` says which was loaded and its
        ``description`` why. A Fashion-MNIST folder holding only some of the files is an
        error, not a reason to fall back.

    Splits are drawn with ``numpy.random.default_rng(seed)``; the fixed default is
    ``seed=0`` (:data:`IMAGE_SPLIT_SEED`), so every call gives the same rows. Features are
    float32 ``(n, 784)``, ``x / 127.5 - 1`` in [-1, 1]; labels int64 0-9. The data folder is
    found as by :func:`find_data_dir`.
    """
    choice = _canonical_image_name(dataset) if isinstance(dataset, str) else dataset
    if choice not in ("auto", *IMAGE_DATASETS):
        raise DatasetError(f"dataset must be 'auto', 'fashion-mnist' or 'mnist-10k', not {dataset!r}")
    folder = find_data_dir(data_dir, required=True)
    note = ""
    if choice in ("auto", "fashion-mnist"):
        files, reason, partial = _image_files("fashion-mnist", folder)
        if files is not None:
            return _fashion_splits(files, seed)
        if choice == "fashion-mnist" or partial:
            stems = ", ".join(f"{s}(.gz)" for s in _IMAGE_FILES["fashion-mnist"])
            alternative = " (or use dataset='mnist-10k')" if choice == "fashion-mnist" else ""
            raise DatasetUnavailableError(
                f"Fashion-MNIST is not available offline: {reason}; put the IDX files {stems} in "
                f"{folder / FASHION_MNIST_DIRS[0]}{alternative}"
            )
        note = f"; used because Fashion-MNIST was not found ({reason})"
    context = f" (Fashion-MNIST, tried first, is not available either: {reason})" if note else ""
    return _mnist_10k_splits(_require_image_files("mnist-10k", folder, context), seed, note)


def _load_images(name: str, folder: Path | None) -> Dataset:
    """``images:<name>`` as a :class:`Dataset` with one fixed split (its test images)."""
    files = _require_image_files(name, folder)
    if name == "fashion-mnist":
        X_train, y_train = _read_images(files[0], files[1])
        X_test, y_test = _read_images(files[2], files[3])
        X, y = np.concatenate([X_train, X_test]), np.concatenate([y_train, y_test])
        test = np.arange(len(y_train), len(y))
    else:
        X, y = _read_images(files[0], files[1])
        test = _mnist_10k_parts(y, IMAGE_SPLIT_SEED)[2]
    masks = np.zeros((len(y), 1), dtype=bool)
    masks[test, 0] = True
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    return Dataset(f"images:{name}", "images", frame, pd.Series(y, name="target"), "multiclass", test_masks=masks)
