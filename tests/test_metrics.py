"""fastann.metrics (the text confusion matrix) and the report of ``fastann evaluate``.

The metrics themselves are scikit-learn's and are not re-tested here.
"""
import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
try:
    import fastann  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, str(ROOT))

from sklearn.metrics import confusion_matrix  # noqa: E402

from fastann import cli  # noqa: E402
from fastann.metrics import format_confusion_matrix  # noqa: E402


# ----------------------------------------------------------------------------- format_confusion_matrix
def test_format_confusion_matrix_counts():
    cm = confusion_matrix([0, 1, 2, 2, 2], [0, 2, 2, 2, 1])
    text = format_confusion_matrix(cm, ["zero", "one", "two"])
    lines = text.splitlines()
    assert len(lines) == 4
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[0].split()[-3:] == ["zero", "one", "two"]
    assert lines[0].startswith("true \\ pred")
    assert lines[1].split() == ["zero", "1", "0", "0"]
    assert lines[3].split() == ["two", "0", "1", "2"]
    # columns line up: each cell ends where its header ends
    assert lines[0].rindex("two") + 3 == lines[3].rindex("2") + 1
    assert not text.endswith("\n")


def test_format_confusion_matrix_exact_layout():
    text = format_confusion_matrix(np.array([[50, 1], [2, 47]]), ["a", "b"])
    assert text == ("true \\ pred   a   b\n"
                    "          a  50   1\n"
                    "          b   2  47")


def test_format_confusion_matrix_fractions_and_default_labels():
    cm = confusion_matrix([0, 0, 1], [0, 1, 1], normalize="true")
    text = format_confusion_matrix(cm, digits=2)
    assert "0.50" in text and "1.00" in text
    assert text.splitlines()[1].split() == ["0", "0.50", "0.50"]
    assert text.splitlines()[2].split() == ["1", "0.00", "1.00"]
    # a perfect normalized matrix holds only 0.0 and 1.0 but is still fractions
    perfect = format_confusion_matrix(confusion_matrix([0, 1], [0, 1], normalize="true"))
    assert perfect.splitlines()[1].split() == ["0", "1.000", "0.000"]
    big = format_confusion_matrix(np.array([[1234, 5], [0, 99999]]), [7, 8])
    assert "99999" in big and len({len(line) for line in big.splitlines()}) == 1


def test_format_confusion_matrix_float_counts_print_as_integers():
    text = format_confusion_matrix(np.array([[3.0, 1.0], [0.0, 2.0]]))
    assert text.splitlines()[1].split() == ["0", "3", "1"]


def test_format_confusion_matrix_numpy_scalar_labels():
    # model.classes_ holds numpy scalars: they print as their value, not np.int64(7)
    for labels, names in ((np.array([7, 8], dtype=np.int64), ["7", "8"]),
                          (np.array([7, 8], dtype=np.uint8), ["7", "8"]),
                          (np.array(["Sneaker", "Bag"]), ["Sneaker", "Bag"])):
        header = format_confusion_matrix(np.eye(2, dtype=int), labels).splitlines()[0]
        assert header.split()[-2:] == names


def test_format_confusion_matrix_invalid_input():
    with pytest.raises(ValueError, match="square"):
        format_confusion_matrix(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="square"):
        format_confusion_matrix(np.zeros((0, 0)))
    with pytest.raises(ValueError, match="labels has 3"):
        format_confusion_matrix(np.zeros((2, 2)), [0, 1, 2])
    with pytest.raises(ValueError, match="numbers"):
        format_confusion_matrix(np.array([["a", "b"], ["c", "d"]]))


# ----------------------------------------------------------------------------- fastann evaluate
class FakeModel:
    """What ``fastann evaluate`` uses of a loaded model: ``classes_`` and ``predict``."""

    def __init__(self, classes, predictions):
        self.classes_ = np.asarray(classes)
        self._predictions = np.asarray(predictions)

    def predict(self, X):
        assert len(X) == len(self._predictions)
        return self._predictions


