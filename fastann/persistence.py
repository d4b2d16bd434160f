"""Saving and loading models: one ``.npz`` file, arrays plus a JSON header, never pickle.

Layout of the archive (all entries plain numeric or fixed-width unicode arrays,
readable with ``np.load(path, allow_pickle=False)``):

- ``header``: 0-d unicode array holding JSON with ``format`` ("fastann-mlp"),
  ``format_version``, ``fastann_version``, ``layer_sizes``, ``params``
  (the hyper-parameters), ``n_iter``, ``t`` and ``history``;
- ``classes``: the class labels (integers, floats or unicode strings);
- ``coef_0 .. coef_{L-1}`` and ``intercept_0 .. intercept_{L-1}``;
- ``normalization_scale`` and ``normalization_shift``.

Files are written atomically: to a temporary file in the target directory,
flushed and fsynced, then renamed over the target, so a crash never leaves a
half-written model under the final name.
"""
import json
import os
import zipfile

import numpy as np

from .exceptions import ModelFileError
from .files import atomic_write

FORMAT = "fastann-mlp"
FORMAT_VERSION = 1


def _classes_array(classes):
    classes = np.asarray(classes)
    if classes.dtype.kind == "O":
        classes = classes.astype(str)
    return classes


def save_model(model, path):
    """Write a fitted :class:`fastann.MLPClassifier` to ``path``.

    Parameters
    ----------
    model : MLPClassifier
        Fitted.
    path : str or os.PathLike
        Destination; conventionally ends in ``.npz`` (nothing is appended).

    Notes
    -----
    Hyper-parameters are stored as JSON: a ``random_state`` that is a NumPy
    ``Generator`` or ``RandomState`` is stored as None, a ``dtype`` given as a
    NumPy type by its name.

    Raises
    ------
    NotFittedError
        The model is not fitted.
    OSError
        The file cannot be written.
    """
    model._check_fitted()
    sizes = [int(s) for s in model._sizes_from_coefs()]
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastann_version": _version(),
        "layer_sizes": sizes,
        "params": _jsonable(model.get_params()),
        "n_iter": int(model.n_iter_),
        "t": int(model.t_),
        "history": _jsonable(model.history_),
    }
    arrays = {"header": np.array(json.dumps(header)),
              "classes": _classes_array(model.classes_),
              "normalization_scale": model.normalization_scale_,
              "normalization_shift": model.normalization_shift_}
    for i, (coef, intercept) in enumerate(zip(model.coefs_, model.intercepts_)):
        arrays[f"coef_{i}"] = np.ascontiguousarray(coef)
        arrays[f"intercept_{i}"] = np.ascontiguousarray(intercept)
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load(path):
    """Read a model written by :meth:`MLPClassifier.save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MLPClassifier
        Fitted, predicting exactly as the saved model did.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ModelFileError
        The file is not a fastann model, is truncated or corrupted, or has an
        unsupported format version. Loading never executes code from the file.
    """
    from .model import MLPClassifier

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable fastann model file ({exc})") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a single .npy array
        raise ModelFileError(f"{path}: not a fastann model file (a .npy array, not an .npz archive)")
    try:
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable fastann model file ({exc})") from exc
    if "header" not in arrays:
        raise ModelFileError(f"{path}: not a fastann model file (no header entry)")
    try:
        header = json.loads(str(arrays["header"]))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelFileError(f"{path}: model header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fastann model file (format {header.get('format')!r})"
                             if isinstance(header, dict) else f"{path}: malformed header")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {header.get('format_version')!r} is "
                             f"not supported (this fastann reads version {FORMAT_VERSION})")
    try:
        sizes = [int(s) for s in header["layer_sizes"]]
        n_layers = len(sizes) - 1
        coefs = [arrays[f"coef_{i}"] for i in range(n_layers)]
        intercepts = [arrays[f"intercept_{i}"] for i in range(n_layers)]
        classes = arrays["classes"]
        scale, shift = arrays["normalization_scale"], arrays["normalization_shift"]
        model = MLPClassifier(**header["params"])
        if isinstance(model.hidden_layer_sizes, list):
            model.hidden_layer_sizes = tuple(model.hidden_layer_sizes)
        model._validate_hyperparameters()  # predict would fail later on, say, an unknown activation
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: model file is missing or has malformed entries ({exc})") from exc
    expected = [(sizes[i], sizes[i + 1]) for i in range(n_layers)]
    if ([c.shape for c in coefs] != expected
            or [b.shape for b in intercepts] != [(s,) for s in sizes[1:]]
            or classes.shape != (sizes[-1],)
            or scale.shape != (sizes[0],) or shift.shape != (sizes[0],)):
        raise ModelFileError(f"{path}: array shapes do not match the header's layer sizes {sizes}")
    dtype = np.dtype(model.dtype)
    if any(a.dtype != dtype for a in coefs + intercepts + [scale, shift]):
        raise ModelFileError(f"{path}: parameter arrays are not {dtype}")
    model.classes_ = classes
    model.n_features_in_ = sizes[0]
    model.normalization_scale_, model.normalization_shift_ = scale, shift
    params = np.concatenate([c.ravel() for c in coefs] + [b.ravel() for b in intercepts])
    model._set_parameters(params, np.array(sizes, np.int64))
    model.n_iter_ = int(header.get("n_iter", 0))
    model.t_ = int(header.get("t", 0))
    model.history_ = header.get("history", [])
    model._optimizer_state = (np.zeros_like(params), np.zeros_like(params))
    model._rng = np.random.default_rng(model.random_state)
    return model


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
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


def _version():
    from . import __version__
    return __version__
