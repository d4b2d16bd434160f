"""The report's figures: public :mod:`fastann.plots` functions and one chart of its own.

Figures are :class:`matplotlib.figure.Figure` objects built directly (no
pyplot), saved with :func:`fastann.plots.save_figure`.
"""
from __future__ import annotations

import numpy as np

from .. import plots

__all__ = ["CAPTIONS", "plot_accuracy_bars", "write_figures"]

FIGURE_DPI = 100
_COLORS = {"000": "tab:red", "001": "tab:orange", "002": "tab:olive", "003": "tab:blue",
           "004": "tab:purple", "fashion": "tab:brown", "best": "tab:green"}
#: Caption of each figure in REPORT.md, in the order they are written.
CAPTIONS = {
    "test_accuracy.png": "Test accuracy of every configuration (◆: published value).",
    "learning_curves.png": "Learning curves of the most accurate run (dashed: test set, "
                           "monitored only).",
    "confusion_matrix.png": "Confusion matrix of the most accurate model on the test set.",
    "misclassified.png": "Its most confident mistakes.",
    "first_layer_weights.png": "Its first-layer weights (first 64 hidden units).",
    "validation_correct_002.png": "Source 002's plot: validation images classified correctly "
                                  "after each epoch (◆: the counts its README publishes, when "
                                  "the validation set has as many images).",
}


def _relabel_monitor(fig, monitor):
    """plot_learning_curves says 'validation'; say what the dashed curve really is."""
    if monitor == "validation":
        return fig
    for ax in fig.axes:
        for line in ax.get_lines():
            label = line.get_label()
            if label.startswith("validation"):
                line.set_label(label.replace("validation", "test (monitored only)"))
        if ax.get_legend() is not None:
            ax.legend(fontsize=10, loc="best")
    return fig


def plot_accuracy_bars(rows, fast_target, zoom_from=None):
    """Test accuracy of each row as horizontal bars, with the published value.

    Two panels share the rows: the full 0-100% range, and a zoom on
    ``[zoom_from, 100]`` where the good configurations differ (default: 88%, or
    lower when a quarter of the runs are below that).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    rows = [r for r in rows if r.result.get("test_accuracy") is not None]
    n = len(rows)
    fig = Figure(figsize=(10, max(3.0, 0.3 * n + 1.6)), dpi=FIGURE_DPI, layout="constrained",
                 facecolor="white")
    ax_full, ax_zoom = fig.subplots(1, 2, sharey=True, width_ratios=[1, 1.4])
    fig.get_layout_engine().set(wspace=0.06)
    ypos = np.arange(n)[::-1]
    acc = np.array([r.result["test_accuracy"] for r in rows])
    if zoom_from is None:
        zoom_from = min(88.0, 2 * np.floor(np.percentile(acc, 25) / 2)) if n else 88.0
    refs = [(y, r.exp.reported_accuracy) for y, r in zip(ypos, rows)
            if r.exp.reported_accuracy is not None]
    for ax, lo in ((ax_full, 0.0), (ax_zoom, zoom_from)):
        ax.barh(ypos, acc, color=[_COLORS.get(r.exp.source, "tab:gray") for r in rows],
                height=0.7)
        if refs:
            ax.plot([ref for _, ref in refs], [y for y, _ in refs], marker="D", color="black",
                    markersize=5, linestyle="none")
        ax.set_xlim(lo, 100)
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=100, decimals=0))
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=9)
        ax.axvline(fast_target, color="tab:green", linestyle=":", linewidth=1.2)
    ax_full.set_xticks(np.arange(0, 101, 20))
    step = 2 if zoom_from >= 80 else 5 if zoom_from >= 50 else 10
    ax_zoom.set_xticks(np.arange(zoom_from, 100.1, step))
    for y, a in zip(ypos, acc):
        ax_zoom.text(1.01, y, f"{a:.2f}%", va="center", fontsize=9,
                     transform=ax_zoom.get_yaxis_transform())
    ax_full.set_yticks(ypos, labels=[r.exp.key for r in rows], fontsize=9)
    ax_full.set_ylim(-0.6, n - 0.4)
    ax_full.set_title("full range", fontsize=10)
    ax_zoom.set_title(f"zoom: {zoom_from:g}-100%", fontsize=10)
    fig.supxlabel("test accuracy (Fashion-MNIST row: on Fashion-MNIST)", fontsize=10)
    fig.suptitle(f"Test accuracy per configuration (◆ published value, dotted line "
                 f"{fast_target:g}%)", fontsize=12)
    return fig


def _validation_correct_002(row):
    """Source 002's plot, with the published per-epoch counts where they are comparable."""
    r = row.result
    fig = plots.plot_validation_correct(r["history"], r["n_eval"])
    published = [p for p in row.exp.published if p.metric == "validation_correct"
                 and p.out_of == r["n_eval"]]
    if published:
        ax = fig.axes[0]
        # Nielsen's code prints "Epoch j" after training epoch j, counting from 0.
        ax.plot([p.epoch + 1 for p in published], [p.value for p in published], marker="D",
                color="black", markersize=5, linestyle="none",
                label="published (source 002 README)")
        ax.legend(fontsize=10, loc="lower right")
    return fig


def write_figures(out, rows, best, row_002, X_test, y_test, fast_target):
    """Write the figures into directory ``out``; returns their paths."""
    from sklearn.metrics import confusion_matrix
    written = []

    def save(fig, name):
        written.append(plots.save_figure(fig, out / name, dpi=FIGURE_DPI))

    save(plot_accuracy_bars(rows, fast_target), "test_accuracy.png")
    if best is not None:
        r = best.result
        save(_relabel_monitor(plots.plot_learning_curves(r["history"]), r["monitor"]),
             "learning_curves.png")
        labels = r["classes"]
        cm = confusion_matrix(y_test, r["y_pred"], labels=labels)
        save(plots.plot_confusion_matrix(cm, labels=[str(c) for c in labels]),
             "confusion_matrix.png")
        save(plots.plot_misclassified(X_test, y_test, r["y_pred"], r["proba"], labels=labels,
                                      max_images=24), "misclassified.png")
        if r.get("coefs0") is not None and r["coefs0"].shape[0] == 784:
            save(plots.plot_first_layer_weights(r["coefs0"], max_units=64),
                 "first_layer_weights.png")
    if row_002 is not None and row_002.result.get("history"):
        save(_validation_correct_002(row_002), "validation_correct_002.png")
    return written
