"""fastann.metrics gives the same numbers as sklearn.metrics (with zero_division=0)."""
import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

try:
    import fastann  # noqa: F401
except ImportError:  # running from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastann.metrics import (accuracy_score, classification_report, confusion_matrix,
                             evaluate_predictions, format_confusion_matrix,
                             precision_recall_fscore_support)

skm = pytest.importorskip("sklearn.metrics")

SEEDS = [0, 1, 2, 3, 4]
NAMES = np.array(["cat", "dog", "bird", "fish", "horse", "ant", "zebra"])


def random_labels(seed, kind="int", n=300, n_classes=6):
    """True labels from all classes; predictions never use the last class and
    sometimes an extra class that is absent from y_true."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes - 1 if seed % 2 else n_classes, n)
    noise = rng.integers(0, n_classes - 1, n)  # class n_classes-1 is never predicted by noise
    y_pred = np.where(rng.random(n) < 0.55, y_true, noise)
    y_pred[y_pred == n_classes - 1] = 0          # ... nor by copying: missing from y_pred
    if seed % 2:
        y_pred[:3] = n_classes                    # a class only in y_pred
    if kind == "str":
        return NAMES[y_true], NAMES[y_pred]
    if kind == "object":
        return NAMES[y_true].astype(object), list(NAMES[y_pred])
    return y_true, y_pred


KINDS = ["int", "str", "object"]


@pytest.fixture(autouse=True)
def no_warnings():
    """Our functions must not emit warnings (division by zero included)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", module="sklearn")
        yield


# ----------------------------------------------------------------------------- sklearn parity
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_matches_sklearn(seed, kind):
    y_true, y_pred = random_labels(seed, kind)
    assert accuracy_score(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_matches_sklearn(seed, kind, normalize):
    y_true, y_pred = random_labels(seed, kind)
    ours = confusion_matrix(y_true, y_pred, normalize=normalize)
    theirs = skm.confusion_matrix(y_true, y_pred, normalize=normalize)
    if normalize is None:
        assert ours.dtype.kind == "i"
        np.testing.assert_array_equal(ours, theirs)
    else:
        assert ours.dtype == np.float64
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_with_labels_matches_sklearn(seed):
    y_true, y_pred = random_labels(seed)
    rng = np.random.default_rng(seed)
    for labels in ([3, 1], [5, 4, 3, 2, 1, 0], rng.permutation(7), [0, 1, 99]):
        for normalize in (None, "true"):
            np.testing.assert_allclose(
                confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize),
                skm.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_precision_recall_fscore_support_matches_sklearn(seed, kind):
    y_true, y_pred = random_labels(seed, kind)
    ours = precision_recall_fscore_support(y_true, y_pred)
    theirs = skm.precision_recall_fscore_support(y_true, y_pred, average=None,
                                                 zero_division=0)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert ours[3].dtype.kind == "i"
    # a class never predicted has precision 0, one never present has recall 0
    assert np.all(np.isfinite(np.concatenate(ours[:3])))


@pytest.mark.parametrize("seed", SEEDS)
def test_prfs_with_labels_and_beta_match_sklearn(seed):
    y_true, y_pred = random_labels(seed, "str")
    for labels in (["dog", "cat"], list(NAMES), ["zebra", "fish", "ant"]):
        for beta in (1.0, 0.5, 2.0):
            ours = precision_recall_fscore_support(y_true, y_pred, labels=labels, beta=beta)
            theirs = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                         beta=beta, average=None,
                                                         zero_division=0)
            for a, b in zip(ours, theirs):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def _report_numbers(report):
    """{row name: [numbers]} parsed from a classification report."""
    rows = {}
    for line in report.splitlines()[1:]:
        if not line.strip():
            continue
        m = re.match(r"^\s*(.*?)((?:\s+[-+0-9.]+)+)\s*$", line)
        rows[m.group(1)] = [float(v) for v in m.group(2).split()]
    return rows


