"""The file format of models and checkpoints: one ``.npz`` archive, a JSON header and arrays.

An archive holds a 0-d unicode array ``header`` (JSON: a dict with at least
``format`` and ``format_version``) and plain numeric or fixed-width unicode
arrays. Writes are atomic (:func:`fastann.files.atomic_write`).

Reading treats the file as hostile (:class:`Archive`): only regular files are
opened (a FIFO or device would block or never end); the zip directory is
read, then the header member alone, its size capped and its JSON nesting
bounded; the caller validates the header's fields (the ``*_field`` methods
name the file and the field in every error) and then asks for the members it
expects, each with the shape and dtype the header implies. A member's ``.npy``
header is parsed and compared with those before a single data byte is read,
and its size must fit in the memory available, so a member that claims 10^12
floats, or a small deflated member that would inflate to gigabytes, is
refused before it is allocated; members nobody asked for are never read.
Nothing is unpickled, and every failure is the caller's error class
(:class:`fastann.exceptions.ModelFileError` or a subclass) naming the file.
"""
import contextlib
import json
import lzma
import math
import numbers
import os
import stat
import struct
import zipfile
import zlib

import numpy as np

from .exceptions import ModelFileError
from .files import atomic_write
from .memory import available_memory, format_bytes

#: Float dtypes of parameter arrays.
FLOAT_DTYPES = ("float32", "float64")
#: dtype kinds of class labels: booleans, integers, floats, unicode or byte strings.
CLASS_KINDS = "biufUS"
#: Largest JSON header read, in characters (a long training history is ~200 per epoch).
MAX_HEADER_CHARS = 8 * 2**20
#: Deepest nesting of lists and dicts accepted in a JSON header.
MAX_HEADER_DEPTH = 32
#: Largest ``.npy`` member header (NumPy writes ~120 bytes).
MAX_NPY_HEADER = 4096
#: Largest layer width and number of layers a file may declare.
MAX_LAYER_WIDTH = 2**31 - 1
MAX_LAYERS = 1024
# Hyper-parameters that may be lists, and their longest length.
LIST_PARAMS = ("dropout", "image_shape", "class_weight")
MAX_PARAM_LIST = 4096
#: Largest integer accepted in a header field (int64).
MAX_INT = 2**63 - 1
#: Fields every training-history record has, and whether they may be None.
HISTORY_FIELDS = {"epoch": False, "learning_rate": False, "train_loss": False,
                  "train_accuracy": False, "val_loss": True, "val_accuracy": True,
                  "n_validation": False, "seconds": False, "eval_seconds": False}

# What the zip and .npy layers raise on damaged input (zipfile parses
# hostile bytes with struct, zlib, bz2 and lzma).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
               KeyError, IndexError, TypeError, OverflowError, NotImplementedError,
               RuntimeError, struct.error, zlib.error, lzma.LZMAError)
_CHUNK = 1 << 20
_NPY_MAGIC = b"\x93NUMPY"
_MISSING = object()


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


