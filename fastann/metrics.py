r"""Plain-text confusion matrix for the terminal.

The metrics themselves come from scikit-learn: use
:func:`sklearn.metrics.accuracy_score`, :func:`sklearn.metrics.confusion_matrix`,
:func:`sklearn.metrics.precision_recall_fscore_support` and
:func:`sklearn.metrics.classification_report` (pass ``zero_division=0`` to get
0 instead of a warning for a class that is never predicted). This module only
adds what scikit-learn lacks: :func:`format_confusion_matrix`, the aligned text
table that ``fastann evaluate`` prints (scikit-learn draws confusion matrices
only as matplotlib figures).

>>> from sklearn.metrics import confusion_matrix
>>> print(format_confusion_matrix(confusion_matrix([0, 1, 1], [0, 1, 0]), ["a", "b"]))
true \ pred  a  b
          a  1  0
          b  1  1
"""

from __future__ import annotations

import numpy as np

__all__ = ["format_confusion_matrix"]


def format_confusion_matrix(cm, labels=None, *, digits=3):
    r"""Render a confusion matrix as an aligned text table for the terminal.

    Rows are true classes, columns predicted classes (as returned by
    :func:`sklearn.metrics.confusion_matrix`)::

        true \ pred   0   1   2
                 0  50   1   0
                 1   2  47   3
                 2   0   4  43

    Parameters
    ----------
    cm : array-like of shape (n_classes, n_classes)
        Counts (shown as integers) or fractions, e.g. from
        ``confusion_matrix(..., normalize="true")`` (shown with ``digits``
        decimals). A float matrix whose values are all whole numbers and not
        all within ``[-1, 1]`` is taken as counts.
    labels : sequence of length n_classes, optional
        Class names for the rows and columns, shown with ``str`` (numpy scalars
        as their value: ``5``, not ``np.int64(5)``). Default: ``0 .. n_classes - 1``.
    digits : int, default=3
        Decimal places for fractions.

    Returns
    -------
    str
        A header line, then one line per true class, all of the same length;
        no trailing newline.

    Raises
    ------
    ValueError
        ``cm`` is not a non-empty square 2-D array of numbers, or ``labels``
        has the wrong length.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"cm must be a non-empty square 2-D array, got shape {cm.shape}")
    if cm.dtype.kind not in "biuf":
        raise ValueError(f"cm must hold numbers, got dtype {cm.dtype}")
    n = cm.shape[0]
    names = [str(label) for label in (range(n) if labels is None else labels)]
    if len(names) != n:
        raise ValueError(f"labels has {len(names)} entries but cm is {n} x {n}")
    # counts stored as floats print as integers; fractions (all <= 1) with decimals
    integral = cm.dtype.kind in "biu" or (
        bool(np.isfinite(cm).all()) and np.array_equal(cm, np.round(cm))
        and float(np.abs(cm).max()) > 1)
    if integral:
        cells = [[str(int(v)) for v in row] for row in cm]
    else:
        cells = [[f"{float(v):.{digits}f}" for v in row] for row in cm]
    corner = "true \\ pred"
    first = max(len(corner), *(len(name) for name in names))
    col = max(max(len(name) for name in names), max(len(c) for row in cells for c in row))
    lines = [f"{corner:>{first}}" + "".join(f"  {name:>{col}}" for name in names)]
    for name, row in zip(names, cells):
        lines.append(f"{name:>{first}}" + "".join(f"  {c:>{col}}" for c in row))
    return "\n".join(lines)
