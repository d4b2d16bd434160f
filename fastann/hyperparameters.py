"""The hyper-parameters of ``MLPClassifier``: allowed values, as scikit-learn constraints.

Checked in ``fit`` (scikit-learn's ``_validate_params``), named in every
message; the command line offers the same choices. :func:`check_training_memory`
refuses, before anything is allocated, a network too large for the memory
available.
"""
import math
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from . import kernels
from .backends import DEVICES
from .backends.cpu import MAX_BUFFER_ROWS
from .initializers import INITIALIZERS
from .memory import available_memory, format_bytes
from .schedules import SCHEDULES

ACTIVATIONS = tuple(kernels.ACTIVATIONS)
SOLVERS = ("gd",) + tuple(kernels.OPTIMIZERS)
INITS = ("auto",) + tuple(INITIALIZERS)
NORMALIZATIONS = ("auto", "simple", "standard", "none")
DTYPES = ("float32", "float64")
AUGMENTS = tuple(kernels.AUGMENTATIONS)

_AT_LEAST_0 = Interval(Real, 0, None, closed="left")
_ABOVE_0 = Interval(Real, 0, None, closed="neither")
_COUNT = Interval(Integral, 1, None, closed="left")
_UNIT = Interval(Real, 0, 1, closed="left")
# BLAS takes its thread count as a C int; more threads than this is a typo.
MAX_THREADS = 1 << 16
# Layer widths above this cannot be allocated on any machine (training_memory).
_MAX_WIDTH = 1 << 40

CONSTRAINTS = {
    "hidden_layer_sizes": ["array-like", _COUNT],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "solver": [StrOptions(set(SOLVERS))],
    "learning_rate": [_ABOVE_0],
    "momentum": [_UNIT],
    "beta_1": [_UNIT],
    "beta_2": [_UNIT],
    "epsilon": [_ABOVE_0],
    "batch_size": [_COUNT],
    "epochs": [_COUNT],
    "init": [StrOptions(set(INITS))],
    "normalization": [StrOptions(set(NORMALIZATIONS))],
    "l1": [_AT_LEAST_0],
    "l2": [_AT_LEAST_0],
    "lr_schedule": [StrOptions(set(SCHEDULES))],
    "lr_decay": [Interval(Real, 0, 1, closed="right")],
    "lr_step_size": [_COUNT],
    "lr_patience": [_COUNT],
    "min_lr": [_AT_LEAST_0],
    "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
    "validation_fraction": [_UNIT],
    "early_stopping": ["boolean"],
    "n_iter_no_change": [_COUNT],
    "tol": [_AT_LEAST_0],
    "random_state": [Interval(Integral, 0, None, closed="left"), np.random.Generator, None],
    "dtype": [StrOptions(set(DTYPES)), type, np.dtype],
    "n_threads": [Interval(Integral, 1, MAX_THREADS, closed="both"), None],
    "class_weight": [StrOptions({"balanced"}), dict, None],
    "dropout": [_UNIT, "array-like"],
    "augment": [StrOptions(set(AUGMENTS)), None],
    "image_shape": ["array-like", None],
    "device": [StrOptions(set(DEVICES))],
    "cpu_kernel": [StrOptions({"auto", "blas", "parallel"})],
    "verbose": ["verbose"],
}


def hidden_widths(hidden_layer_sizes):
    """``hidden_layer_sizes`` as a tuple of positive ints (an int is one layer).

    Raises
    ------
    ValueError
        A width that is not a positive integer.
    """
    hidden = hidden_layer_sizes
    hidden = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
    if not all(isinstance(w, Integral) and not isinstance(w, bool) and w > 0 for w in hidden):
        raise ValueError(f"hidden_layer_sizes must be a tuple of positive integers, "
                         f"got {hidden_layer_sizes!r}")
    return hidden


def float_dtype(dtype):
    """``dtype`` as a NumPy float32/float64 dtype; ValueError for anything else."""
    if np.dtype(dtype).name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return np.dtype(dtype)


def training_memory(layer_sizes, dtype, solver, batch_size, n_samples, early_stopping=False):
    """Bytes ``fit`` allocates for a network: parameters, optimizer state and work buffers.

    Counts the parameters, their per-epoch snapshot (for rolling back a
    diverged or interrupted epoch), the optimizer state and its snapshot,
    early stopping's copy of the best weights, the gradients and the epoch's
    work buffers (:func:`fastann.kernels.training_buffer_shapes`, with the
    larger sparse-input variant) and the initializer's float64 draw of the
    largest layer. Training data and validation predictions are not counted.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``[n_features, *hidden, n_classes]`` (Python ints of any size).
    dtype : str or numpy dtype
        float32 or float64.
    solver : str
        A name from :data:`SOLVERS`.
    batch_size, n_samples : int
    early_stopping : bool

    Returns
    -------
    int
        The estimate in bytes.
    """
    sizes = [int(s) for s in layer_sizes]
    itemsize = np.dtype(dtype).itemsize
    pairs = list(zip(sizes, sizes[1:]))
    n_params = sum(a * b + b for a, b in pairs)
    largest_layer = max((a * b for a, b in pairs), default=0)
    optimizer = kernels.OPTIMIZERS["sgd" if solver == "gd" else solver]
    n_state = sum(kernels.optimizer_state_sizes(optimizer, n_params).values())
    floats = n_params * (3 + bool(early_stopping)) + 2 * n_state
    estimate = floats * itemsize + largest_layer * 8
    if max(sizes, default=0) > _MAX_WIDTH:  # hopeless anyway; keep the int arithmetic exact
        return estimate
    batch = int(n_samples) if solver == "gd" else min(int(batch_size), int(n_samples))
    capacity = max(1, min(batch, MAX_BUFFER_ROWS))
    for shape, kind in kernels.training_buffer_shapes(sizes, capacity, batch, True).values():
        count = 1
        for extent in shape:
            count *= int(extent)
        estimate += count * (itemsize if kind == "float" else np.dtype(kind).itemsize)
    return estimate


