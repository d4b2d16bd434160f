"""``fastann experiments --quick`` end to end on the committed MNIST subset."""
import argparse
import re
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from fastann import experiments  # noqa: E402

DATA = str(Path(__file__).parent / "data")
FIGURES = ("test_accuracy.png", "learning_curves.png", "confusion_matrix.png",
           "misclassified.png", "first_layer_weights.png", "validation_correct_002.png")


def _table_rows(report):
    """Data rows of the results table (the one whose header starts with '| # |')."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| # |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return lines[start], rows


@pytest.mark.slow
def test_quick_run_writes_one_row_per_configuration_and_the_figures(tmp_path, capsys):
    out = tmp_path / "report"
    # The Fashion-MNIST row reads the same subset, so the test needs no other data.
    status = experiments.main(["--quick", "--dataset", DATA, "--fashion-dataset", DATA,
                               "--out", str(out), "--jobs", "2", "--seed", "3"])
    assert status == 0
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    header, rows = _table_rows(report)
    plan = experiments.build_plan(quick=True)
    assert len(rows) == len(plan)
    assert [row[0] for row in rows] == [str(i) for i in range(1, len(plan) + 1)]
    columns = [c.strip() for c in header.strip("|").split("|")]
    for name in ("architecture (as run)", "optimizer", "lr", "epochs", "batch", "train acc",
                 "test acc", "wall s", "reported"):
        assert name in columns
    for row, exp in zip(rows, plan):
        assert row[columns.index("source")] == exp.source
        assert row[columns.index("reported")] == exp.reported
        test_acc = row[columns.index("test acc")]
        assert re.fullmatch(r"\d+\.\d\d%", test_acc), (exp.key, row)
        assert float(row[columns.index("wall s")]) >= 0
    assert "AMD" in report or "Machine:" in report
    assert "n_threads=1" in report and "ProcessPoolExecutor" in report
    for name in FIGURES:
        path = out / name
        assert path.is_file() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp")), "temporary files left behind"
    assert "wrote" in capsys.readouterr().out


def test_only_filters_sources_and_add_arguments_parses_options():
    parser = argparse.ArgumentParser()
    experiments.add_arguments(parser)
    args = parser.parse_args(["--only", "001,best", "--jobs", "3", "--quick"])
    assert args.only == ("001", "best") and args.jobs == 3 and args.quick
    assert args.out == "experiments-report" and args.dataset == "mnist"
    with pytest.raises(SystemExit):
        parser.parse_args(["--only", "007"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--jobs", "0"])


def test_full_plan_covers_every_source_and_the_003_choices():
    plan = experiments.build_plan()
    assert {exp.source for exp in plan} == set(experiments.SOURCES)
    assert len({exp.key for exp in plan}) == len(plan)
    grid = [exp for exp in plan if exp.source == "003"]
    archs = {tuple(exp.params["hidden_layer_sizes"]) for exp in grid}
    assert archs == {(), (64,), (64, 64)}
    changed = {exp.factor for exp in grid}
    assert changed == {"", "optimizer", "activation", "normalization", "init", "L1", "lr decay"}
    quick = experiments.build_plan(quick=True)
    assert {exp.source for exp in quick} == set(experiments.SOURCES)
    assert {exp.key for exp in quick} <= {exp.key for exp in plan}


def test_random_shifts_moves_each_image_by_at_most_max_shift_pixels():
    import numpy as np
    rng = np.random.default_rng(0)
    X = np.zeros((200, 784), np.uint8)
    X[:, 14 * 28 + 14] = 255  # one lit pixel in the middle of every image
    shifted = experiments.random_shifts(X, rng, 2)
    assert shifted.shape == X.shape and shifted.dtype == np.uint8
    rows, cols = np.divmod(shifted.argmax(axis=1), 28)
    assert (shifted.sum(axis=1) == 255).all()  # nothing lost away from the border
    assert np.abs(rows - 14).max() == 2 and np.abs(cols - 14).max() == 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 25  # all 5 x 5 offsets occur


def test_a_missing_dataset_fails_fast_with_one_line(tmp_path, capsys):
    out = tmp_path / "report"
    assert experiments.main(["--quick", "--dataset", str(tmp_path / "missing"),
                             "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err
    assert not out.exists()
