"""Tests of psilon.datasets' IDX reader and image sets (Fashion-MNIST, MNIST-10k).

Every IDX file here is written by the test itself (``write_idx`` below, independent of
the reader), except in the last section, which reads the real MNIST test set from the
shared data folder and skips when that folder is absent.
"""

import gzip
import struct

import numpy as np
import pytest

from psilon.datasets import (
    DATA_DIR_ENV,
    FASHION_MNIST_DIRS,
    IMAGE_SPLIT_SEED,
    DatasetError,
    DatasetUnavailableError,
    IdxFormatError,
    ImageSplits,
    list_datasets,
    load_dataset,
    load_image_benchmark,
    read_idx,
    resolve_name,
)
from psilon.datasets import _stratified_split

IDX_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No ambient data folder: each test says where its data is."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)


def write_idx(path, array, *, gz=False, code=None, tail=b"", cut=0, head=None):
    """Write ``array`` as an IDX file; ``tail`` appends bytes, ``cut`` drops the last bytes,
    ``head`` replaces the first four bytes (magic number)."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.name] if code is None else code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(array.dtype.newbyteorder(">")).tobytes() + tail
    if head is not None:
        blob = head + blob[4:]
    if cut:
        blob = blob[:-cut]
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


# ------------------------------------------------------------------------------ read_idx


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 4), (2, 3, 5), (2, 1, 3, 2), (4, 0, 3)])
def test_read_idx_round_trips_every_type_and_shape(tmp_path, gz, dtype, shape):
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "f":
        array = rng.normal(scale=1e3, size=shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    out = read_idx(write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), array, gz=gz))
    assert out.shape == shape and out.dtype == np.dtype(dtype)
    assert out.dtype.isnative and out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_read_idx_detects_gzip_from_the_content_not_the_name(tmp_path):
    array = np.arange(12, dtype=np.int16).reshape(3, 4) - 6
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "raw.gz", array)), array)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "packed", array, gz=True)), array)
    assert read_idx(str(tmp_path / "packed")).dtype == np.int16  # str paths work too


def test_read_idx_is_big_endian(tmp_path):
    (tmp_path / "be").write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + struct.pack(">2i", 1, -2))
    np.testing.assert_array_equal(read_idx(tmp_path / "be"), [1, -2])


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cut": 1}, r"truncated file: shape \(2, 3\) of int32 needs 24 data bytes .* found 23 \(1 missing\)"),
        ({"cut": 26}, "truncated file: 2 dimension.* need a 12-byte header, but the file has 10 bytes"),
        ({"cut": 34}, "truncated file: 2 byte.*4-byte IDX magic number"),
        ({"tail": b"\x00\x01\x02"}, r"3 trailing byte\(s\): shape \(2, 3\) of int32 needs 24 data bytes"),
        ({"head": b"\x01\x00\x0c\x02"}, "bad magic number 01 00 0c 02: not an IDX file"),
        ({"head": b"PK\x03\x04"}, "bad magic number 50 4b 03 04"),
        ({"code": 0x0A}, r"unknown IDX data type code 0x0A \(known: 0x08 uint8, 0x09 int8, 0x0B int16"),
    ],
)
def test_read_idx_errors_name_the_file_and_the_fault(tmp_path, gz, kwargs, message):
    path = write_idx(tmp_path / "bad-file-idx2-int", np.arange(6, dtype=np.int32).reshape(2, 3), gz=gz, **kwargs)
    with pytest.raises(IdxFormatError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, DatasetError) and isinstance(info.value, ValueError)


def test_read_idx_empty_and_corrupt_gzip_files(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(IdxFormatError, match="empty: truncated file: 0 byte"):
        read_idx(tmp_path / "empty")
    packed = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))
    (tmp_path / "cut.gz").write_bytes(packed[:-6])
    with pytest.raises(IdxFormatError, match="cut.gz: corrupt or truncated gzip data"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# ------------------------------------------------------------------------- fake folders


def write_images(folder, prefix, labels, *, gz=True):
    """28 x 28 images whose pixels encode the label and the row: pixel 0 is 0, pixel 1 is
    255, pixels 2-3 the row index (base 256), every other pixel 20 * label + 7."""
    labels = np.asarray(labels, dtype=np.uint8)
    images = np.full((len(labels), 784), 7, dtype=np.uint8) + 20 * labels[:, None]
    images[:, 0], images[:, 1] = 0, 255
    rows = np.arange(len(labels))
    images[:, 2], images[:, 3] = rows // 256, rows % 256
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images.reshape(-1, 28, 28), gz=gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels, gz=gz)


def row_ids(X):
    """The row indices that write_images encoded in pixels 2-3."""
    pixels = np.rint((X[:, 2:4] + 1) * 127.5).astype(int)
    return pixels[:, 0] * 256 + pixels[:, 1]


def labels_from_pixels(X):
    return (np.rint((X[:, 10] + 1) * 127.5).astype(int) - 7) // 20


#: class counts of the fake MNIST set: deliberately unequal
MNIST_COUNTS = np.array([97, 113, 103, 101, 98, 89, 96, 103, 97, 103])


@pytest.fixture
def mnist_dir(tmp_path):
    """A data folder with a small MNIST-layout test set (1,000 images)."""
    root = tmp_path / "data"
    labels = np.random.default_rng(5).permutation(np.repeat(np.arange(10), MNIST_COUNTS))
    write_images(root / "mnist", "t10k", labels)
    return root


@pytest.fixture(scope="module")
def fashion_dir(tmp_path_factory):
    """A data folder with a fake Fashion-MNIST: 30,500 training and 50 test images."""
    root = tmp_path_factory.mktemp("fashion") / "data"
    labels = np.random.default_rng(3).permutation(np.arange(30_500) % 10)
    write_images(root / "fashion-mnist", "train", labels)
    write_images(root / "fashion-mnist", "t10k", np.arange(50) % 10)
    write_images(root / "mnist", "t10k", np.arange(100) % 10)
    return root


# ------------------------------------------------------------------------ Fashion-MNIST


def test_fashion_mnist_split_is_the_papers(fashion_dir):
    splits = load_image_benchmark(fashion_dir)
    assert isinstance(splits, ImageSplits) and splits.name == "fashion-mnist"
    assert splits.sizes == (10_000, 20_000, 50) and splits.n_features == 784 and splits.seed == IMAGE_SPLIT_SEED
    for X, y in ((splits.X_train, splits.y_train), (splits.X_val, splits.y_val), (splits.X_test, splits.y_test)):
        assert X.dtype == np.float32 and y.dtype == np.int64 and X.shape == (len(y), 784)
        assert X.min() == -1.0 and X.max() == 1.0
        np.testing.assert_array_equal(labels_from_pixels(X), y)  # rows keep their labels
    np.testing.assert_array_equal(np.bincount(splits.y_train), [1_000] * 10)
    np.testing.assert_array_equal(np.bincount(splits.y_val), [2_000] * 10)
    train, val = row_ids(splits.X_train), row_ids(splits.X_val)
    assert len(set(train)) == 10_000 and len(set(val)) == 20_000 and not set(train) & set(val)
    np.testing.assert_array_equal(row_ids(splits.X_test), np.arange(50))  # the official test set, in order
    assert "Fashion-MNIST" in splits.description and "seed 0" in splits.description
    assert "ImageSplits('fashion-mnist', n_train=10000, n_val=20000, n_test=50" in repr(splits)


def test_fashion_mnist_split_is_deterministic(fashion_dir):
    a, b = load_image_benchmark(fashion_dir), load_image_benchmark(fashion_dir, "fashion-mnist")
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    other = load_image_benchmark(fashion_dir, seed=1)
    assert other.seed == 1 and "seed 1" in other.description
    assert not np.array_equal(row_ids(a.X_train), row_ids(other.X_train))


def test_explicit_mnist_10k_beside_fashion_mnist(fashion_dir):
    splits = load_image_benchmark(fashion_dir, dataset="mnist_10k")
    assert splits.name == "mnist-10k" and splits.sizes == (60, 20, 20)
    assert "not found" not in splits.description


def test_fashion_mnist_in_the_registry(fashion_dir):
    assert list_datasets("images", fashion_dir) == ["images:fashion-mnist", "images:mnist-10k"]
    assert resolve_name("fashion-mnist", fashion_dir) == "images:fashion-mnist"
    ds = load_dataset("images:fashion_mnist", fashion_dir)
    assert (ds.name, ds.source, ds.task, ds.n_rows, ds.n_features, ds.n_splits) == (
        "images:fashion-mnist", "images", "multiclass", 30_550, 784, 1,
    )
    train, test = ds.fixed_split(0)
    np.testing.assert_array_equal(test, np.arange(30_500, 30_550))
    assert len(train) == 30_500 and ds.y.dtype == np.int64 and ds.X.to_numpy().min() == -1.0


def test_fashion_mnist_missing_is_an_error_when_asked_for(mnist_dir):
    with pytest.raises(DatasetUnavailableError, match="Fashion-MNIST is not available offline") as info:
        load_image_benchmark(mnist_dir, dataset="fashion-mnist")
    for folder in FASHION_MNIST_DIRS:
        assert str(mnist_dir / folder) in str(info.value)
    assert "train-images-idx3-ubyte" in str(info.value) and "dataset='mnist-10k'" in str(info.value)
    with pytest.raises(DatasetUnavailableError, match="fashion-mnist is not available offline: none of"):
        load_dataset("images:fashion-mnist", mnist_dir)


def test_incomplete_fashion_mnist_folder_is_an_error_not_a_fallback(mnist_dir):
    write_images(mnist_dir / "fashion-mnist", "train", np.arange(20) % 10)
    write_images(mnist_dir / "fashion-mnist", "t10k", np.arange(20) % 10)
    (mnist_dir / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetUnavailableError, match=r"fashion-mnist lacks t10k-labels-idx1-ubyte\(\.gz\)"):
        load_image_benchmark(mnist_dir)
    assert load_image_benchmark(mnist_dir, "mnist-10k").name == "mnist-10k"  # explicit choice still works
    assert list_datasets("images", mnist_dir) == ["images:mnist-10k"]


def test_fashion_mnist_other_folders_raw_files(tmp_path):
    for folder in FASHION_MNIST_DIRS[1:]:
        root = tmp_path / folder.replace("/", "_")
        write_images(root / folder, "train", np.arange(20) % 10, gz=False)
        write_images(root / folder, "t10k", np.arange(20) % 10, gz=False)
        assert resolve_name("images:fashion-mnist", root) == "images:fashion-mnist"
        assert load_dataset("images:fashion-mnist", root).n_rows == 40
        with pytest.raises(IdxFormatError, match="has 20 images; the Fashion-MNIST split draws 10,000"):
            load_image_benchmark(root)


# ----------------------------------------------------------------------------- MNIST-10k


def test_mnist_10k_fallback_says_so(mnist_dir):
    splits = load_image_benchmark(mnist_dir)
    assert splits.name == "mnist-10k" and splits.sizes == (600, 200, 200)
    assert "MNIST-10k" in splits.description and "seed 0" in splits.description
    assert "used because Fashion-MNIST was not found" in splits.description
    assert str(mnist_dir / "fashion-mnist") in splits.description


def test_mnist_10k_split_is_stratified_and_partitions_the_set(mnist_dir):
    splits = load_image_benchmark(mnist_dir, "mnist-10k")
    parts = [row_ids(X) for X in (splits.X_train, splits.X_val, splits.X_test)]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(1_000))
    for y, fraction in ((splits.y_train, 0.6), (splits.y_val, 0.2), (splits.y_test, 0.2)):
        assert np.abs(np.bincount(y, minlength=10) - fraction * MNIST_COUNTS).max() < 1
    for X, y in ((splits.X_train, splits.y_train), (splits.X_test, splits.y_test)):
        np.testing.assert_array_equal(labels_from_pixels(X), y)
    assert not np.array_equal(np.sort(splits.y_train), splits.y_train)  # shuffled, not grouped by class


def test_mnist_10k_split_is_deterministic(mnist_dir):
    a, b = load_image_benchmark(mnist_dir), load_image_benchmark(mnist_dir)
    for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(row_ids(a.X_test), row_ids(load_image_benchmark(mnist_dir, seed=7).X_test))


def test_mnist_10k_registry_test_rows_are_the_benchmarks(mnist_dir):
    ds = load_dataset("mnist-10k", mnist_dir)
    assert ds.name == "images:mnist-10k" and ds.n_rows == 1_000 and ds.n_splits == 1
    train, test = ds.fixed_split(0)
    expected = row_ids(load_image_benchmark(mnist_dir).X_test)
    np.testing.assert_array_equal(test, np.sort(expected))
    assert len(train) == 800


def test_stratified_split_sizes_and_class_balance():
    y = np.repeat(np.arange(3), [50, 30, 20])
    train, val = _stratified_split(y, (40, 30), seed=0)  # 30 rows left out
    assert (len(train), len(val)) == (40, 30) and not set(train) & set(val)
    np.testing.assert_array_equal(np.bincount(y[train]), [20, 12, 8])
    np.testing.assert_array_equal(np.bincount(y[val]), [15, 9, 6])
    odd = _stratified_split(np.repeat([0, 1, 2], [7, 7, 7]), (10, 11), seed=2)  # remainders apportioned
    assert [len(p) for p in odd] == [10, 11] and len(set(np.concatenate(odd))) == 21
    with pytest.raises(DatasetError, match="cannot split 100 rows"):
        _stratified_split(y, (60, 50), seed=0)


# --------------------------------------------------------------------- errors and checks


def test_image_file_mismatches_are_clear(mnist_dir):
    folder = mnist_dir / "mnist"
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(999, np.uint8), gz=True)
    with pytest.raises(IdxFormatError, match="has 999 labels but .*t10k-images-idx3-ubyte.gz has 1000 images"):
        load_image_benchmark(mnist_dir, "mnist-10k")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.full(1000, 10, np.uint8), gz=True)
    with pytest.raises(IdxFormatError, match="labels must be 0-9, found 10"):
        load_image_benchmark(mnist_dir, "mnist-10k")
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((1000, 27, 28), np.uint8), gz=True)
    with pytest.raises(IdxFormatError, match=r"expected n x 28 x 28 unsigned-byte images, found shape \(1000, 27, 28\)"):
        load_image_benchmark(mnist_dir, "mnist-10k")


def test_no_image_data_at_all(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="images:mnist-10k is not available.*tried first"):
        load_image_benchmark(tmp_path)
    with pytest.raises(DatasetError, match="dataset must be 'auto', 'fashion-mnist' or 'mnist-10k'"):
        load_image_benchmark(tmp_path, dataset="cifar10")
    with pytest.raises(DatasetError, match=DATA_DIR_ENV):
        load_image_benchmark()  # no data folder anywhere
    with pytest.raises(DatasetError, match="did you mean images:mnist-10k"):
        resolve_name("images:mnist10k", tmp_path)
    assert list_datasets("images", tmp_path) == []


# ------------------------------------------------------------------ the shared data folder


def test_shared_mnist_files(data_dir):
    images = read_idx(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and set(np.unique(labels)) == set(range(10))


def test_shared_mnist_10k_benchmark(data_dir):
    splits = load_image_benchmark(data_dir, "mnist-10k")
    assert splits.name == "mnist-10k" and splits.sizes == (6_000, 2_000, 2_000)
    X = np.concatenate([splits.X_train, splits.X_val, splits.X_test])
    y = np.concatenate([splits.y_train, splits.y_val, splits.y_test])
    assert X.shape == (10_000, 784) and X.min() == -1.0 and X.max() == 1.0
    assert len(np.unique(X, axis=0)) > 9_900  # distinct images, no row repeated by the split
    totals = np.bincount(y, minlength=10)
    assert (totals > 800).all()
    for part, fraction in ((splits.y_train, 0.6), (splits.y_val, 0.2), (splits.y_test, 0.2)):
        assert np.abs(np.bincount(part, minlength=10) - fraction * totals).max() < 1
    again = load_image_benchmark(data_dir, "mnist-10k")
    np.testing.assert_array_equal(again.X_test, splits.X_test)
    np.testing.assert_array_equal(again.y_train, splits.y_train)


def test_shared_folder_auto_names_what_it_loaded(data_dir):
    has_fashion = any((data_dir / d).is_dir() for d in FASHION_MNIST_DIRS)
    splits = load_image_benchmark(data_dir)
    assert splits.name == ("fashion-mnist" if has_fashion else "mnist-10k")
    assert "images:mnist-10k" in list_datasets(data_dir=data_dir)
    assert load_dataset("images:mnist-10k", data_dir).n_rows == 10_000