def check_training_memory(layer_sizes, dtype, solver, batch_size, n_samples,
                          early_stopping=False):
    """Raise ValueError if :func:`training_memory` exceeds the memory available now.

    Called before ``fit`` allocates anything, so that an impossible network
    (``hidden_layer_sizes=(10**9,)``) fails at once with the estimate rather
    than with NumPy's ``MemoryError`` or the out-of-memory killer.

    Parameters
    ----------
    As :func:`training_memory`.

    Raises
    ------
    ValueError
        The estimate exceeds :func:`fastann.memory.available_memory` (the
        message gives both).
    """
    needed = training_memory(layer_sizes, dtype, solver, batch_size, n_samples, early_stopping)
    available = available_memory()
    if available is not None and needed > available:
        sizes = "-".join(str(int(s)) for s in layer_sizes)
        raise ValueError(f"a {sizes} network ({np.dtype(dtype).name}, solver {solver!r}) needs "
                         f"about {format_bytes(needed)} of memory for its parameters, optimizer "
                         f"state and work buffers, but only {format_bytes(available)} is "
                         f"available: use smaller hidden_layer_sizes")


def check_parameters(params):
    """Check ``MLPClassifier`` keyword arguments as ``fit`` would, without an estimator.

    Parameters
    ----------
    params : dict
        Any subset of the constructor's parameters.

    Raises
    ------
    ValueError
        An unknown name, or a value outside its constraint (scikit-learn's
        ``InvalidParameterError``, also a ``TypeError``, names the parameter).
    """
    unknown = sorted(set(params) - set(CONSTRAINTS))
    if unknown:
        raise ValueError(f"unknown MLPClassifier parameter(s): {', '.join(unknown)}")
    validate_parameter_constraints({name: CONSTRAINTS[name] for name in params}, params,
                                   caller_name="MLPClassifier")
    if "hidden_layer_sizes" in params:
        hidden_widths(params["hidden_layer_sizes"])
    if "dtype" in params:
        float_dtype(params["dtype"])


def dropout_rates(dropout, n_hidden):
    """``dropout`` as one rate per hidden layer (a tuple of ``n_hidden`` floats).

    Parameters
    ----------
    dropout : float or sequence of float
        One rate for every hidden layer, or one per hidden layer; each in ``[0, 1)``.
    n_hidden : int

    Raises
    ------
    ValueError
        A rate outside ``[0, 1)`` or not a number, or a sequence whose length
        is not ``n_hidden``.
    """
    rates = (dropout,) * n_hidden if isinstance(dropout, Real) else tuple(dropout)
    if (len(rates) != n_hidden
            or not all(isinstance(r, Real) and not isinstance(r, bool) and 0 <= r < 1
                       for r in rates)):
        raise ValueError(f"dropout must be a rate in [0, 1) or one such rate per hidden layer "
                         f"({n_hidden}), got {dropout!r}")
    return tuple(float(r) for r in rates)


def image_shape_of(image_shape, n_features):
    """``(height, width)`` of the images in rows of ``n_features`` pixels.

    Parameters
    ----------
    image_shape : tuple (height, width) or None
        None: square images, ``sqrt(n_features)`` on a side.
    n_features : int

    Raises
    ------
    ValueError
        ``image_shape`` is not two positive integers whose product is
        ``n_features``, or None while ``n_features`` is not a square.
    """
    if image_shape is None:
        side = math.isqrt(int(n_features))
        if side * side != n_features:
            raise ValueError(f"augment needs image_shape=(height, width): {n_features} features "
                             f"are not a square image")
        return side, side
    shape = tuple(image_shape)
    if (len(shape) != 2 or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0
                                   for s in shape) or shape[0] * shape[1] != n_features):
        raise ValueError(f"image_shape must be (height, width) with height * width == "
                         f"n_features ({n_features}), got {image_shape!r}")
    return int(shape[0]), int(shape[1])


def check_image_shape(image_shape):
    """Raise ``ValueError`` unless ``image_shape`` is None or two positive integers."""
    if image_shape is None:
        return
    shape = tuple(image_shape)
    if len(shape) != 2 or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0
                                  for s in shape):
        raise ValueError(f"image_shape must be (height, width), two positive integers, "
                         f"got {image_shape!r}")


def jsonable_params(params):
    """Hyper-parameters (``get_params()``) for a JSON file header.

    A ``class_weight`` dict becomes a list of ``[label, weight]`` pairs (JSON
    object keys would turn integer labels into strings); read back with
    :func:`params_from_json`.
    """
    params = dict(params)
    class_weight = params.get("class_weight")
    if isinstance(class_weight, dict):
        params["class_weight"] = [[k.item() if isinstance(k, np.generic) else k, float(v)]
                                  for k, v in class_weight.items()]
    return params


def params_from_json(params):
    """Inverse of :func:`jsonable_params`; JSON lists become tuples again.

    ``hidden_layer_sizes``, ``dropout`` and ``image_shape`` lists become
    tuples and a ``class_weight`` list of pairs a dict. Raises ``TypeError``
    or ``ValueError`` on malformed entries.
    """
    params = dict(params)
    for name in ("hidden_layer_sizes", "dropout", "image_shape"):
        if isinstance(params.get(name), list):
            params[name] = tuple(params[name])
    class_weight = params.get("class_weight")
    if isinstance(class_weight, list):
        params["class_weight"] = {label: weight for label, weight in class_weight}
    return params
