"""Helpers shared by the dataset readers: gzip-transparent reading, label and split checks."""

from __future__ import annotations

import gzip
import sys
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from .errors import DatasetError

#: The splits every loader accepts.
SPLITS = ("train", "test")

_GZIP_MAGIC = b"\x1f\x8b"


def say(message: str) -> None:
    """Print a progress or warning line to stderr, prefixed with ``fastann:``."""
    print(f"fastann: {message}", file=sys.stderr)


def check_split(split: str) -> str:
    """Return `split` if it is ``"train"`` or ``"test"``.

    Raises
    ------
    ValueError
        Any other value.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def read_bytes(path: Path) -> bytes:
    """Read a file, decompressing it if it starts with the gzip magic bytes ``1f 8b``.

    Raises
    ------
    DatasetError
        Corrupt or truncated gzip data (naming the file).
    OSError
        The file cannot be read.
    """
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt gzip data ({exc})") from exc


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for binary reading, through gzip if it starts with the gzip magic bytes."""
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def labels_as_uint8(labels: np.ndarray, source: str) -> np.ndarray:
    """Check that `labels` are integers in 0..255 and return them as uint8.

    Parameters
    ----------
    labels : numpy.ndarray
        1-D integer array.
    source : str
        Where the labels come from, for the error message.

    Returns
    -------
    numpy.ndarray
        uint8, shape ``(n,)`` (`labels` itself if already uint8).

    Raises
    ------
    DatasetError
        Not a 1-D integer array, or values outside 0..255.
    """
    if labels.ndim != 1 or labels.dtype.kind not in "ui":
        raise DatasetError(f"{source}: labels must be a 1-D integer array, "
                           f"got {labels.dtype} of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise DatasetError(f"{source}: labels outside 0..255 "
                           f"(min {labels.min()}, max {labels.max()})")
    return labels.astype(np.uint8, copy=False)
