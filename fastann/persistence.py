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

from .container import (CLASS_KINDS, check_classes, check_finite, classes_array, open_archive,
                        write_archive)

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
    """Read a model file and check it against its header's schema.

    The header is read and validated first (types, ranges, consistency);
    then only the expected arrays are read, each after its declared shape and
    dtype have been compared with what the header implies
    (:class:`fastann.container.Archive`). Parameters and normalization must
    be finite, classes distinct and sorted.

    Returns
    -------
    SavedModel

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ModelFileError
        Not a regular file or not a fastann model file, truncated or
        corrupted, an unsupported format version, a header field of the wrong
        type or range, missing arrays, arrays whose shapes or dtypes do not
        match the header, or non-finite or duplicate values. The message
        names the file and the field or array.
    """
    with open_archive(path, FORMAT, {FORMAT_VERSION}) as archive:
        sizes = archive.layer_sizes_field()
        params = archive.params_field()
        n_iter = archive.int_field("n_iter", default=0)
        t = archive.int_field("t", default=0)
        history = archive.history_field()
        version = archive.str_field("fastann_version", default="")
        dtype = np.dtype(params.get("dtype", "float32"))
        n_layers = len(sizes) - 1
        classes = archive.array("classes", (sizes[-1],), CLASS_KINDS)
        coefs = [archive.array(f"coef_{i}", (sizes[i], sizes[i + 1]), "f", dtype)
                 for i in range(n_layers)]
        intercepts = [archive.array(f"intercept_{i}", (sizes[i + 1],), "f", dtype)
                      for i in range(n_layers)]
        scale = archive.array("normalization_scale", (sizes[0],), "f", dtype)
        shift = archive.array("normalization_shift", (sizes[0],), "f", dtype)
        params = archive.check_hidden_layers(params, sizes)
        check_classes(archive, classes)
        for i in range(n_layers):
            check_finite(archive, f"coef_{i}", coefs[i])
            check_finite(archive, f"intercept_{i}", intercepts[i])
        check_finite(archive, "normalization_scale", scale)
        check_finite(archive, "normalization_shift", shift)
    return SavedModel(hyperparameters=params, layer_sizes=sizes, classes=classes, coefs=coefs,
                      intercepts=intercepts, normalization_scale=scale,
                      normalization_shift=shift, n_iter=n_iter, t=t, history=history,
                      fastann_version=version)
