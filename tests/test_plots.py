"""fastann.plots: each function returns a matplotlib Figure with the expected content."""
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
try:
    import fastann  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, str(ROOT))

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from fastann import plots  # noqa: E402
from fastann.plots import (new_figure, plot_confusion_matrix,  # noqa: E402
                           plot_first_layer_weights, plot_learning_curves, plot_misclassified,
                           plot_validation_correct, save_figure, save_training_plots)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_history(n_epochs=6, validation=True):
    history = []
    for e in range(1, n_epochs + 1):
        history.append({
            "epoch": e, "learning_rate": 1e-3,
            "train_loss": 2.0 / e, "train_accuracy": 1 - 0.5 / e,
            "val_loss": 2.2 / e if validation else None,
            "val_accuracy": 1 - 0.6 / e if validation else None,
            "seconds": 1.0, "eval_seconds": 0.1,
        })
    return history


def fake_images(n, rng):
    return rng.integers(0, 256, (n, 784)).astype(np.uint8)


class FakeModel:
    """Duck-typed fitted classifier: what save_training_plots uses of MLPClassifier."""

    def __init__(self, classes=np.arange(10), history=None, seed=0, n_hidden=20):
        rng = np.random.default_rng(seed)
        self.classes_ = np.asarray(classes)
        self.history_ = make_history() if history is None else history
        self.coefs_ = [rng.normal(size=(784, n_hidden)),
                       rng.normal(size=(n_hidden, len(self.classes_)))]
        self.intercepts_ = [np.zeros(n_hidden), np.zeros(len(self.classes_))]

    def predict_proba(self, X):
        h = np.maximum(np.asarray(X, np.float64) / 255 @ self.coefs_[0], 0)
        z = h @ self.coefs_[1]
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def texts(fig):
    FigureCanvasAgg(fig).draw()  # creates the tick labels
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def main_axes(fig):
    """Axes that are not colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


# ----------------------------------------------------------------------------- new_figure
def test_new_figure():
    fig = new_figure(5, 3.5)
    assert isinstance(fig, Figure) and fig.axes == []
    np.testing.assert_allclose(fig.get_size_inches(), [5, 3.5])
    assert fig.get_dpi() == plots.DEFAULT_DPI
    assert fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
    assert matplotlib.colors.to_hex(fig.get_facecolor()) == "#ffffff"
    assert fig.canvas.manager is None  # not a pyplot figure
    assert "new_figure" in plots.__all__


# ----------------------------------------------------------------------------- learning curves
def test_learning_curves_with_validation():
    fig = plot_learning_curves(make_history())
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    loss, acc = fig.axes
    assert loss.get_title() == "Loss" and acc.get_title() == "Accuracy"
    assert loss.get_xlabel() == acc.get_xlabel() == "epoch"
    assert "loss" in loss.get_ylabel() and acc.get_ylabel() == "accuracy"
    assert [line.get_label() for line in loss.get_lines()] == ["training", "validation"]
    legend = [t.get_text() for t in acc.get_legend().get_texts()]
    assert legend[0] == "training" and legend[1] == "validation (best 90.00% at epoch 6)"
    np.testing.assert_allclose(loss.get_lines()[0].get_xdata(), np.arange(1, 7))
    np.testing.assert_allclose(acc.get_lines()[1].get_ydata(), [1 - 0.6 / e for e in range(1, 7)])


def test_learning_curves_without_validation():
    history = make_history(validation=False)
    history[0]["val_loss"] = float("nan")
    fig = plot_learning_curves(history)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert [line.get_label() for line in ax.get_lines()] == ["training"]
    assert "no validation" in fig.get_suptitle()


def test_learning_curves_single_epoch_and_log_scale():
    fig = plot_learning_curves(make_history(1))
    assert fig.axes[0].get_lines()[0].get_marker() == "o"  # a lone point stays visible
    history = [{"epoch": e, "train_loss": 10.0 ** -e, "train_accuracy": 0.9,
                "val_loss": None, "val_accuracy": None} for e in range(1, 5)]
    assert plot_learning_curves(history).axes[0].get_yscale() == "log"


def test_learning_curves_empty_history():
    with pytest.raises(ValueError, match="empty"):
        plot_learning_curves([])


def test_validation_correct():
    history = make_history()
    fig = plot_validation_correct(history, 10000)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_title() == "Correctly classified validation samples (out of 10000)"
    assert ax.get_xlabel() == "epoch" and "out of 10000" in ax.get_ylabel()
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(),
                                  [round((1 - 0.6 / e) * 10000) for e in range(1, 7)])


def test_validation_correct_errors():
    with pytest.raises(ValueError, match="no validation accuracy"):
        plot_validation_correct(make_history(validation=False), 10000)
    with pytest.raises(ValueError, match="n_validation"):
        plot_validation_correct(make_history(), 0)


# ----------------------------------------------------------------------------- confusion matrix
def test_confusion_matrix_plot():
    cm = np.array([[50, 2, 0], [3, 40, 7], [0, 0, 45]])
    fig = plot_confusion_matrix(cm, labels=["a", "b", "c"])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # heatmap + colour bar
    ax = main_axes(fig)[0]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert ax.get_title().startswith("Confusion matrix")
    assert ax.get_title().endswith("147 samples, accuracy 91.84%")
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert len(cells) == 9
    assert cells[(0, 0)].get_text() == "50" and cells[(1, 2)].get_text() == "7"
    # dark (large) cells get white text, light cells black text
    assert cells[(0, 0)].get_color() == "white"
    assert cells[(0, 1)].get_color() == "black"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]


def test_confusion_matrix_plot_normalized():
    cm = np.array([[3, 1], [0, 0]])  # second class has no samples: row stays 0
    fig = plot_confusion_matrix(cm, normalize=True)
    ax = main_axes(fig)[0]
    assert "normalized" in ax.get_title()
    values = sorted(t.get_text() for t in ax.texts)
    assert values == ["0", "0", "0.25", "0.75"]


def test_confusion_matrix_plot_errors():
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="labels"):
        plot_confusion_matrix(np.eye(2), labels=["a"])


# ----------------------------------------------------------------------------- images
def test_misclassified_grid():
    rng = np.random.default_rng(0)
    X = fake_images(100, rng)
    y_true = rng.integers(0, 10, 100)
    y_pred = y_true.copy()
    y_pred[:50] = (y_pred[:50] + 1) % 10
    proba = rng.dirichlet(np.ones(10), 100)
    fig = plot_misclassified(X, y_true, y_pred, proba)
    assert isinstance(fig, Figure) and len(fig.axes) == 36
    titles = [ax.get_title() for ax in fig.axes]
    assert all(t.startswith("true ") and " / pred " in t for t in titles)
    confidences = [float(t.rsplit("(", 1)[1].rstrip(")")) for t in titles]
    assert confidences == sorted(confidences, reverse=True)  # most confident first
    # the first title belongs to the most confident mistake
    order = np.argsort(-proba[np.arange(50), y_pred[:50]], kind="stable")
    i = order[0]
    assert titles[0].startswith(f"true {y_true[i]} / pred {y_pred[i]}")
    assert "36 of 50 shown" in fig.get_suptitle()


def test_misclassified_string_labels_few_mistakes_no_proba():
    rng = np.random.default_rng(1)
    classes = np.array(["Ankle boot", "Sneaker", "T-shirt/top"])
    X = fake_images(10, rng).reshape(10, 28, 28)
    y_true = classes[rng.integers(0, 3, 10)]
    y_pred = y_true.copy()
    y_pred[[2, 5]] = np.where(y_true[[2, 5]] == "Sneaker", "Ankle boot", "Sneaker")
    proba = np.full((10, 3), 0.1)
    fig = plot_misclassified(X, y_true, y_pred, proba, labels=classes)
    assert len(fig.axes) == 2
    assert all("pred" in ax.get_title() and "(0.10)" in ax.get_title() for ax in fig.axes)
    fig = plot_misclassified(X, y_true, y_pred)
    assert len(fig.axes) == 2 and "(" not in fig.axes[0].get_title()
    assert "in data order" in fig.get_suptitle()


def test_misclassified_none_wrong():
    X = np.zeros((4, 784))
    for proba, labels in ((None, None), (np.full((4, 5), 0.2), None),
                          (np.full((4, 4), 0.25), [4, 3, 2, 1])):
        fig = plot_misclassified(X, [1, 2, 3, 4], [1, 2, 3, 4], proba, labels=labels)
        assert len(fig.axes) == 1
        assert "No misclassified" in fig.axes[0].texts[0].get_text()


def test_misclassified_errors():
    X = np.zeros((4, 784))
    with pytest.raises(ValueError, match="different lengths"):
        plot_misclassified(X, [1, 2, 3], [1, 2, 3], None)
    with pytest.raises(ValueError, match="features"):
        plot_misclassified(np.zeros((4, 100)), [1, 2, 3, 4], [1, 2, 3, 0], None)
    with pytest.raises(ValueError, match="labels"):
        plot_misclassified(X, ["a"] * 4, ["b"] * 4, np.ones((4, 2)))


def test_misclassified_confidence_comes_from_the_predicted_class_column():
    # proba's columns follow labels (model.classes_), which need not be sorted
    classes = np.array(["z", "a", "c"])
    y_true = np.array(["a", "a", "c", "z"])
    y_pred = np.array(["z", "c", "a", "z"])
    proba = np.array([[0.61, 0.30, 0.09],    # pred z: column 0
                      [0.10, 0.18, 0.72],    # pred c: column 2
                      [0.15, 0.83, 0.02],    # pred a: column 1
                      [0.50, 0.25, 0.25]])   # correct, not shown
    fig = plot_misclassified(np.zeros((4, 784)), y_true, y_pred, proba, labels=classes)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["true c / pred a\n(0.83)", "true a / pred c\n(0.72)",
                      "true a / pred z\n(0.61)"]
    # integer labels without labels=: label k is column k
    fig = plot_misclassified(np.zeros((2, 784)), [0, 2], [2, 1],
                             np.array([[0.1, 0.2, 0.7], [0.3, 0.6, 0.1]]))
    assert [ax.get_title() for ax in fig.axes] == ["true 0 / pred 2\n(0.70)",
                                                   "true 2 / pred 1\n(0.60)"]


@pytest.mark.parametrize("y_pred, proba_columns, labels, match", [
    ([5, 1], 3, None, "unseen labels.*labels=model.classes_"),   # no column for class 5
    ([0.5, 1.0], 3, None, "continuous"),                         # not class labels
    (["b", "c"], 2, None, "Mix of label input types"),           # strings need labels=
    (["b", "d"], 3, ["a", "b", "c"], "unseen labels"),           # "d" has no column
    ([1, 2], 3, ["a", "b", "c"], "Mix of label input types"),
    ([1, 2], 3, [0, 1], "shape"),                                # labels vs proba columns
    ([1, 0], 3, [0, 1, 1], "duplicates"),
])
def test_misclassified_label_errors(y_pred, proba_columns, labels, match):
    y_true = ["x", "y"] if isinstance(y_pred[0], str) else [9, 9]  # both samples wrong
    with pytest.raises(ValueError, match=match):
        plot_misclassified(np.zeros((2, 784)), y_true, y_pred, np.ones((2, proba_columns)),
                           labels=labels)


def test_first_layer_weights():
    rng = np.random.default_rng(0)
    fig = plot_first_layer_weights(rng.normal(size=(784, 100)))
    assert isinstance(fig, Figure)
    assert len(main_axes(fig)) == 64 and len(fig.axes) == 65  # + colour bar
    assert "64 of 100" in fig.get_suptitle()
    fig = plot_first_layer_weights(rng.normal(size=(784, 10)), max_units=64)
    assert len(main_axes(fig)) == 10
    fig = plot_first_layer_weights(rng.normal(size=(64, 5)), image_shape=(8, 8))
    assert main_axes(fig)[0].get_images()[0].get_array().shape == (8, 8)
    with pytest.raises(ValueError, match="image_shape"):
        plot_first_layer_weights(rng.normal(size=(100, 5)))


def test_all_text_is_at_least_9_points():
    rng = np.random.default_rng(0)
    figs = [
        plot_learning_curves(make_history()),
        plot_validation_correct(make_history(), 10000),
        plot_confusion_matrix(rng.integers(0, 1000, (10, 10))),
        plot_misclassified(fake_images(50, rng), np.zeros(50, int), np.ones(50, int),
                           rng.dirichlet(np.ones(2), 50)),
        plot_first_layer_weights(rng.normal(size=(784, 64))),
    ]
    for fig in figs:
        sizes = [t.get_fontsize() for t in texts(fig)]
        assert sizes and min(sizes) >= plots.MIN_FONT_SIZE
        width, height = fig.get_size_inches()
        assert 4 <= width <= 12 and height <= 14


# ----------------------------------------------------------------------------- saving
def test_save_figure_writes_png_atomically(tmp_path):
    fig = plot_confusion_matrix(np.eye(3, dtype=int) * 5)
    path = tmp_path / "new" / "dir" / "cm.png"
    assert save_figure(fig, path) == path
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    assert os.listdir(path.parent) == ["cm.png"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    # overwrite in place
    save_figure(plot_confusion_matrix(np.eye(2, dtype=int)), str(path), dpi=50)
    assert path.read_bytes().startswith(PNG_MAGIC) and path.read_bytes() != data


def test_save_figure_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    fig = plot_confusion_matrix(np.eye(2, dtype=int))

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_figure(fig, path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["plot.png"]


def test_save_figure_other_format(tmp_path):
    path = save_figure(plot_learning_curves(make_history()), tmp_path / "curves.svg")
    assert b"<svg" in path.read_bytes()[:1000]


def test_save_training_plots(tmp_path):
    rng = np.random.default_rng(0)
    model = FakeModel()
    X_test = fake_images(200, rng)
    y_test = rng.integers(0, 10, 200)
    paths = save_training_plots(model, tmp_path / "plots", X_test=X_test, y_test=y_test,
                                n_validation=10000)
    assert [p.name for p in paths] == [
        "learning_curves.png", "validation_correct.png", "first_layer_weights.png",
        "confusion_matrix.png", "confusion_matrix_normalized.png", "misclassified.png"]
    for p in paths:
        assert p.parent == tmp_path / "plots"
        assert p.read_bytes().startswith(PNG_MAGIC)
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(p.name for p in paths)


def test_save_training_plots_applicable_only(tmp_path):
    # no validation, no test data: only the learning curves and the weights
    model = FakeModel(history=make_history(validation=False))
    names = [p.name for p in save_training_plots(model, tmp_path)]
    assert names == ["learning_curves.png", "first_layer_weights.png"]
    # validation set size from the model; inputs that are not 28x28 images
    model = FakeModel(classes=["no", "yes"])
    model.n_validation_ = 500
    model.coefs_[0] = np.ones((30, 20))
    rng = np.random.default_rng(0)
    X_test = rng.normal(size=(40, 30))
    y_test = np.array(["no", "yes"] * 20)
    model.predict = lambda X: np.array(["yes"] * len(X))
    model.predict_proba = lambda X: np.tile([0.2, 0.8], (len(X), 1))
    names = [p.name for p in save_training_plots(model, tmp_path / "b", X_test=X_test,
                                                 y_test=y_test)]
    assert names == ["learning_curves.png", "validation_correct.png", "confusion_matrix.png",
                     "confusion_matrix_normalized.png"]
    # an object without any of the attributes: nothing to plot
    assert save_training_plots(object(), tmp_path / "c") == []
    with pytest.raises(ValueError, match="both"):
        save_training_plots(FakeModel(), tmp_path, X_test=X_test)


def test_save_training_plots_confusion_matrix_labels(tmp_path, monkeypatch):
    """The matrix covers every class of the model, or the union when y_test has others."""
    drawn = []

    def fake_plot(cm, labels=None, normalize=False):
        drawn.append((np.asarray(cm).tolist(), list(labels), normalize))
        return new_figure(2, 2)

    monkeypatch.setattr(plots, "plot_confusion_matrix", fake_plot)
    model = FakeModel(classes=np.array([3, 5, 7, 9]))
    X_test = np.zeros((4, 784))
    model.predict = lambda X: np.array([3, 5, 5, 3])
    save_training_plots(model, tmp_path / "a", X_test=X_test, y_test=np.array([3, 5, 3, 3]))
    assert drawn == [([[2, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
                      ["3", "5", "7", "9"], normalize) for normalize in (False, True)]
    drawn.clear()
    # class 4 is in y_test but not in classes_: the sorted union of y_test and y_pred
    save_training_plots(model, tmp_path / "b", X_test=X_test, y_test=np.array([3, 5, 4, 3]))
    assert drawn[0][:2] == ([[2, 0, 0], [0, 0, 1], [0, 0, 1]], ["3", "4", "5"])
    with pytest.raises(ValueError, match="Mix of label input types"):
        save_training_plots(model, tmp_path / "c", X_test=X_test,
                            y_test=np.array(["3", "5", "5", "3"]))


def test_plots_from_threads(tmp_path):
    errors = []

    def work(i):
        try:
            rng = np.random.default_rng(i)
            save_figure(plot_confusion_matrix(rng.integers(0, 50, (10, 10))),
                        tmp_path / f"cm{i}.png")
            save_figure(plot_learning_curves(make_history(5 + i)), tmp_path / f"lc{i}.png")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(list(tmp_path.glob("*.png"))) == 8


def test_no_pyplot_and_lazy_import(tmp_path):
    """Importing fastann.plots loads no matplotlib; using it never loads pyplot."""
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import numpy as np
import fastann.plots as p
assert "matplotlib" not in sys.modules, "matplotlib imported eagerly"
fig = p.plot_confusion_matrix(np.eye(3, dtype=int))
p.save_figure(fig, {str(tmp_path / "x.png")!r})
p.new_figure(4, 3).subplots()
p.plot_learning_curves([{{"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5}}])
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr


def test_missing_matplotlib_message(monkeypatch, tmp_path):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install fastann\[plot\]"):
        plot_confusion_matrix(np.eye(2))
    with pytest.raises(ImportError, match=r"pip install fastann\[plot\]"):
        plot_learning_curves(make_history())
    with pytest.raises(ImportError, match=r"pip install fastann\[plot\]"):
        save_training_plots(FakeModel(), tmp_path)
