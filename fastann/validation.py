"""Input validation: turn user data into the arrays the kernels expect, or say what is wrong."""
import numbers
import warnings

import numpy as np

from .exceptions import DataConversionWarning


def _reject_sparse(X, name):
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(f"{name} is a sparse matrix; fastann needs dense data "
                        f"(sparse input is not supported): call X.toarray() first")


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
    arr = np.asarray(X)
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
    arr = np.asarray(y)
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
        if any(isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral)
               and not float(v).is_integer() for v in arr):
            raise ValueError("Unknown label type: continuous values in y")
        try:
            arr = arr.astype(str) if any(isinstance(v, str) for v in arr) else arr.astype(np.int64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Unknown label type: y mixes labels of several kinds ({exc})") from exc
    elif arr.dtype.kind not in "biuUS":
        raise ValueError(f"Unknown label type: y has dtype {arr.dtype}")
    return arr


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


def check_positive(name, value, *, integer=False, allow_zero=False):
    """Raise ValueError unless ``value`` is a positive (or non-negative) number."""
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "integer" if integer else "number"
        sign = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a {sign} {what}, got {value!r}")


def check_choice(name, value, choices):
    """Raise ValueError unless ``value`` is one of ``choices``, listing them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, choices))}")
