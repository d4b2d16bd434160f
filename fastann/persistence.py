"""Model files: a fitted model's arrays and hyper-parameters in one ``.npz`` archive.

Written by :meth:`fastann.MLPClassifier.save`, read by :func:`fastann.load`
(which validates the hyper-parameters and builds the model). This module
knows the file layout only; it never sees a model object. Entries (see
:mod:`fastann.container` for the archive itself):

- ``header``: JSON with ``format`` ("fastann-mlp"), ``format_version``,
  ``fastann_version``, ``layer_sizes``, ``params`` (the hyper-parameters),
  ``n_iter``, ``t`` and ``history``;
- ``classes``: the class labels (integers, floats or unicode strings);
- ``coef_0 .. coef_{L-1}`` and ``intercept_0 .. intercept_{L-1}``;
- ``normalization_scale`` and ``normalization_shift``.
"""
from dataclasses import dataclass, field

import numpy as np

from .container import classes_array, read_archive, write_archive
from .exceptions import ModelFileError

FORMAT = "fastann-mlp"
FORMAT_VERSION = 1


@dataclass
class SavedModel:
    """What a model file holds.

    Attributes
    ----------
    hyperparameters : dict
        ``MLPClassifier.get_params()``.
    layer_sizes : list of int
        ``[n_features, *hidden, n_classes]``.
    classes : ndarray, shape (n_classes,)
    coefs, intercepts : list of ndarray
        Shapes ``(d_l, d_{l+1})`` and ``(d_{l+1},)``, one float dtype.
    normalization_scale, normalization_shift : ndarray, shape (n_features,)
    n_iter, t : int
        Epochs and optimizer updates made.
    history : list of dict
    fastann_version : str
        Version that wrote the file (filled in by :func:`write_model`).
    """

    hyperparameters: dict
    layer_sizes: list
    classes: np.ndarray
    coefs: list
    intercepts: list
    normalization_scale: np.ndarray
    normalization_shift: np.ndarray
    n_iter: int = 0
    t: int = 0
    history: list = field(default_factory=list)
    fastann_version: str = ""


def write_model(path, saved, version):
    """Write ``saved`` (a :class:`SavedModel`) atomically to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; conventionally ends in ``.npz`` (nothing is appended).
    saved : SavedModel
    version : str
        The writing fastann's version, recorded in the header.

    Raises
    ------
    OSError
        The file cannot be written.
    """
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "fastann_version": version,
              "layer_sizes": [int(s) for s in saved.layer_sizes],
              "params": saved.hyperparameters, "n_iter": int(saved.n_iter),
              "t": int(saved.t), "history": saved.history}
    arrays = {"classes": classes_array(saved.classes),
              "normalization_scale": saved.normalization_scale,
              "normalization_shift": saved.normalization_shift}
    for i, (coef, intercept) in enumerate(zip(saved.coefs, saved.intercepts)):
        arrays[f"coef_{i}"] = np.ascontiguousarray(coef)
        arrays[f"intercept_{i}"] = np.ascontiguousarray(intercept)
    write_archive(path, header, arrays)


def read_model(path):
    """Read and check a model file's layout.

    Returns
    -------
    SavedModel

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ModelFileError
        Not a fastann model file, truncated or corrupted, an unsupported
        format version, missing entries, or arrays whose shapes or dtypes do
        not match the header.
    """
    header, arrays = read_archive(path, FORMAT, {FORMAT_VERSION})
    try:
        sizes = [int(s) for s in header["layer_sizes"]]
        n_layers = len(sizes) - 1
        saved = SavedModel(
            hyperparameters=dict(header["params"]), layer_sizes=sizes,
            classes=arrays["classes"],
            coefs=[arrays[f"coef_{i}"] for i in range(n_layers)],
            intercepts=[arrays[f"intercept_{i}"] for i in range(n_layers)],
            normalization_scale=arrays["normalization_scale"],
            normalization_shift=arrays["normalization_shift"],
            n_iter=int(header.get("n_iter", 0)), t=int(header.get("t", 0)),
            history=list(header.get("history", [])),
            fastann_version=str(header.get("fastann_version", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: model file is missing or has malformed entries "
                             f"({exc})") from exc
    expected = [(sizes[i], sizes[i + 1]) for i in range(n_layers)]
    if ([c.shape for c in saved.coefs] != expected
            or [b.shape for b in saved.intercepts] != [(s,) for s in sizes[1:]]
            or saved.classes.shape != (sizes[-1],)
            or saved.normalization_scale.shape != (sizes[0],)
            or saved.normalization_shift.shape != (sizes[0],)):
        raise ModelFileError(f"{path}: array shapes do not match the header's layer sizes {sizes}")
    floats = saved.coefs + saved.intercepts + [saved.normalization_scale,
                                               saved.normalization_shift]
    if len({a.dtype for a in floats}) != 1 or floats[0].dtype not in (np.float32, np.float64):
        raise ModelFileError(f"{path}: parameter arrays are not all float32 or all float64")
    return saved
