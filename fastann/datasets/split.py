"""Holding out the last rows of a training set for validation."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["train_validation_split"]


def train_validation_split(X: np.ndarray, y: np.ndarray, validation: int | float = 10000):
    """Split off the last rows of a training set as a validation set.

    With the default, the 60,000 MNIST training images become the classic
    50,000 training + 10,000 validation images.

    Parameters
    ----------
    X : numpy.ndarray
        Shape ``(n, ...)``.
    y : numpy.ndarray
        Shape ``(n,)``.
    validation : int or float
        Number of validation rows (int), or the fraction of rows
        (float in (0, 1), rounded to the nearest row count).

    Returns
    -------
    X_train, y_train, X_val, y_val : numpy.ndarray
        Views of `X` and `y` (no copy): rows ``[:n - k]`` and ``[n - k:]``.

    Raises
    ------
    ValueError
        `X` and `y` differ in length, or `validation` leaves no training or
        no validation rows.
    TypeError
        `validation` is not a number (or is a bool).
    """
    n = len(X)
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    if isinstance(validation, bool) or not isinstance(validation, numbers.Real):
        raise TypeError(f"validation must be an int or a float, got {validation!r}")
    if isinstance(validation, numbers.Integral):
        n_val = int(validation)
    elif 0 < validation < 1:
        n_val = round(n * float(validation))
    else:
        raise ValueError(f"a float validation must be a fraction in (0, 1), got {validation!r}")
    if not 0 < n_val < n:
        raise ValueError(f"validation={validation!r} gives {n_val} validation rows out of {n}; "
                         f"it must leave at least one training and one validation row")
    cut = n - n_val
    return X[:cut], y[:cut], X[cut:], y[cut:]
