"""The public loaders: MNIST (fetched and cached), Fashion-MNIST, any dataset by name or path.

Every loader returns ``(X, y)``: ``X`` a C-contiguous ``uint8`` array of
shape ``(n, 784)`` (raw pixel bytes, 0..255) and ``y`` a ``uint8`` array of
shape ``(n,)``, except for CSV files with non-byte values (see
:func:`load_dataset`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._common import check_split
from .cache import _default_data_home, _mnist_lock, _read_mnist_cache, data_home
from .csv import read_csv
from .errors import DatasetError
from .fetch import _fetch_mnist
from .idx import _IDX_PREFIX, _find_idx_pair, read_idx_pair
from .nielsen import _nielsen_split, load_nielsen_pickle

__all__ = ["load_dataset", "load_fashion_mnist", "load_mnist"]

#: Where the Debian package ``dataset-fashion-mnist`` installs its files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


def load_mnist(split: str = "train", *,
               data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST, fetching and caching it on first use.

    Looks for IDX files in the data home (or its ``mnist/`` folder), then
    the verified cache ``mnist.npz``, then downloads (see
    :mod:`fastann.datasets`). A cached load takes well under a second.

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
    split = check_split(split)
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
    split = check_split(split)
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
    split = check_split(split)
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
