"""Input validation: turn user data into the arrays the kernels expect, or say what is wrong."""
import collections.abc
import datetime
import numbers
import warnings

import numpy as np

from .exceptions import DataConversionWarning


def _reject_sparse(X, name):
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(f"{name} is a sparse matrix; fastann needs dense data "
                        f"(sparse input is not supported): call X.toarray() first")


def _reject_iterator(X, name):
    """Generators and other one-shot iterators have no length or shape to check."""
    if isinstance(X, (collections.abc.Iterator, collections.abc.Generator)):
        raise TypeError(f"{name} is a {type(X).__name__} (an iterator), not an array: fastann "
                        f"needs an array-like with a shape, e.g. np.array(list({name}))")


def _is_dateish(value):
    return isinstance(value, (np.datetime64, np.timedelta64, datetime.date, datetime.time,
                              datetime.timedelta))


def check_features(X, *, dtype, name="X"):
    """Validate a feature matrix and return it C-contiguous, uint8 or ``dtype``.

    uint8 data (images) is kept as uint8, since the kernels normalize it while
    gathering each mini-batch; everything else is converted to ``dtype``.

    Parameters
    ----------
    X : array-like, shape (n_samples, n_features)
    dtype : numpy dtype
        float32 or float64.

    Returns
    -------
    ndarray, shape (n_samples, n_features), uint8 or ``dtype``, C-contiguous

    Raises
    ------
    TypeError
        Sparse input, or an object array holding values that are neither
        numbers nor strings (dicts, lists...).
    ValueError
        Not 2-D, empty, complex, non-numeric strings, or containing NaN or infinity.
    """
    _reject_sparse(X, name)
    if X is None:
        raise ValueError(f"{name} is None; expected a 2-D array of shape (n_samples, n_features)")
    _reject_iterator(X, name)
    arr = np.asarray(X)
    if arr.dtype.kind in "mM" or (arr.dtype.kind == "O" and any(map(_is_dateish, arr.flat))):
        kind = "dates or times" if arr.dtype.kind != "m" else "time differences"
        raise ValueError(f"{name} holds {kind} (dtype {arr.dtype}), which are not numeric "
                         f"features: convert them to numbers yourself (e.g. days since a "
                         f"reference date) before fitting")
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {arr.ndim}D array instead: {name} must have shape "
            f"(n_samples, n_features). Reshape your data either using X.reshape(-1, 1) "
            f"for a single feature or X.reshape(1, -1) for a single sample")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: found array with 0 sample(s) (shape={arr.shape}) "
                         f"while a minimum of 1 is required.")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: found array with 0 feature(s) (shape={arr.shape}) "
                         f"while a minimum of 1 is required.")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except TypeError as exc:  # objects that are not numbers or strings
            raise TypeError(f"{name} must be numeric, but dtype {arr.dtype} could not be "
                            f"converted to float: {exc}") from exc
        except ValueError as exc:  # strings that do not parse as numbers
            raise ValueError(f"{name} must be numeric, but dtype {arr.dtype} could not be "
                             f"converted to float: {exc}") from exc
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        kind = "NaN" if np.isnan(arr).any() else "infinity"
        raise ValueError(f"Input {name} contains {kind}; remove or impute those values")
    return arr


def check_labels(y, n_samples):
    """Validate classification targets: 1-D, one per sample, finite, discrete.

    Parameters
    ----------
    y : array-like, shape (n_samples,) or (n_samples, 1)
    n_samples : int

    Returns
    -------
    ndarray, shape (n_samples,)

    Raises
    ------
    ValueError
        ``y`` is None, has the wrong length, is 2-D with several columns,
        contains NaN/infinity, or holds continuous values ("Unknown label type").
    """
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    _reject_sparse(y, "y")
    _reject_iterator(y, "y")
    arr = np.asarray(y)
    if arr.dtype.kind in "US" and not isinstance(y, np.ndarray):
        # np.asarray([1, "a"]) silently makes strings of the numbers: look at the items.
        _check_label_types(np.asarray(y, dtype=object))
    if arr.ndim == 2 and arr.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected. "
                      "Please change the shape of y to (n_samples,), for example using ravel().",
                      DataConversionWarning, stacklevel=3)
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"y should be a 1d array of class labels, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"X and y have different numbers of samples: {n_samples} and {arr.shape[0]}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError("Input y contains NaN or infinity")
        if np.any(arr != np.round(arr)):
            raise ValueError("Unknown label type: continuous values in y; "
                             "MLPClassifier needs discrete class labels")
    elif arr.dtype.kind == "O":
        strings = _check_label_types(arr)
        if any(isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)
               and not float(v).is_integer() for v in arr):
            raise ValueError("Unknown label type: continuous values in y")
        try:
            arr = arr.astype(str) if strings else arr.astype(np.int64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"Unknown label type: y mixes labels of several kinds ({exc})") from exc
    elif arr.dtype.kind not in "biuUS":
        raise ValueError(f"Unknown label type: y has dtype {arr.dtype}")
    return arr


