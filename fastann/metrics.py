"""Classification metrics: accuracy, confusion matrix, precision/recall/F1 and text reports.

NumPy only (scikit-learn is not a dependency), with the same definitions and
the same numbers as :mod:`sklearn.metrics` with ``zero_division=0``.

Notation, for one class ``k`` treated as "positive" and every other class as
"negative" (one-vs-rest):

* ``TP_k`` -- samples of class ``k`` predicted as ``k`` (true positives);
* ``FP_k`` -- samples of another class predicted as ``k`` (false positives);
* ``FN_k`` -- samples of class ``k`` predicted as another class (false negatives);
* ``support_k = TP_k + FN_k`` -- samples whose true class is ``k``.

Then (Manning, Raghavan & Schütze, *Introduction to Information Retrieval*,
Cambridge University Press, 2008, sec. 8.3)::

    precision_k = TP_k / (TP_k + FP_k)
    recall_k    = TP_k / (TP_k + FN_k)
    F1_k        = 2 * precision_k * recall_k / (precision_k + recall_k)
                = 2 TP_k / (2 TP_k + FP_k + FN_k)

A ratio whose denominator is zero (a class never predicted, never present, or
both) is defined as 0, as scikit-learn's ``zero_division=0`` does.

Labels may be integers (or integral floats, or booleans) or strings, but not
a mix of numbers and strings. Unless ``labels`` is given, the classes are the
sorted union of the labels found in ``y_true`` and ``y_pred``.
"""

from __future__ import annotations

import numbers
from typing import TypedDict

import numpy as np

__all__ = [
    "AverageMetrics",
    "ClassMetrics",
    "ClassificationMetrics",
    "accuracy_score",
    "classification_report",
    "confusion_matrix",
    "evaluate_predictions",
    "format_confusion_matrix",
    "precision_recall_fscore_support",
]


# --------------------------------------------------------------------------- input checks
def _as_label_array(y, name):
    """Return ``y`` as a 1-D array of numbers or of strings, or raise ValueError."""
    if y is None:
        raise ValueError(f"{name} is None; expected a 1-D array-like of class labels")
    if hasattr(y, "toarray") or hasattr(y, "tocsr"):
        raise ValueError(f"{name} is a sparse matrix; expected a 1-D array-like of class labels")
    try:
        arr = np.asarray(y)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{name} could not be converted to a 1-D array of labels: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D with shape (n_samples,), got an array of shape "
                         f"{arr.shape}; for a column vector use np.ravel({name})")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; metrics need at least one sample")
    if arr.dtype.kind in "US" and not isinstance(y, np.ndarray):
        # np.asarray([0, "a"]) silently turns the number into the string "0"
        arr = np.asarray(y, dtype=object) if arr.ndim == 1 else arr
    if arr.dtype.kind == "O":
        values = arr.tolist()
        if all(isinstance(v, str) for v in values):
            arr = np.array(values, dtype=str)
        elif all(isinstance(v, numbers.Real) for v in values):
            arr = np.array(values)
        else:
            kinds = sorted({type(v).__name__ for v in values})
            raise ValueError(f"{name} mixes label types {kinds}; labels must be all numbers "
                             f"or all strings")
    if arr.dtype.kind == "S":
        arr = arr.astype(str)
    if arr.dtype.kind not in "biufU":
        raise ValueError(f"{name} has unsupported dtype {arr.dtype}; labels must be integers "
                         f"or strings")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinity")
        if np.any(arr != np.round(arr)):
            raise ValueError(f"{name} contains continuous (non-integer) values; classification "
                             f"metrics need discrete class labels")
    return arr


def _kind(arr):
    return "string" if arr.dtype.kind == "U" else "number"