@pytest.mark.parametrize("digits", [2, 4])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_matches_sklearn(seed, kind, digits):
    y_true, y_pred = random_labels(seed, kind)
    ours = classification_report(y_true, y_pred, digits=digits)
    theirs = skm.classification_report(y_true, y_pred, digits=digits, zero_division=0)
    assert ours == theirs
    # and, independently of the layout, the numbers
    expected = skm.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    rows = _report_numbers(ours)
    tol = 0.51 * 10 ** -digits
    for name, values in expected.items():
        if name == "accuracy":
            assert rows["accuracy"][0] == pytest.approx(values, abs=tol)
            assert rows["accuracy"][1] == len(y_true)
            continue
        got = rows[name]
        want = [values["precision"], values["recall"], values["f1-score"]]
        assert got[:3] == pytest.approx(want, abs=tol), name
        assert got[3] == values["support"]


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_labels_and_target_names_match_sklearn(seed):
    y_true, y_pred = random_labels(seed)
    for labels in ([2, 0], [0, 1, 2, 3, 4, 5, 6], [4]):
        names = [f"digit {label}" for label in labels]
        ours = classification_report(y_true, y_pred, labels=labels, target_names=names)
        theirs = skm.classification_report(y_true, y_pred, labels=labels, target_names=names,
                                           digits=4, zero_division=0)
        assert ours == theirs
    # a subset of the classes has a "micro avg" row instead of "accuracy"
    report = classification_report(y_true, y_pred, labels=[2, 0])
    assert "micro avg" in report and "accuracy" not in report


def test_classification_report_layout():
    report = classification_report([0, 1, 1, 2], [0, 1, 2, 2], digits=3)
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert [line.split()[0] for line in lines[2:5]] == ["0", "1", "2"]
    assert "accuracy" in lines[6] and "0.750" in lines[6]
    assert lines[7].lstrip().startswith("macro avg")
    assert lines[8].lstrip().startswith("weighted avg")
    assert report.endswith("\n")


def test_perfect_and_single_sample():
    assert accuracy_score([3], [3]) == 1.0
    np.testing.assert_array_equal(confusion_matrix([3], [3]), [[1]])
    p, r, f, s = precision_recall_fscore_support(["a", "b"], ["b", "a"])
    np.testing.assert_array_equal(p, [0, 0])
    np.testing.assert_array_equal(s, [1, 1])
    assert accuracy_score(["a", "b"], ["b", "a"]) == 0.0


def test_normalized_confusion_matrix_zero_support_rows_are_zero():
    # class 2 is predicted but never true: its row has zero support
    cm = confusion_matrix([0, 0, 1], [0, 2, 1], normalize="true")
    np.testing.assert_allclose(cm, [[0.5, 0, 0.5], [0, 1, 0], [0, 0, 0]])
    assert not np.isnan(cm).any()


def test_bool_and_integral_float_labels():
    assert accuracy_score(np.array([True, False]), np.array([True, True])) == 0.5
    np.testing.assert_array_equal(confusion_matrix([0.0, 1.0, 1.0], [0, 1, 0]),
                                  [[1, 0], [1, 1]])


