"""IDX files, the format of the original MNIST and Fashion-MNIST files.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the data in big-endian C order. Files may
be gzip-compressed; compression is detected from the magic bytes, not from
the file name.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import numpy as np

from ..files import atomic_write
from ._common import labels_as_uint8, read_bytes
from .errors import DatasetError

__all__ = ["read_idx", "read_idx_pair", "write_idx"]

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
# File-name prefix of each split in the MNIST naming scheme.
_IDX_PREFIX = {"train": "train", "test": "t10k"}


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
    data = read_bytes(path)
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
    with atomic_write(path) as f:
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
    y = labels_as_uint8(labels, str(labels_path))
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
    """The MNIST-named (images, labels) IDX files of `split` in `directory`.

    Accepts ``train-images-idx3-ubyte`` and ``train-images.idx3-ubyte``
    (``t10k-`` for the test split), each raw or ``.gz``.

    Returns
    -------
    tuple of pathlib.Path or None
        ``(images, labels)``, or None if neither file exists.

    Raises
    ------
    DatasetError
        Only one of the two files exists.
    """
    images = _idx_file(directory, split, "images")
    labels = _idx_file(directory, split, "labels")
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        found, missing = (images, "labels") if labels is None else (labels, "images")
        raise DatasetError(f"{directory}: found {found.name} but no matching {missing} file "
                           f"for the {split!r} split")
    return images, labels
