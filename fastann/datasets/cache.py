"""The data home, the verified MNIST cache in it, and the lock that guards the first fetch.

The data home is ``data_dir`` if given, else ``$FASTANN_DATA``, else
``platformdirs.user_cache_dir("fastann")``::

    <data home>/
        mnist.npz          x_train (60000, 784), y_train, x_test (10000, 784),
                           y_test -- all uint8, uncompressed (loads in ~0.1-0.4 s)
        mnist.json         shape, dtype and SHA-256 of each array in mnist.npz
        .mnist.lock        only while a process fetches MNIST (see _mnist_lock)

Both cache files are written atomically (:func:`fastann.files.atomic_write`),
and ``mnist.npz`` is used only if every array matches ``mnist.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Iterator

import filelock
import numpy as np
import platformdirs

from ..files import atomic_write
from ._common import SPLITS, say
from .errors import DatasetError

__all__ = ["check_cache_entries", "data_home"]

CACHE_FILE = "mnist.npz"
CACHE_META_FILE = "mnist.json"
MNIST_LOCK_FILE = ".mnist.lock"


def _default_data_home() -> Path:
    """``$FASTANN_DATA`` if set, else the user cache directory; not created."""
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

    Raises
    ------
    DatasetError
        The path exists but is not a directory, or it cannot be created.
    """
    home = Path(data_dir).expanduser() if data_dir is not None else _default_data_home()
    if home.exists() and not home.is_dir():
        raise DatasetError(f"data directory {home} is not a directory; pass another data_dir "
                           f"(--data-dir) or set FASTANN_DATA")
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the data directory {home} "
                           f"({exc.strerror or exc})") from exc
    return home


def check_cache_entries(home: Path) -> None:
    """Raise DatasetError if a cache entry of ``home`` exists but is not a regular file.

    A directory (or FIFO...) named ``mnist.npz``, ``mnist.json`` or
    ``.mnist.lock`` could be neither read nor replaced: every load would
    download MNIST again and then fail to write it.

    Raises
    ------
    DatasetError
        Naming the entry and what to do.
    """
    for name in (CACHE_FILE, CACHE_META_FILE, MNIST_LOCK_FILE):
        entry = home / name
        if (entry.exists() or entry.is_symlink()) and not entry.is_file():
            what = "a directory" if entry.is_dir() else "not a regular file"
            raise DatasetError(f"{entry} is {what}, but fastann keeps its MNIST cache "
                               f"there: remove it, or use another data directory "
                               f"(data_dir=, --data-dir or FASTANN_DATA)")


def _array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array)).hexdigest()


def _check_mnist_pair(X: np.ndarray, y: np.ndarray, what: str) -> None:
    """Raise DatasetError unless X is uint8 ``(n, 784)`` and y uint8 ``(n,)``."""
    if X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != 784:
        raise DatasetError(f"{what}: images must be uint8 of shape (n, 784), "
                           f"got {X.dtype} of shape {X.shape}")
    if y.dtype != np.uint8 or y.shape != (len(X),):
        raise DatasetError(f"{what}: labels must be uint8 of shape ({len(X)},), "
                           f"got {y.dtype} of shape {y.shape}")


def _write_mnist_cache(home: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``mnist.npz`` and its checksums ``mnist.json`` atomically.

    Parameters
    ----------
    home : pathlib.Path
        The data home.
    arrays : dict
        ``x_train``, ``y_train``, ``x_test``, ``y_test``: uint8 images of
        shape ``(n, 784)`` and uint8 labels of shape ``(n,)``.

    Raises
    ------
    DatasetError
        An array has the wrong dtype or shape (nothing is written).
    OSError
        The files cannot be written.
    """
    for split in SPLITS:
        _check_mnist_pair(arrays[f"x_{split}"], arrays[f"y_{split}"], f"MNIST {split} data")
    names = [f"{xy}_{split}" for split in SPLITS for xy in "xy"]
    meta = {
        "format": 1,
        "arrays": {name: {"shape": list(arrays[name].shape), "dtype": str(arrays[name].dtype),
                          "sha256": _array_sha256(arrays[name])} for name in names},
    }
    with atomic_write(home / CACHE_FILE) as f:
        np.savez(f, **{name: arrays[name] for name in names})
    with atomic_write(home / CACHE_META_FILE) as f:
        f.write(json.dumps(meta, indent=2).encode())


def _read_mnist_cache(home: Path, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Load `split` from the cache; None if it is missing or fails verification.

    Returns
    -------
    tuple of numpy.ndarray or None
        ``(X, y)``: uint8 ``(n, 784)`` and uint8 ``(n,)``. None (after a
        message on stderr if the cache exists but is unusable) otherwise.

    Raises
    ------
    DatasetError
        A cache entry is a directory or another non-file
        (:func:`check_cache_entries`): fetching again could not replace it.
    """
    check_cache_entries(home)
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
        say(f"cached MNIST {cache} is unusable ({type(exc).__name__}: {exc}); fetching it again")
        return None
    return X, y


@contextlib.contextmanager
def _mnist_lock(home: Path) -> Iterator[None]:
    """Hold the exclusive lock ``<home>/.mnist.lock`` (a :class:`filelock.FileLock`).

    Serializes first fetches, so processes (or threads) started together
    download MNIST once and leave one good cache. Blocks until the lock is
    free; it is released on exit, also when the body raises, and the kernel
    releases it if the process dies.

    The lock file is removed while the lock is still held, so a finished
    fetch leaves only ``mnist.npz`` and ``mnist.json``. That is safe with
    filelock >= 3.20.4 on Unix: a waiter whose ``flock`` lands on the removed
    file sees ``st_nlink == 0`` and retries on the path's new file. (Windows'
    filelock removes the file itself on release; where removal fails, the
    file stays and is simply reused.)

    Parameters
    ----------
    home : pathlib.Path
        The data home; it must exist.

    Yields
    ------
    None
    """
    lock = filelock.FileLock(home / MNIST_LOCK_FILE)
    with lock:
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock.lock_file)