def _check_targets(y_true, y_pred):
    """Validate a pair of label arrays: both 1-D, same non-zero length, same label kind."""
    y_true = _as_label_array(y_true, "y_true")
    y_pred = _as_label_array(y_pred, "y_pred")
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"y_true and y_pred have different lengths: {y_true.shape[0]} "
                         f"and {y_pred.shape[0]}")
    if _kind(y_true) != _kind(y_pred):
        raise ValueError(f"Mix of label input types: y_true holds {_kind(y_true)}s and "
                         f"y_pred holds {_kind(y_pred)}s")
    return y_true, y_pred


def _resolve_labels(y_true, y_pred, labels):
    """The classes to report, as a 1-D array, in order.

    Default: the sorted union of ``y_true`` and ``y_pred``.
    """
    if labels is None:
        return np.union1d(y_true, y_pred)
    if np.asarray(labels, dtype=object).size == 0:
        raise ValueError("labels must contain at least one label")
    labels = _as_label_array(labels, "labels")
    if _kind(labels) != _kind(y_true):
        raise ValueError(f"labels hold {_kind(labels)}s but y_true/y_pred hold "
                         f"{_kind(y_true)}s")
    if np.unique(labels).size != labels.size:
        raise ValueError(f"labels contains duplicates: {labels.tolist()}")
    return labels


def _encode(y, labels):
    """Index of each ``y`` in ``labels``, or -1 where ``y`` is not among ``labels``."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    pos = np.clip(np.searchsorted(sorted_labels, y), 0, labels.size - 1)
    found = sorted_labels[pos] == y
    return np.where(found, order[pos], -1)


def _safe_divide(num, den):
    """``num / den`` elementwise, 0 where ``den == 0`` (no warnings)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _label_name(label):
    return str(label.item() if isinstance(label, np.generic) else label)


