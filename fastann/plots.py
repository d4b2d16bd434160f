"""Figures of a training run: learning curves, confusion matrix, mistakes, first-layer weights.

Needs matplotlib, an optional extra (``pip install fastann[plot]``); it is
imported only when a function here is called.

Every function builds a :class:`matplotlib.figure.Figure` directly and never
touches :mod:`matplotlib.pyplot`, so nothing depends on a display or on
pyplot's global "current figure": the functions work headless (servers, CI)
and from several threads at once, and figures are freed like any other object
(no ``plt.close`` needed). Show one in a notebook by evaluating it, or save it
with :func:`save_figure`. :func:`new_figure` makes such a figure for your own
plots.

Sizes are chosen to be readable at 100 % zoom: about 8 inches wide at
:data:`DEFAULT_DPI`, with no text smaller than :data:`MIN_FONT_SIZE` points.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_DPI",
    "new_figure",
    "plot_confusion_matrix",
    "plot_first_layer_weights",
    "plot_learning_curves",
    "plot_misclassified",
    "plot_validation_correct",
    "save_figure",
    "save_training_plots",
]

DEFAULT_DPI = 110
MIN_FONT_SIZE = 9
_TITLE_SIZE = 12
_LABEL_SIZE = 10
_TRAIN_COLOR = "tab:blue"
_VAL_COLOR = "tab:orange"


def _figure_class():
    """``matplotlib.figure.Figure``, or an ImportError saying how to install matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("fastann.plots needs matplotlib, an optional dependency; "
                          "install it with: pip install fastann[plot]") from exc
    return Figure


def new_figure(width, height):
    """A white figure in fastann's style, not attached to pyplot.

    Every plot in this module starts from one; use it for your own figures to
    get the same look and the same headless, thread-safe behaviour (see the
    module docstring). Add axes with ``fig.subplots()`` or
    ``fig.add_subplot()``, save with :func:`save_figure`.

    Parameters
    ----------
    width, height : float
        Size in inches; at :data:`DEFAULT_DPI` (110) an 8-inch-wide figure is
        about 880 pixels wide.

    Returns
    -------
    matplotlib.figure.Figure
        With ``dpi=DEFAULT_DPI``, the "constrained" layout (labels and colour
        bars do not overlap) and a white background.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    """
    Figure = _figure_class()
    return Figure(figsize=(width, height), dpi=DEFAULT_DPI, layout="constrained",
                  facecolor="white")


def _style_axes(ax):
    ax.tick_params(labelsize=MIN_FONT_SIZE + 1)
    ax.grid(True, alpha=0.3)


# --------------------------------------------------------------------------- learning curves
_HISTORY_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def _history_columns(history):
    """Epochs and the four curves of ``history`` as float arrays (None becomes NaN)."""
    if isinstance(history, dict):  # also accept columns: {"epoch": [...], "train_loss": [...]}
        n = len(next(iter(history.values()), []))
        history = [{key: values[i] for key, values in history.items()} for i in range(n)]
    history = list(history)
    if not history:
        raise ValueError("history is empty: the model has not been trained for any epoch")

    def column(key):
        values = [record.get(key) for record in history]
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

    epochs = column("epoch")
    if np.isnan(epochs).any():
        epochs = np.arange(1, len(history) + 1, dtype=np.float64)
    return epochs, {key: column(key) for key in _HISTORY_KEYS}


def _has_values(values):
    return bool(np.isfinite(values).any())


def _plot_curve(ax, epochs, values, label, color, linestyle):
    marker = "o" if len(epochs) <= 30 else None
    ax.plot(epochs, values, color=color, linestyle=linestyle, marker=marker, markersize=4,
            linewidth=1.8, label=label)


