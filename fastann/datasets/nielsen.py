"""Michael Nielsen's ``mnist.pkl.gz`` and the numpy-only unpickler that reads it.

The file, from the book *Neural Networks and Deep Learning*, is a Python 2
pickle. It is read with an unpickler that admits only the globals needed to
rebuild numpy arrays, so a malicious pickle cannot run code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import IO

import numpy as np

from ._common import labels_as_uint8, open_binary
from .errors import DatasetError

try:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.numeric import _frombuffer as _np_frombuffer
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct as _np_reconstruct
    from numpy.core.numeric import _frombuffer as _np_frombuffer

__all__ = ["load_nielsen_pickle"]


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
    return pixels, labels_as_uint8(y, f"{path} ({key} labels)")


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
        with open_binary(path) as f:
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