def nesting_depth(value):
    """Depth of nested lists and dicts in a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _describe(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Archive:
    """A fastann archive opened for reading: its header first, then only the arrays asked for.

    Use as a context manager (:func:`open_archive`). On return the header has
    been read, parsed and checked for ``format`` and ``format_version``; the
    ``*_field`` methods check its other fields and :meth:`array` reads one
    member after checking its declared shape and dtype.

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
        Exception class (a :class:`ModelFileError`) raised for bad files.

    Attributes
    ----------
    path : str
    header : dict
        The parsed JSON header.
    version : int
        Its ``format_version``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    error
        Not a regular file, not a zip archive, no readable header, a header
        that is not a JSON object of ``expected_format``, too large or too
        deeply nested, or an unsupported ``format_version``.
    """

    def __init__(self, path, expected_format, supported_versions, kind="model",
                 error=ModelFileError):
        self.path = os.fspath(path)
        self.kind = kind
        self.error_class = error
        self._file = self._zip = None
        self._file = self._open_regular_file()
        try:
            try:
                self._zip = zipfile.ZipFile(self._file)
                self._members = {info.filename: info for info in self._zip.infolist()}
            except _ZIP_ERRORS as exc:
                raise self._not_an_archive() from exc
            self.header = self._read_header()
            found = self.header.get("format")
            if found != expected_format:
                raise self.error(f"not a fastann {kind} file (format {_describe(found)})")
            self.version = self.header.get("format_version")
            if (isinstance(self.version, bool) or not isinstance(self.version, int)
                    or self.version not in supported_versions):
                raise self.error(
                    f"{kind} format version {_describe(self.version)} is not supported (this "
                    f"fastann reads version {', '.join(map(str, sorted(supported_versions)))})")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------- plumbing
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Close the file (idempotent)."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def error(self, message, field=None):
        """An instance of the error class: ``"PATH: [field 'FIELD': ]message"``."""
        where = f"{self.kind} field {field!r}: " if field is not None else ""
        return self.error_class(f"{self.path}: {where}{message}")

    def _not_an_archive(self):
        try:
            self._file.seek(0)
            start = self._file.read(len(_NPY_MAGIC))
        except OSError:
            start = b""
        if start == _NPY_MAGIC:
            return self.error(f"not a fastann {self.kind} file (a .npy array, not an .npz "
                              f"archive)")
        return self.error(f"not a fastann {self.kind} file (not a zip archive)")

    def _open_regular_file(self):
        """Open ``path`` for reading without blocking, and only if it is a regular file."""
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                         | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.kind} file not found: {self.path}") from None
        except IsADirectoryError:
            raise self.error(f"is a directory, not a fastann {self.kind} file") from None
        except OSError as exc:
            raise self.error(f"cannot be opened ({exc.strerror or exc})") from exc
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                what = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                        else "a socket" if stat.S_ISSOCK(mode) else "a device")
                raise self.error(f"is {what}, not a regular file; fastann reads {self.kind}s "
                                 f"from regular files only")
            if hasattr(os, "set_blocking"):
                with contextlib.suppress(OSError):
                    os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    # --------------------------------------------------------------- header
    def _read_header(self):
        if "header.npy" not in self._members:
            raise self.error(f"not a fastann {self.kind} file (no header entry)")
        array = self._read_member("header", (), "U", max_bytes=4 * MAX_HEADER_CHARS,
                                  field="header")
        text = str(array[()])
        try:
            header = json.loads(text)
        except RecursionError:
            raise self.error("header is nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
            raise self.error(f"{self.kind} header is not valid JSON ({exc})") from None
        if not isinstance(header, dict):
            raise self.error(f"not a fastann {self.kind} file (the header is a "
                             f"{type(header).__name__}, not a JSON object)")
        depth = nesting_depth(header)
        if depth > MAX_HEADER_DEPTH:
            raise self.error(f"header is nested {depth} levels deep (at most "
                             f"{MAX_HEADER_DEPTH} accepted)")
        return header

    # --------------------------------------------------------------- arrays
    def has(self, name):
        """Whether the archive has a member for array ``name``."""
        return f"{name}.npy" in self._members

    def array(self, name, shape, kinds, dtype=None):
        """Read member ``name`` after checking its declared shape and dtype.

        Parameters
        ----------
        name : str
            Array name (the member is ``name.npy``).
        shape : tuple of int, or collection of such tuples
            The shape the header implies (any of several, e.g. ``(0,)`` or
            ``(n,)`` for optional state).
        kinds : str
            Accepted dtype kinds (``"f"``, ``"biufUS"``...).
        dtype : numpy dtype, optional
            Exact dtype required (byte order aside).

        Returns
        -------
        ndarray
            C-contiguous, native byte order, writable.

        Raises
        ------
        error
            A missing member, a declared shape or dtype other than expected,
            a size larger than the memory available, or damaged data.
        """
        if not self.has(name):
            raise self.error(f"missing array {name!r}")
        return self._read_member(name, shape, kinds, dtype=dtype, field=name)

    def _read_member(self, name, shape, kinds, dtype=None, max_bytes=None, field=None):
        shapes = [tuple(shape)] if all(isinstance(s, numbers.Integral) for s in shape) \
            else [tuple(s) for s in shape]
        info = self._members[f"{name}.npy"]
        what = f"array {name!r}"
        try:
            with self._zip.open(info) as member:
                found_shape, fortran, found_dtype, offset = self._npy_header(member, what)
                if found_shape not in shapes:
                    expected = " or ".join(str(s) for s in shapes)
                    raise self.error(f"array shapes do not match the header: {what} has shape "
                                     f"{found_shape}, the header implies {expected}")
                if (found_dtype.kind not in kinds or found_dtype.hasobject
                        or found_dtype.fields is not None or found_dtype.subdtype is not None
                        or (dtype is not None
                            and found_dtype.newbyteorder("=") != np.dtype(dtype))):
                    wanted = np.dtype(dtype).name if dtype is not None else f"kind {kinds!r}"
                    raise self.error(f"{what} has dtype {found_dtype}, expected {wanted}")
                nbytes = math.prod(found_shape) * found_dtype.itemsize
                if info.file_size != offset + nbytes:
                    raise self.error(f"{what} is damaged: its member holds {info.file_size} "
                                     f"bytes, its .npy header declares {offset + nbytes}")
                if max_bytes is not None and nbytes > max_bytes:
                    raise self.error(f"{what} is {format_bytes(nbytes)}, more than the "
                                     f"{format_bytes(max_bytes)} accepted")
                available = available_memory()
                if available is not None and nbytes > available:
                    raise self.error(f"{what} needs {format_bytes(nbytes)} of memory, more "
                                     f"than the {format_bytes(available)} available")
                buffer = bytearray(nbytes)
                view = memoryview(buffer)
                position = 0
                while position < nbytes:
                    chunk = member.read(min(_CHUNK, nbytes - position))
                    if not chunk:
                        raise self.error(f"{what} is truncated")
                    view[position:position + len(chunk)] = chunk
                    position += len(chunk)
                if member.read(1):  # also makes zipfile check the member's CRC-32
                    raise self.error(f"{what} has trailing data")
        except _ZIP_ERRORS as exc:
            if isinstance(exc, self.error_class):
                raise
            raise self.error(f"not a readable fastann {self.kind} file: {what} is damaged "
                             f"({type(exc).__name__}: {exc})") from None
        array = np.frombuffer(buffer, dtype=found_dtype)
        if fortran:
            array = array.reshape(found_shape[::-1]).T.copy(order="C")
        else:
            array = array.reshape(found_shape)
        if not found_dtype.isnative:
            array = array.astype(found_dtype.newbyteorder("="), order="C")
        return array

    def _npy_header(self, member, what):
        """``(shape, fortran_order, dtype, data_offset)`` of a ``.npy`` member."""
        try:
            major, minor = np.lib.format.read_magic(member)
            if (major, minor) == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    member, max_header_size=MAX_NPY_HEADER)
            elif (major, minor) == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    member, max_header_size=MAX_NPY_HEADER)
            else:
                raise ValueError(f"unsupported .npy format version {major}.{minor}")
            offset = member.tell()
        except _ZIP_ERRORS as exc:
            if isinstance(exc, self.error_class):
                raise
            raise self.error(f"{what} is not a readable .npy member "
                             f"({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # noqa: BLE001 - NumPy parses the header with ast/tokenize
            raise self.error(f"{what} has a malformed .npy header "
                             f"({type(exc).__name__})") from None
        if any(extent < 0 for extent in shape):
            raise self.error(f"{what} declares a negative shape {shape}")
        return tuple(shape), fortran, dtype, offset

    # --------------------------------------------------------------- fields
    def field(self, name, default=_MISSING):
        """The header's ``name``; ``default`` if absent, an error if absent without one."""
        if name in self.header:
            return self.header[name]
        if default is _MISSING:
            raise self.error("missing from the header", field=name)
        return default

    def int_field(self, name, minimum=0, maximum=MAX_INT, default=_MISSING):
        """An integer field in ``[minimum, maximum]`` (booleans are not integers)."""
        return check_int(self, name, self.field(name, default), minimum, maximum)

    def bool_field(self, name, default=_MISSING):
        """A boolean field."""
        value = self.field(name, default)
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {_describe(value)}", field=name)
        return value

    def str_field(self, name, default=_MISSING):
        """A string field."""
        value = self.field(name, default)
        if not isinstance(value, str):
            raise self.error(f"expected a string, got {_describe(value)}", field=name)
        return value

    def number_field(self, name, allow_none=False, default=_MISSING):
        """A finite number field (or None when ``allow_none``)."""
        value = self.field(name, default)
        if value is None and allow_none:
            return None
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value)):
            raise self.error(f"expected a finite number, got {_describe(value)}", field=name)
        return float(value)

    def dict_field(self, name, default=_MISSING):
        """A JSON object field with string keys."""
        value = self.field(name, default)
        if not isinstance(value, dict):
            raise self.error(f"expected a JSON object, got {_describe(value)}", field=name)
        return value

    def layer_sizes_field(self, name="layer_sizes"):
        """``[n_features, *hidden, n_classes]``: 2 to :data:`MAX_LAYERS` + 1 positive widths.

        At least two classes; widths up to :data:`MAX_LAYER_WIDTH`.
        """
        value = self.field(name)
        if (not isinstance(value, list) or not 2 <= len(value) <= MAX_LAYERS + 1
                or not all(isinstance(s, int) and not isinstance(s, bool)
                           and 1 <= s <= MAX_LAYER_WIDTH for s in value)):
            raise self.error(f"expected a list of 2 to {MAX_LAYERS + 1} positive layer widths "
                             f"(at most {MAX_LAYER_WIDTH}), got {_describe(value)}", field=name)
        if value[-1] < 2:
            raise self.error(f"the output layer must have at least 2 classes, got "
                             f"{_describe(value)}", field=name)
        return list(value)

    def params_field(self, name="params"):
        """The hyper-parameters: a JSON object of scalars, a list of widths, and short
        lists of scalars or ``[label, weight]`` pairs (``dropout``, ``image_shape``,
        ``class_weight``).

        Only types are checked here (finite numbers, ``dtype`` float32 or
        float64; :meth:`check_hidden_layers` compares ``hidden_layer_sizes``
        with the layer sizes); the values themselves are checked by the
        estimator when it is built.

        Returns
        -------
        dict
        """
        params = dict(self.dict_field(name))
        for key, value in params.items():
            where = f"{name}.{key}"
            if key == "hidden_layer_sizes":
                widths = [value] if isinstance(value, int) else value
                if not isinstance(widths, list) or not all(
                        isinstance(w, int) and not isinstance(w, bool) for w in widths):
                    raise self.error(f"expected a list of layer widths, got {_describe(value)}",
                                     field=where)
            elif isinstance(value, list) and key in LIST_PARAMS:
                # Per-layer dropout rates, an image shape, class weights as
                # [label, weight] pairs: short lists of scalars or of pairs.
                if len(value) > MAX_PARAM_LIST:
                    raise self.error(f"expected at most {MAX_PARAM_LIST} entries, got "
                                     f"{_describe(value)}", field=where)
                for item in value:
                    for scalar in (item if isinstance(item, list) and len(item) == 2 else [item]):
                        self._check_scalar(scalar, where)
            else:
                self._check_scalar(value, where)
        if params.get("dtype", "float32") not in FLOAT_DTYPES:
            raise self.error(f"expected one of {', '.join(FLOAT_DTYPES)}, got "
                             f"{_describe(params.get('dtype'))}", field=f"{name}.dtype")
        return params

    def _check_scalar(self, value, where):
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return
        if isinstance(value, int):
            check_int(self, where, value, -MAX_INT, MAX_INT)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise self.error(f"expected a finite number, got {value!r}", field=where)
        else:
            raise self.error(f"expected a number, string, boolean or null, got "
                             f"{_describe(value)}", field=where)

    def check_hidden_layers(self, params, layer_sizes, name="params"):
        """Fill in or check ``params["hidden_layer_sizes"]`` against ``layer_sizes``.

        Returns
        -------
        dict
            ``params``, with ``hidden_layer_sizes`` set to the hidden widths of
            ``layer_sizes`` when it was missing.
        """
        hidden = layer_sizes[1:-1]
        value = params.get("hidden_layer_sizes", hidden)
        widths = [value] if isinstance(value, int) else value
        if widths != hidden:
            raise self.error(f"array shapes do not match: {name}.hidden_layer_sizes is "
                             f"{_describe(value)}, layer_sizes has hidden widths {hidden}",
                             field=f"{name}.hidden_layer_sizes")
        return {"hidden_layer_sizes": hidden, **params}

    def history_field(self, name="history"):
        """The training history: a list of per-epoch records (:data:`HISTORY_FIELDS`)."""
        value = self.field(name, [])
        if not isinstance(value, list):
            raise self.error(f"expected a list of epoch records, got {_describe(value)}",
                             field=name)
        for i, record in enumerate(value):
            where = f"{name}[{i}]"
            if not isinstance(record, dict):
                raise self.error(f"expected an epoch record (a JSON object), got "
                                 f"{_describe(record)}", field=where)
            for key, optional in HISTORY_FIELDS.items():
                item = record.get(key, _MISSING)
                if item is _MISSING:
                    raise self.error("missing", field=f"{where}.{key}")
                if item is None and optional:
                    continue
                if isinstance(item, bool) or not isinstance(item, (int, float)):
                    raise self.error(f"expected a number, got {_describe(item)}",
                                     field=f"{where}.{key}")
            for key, item in record.items():
                if isinstance(item, (dict, list)):
                    raise self.error(f"expected a number, string or null, got "
                                     f"{_describe(item)}", field=f"{where}.{key}")
        return [dict(record) for record in value]