def _integer_epoch_axis(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch", fontsize=_LABEL_SIZE + 1)


def plot_learning_curves(history):
    """Loss and accuracy per epoch, on the training and the validation data.

    Parameters
    ----------
    history : list of dict
        One record per epoch (``MLPClassifier.history_``) with keys ``epoch``,
        ``train_loss``, ``train_accuracy``, ``val_loss`` and ``val_accuracy``
        (accuracies in ``[0, 1]``). ``val_*`` may be None or NaN (no validation
        data); then only the training curves are drawn. A dict of equal-length
        lists with those keys is accepted too.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: "Loss" (log scale when it spans more than a factor of 30) and
        "Accuracy" (percent), epoch on the x axis; training solid, validation
        dashed, best validation accuracy marked.

    Raises
    ------
    ValueError
        ``history`` is empty.
    ImportError
        matplotlib is not installed.
    """
    epochs, cols = _history_columns(history)
    fig = new_figure(9, 4.8)
    from matplotlib.ticker import PercentFormatter

    ax_loss, ax_acc = fig.subplots(1, 2)

    for key, label, color, style in (("train_loss", "training", _TRAIN_COLOR, "-"),
                                     ("val_loss", "validation", _VAL_COLOR, "--")):
        if _has_values(cols[key]):
            _plot_curve(ax_loss, epochs, cols[key], label, color, style)
    losses = np.concatenate([cols["train_loss"], cols["val_loss"]])
    losses = losses[np.isfinite(losses)]
    log_scale = losses.size > 0 and losses.min() > 0 and losses.max() / losses.min() > 30
    if log_scale:
        ax_loss.set_yscale("log")
    ax_loss.set_title("Loss", fontsize=_TITLE_SIZE)
    ax_loss.set_ylabel("cross-entropy loss" + (" (log scale)" if log_scale else ""),
                       fontsize=_LABEL_SIZE + 1)

    if _has_values(cols["train_accuracy"]):
        _plot_curve(ax_acc, epochs, cols["train_accuracy"], "training", _TRAIN_COLOR, "-")
    val_acc = cols["val_accuracy"]
    if _has_values(val_acc):
        best = int(np.nanargmax(val_acc))
        _plot_curve(ax_acc, epochs, val_acc,
                    f"validation (best {val_acc[best]:.2%} at epoch {epochs[best]:g})",
                    _VAL_COLOR, "--")
        ax_acc.plot([epochs[best]], [val_acc[best]], marker="*", markersize=14,
                    color=_VAL_COLOR, markeredgecolor="black", linestyle="none")
    ax_acc.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax_acc.set_title("Accuracy", fontsize=_TITLE_SIZE)
    ax_acc.set_ylabel("accuracy", fontsize=_LABEL_SIZE + 1)

    for ax in (ax_loss, ax_acc):
        _integer_epoch_axis(ax)
        _style_axes(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=_LABEL_SIZE, loc="best")
    if not _has_values(cols["val_loss"]) and not _has_values(val_acc):
        fig.suptitle("Learning curves (no validation data)", fontsize=_TITLE_SIZE + 1)
    else:
        fig.suptitle("Learning curves", fontsize=_TITLE_SIZE + 1)
    return fig


def plot_validation_correct(history, n_validation):
    """Number of correctly classified validation samples after each epoch.

    The classic "epoch vs. correctly classified (out of 10000)" plot;
    ``correct = round(val_accuracy * n_validation)``.

    Parameters
    ----------
    history : list of dict
        Per-epoch records with ``epoch`` and ``val_accuracy`` (see
        :func:`plot_learning_curves`).
    n_validation : int
        Number of validation samples (10000 for the MNIST test set).

    Returns
    -------
    matplotlib.figure.Figure
        One axes, titled "Correctly classified validation samples (out of N)".

    Raises
    ------
    ValueError
        ``history`` is empty or has no validation accuracy, or
        ``n_validation`` is not a positive integer.
    ImportError
        matplotlib is not installed.
    """
    if isinstance(n_validation, bool) or not isinstance(n_validation, (int, np.integer)) \
            or n_validation <= 0:
        raise ValueError(f"n_validation must be a positive integer, got {n_validation!r}")
    n_validation = int(n_validation)
    epochs, cols = _history_columns(history)
    val_acc = cols["val_accuracy"]
    if not _has_values(val_acc):
        raise ValueError("history has no validation accuracy (val_accuracy is None in every "
                         "epoch); train with validation_data or validation_fraction > 0")
    correct = np.round(val_acc * n_validation)

    fig = new_figure(8, 5)
    ax = fig.subplots()
    _plot_curve(ax, epochs, correct, "validation", _VAL_COLOR, "-")
    best = int(np.nanargmax(correct))
    ax.plot([epochs[best]], [correct[best]], marker="*", markersize=14, color=_VAL_COLOR,
            markeredgecolor="black", linestyle="none",
            label=f"best: {int(correct[best])} at epoch {epochs[best]:g}")
    last = int(np.flatnonzero(np.isfinite(correct))[-1])
    ax.annotate(f"{int(correct[last])}", (epochs[last], correct[last]),
                textcoords="offset points", xytext=(0, -16), ha="center",
                fontsize=_LABEL_SIZE)
    ax.set_title(f"Correctly classified validation samples (out of {n_validation})",
                 fontsize=_TITLE_SIZE)
    ax.set_ylabel(f"correctly classified (out of {n_validation})", fontsize=_LABEL_SIZE + 1)
    _integer_epoch_axis(ax)
    _style_axes(ax)
    ax.legend(fontsize=_LABEL_SIZE, loc="lower right")
    return fig


# --------------------------------------------------------------------------- confusion matrix
def _text_color(rgba):
    """Black or white, whichever contrasts more with a cell of colour ``rgba``."""
    def linear(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c) for c in rgba[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b  # WCAG relative luminance
    return "white" if luminance < 0.179 else "black"


def plot_confusion_matrix(cm, labels=None, normalize=False):
    """Heatmap of a confusion matrix with the value written in each cell.

    Parameters
    ----------
    cm : array-like of shape (n_classes, n_classes)
        Counts, rows = true class, columns = predicted class (as returned by
        :func:`sklearn.metrics.confusion_matrix`).
    labels : sequence of length n_classes, optional
        Class names. Default: ``0 .. n_classes - 1``.
    normalize : bool, default=False
        Divide each row by its sum (fraction of each true class; the diagonal
        is the per-class recall). Rows with no samples stay 0.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: the heatmap (x label "predicted", y label "true") and its
        colour bar. Cell text is white on dark cells and black on light ones;
        zero cells are drawn faint. Values are not written when there are more
        than 30 classes.

    Raises
    ------
    ValueError
        ``cm`` is not square, or ``labels`` has the wrong length.
    ImportError
        matplotlib is not installed.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"cm must be a non-empty square 2-D array, got shape {cm.shape}")
    n = cm.shape[0]
    names = [str(label) for label in (range(n) if labels is None else labels)]
    if len(names) != n:
        raise ValueError(f"labels has {len(names)} entries but cm is {n} x {n}")
    total = cm.sum()
    accuracy = np.trace(cm) / total if total > 0 else float("nan")
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        values = np.divide(cm, rows, out=np.zeros_like(cm), where=rows != 0)
    else:
        values = cm
    integral = np.array_equal(values, np.round(values))

    size = min(12.0, max(6.0, 0.55 * n + 2.5))
    fig = new_figure(size + 1.2, size)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=max(float(values.max()), 1e-12),
                      interpolation="nearest")
    colorbar = fig.colorbar(image, ax=ax, shrink=0.85)
    colorbar.ax.tick_params(labelsize=MIN_FONT_SIZE + 1)
    colorbar.set_label("fraction of the true class" if normalize else "samples",
                       fontsize=_LABEL_SIZE + 1)

    ax.set_xticks(np.arange(n), labels=names)
    ax.set_yticks(np.arange(n), labels=names)
    ax.tick_params(labelsize=_LABEL_SIZE + 1, length=0)
    if max(len(name) for name in names) > 3:
        ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel("predicted", fontsize=_LABEL_SIZE + 2)
    ax.set_ylabel("true", fontsize=_LABEL_SIZE + 2)
    title = "Confusion matrix"
    if normalize:
        title += " (normalized by true class)"
    if np.isfinite(accuracy) and np.array_equal(cm, np.round(cm)):
        title += f"\n{int(total)} samples, accuracy {accuracy:.2%}"
    ax.set_title(title, fontsize=_TITLE_SIZE)
    # thin white grid between cells
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)

    if n <= 30:
        font = max(MIN_FONT_SIZE, 12 if n <= 12 else 10 if n <= 20 else MIN_FONT_SIZE)
        cmap, norm = image.cmap, image.norm
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                text = f"{int(v)}" if integral else f"{v:.2f}"
                if not integral and v == 0:
                    text = "0"
                ax.text(j, i, text, ha="center", va="center", fontsize=font,
                        color=_text_color(cmap(norm(v))), alpha=0.45 if v == 0 else 1.0,
                        fontweight="bold" if i == j else "normal")
    return fig


# --------------------------------------------------------------------------- images
def _grid(n):
    """(rows, columns) for ``n`` panels: one row up to 6, else a near-square grid."""
    ncols = n if n <= 6 else math.ceil(math.sqrt(n))
    return math.ceil(n / ncols), ncols


def _check_image_rows(X, image_shape, name):
    X = np.asarray(X)
    if X.ndim == 1 + len(image_shape) and X.shape[1:] == tuple(image_shape):
        return X
    if X.ndim != 2:
        raise ValueError(f"{name} must have shape (n_samples, {math.prod(image_shape)}) or "
                         f"(n_samples, *{tuple(image_shape)}), got {X.shape}")
    if X.shape[1] != math.prod(image_shape):
        raise ValueError(f"{name} has {X.shape[1]} features, which is not "
                         f"image_shape={tuple(image_shape)} ({math.prod(image_shape)} pixels)")
    return X.reshape(X.shape[0], *image_shape)


def plot_misclassified(X, y_true, y_pred, proba=None, *, labels=None, max_images=36,
                       image_shape=(28, 28)):
    """Grid of misclassified images, each titled "true t / pred p (confidence)".

    Mistakes are shown most confident first (highest predicted probability), as
    those are the most informative; without ``proba`` in data order.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples, *image_shape)
        Images, e.g. raw uint8 MNIST pixels.
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    proba : array-like of shape (n_samples, n_classes), optional
        Predicted class probabilities (``predict_proba``); the value shown is
        that of the predicted class.
    labels : array-like of shape (n_classes,), optional
        The class of each column of ``proba`` (``model.classes_``). Default:
        column ``k`` is class ``k`` (integer labels ``0 .. n_classes - 1``).
    max_images : int, default=36
    image_shape : tuple of int, default=(28, 28)

    Returns
    -------
    matplotlib.figure.Figure
        One axes per image shown (at most ``max_images``), or a single axes
        saying that there is no mistake.

    Raises
    ------
    ValueError
        Mismatched lengths or shapes, or a predicted label not among ``labels``.
    ImportError
        matplotlib is not installed.
    """
    images = _check_image_rows(X, image_shape, "X")
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    n = images.shape[0]
    if y_true.shape[0] != n or y_pred.shape[0] != n:
        raise ValueError(f"X, y_true and y_pred have different lengths: {n}, "
                         f"{y_true.shape[0]}, {y_pred.shape[0]}")
    if isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) \
            or max_images < 1:
        raise ValueError(f"max_images must be a positive integer, got {max_images!r}")
    wrong = np.flatnonzero(y_true != y_pred)
    confidence = None
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != n:
            raise ValueError(f"proba must have shape (n_samples, n_classes) = ({n}, ...), "
                             f"got {proba.shape}")
        columns = _class_columns(y_pred[wrong], labels, proba.shape[1])
        confidence = proba[wrong, columns]
        order = np.argsort(-confidence, kind="stable")
        wrong, confidence = wrong[order], confidence[order]
    shown = wrong[:max_images]

    if shown.size == 0:
        fig = new_figure(6, 2.5)
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, f"No misclassified samples (all {n} correct)", ha="center",
                va="center", fontsize=_TITLE_SIZE)
        ax.set_title("Misclassified samples", fontsize=_TITLE_SIZE)
        return fig

    titles = []
    for k, i in enumerate(shown):
        title = f"true {y_true[i]} / pred {y_pred[i]}"
        if len(title) > 18:  # long class names (e.g. Fashion-MNIST): one per line
            title = f"true {y_true[i]}\npred {y_pred[i]}"
            if confidence is not None:
                title += f" ({confidence[k]:.2f})"
        elif confidence is not None:
            title += f"\n({confidence[k]:.2f})"
        titles.append(title)
    # about 0.085 in per character at 10 pt; at least 1.45 in per image
    longest = max(len(line) for title in titles for line in title.splitlines())
    cell = max(1.45, 0.085 * longest + 0.2)
    nrows, ncols = _grid(shown.size)
    fig = new_figure(max(6.5, cell * ncols), 1.75 * nrows + 0.7)
    finite = images[shown].astype(np.float64)
    vmin, vmax = float(finite.min()), float(finite.max())
    for k, (i, title) in enumerate(zip(shown, titles)):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.imshow(images[i], cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=MIN_FONT_SIZE + 1, color="firebrick")
    what = "most confident first" if confidence is not None else "in data order"
    fig.suptitle(f"Misclassified samples: {shown.size} of {wrong.size} shown\n"
                 f"({wrong.size / n:.2%} of {n} samples wrong; {what})", fontsize=_TITLE_SIZE)
    return fig


def _class_columns(y, labels, n_columns):
    """Column of ``proba`` holding each label of ``y``; ``labels=None`` means ``0..n_columns-1``.

    The labels are checked and encoded by scikit-learn (``unique_labels``:
    no continuous values, no strings mixed with numbers; ``LabelEncoder``:
    every label of ``y`` is one of ``labels``).
    """
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils.multiclass import unique_labels

    labels = np.arange(n_columns) if labels is None else np.asarray(labels)
    if labels.shape != (n_columns,):
        raise ValueError(f"labels has shape {labels.shape} but proba has {n_columns} columns")
    if y.size == 0:
        return np.zeros(0, dtype=np.intp)
    encoder = LabelEncoder().fit(labels)
    if encoder.classes_.size != n_columns:
        raise ValueError(f"labels has duplicates: {labels.tolist()[:20]}")
    try:
        unique_labels(y, labels)
        sorted_index = encoder.transform(y)
    except ValueError as exc:
        raise ValueError(f"{exc} (the predicted labels must be among labels, the class of each "
                         f"proba column: pass labels=model.classes_)") from None
    # LabelEncoder numbers the sorted classes; proba's columns follow labels' order
    return np.argsort(labels, kind="stable")[sorted_index]


def plot_first_layer_weights(coefs0, *, max_units=64, image_shape=(28, 28)):
    """The input weights of the first hidden units, each shown as an image.

    Column ``j`` of ``coefs0`` holds the weights from every pixel to hidden
    unit ``j``; reshaped to ``image_shape`` it shows the pattern the unit
    responds to (red: positive weights, blue: negative). All units share one
    symmetric colour scale (clipped at the 99.5th percentile of ``|w|``).

    Parameters
    ----------
    coefs0 : array-like of shape (n_features, n_units)
        ``model.coefs_[0]``, with ``n_features == prod(image_shape)``.
    max_units : int, default=64
        The first ``max_units`` units are shown.
    image_shape : tuple of int, default=(28, 28)

    Returns
    -------
    matplotlib.figure.Figure
        One axes per unit shown plus one colour bar.

    Raises
    ------
    ValueError
        ``coefs0`` is not 2-D or its rows do not match ``image_shape``.
    ImportError
        matplotlib is not installed.
    """
    W = np.asarray(coefs0, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"coefs0 must be 2-D (n_features, n_units), got shape {W.shape}")
    if W.shape[0] != math.prod(image_shape):
        raise ValueError(f"coefs0 has {W.shape[0]} rows (inputs), which is not "
                         f"image_shape={tuple(image_shape)} ({math.prod(image_shape)} pixels)")
    if isinstance(max_units, bool) or not isinstance(max_units, (int, np.integer)) \
            or max_units < 1:
        raise ValueError(f"max_units must be a positive integer, got {max_units!r}")
    n_units = W.shape[1]
    k = min(n_units, int(max_units))
    if k == 0:
        raise ValueError("coefs0 has no units (0 columns)")
    shown = W[:, :k]
    limit = float(np.percentile(np.abs(shown), 99.5)) or 1.0

    nrows, ncols = _grid(k)
    cell = 1.0 if ncols >= 8 else 1.3
    fig = new_figure(max(5.0, cell * ncols + 1.2), cell * nrows + 0.8)
    axes = []
    for j in range(k):
        ax = fig.add_subplot(nrows, ncols, j + 1)
        image = ax.imshow(shown[:, j].reshape(image_shape), cmap="RdBu_r", vmin=-limit,
                          vmax=limit, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        axes.append(ax)
    colorbar = fig.colorbar(image, ax=axes, shrink=0.6, fraction=0.04)
    colorbar.ax.tick_params(labelsize=MIN_FONT_SIZE + 1)
    colorbar.set_label("weight", fontsize=_LABEL_SIZE + 1)
    which = f"all {k}" if k == n_units else f"first {k} of {n_units}"
    shape = "x".join(str(d) for d in image_shape)
    fig.suptitle(f"First-layer weights: {which} hidden units, each as a {shape} image",
                 fontsize=_TITLE_SIZE)
    return fig


# --------------------------------------------------------------------------- files
def save_figure(fig, path, dpi=DEFAULT_DPI):
    """Write ``fig`` to ``path`` atomically, creating missing parent directories.

    The image is written to a temporary file in the same directory, flushed to
    disk and then renamed onto ``path`` with :func:`os.replace`, so ``path``
    never holds a partial image (a reader sees the old file or the new one).
    The format follows the suffix (``.png``, ``.svg``, ``.pdf``...; PNG when
    there is none). The file gets the usual permissions (``0o666`` minus the
    umask).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
    dpi : float, default=DEFAULT_DPI (110)

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OSError
        The directory cannot be created or written (no temporary file is left).
    """
    from .files import atomic_write
    path = Path(path)
    fmt = path.suffix[1:].lower() or "png"
    with atomic_write(path) as f:
        fig.savefig(f, format=fmt, dpi=dpi, facecolor="white")
    return path


def _n_validation(model, history):
    """Size of the validation set, if the model or its history records it."""
    for record in reversed(history):
        value = record.get("n_validation") if isinstance(record, dict) else None
        if value:
            return int(value)
    value = getattr(model, "n_validation_", None)
    return int(value) if value else None


def save_training_plots(model, out_dir, *, X_test=None, y_test=None, n_validation=None,
                        image_shape=(28, 28), dpi=DEFAULT_DPI):
    """Write every plot that applies to a fitted model into ``out_dir``.

    * ``learning_curves.png`` -- if ``model.history_`` is not empty;
    * ``validation_correct.png`` -- if the history has validation accuracy and
      the validation set size is known (``n_validation``, else an
      ``n_validation`` key in the history records, else
      ``model.n_validation_``);
    * ``first_layer_weights.png`` -- if ``model.coefs_[0]`` has
      ``prod(image_shape)`` rows;
    * ``confusion_matrix.png``, ``confusion_matrix_normalized.png`` and
      ``misclassified.png`` -- if ``X_test`` and ``y_test`` are given (uses
      ``model.predict``, ``model.predict_proba`` and ``model.classes_``).

    Parameters
    ----------
    model : fitted classifier
        Anything with ``history_``, ``coefs_``, ``classes_``, ``predict`` and
        ``predict_proba`` (e.g. :class:`fastann.MLPClassifier`); missing
        attributes just skip the corresponding plots.
    out_dir : str or os.PathLike
        Created if missing; existing files of the same names are replaced.
    X_test : array-like of shape (n_samples, n_features), optional
    y_test : array-like of shape (n_samples,), optional
    n_validation : int, optional
        Validation set size for ``validation_correct.png``.
    image_shape : tuple of int, default=(28, 28)
    dpi : float, default=DEFAULT_DPI

    Returns
    -------
    list of pathlib.Path
        The files written, in the order above.

    Raises
    ------
    ValueError
        Only one of ``X_test`` and ``y_test`` is given.
    ImportError
        matplotlib is not installed.
    """
    _figure_class()  # fail early, before any work, without matplotlib
    if (X_test is None) != (y_test is None):
        raise ValueError("pass both X_test and y_test, or neither")
    out_dir = Path(out_dir)
    written = []

    def save(fig, name):
        written.append(save_figure(fig, out_dir / name, dpi=dpi))

    history = list(getattr(model, "history_", None) or [])
    if history:
        save(plot_learning_curves(history), "learning_curves.png")
        n_val = n_validation or _n_validation(model, history)
        has_val = any(isinstance(r, dict) and r.get("val_accuracy") is not None
                      and np.isfinite(r["val_accuracy"]) for r in history)
        if has_val and n_val:
            save(plot_validation_correct(history, n_val), "validation_correct.png")

    coefs = getattr(model, "coefs_", None)
    if coefs is not None and len(coefs) and np.ndim(coefs[0]) == 2 \
            and np.shape(coefs[0])[0] == math.prod(image_shape):
        save(plot_first_layer_weights(coefs[0], image_shape=image_shape),
             "first_layer_weights.png")

    if X_test is not None:
        from sklearn.metrics import confusion_matrix
        from sklearn.utils.multiclass import unique_labels

        classes = getattr(model, "classes_", None)
        y_test = np.asarray(y_test)
        y_pred = np.asarray(model.predict(X_test))
        labels = unique_labels(y_test, y_pred)  # sorted union; rejects mixed/continuous labels
        if classes is not None and np.isin(labels, classes).all():
            labels = np.asarray(classes)  # every class of the model, even if never seen here
        cm = confusion_matrix(y_test, y_pred, labels=labels)
        names = [str(c) for c in labels]
        save(plot_confusion_matrix(cm, labels=names), "confusion_matrix.png")
        save(plot_confusion_matrix(cm, labels=names, normalize=True),
             "confusion_matrix_normalized.png")
        proba = model.predict_proba(X_test) if hasattr(model, "predict_proba") else None
        X_arr = np.asarray(X_test)
        if X_arr.ndim == 2 and X_arr.shape[1] == math.prod(image_shape):
            save(plot_misclassified(X_arr, y_test, y_pred, proba, labels=classes,
                                    image_shape=image_shape), "misclassified.png")
    return written