# Class 3 is never predicted (precision 0/0) and class 1 is over-predicted.
#   class 0: TP 1, predicted 2, support 2 -> precision 0.5, recall 0.5,    F1 0.5
#   class 1: TP 2, predicted 4, support 2 -> precision 0.5, recall 1,      F1 2/3
#   class 2: TP 2, predicted 2, support 3 -> precision 1,   recall 2/3,    F1 0.8
#   class 3: TP 0, predicted 0, support 1 -> 0, 0, 0
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 2, 3])
Y_PRED = np.array([0, 1, 1, 1, 2, 2, 0, 1])
EXPECTED_ROWS = {0: [0.5, 0.5, 0.5, 2], 1: [0.5, 1.0, 2 / 3, 2], 2: [1.0, 2 / 3, 0.8, 3],
                 3: [0.0, 0.0, 0.0, 1]}
EXPECTED_CM = [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 1, 0, 0]]


def run_evaluate(monkeypatch, capsys, classes, y_true, y_pred):
    model = FakeModel(classes, y_pred)
    monkeypatch.setattr("fastann.load", lambda path: model)
    monkeypatch.setattr(cli, "load_split",
                        lambda dataset, split, data_dir: (np.zeros((len(y_true), 4)), y_true))
    assert cli.main(["evaluate", "model.npz", "--dataset", "somewhere"]) == 0
    return capsys.readouterr().out


def report_rows(out):
    """{row name: numbers} of the classification report part of the output."""
    report = out.split("accuracy: ", 1)[1].split("confusion matrix", 1)[0]
    rows = {}
    for line in report.splitlines()[2:]:
        m = re.match(r"^\s*(.*?)((?:\s+[0-9.]+)+)\s*$", line)
        if m:
            rows[m.group(1)] = [float(v) for v in m.group(2).split()]
    return rows


def matrix_rows(out):
    table = out.split("confusion matrix (rows: true class, columns: predicted class)\n", 1)[1]
    return [line.split() for line in table.strip().splitlines()]


@pytest.mark.filterwarnings("error")  # a class never predicted must not warn (zero_division=0)
def test_evaluate_prints_per_class_metrics_and_confusion_matrix(monkeypatch, capsys):
    out = run_evaluate(monkeypatch, capsys, [0, 1, 2, 3], Y_TRUE, Y_PRED)
    assert "data: somewhere test, 8 samples" in out
    assert "accuracy: 62.50%" in out
    rows = report_rows(out)
    for label, (p, r, f, support) in EXPECTED_ROWS.items():
        got = rows[str(label)]
        assert got[:3] == pytest.approx([p, r, f], abs=5e-5), label  # 4 decimals
        assert got[3] == support
    assert rows["accuracy"] == [0.625, 8]
    assert rows["macro avg"][:3] == pytest.approx(
        [np.mean([v[i] for v in EXPECTED_ROWS.values()]) for i in range(3)], abs=5e-5)
    assert "weighted avg" in rows
    table = matrix_rows(out)
    assert table[0] == ["true", "\\", "pred", "0", "1", "2", "3"]
    assert [row[0] for row in table[1:]] == ["0", "1", "2", "3"]
    assert [[int(v) for v in row[1:]] for row in table[1:]] == EXPECTED_CM


def test_evaluate_lists_every_class_of_the_model_with_string_labels(monkeypatch, capsys):
    names = np.array(["Ankle boot", "Bag", "Coat", "Dress", "Shirt"])
    # "Shirt" is a class of the model that occurs neither in the data nor in the predictions
    out = run_evaluate(monkeypatch, capsys, names, names[Y_TRUE], names[Y_PRED])
    rows = report_rows(out)
    assert rows["Shirt"] == [0.0, 0.0, 0.0, 0]
    assert rows["Bag"][:3] == pytest.approx(EXPECTED_ROWS[1][:3], abs=5e-5)
    table = matrix_rows(out)
    assert len(table) == 6 and table[0][-1] == "Shirt"
    assert [int(v) for v in table[3][-5:]] == EXPECTED_CM[2] + [0]  # the "Coat" row


# ----------------------------------------------------------------------------- module boundaries
@pytest.mark.parametrize("module", ["metrics", "plots"])
def test_metrics_and_plots_do_not_import_the_model_cli_or_experiments(module):
    tree = ast.parse((ROOT / "fastann" / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = ("." * node.level) + (node.module or "")
            imported.add(base)
            imported.update(f"{base}.{alias.name}" if node.module else base + alias.name
                            for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    for forbidden in ("model", "cli", "experiments"):
        assert f".{forbidden}" not in imported and f"fastann.{forbidden}" not in imported