def _check_label_types(labels):
    """Raise ValueError unless the items of an object array are all strings or all numbers.

    Returns
    -------
    bool
        Whether the labels are strings.
    """
    kinds = set()
    for value in labels.ravel():
        if isinstance(value, (str, np.str_, bytes)):
            kinds.add("string")
        elif isinstance(value, (numbers.Real, np.bool_)):
            kinds.add("number")
        else:
            raise ValueError(f"Unknown label type: y holds {type(value).__name__} values "
                             f"({value!r}); class labels are numbers or strings")
        if len(kinds) > 1:
            raise ValueError("Mix of label input types (string and number) in y: use labels "
                             "of one type, e.g. y.astype(str)")
    return kinds == {"string"}


def encode_labels(y, classes):
    """Map labels to indices into ``classes`` (sorted), as int32.

    Raises
    ------
    ValueError
        A label in ``y`` is not among ``classes``.
    """
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, len(classes) - 1)
    unseen = classes[idx] != y
    if np.any(unseen):
        bad = np.unique(y[unseen])[:5]
        # tolist() gives plain Python scalars: [5], not [np.int64(5)].
        raise ValueError(f"y contains labels not seen in classes {classes[:20].tolist()}: "
                         f"{bad.tolist()}")
    return idx.astype(np.int32)


def split_validation(X, y_idx, classes, validation_data, fraction, rng, dtype,
                     sample_weight=None):
    """The training rows and the validation set ``(X_val, y_val_codes)`` (or None).

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
    y_idx : ndarray, shape (n_samples,), class codes
    classes : ndarray
        Sorted class labels, for encoding ``validation_data``'s labels.
    validation_data : tuple (X_val, y_val) or None
        Used as given when not None.
    fraction : float
        Otherwise, this fraction of the rows (at least one) is held out at
        random (``rng.permutation``); 0 holds out nothing.
    rng : numpy.random.Generator
    dtype : numpy dtype
        Float dtype for non-uint8 ``X_val``.
    sample_weight : ndarray, shape (n_samples,), optional
        Per-row weights, split with the rows (the held-out rows' weights are
        dropped: validation metrics are unweighted).

    Returns
    -------
    X, y_idx, validation
        And, only when ``sample_weight`` is given, the training rows' weights
        as a fourth value.

    Raises
    ------
    ValueError
        Malformed ``validation_data``, a feature count different from ``X``,
        labels not in ``classes``, or a fraction that leaves no training rows.
    """
    if validation_data is not None:
        try:
            X_val, y_val = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a tuple (X_val, y_val)") from None
        X_val = check_features(X_val, dtype=dtype, name="X_val")
        if X_val.shape[1] != X.shape[1]:
            raise ValueError(f"X_val has {X_val.shape[1]} features but X has {X.shape[1]}")
        y_val = check_labels(y_val, X_val.shape[0])
        validation = (X_val, encode_labels(y_val, classes))
        return (X, y_idx, validation) if sample_weight is None else (X, y_idx, validation,
                                                                       sample_weight)
    if fraction == 0:
        return (X, y_idx, None) if sample_weight is None else (X, y_idx, None, sample_weight)
    n_val = max(1, int(round(fraction * X.shape[0])))
    if n_val >= X.shape[0]:
        raise ValueError(f"validation_fraction={fraction} leaves no training samples "
                         f"out of {X.shape[0]}")
    perm = rng.permutation(X.shape[0])
    val_rows, train_rows = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    y_idx = y_idx.astype(np.int32)
    split = X[train_rows], y_idx[train_rows], (X[val_rows], y_idx[val_rows])
    return split if sample_weight is None else split + (sample_weight[train_rows],)


def normalization_map(X, mode, dtype, sample_weight=None):
    """Per-feature ``(scale, shift)`` with ``x_normalized = x * scale + shift``.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features), the training data
    mode : {"auto", "simple", "standard", "none"}
        ``simple``: ``x / 255``; ``standard``: ``(x - mean) / std`` per feature
        (std 1 for constant features); ``auto``: simple for uint8, else standard.
    dtype : numpy dtype of the result
    sample_weight : ndarray, shape (n_samples,), optional
        ``standard`` then uses the weighted mean and standard deviation
        (``sum w x / sum w`` and ``sqrt(sum w (x - mean)**2 / sum w)``), so
        that integer weights act like repeated rows.

    Returns
    -------
    scale, shift : ndarray, shape (n_features,)
    """
    if mode == "auto":
        mode = "simple" if X.dtype == np.uint8 else "standard"
    d = X.shape[1]
    if mode == "standard" and sample_weight is not None:
        mean, std = _weighted_mean_std(X, sample_weight)
        std[std == 0] = 1.0
        return (1.0 / std).astype(dtype), (-mean / std).astype(dtype)
    if mode == "standard":
        mean, std = X.mean(axis=0, dtype=np.float64), X.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        return (1.0 / std).astype(dtype), (-mean / std).astype(dtype)
    return np.full(d, 1.0 / 255.0 if mode == "simple" else 1.0, dtype), np.zeros(d, dtype)


def _weighted_mean_std(X, weights, rows=4096):
    """Per-feature weighted mean and standard deviation, float64, in chunks of ``rows``."""
    total = float(np.sum(weights))
    mean = np.zeros(X.shape[1])
    for lo in range(0, X.shape[0], rows):
        mean += weights[lo:lo + rows] @ X[lo:lo + rows].astype(np.float64)
    mean /= total
    var = np.zeros(X.shape[1])
    for lo in range(0, X.shape[0], rows):
        centered = X[lo:lo + rows].astype(np.float64) - mean
        var += weights[lo:lo + rows] @ (centered * centered)
    return mean, np.sqrt(var / total)
