"""The file format of models and checkpoints: one ``.npz`` archive, a JSON header and arrays.

An archive holds a 0-d unicode array ``header`` (JSON: a dict with at least
``format`` and ``format_version``) and plain numeric or fixed-width unicode
arrays, read with ``allow_pickle=False``: loading never executes code from
the file. Writes are atomic (:func:`fastann.files.atomic_write`).
"""
import json
import os
import zipfile

import numpy as np

from .exceptions import ModelFileError
from .files import atomic_write

_READ_ERRORS = (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, AttributeError,
                TypeError)


def jsonable(value):
    """``value`` with NumPy scalars, generators and dtypes turned into JSON-able values."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.random.Generator, np.random.RandomState)):
        return None
    if isinstance(value, (type, np.dtype)):  # dtype=np.float64 rather than "float64"
        try:
            return np.dtype(value).name
        except TypeError:
            return value
    return value


def classes_array(classes):
    """Class labels as a plain array (object arrays of strings become unicode)."""
    classes = np.asarray(classes)
    if classes.dtype.kind == "O":
        classes = classes.astype(str)
    return classes


def write_archive(path, header, arrays):
    """Write ``header`` (a JSON-able dict) and ``arrays`` atomically to ``path``.

    Raises
    ------
    OSError
        The file cannot be written (the previous file, if any, is intact).
    """
    entries = {"header": np.array(json.dumps(jsonable(header)))}
    entries.update(arrays)
    with atomic_write(path) as f:
        np.savez(f, **entries)


def read_archive(path, expected_format, supported_versions, kind="model", error=ModelFileError):
    """Read an archive written by :func:`write_archive`.

    Parameters
    ----------
    path : str or path-like
    expected_format : str
        The header's ``format``.
    supported_versions : collection of int
        Header ``format_version`` values this reader understands.
    kind : str
        What the file should be ("model", "checkpoint"), for messages.
    error : type
        Exception class raised for unreadable files.

    Returns
    -------
    header : dict
    arrays : dict of ndarray

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    error
        Not a readable archive, not of ``expected_format``, or an unsupported version.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{kind} file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise error(f"{path}: not a readable fastann {kind} file ({exc})") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a single .npy array
        raise error(f"{path}: not a fastann {kind} file (a .npy array, not an .npz archive)")
    try:
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except _READ_ERRORS as exc:
        raise error(f"{path}: not a readable fastann {kind} file ({exc})") from exc
    if "header" not in arrays:
        raise error(f"{path}: not a fastann {kind} file (no header entry)")
    try:
        header = json.loads(str(arrays.pop("header")))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise error(f"{path}: {kind} header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != expected_format:
        found = header.get("format") if isinstance(header, dict) else None
        raise error(f"{path}: not a fastann {kind} file (format {found!r})")
    if header.get("format_version") not in supported_versions:
        raise error(f"{path}: {kind} format version "
                    f"{header.get('format_version')!r} is not supported (this fastann reads "
                    f"version {', '.join(map(str, sorted(supported_versions)))})")
    return header, arrays