def check_int(archive, field, value, minimum=0, maximum=MAX_INT):
    """``value`` if it is an int (not a bool) in ``[minimum, maximum]``; else ``archive``'s error.

    Raises
    ------
    ModelFileError (the archive's error class)
    """
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise archive.error(f"expected an integer in [{minimum}, {maximum}], got "
                            f"{_describe(value)}", field=field)
    return value


def check_finite(archive, name, array):
    """Raise ``archive``'s error if a float ``array`` holds NaN or infinity."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = "NaN" if np.isnan(array).any() else "infinity"
        raise archive.error(f"array {name!r} contains {bad}")


def check_classes(archive, classes, name="classes"):
    """Raise ``archive``'s error unless ``classes`` are distinct, sorted and finite."""
    if classes.dtype.kind == "f" and not np.isfinite(classes).all():
        raise archive.error(f"array {name!r} contains NaN or infinity")
    if classes.size > 1 and not np.all(classes[1:] > classes[:-1]):
        problem = "duplicate" if np.unique(classes).size < classes.size else "unsorted"
        raise archive.error(f"array {name!r} has {problem} class labels; a model's classes are "
                            f"distinct and sorted")


def open_archive(path, expected_format, supported_versions, kind="model", error=ModelFileError):
    """Open an archive written by :func:`write_archive` for reading (see :class:`Archive`).

    Returns
    -------
    Archive
        A context manager; its ``header`` is read and its format checked.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    error
        Not a readable fastann archive of ``expected_format`` and a supported version.
    """
    return Archive(path, expected_format, supported_versions, kind=kind, error=error)