def _native(label):
    """A numpy scalar label as the equivalent plain Python value (for JSON)."""
    value = label.item() if isinstance(label, np.generic) else label
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# --------------------------------------------------------------------------- metrics
def accuracy_score(y_true, y_pred):
    """Fraction of samples whose predicted label equals the true label.

    ``accuracy = (1 / n) * sum_i [y_pred_i == y_true_i]``

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels (integers or strings).
    y_pred : array-like of shape (n_samples,)
        Predicted labels, same kind as ``y_true``.

    Returns
    -------
    float
        In ``[0, 1]``.

    Raises
    ------
    ValueError
        Empty or non 1-D input, different lengths, numbers mixed with strings.
    """
    y_true, y_pred = _check_targets(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def _counts(y_true, y_pred, labels):
    """Confusion counts over ``labels``: samples outside ``labels`` are dropped."""
    n = labels.size
    t = _encode(y_true, labels)
    p = _encode(y_pred, labels)
    keep = (t >= 0) & (p >= 0)
    flat = t[keep].astype(np.int64) * n + p[keep]
    return np.bincount(flat, minlength=n * n).reshape(n, n).astype(np.int64)


def confusion_matrix(y_true, y_pred, *, labels=None, normalize=None):
    """Confusion matrix: ``C[i, j]`` = samples of true class ``labels[i]`` predicted as ``labels[j]``.

    Rows are true classes, columns are predicted classes, so the diagonal holds
    the correct predictions, row sums are the class supports and column sums
    the number of times each class was predicted.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels (integers or strings).
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    labels : array-like of shape (n_classes,), optional
        Classes to include, in this order. Samples whose true or predicted label
        is not among them are left out. Default: sorted union of ``y_true`` and
        ``y_pred``.
    normalize : {None, "true", "pred", "all"}, default=None
        ``None``: integer counts. ``"true"``: each row divided by its sum, so
        ``C[i, j]`` is the fraction of class ``i`` predicted as ``j`` and the
        diagonal is the per-class recall; rows with zero support are all zeros.
        ``"pred"``: each column divided by its sum. ``"all"``: divided by the
        total.

    Returns
    -------
    ndarray of shape (n_classes, n_classes)
        int64 counts, or float64 fractions when ``normalize`` is set.

    Raises
    ------
    ValueError
        Invalid input (see :func:`accuracy_score`), empty/duplicate ``labels``,
        or an unknown ``normalize``.
    """
    if normalize not in (None, "true", "pred", "all"):
        raise ValueError(f"normalize must be one of None, 'true', 'pred', 'all'; got {normalize!r}")
    y_true, y_pred = _check_targets(y_true, y_pred)
    labels = _resolve_labels(y_true, y_pred, labels)
    cm = _counts(y_true, y_pred, labels)
    if normalize == "true":
        return _safe_divide(cm, cm.sum(axis=1, keepdims=True))
    if normalize == "pred":
        return _safe_divide(cm, cm.sum(axis=0, keepdims=True))
    if normalize == "all":
        return _safe_divide(cm, cm.sum())
    return cm


def _tp_pred_true(y_true, y_pred, labels):
    """Per class: true positives, number of predictions, number of true samples."""
    t = _encode(y_true, labels)
    p = _encode(y_pred, labels)
    n = labels.size
    hit = (t == p) & (t >= 0)
    tp = np.bincount(t[hit], minlength=n)
    pred = np.bincount(p[p >= 0], minlength=n)
    true = np.bincount(t[t >= 0], minlength=n)
    return tp.astype(np.int64), pred.astype(np.int64), true.astype(np.int64)


def _prf(tp, pred, true, beta=1.0):
    precision = _safe_divide(tp, pred)
    recall = _safe_divide(tp, true)
    b2 = beta * beta
    # F_beta = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP), FN = true - TP, FP = pred - TP
    fscore = _safe_divide((1 + b2) * tp, b2 * true + pred)
    return precision, recall, fscore


def precision_recall_fscore_support(y_true, y_pred, *, labels=None, beta=1.0):
    """Per-class precision, recall, F-score and support.

    For each class ``k`` (one-vs-rest)::

        precision_k = TP_k / (TP_k + FP_k)
        recall_k    = TP_k / (TP_k + FN_k)
        F_beta_k    = (1 + beta^2) P R / (beta^2 P + R)
                    = (1 + beta^2) TP_k / ((1 + beta^2) TP_k + beta^2 FN_k + FP_k)
        support_k   = TP_k + FN_k

    (Manning, Raghavan & Schütze, *Introduction to Information Retrieval*,
    2008, sec. 8.3.) ``beta = 1`` gives F1, the harmonic mean of precision and
    recall. A zero denominator gives 0 (scikit-learn's ``zero_division=0``).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels (integers or strings).
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    labels : array-like of shape (n_classes,), optional
        Classes to report, in this order; they need not occur in the data.
        Default: sorted union of ``y_true`` and ``y_pred``. Unlike
        :func:`confusion_matrix`, samples of other classes still count (as
        false positives/negatives of the listed classes), as in scikit-learn.
    beta : float, default=1.0
        Weight of recall relative to precision in the F-score.

    Returns
    -------
    precision, recall, fscore : ndarray of shape (n_classes,), float64
    support : ndarray of shape (n_classes,), int64

    Raises
    ------
    ValueError
        Invalid input (see :func:`accuracy_score`), empty/duplicate ``labels``,
        or a negative ``beta``.
    """
    if not isinstance(beta, numbers.Real) or not beta >= 0:
        raise ValueError(f"beta must be a non-negative number, got {beta!r}")
    y_true, y_pred = _check_targets(y_true, y_pred)
    labels = _resolve_labels(y_true, y_pred, labels)
    tp, pred, true = _tp_pred_true(y_true, y_pred, labels)
    precision, recall, fscore = _prf(tp, pred, true, beta)
    return precision, recall, fscore, true


def _averages(tp, pred, true):
    """Micro, macro and support-weighted averages of precision, recall, F1.

    * micro: the ratios of the summed counts, ``sum TP / sum (TP + FP)`` etc.;
      equal to accuracy when every class present is listed;
    * macro: unweighted mean of the per-class values;
    * weighted: mean of the per-class values weighted by support.
    """
    precision, recall, f1 = _prf(tp, pred, true)
    total = int(true.sum())
    micro = _prf(tp.sum(), pred.sum(), true.sum())
    weights = true / total if total else np.zeros_like(precision)
    return {
        "micro": (*(float(v) for v in micro), total),
        "macro": (float(precision.mean()), float(recall.mean()), float(f1.mean()), total),
        "weighted": (float(precision @ weights), float(recall @ weights),
                     float(f1 @ weights), total),
    }


def classification_report(y_true, y_pred, *, labels=None, target_names=None, digits=4):
    """Text table of per-class precision, recall, F1 and support, then the averages.

    The layout and the numbers are those of
    ``sklearn.metrics.classification_report(..., zero_division=0)``::

                      precision    recall  f1-score   support

                   0     0.9898    0.9939    0.9918       980
                 ...
            accuracy                         0.9812     10000
           macro avg     0.9811    0.9810    0.9810     10000
        weighted avg     0.9812    0.9812    0.9812     10000

    * ``accuracy``: fraction of correct predictions (this is also the micro
      average of precision, recall and F1). When ``labels`` leaves out a class
      that occurs in the data, a ``micro avg`` row over the listed classes is
      shown instead.
    * ``macro avg``: unweighted mean over classes (each class counts equally).
    * ``weighted avg``: mean weighted by support (frequent classes count more).
    * ``support``: number of samples of the class in ``y_true``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_pred : array-like of shape (n_samples,)
    labels : array-like of shape (n_classes,), optional
        Classes to list, in this order. Default: sorted union of both inputs.
    target_names : sequence of str of length n_classes, optional
        Names shown for ``labels``. Default: ``str(label)``.
    digits : int, default=4
        Decimal places of the ratios.

    Returns
    -------
    str
        The table, ending with a newline.

    Raises
    ------
    ValueError
        Invalid input, or ``target_names`` of the wrong length.
    """
    if not isinstance(digits, numbers.Integral) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer, got {digits!r}")
    y_true, y_pred = _check_targets(y_true, y_pred)
    labels_given = labels is not None
    labels = _resolve_labels(y_true, y_pred, labels)
    if target_names is None:
        target_names = [_label_name(label) for label in labels]
    else:
        target_names = [str(name) for name in target_names]
        if len(target_names) != labels.size:
            raise ValueError(f"target_names has {len(target_names)} names but there are "
                             f"{labels.size} labels ({labels.tolist()[:20]})")
    tp, pred, true = _tp_pred_true(y_true, y_pred, labels)
    precision, recall, f1 = _prf(tp, pred, true)
    present = np.union1d(y_true, y_pred)
    micro_is_accuracy = not labels_given or bool(np.isin(present, labels).all())

    headers = ["precision", "recall", "f1-score", "support"]
    width = max(max(len(name) for name in target_names), len("weighted avg"), digits)
    head_fmt = "{:>{width}s} " + " {:>9}" * len(headers)
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    report = head_fmt.format("", *headers, width=width) + "\n\n"
    for name, p, r, f, s in zip(target_names, precision, recall, f1, true):
        report += row_fmt.format(name, p, r, f, int(s), width=width, digits=digits)
    report += "\n"
    for average, (p, r, f, s) in _averages(tp, pred, true).items():
        if average == "micro" and micro_is_accuracy:
            report += ("{:>{width}s} " + " {:>9}" * 2 + " {:>9.{digits}f} {:>9}\n").format(
                "accuracy", "", "", f, s, width=width, digits=digits)
        else:
            report += row_fmt.format(f"{average} avg", p, r, f, s, width=width, digits=digits)
    return report


def format_confusion_matrix(cm, labels=None, *, digits=3):
    """Render a confusion matrix as an aligned text table for the terminal.

    Rows are true classes, columns predicted classes (as returned by
    :func:`confusion_matrix`)::

        true \\ pred    0    1    2
                  0   50    1    0
                  1    2   47    3
                  2    0    4   43

    Parameters
    ----------
    cm : array-like of shape (n_classes, n_classes)
        Counts (shown as integers) or fractions (shown with ``digits`` decimals).
    labels : sequence of length n_classes, optional
        Class names for the rows and columns. Default: ``0 .. n_classes - 1``.
    digits : int, default=3
        Decimal places for non-integer matrices.

    Returns
    -------
    str
        The table, one line per true class after a header line, no trailing newline.

    Raises
    ------
    ValueError
        ``cm`` is not square 2-D, or ``labels`` has the wrong length.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"cm must be a non-empty square 2-D array, got shape {cm.shape}")
    n = cm.shape[0]
    if labels is None:
        labels = range(n)
    names = [_label_name(label) for label in labels]
    if len(names) != n:
        raise ValueError(f"labels has {len(names)} entries but cm is {n} x {n}")
    if cm.dtype.kind not in "biuf":
        raise ValueError(f"cm must hold numbers, got dtype {cm.dtype}")
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


# --------------------------------------------------------------------------- everything at once
class ClassMetrics(TypedDict):
    """Metrics of one class (``per_class`` entries of :class:`ClassificationMetrics`)."""

    label: int | float | str | bool
    precision: float
    recall: float
    f1: float
    support: int


class AverageMetrics(TypedDict):
    """Averaged precision/recall/F1 and the total support."""

    precision: float
    recall: float
    f1: float
    support: int


class ClassificationMetrics(TypedDict):
    """What :func:`evaluate_predictions` returns: plain Python values only (JSON-ready)."""

    n_samples: int
    accuracy: float
    labels: list
    per_class: list[ClassMetrics]
    macro: AverageMetrics
    weighted: AverageMetrics
    confusion_matrix: list[list[int]]


def evaluate_predictions(y_true, y_pred, labels=None) -> ClassificationMetrics:
    """All metrics of a set of predictions, as a JSON-serializable dict.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_pred : array-like of shape (n_samples,)
    labels : array-like of shape (n_classes,), optional
        Classes to report, in this order (default: sorted union of both inputs).
        ``accuracy`` always covers every sample.

    Returns
    -------
    dict (:class:`ClassificationMetrics`)
        ``n_samples`` (int), ``accuracy`` (float), ``labels`` (list, numpy
        scalars converted to ``int``/``str``), ``per_class`` (list of dicts with
        ``label``, ``precision``, ``recall``, ``f1``, ``support``), ``macro`` and
        ``weighted`` (dicts with ``precision``, ``recall``, ``f1``, ``support``)
        and ``confusion_matrix`` (list of lists of int; rows true, columns
        predicted). ``json.dumps`` works on it as is.

    Raises
    ------
    ValueError
        See :func:`precision_recall_fscore_support`.
    """
    y_true, y_pred = _check_targets(y_true, y_pred)
    labels = _resolve_labels(y_true, y_pred, labels)
    tp, pred, true = _tp_pred_true(y_true, y_pred, labels)
    precision, recall, f1 = _prf(tp, pred, true)
    averages = _averages(tp, pred, true)
    names = [_native(label) for label in labels]

    def as_average(values):
        p, r, f, s = values
        return {"precision": p, "recall": r, "f1": f, "support": int(s)}

    return {
        "n_samples": int(y_true.shape[0]),
        "accuracy": float(np.mean(y_true == y_pred)),
        "labels": names,
        "per_class": [
            {"label": name, "precision": float(p), "recall": float(r), "f1": float(f),
             "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, true)
        ],
        "macro": as_average(averages["macro"]),
        "weighted": as_average(averages["weighted"]),
        "confusion_matrix": _counts(y_true, y_pred, labels).tolist(),
    }