# ----------------------------------------------------------------------------- evaluate_predictions
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_evaluate_predictions_matches_sklearn_and_is_json(seed, kind):
    y_true, y_pred = random_labels(seed, kind)
    result = evaluate_predictions(y_true, y_pred)
    again = json.loads(json.dumps(result))
    assert again == result
    labels = skm.confusion_matrix(y_true, y_pred).shape[0]
    assert len(result["labels"]) == labels
    assert result["n_samples"] == len(y_true)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert result["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred).tolist()
    expected = skm.classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    for entry in result["per_class"]:
        want = expected[str(entry["label"])]
        assert entry["precision"] == pytest.approx(want["precision"])
        assert entry["recall"] == pytest.approx(want["recall"])
        assert entry["f1"] == pytest.approx(want["f1-score"])
        assert entry["support"] == want["support"]
    for ours, theirs in (("macro", "macro avg"), ("weighted", "weighted avg")):
        assert result[ours]["precision"] == pytest.approx(expected[theirs]["precision"])
        assert result[ours]["recall"] == pytest.approx(expected[theirs]["recall"])
        assert result[ours]["f1"] == pytest.approx(expected[theirs]["f1-score"])
        assert result[ours]["support"] == expected[theirs]["support"]


def test_evaluate_predictions_label_types():
    result = evaluate_predictions(np.array([1, 2, 2], dtype=np.uint8), np.array([1, 2, 1]))
    assert result["labels"] == [1, 2] and all(type(v) is int for v in result["labels"])
    result = evaluate_predictions(np.array(["b", "a"]), ["a", "a"], labels=["b", "a"])
    assert result["labels"] == ["b", "a"] and all(type(v) is str for v in result["labels"])
    assert result["confusion_matrix"] == [[0, 1], [0, 1]]


# ----------------------------------------------------------------------------- format_confusion_matrix
def test_format_confusion_matrix_counts():
    cm = confusion_matrix([0, 1, 2, 2, 2], [0, 2, 2, 2, 1])
    text = format_confusion_matrix(cm, ["zero", "one", "two"])
    lines = text.splitlines()
    assert len(lines) == 4
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[0].split()[-3:] == ["zero", "one", "two"]
    assert lines[3].split() == ["two", "0", "1", "2"]
    # columns line up: each cell ends where its header ends
    assert lines[0].rindex("two") + 3 == lines[3].rindex("2") + 1


def test_format_confusion_matrix_fractions_and_default_labels():
    cm = confusion_matrix([0, 0, 1], [0, 1, 1], normalize="true")
    text = format_confusion_matrix(cm, digits=2)
    assert "0.50" in text and "1.00" in text
    assert text.splitlines()[1].split()[0] == "0"
    big = format_confusion_matrix(np.array([[1234, 5], [0, 99999]]), [7, 8])
    assert "99999" in big and len({len(line) for line in big.splitlines()}) == 1


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("func", [accuracy_score, confusion_matrix,
                                  precision_recall_fscore_support, classification_report,
                                  evaluate_predictions])
@pytest.mark.parametrize("y_true, y_pred, match", [
    ([0, 1, 2], [0, 1], "different lengths"),
    ([], [], "empty"),
    (np.zeros((3, 2)), np.zeros((3, 2)), "1-D"),
    (np.zeros((3, 1)), np.zeros(3), "1-D"),
    (5, 5, "1-D"),
    (None, [1], "None"),
    ([0, 1], ["a", "b"], "Mix of label input types"),
    ([0.5, 1.0], [0.0, 1.0], "continuous"),
    ([np.nan, 1.0], [0.0, 1.0], "NaN"),
    ([0, "a"], [0, "a"], "mixes label types"),
])
def test_invalid_input_raises(func, y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        func(y_true, y_pred)


def test_invalid_options_raise():
    y = [0, 1, 1]
    with pytest.raises(ValueError, match="normalize"):
        confusion_matrix(y, y, normalize="rows")
    with pytest.raises(ValueError, match="at least one label"):
        confusion_matrix(y, y, labels=[])
    with pytest.raises(ValueError, match="duplicates"):
        precision_recall_fscore_support(y, y, labels=[0, 0])
    with pytest.raises(ValueError, match="labels hold strings"):
        confusion_matrix(y, y, labels=["a", "b"])
    with pytest.raises(ValueError, match="target_names"):
        classification_report(y, y, target_names=["a"])
    with pytest.raises(ValueError, match="digits"):
        classification_report(y, y, digits=-1)
    with pytest.raises(ValueError, match="beta"):
        precision_recall_fscore_support(y, y, beta=-1)
    with pytest.raises(ValueError, match="square"):
        format_confusion_matrix(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="labels has 3"):
        format_confusion_matrix(np.zeros((2, 2)), [0, 1, 2])
