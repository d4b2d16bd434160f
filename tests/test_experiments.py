"""``fastann experiments``: the plan (data), the runner and the report."""
import argparse
import ast
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fastann import experiments  # noqa: E402
from fastann.experiments import markdown, plan, report  # noqa: E402

DATA = str(Path(__file__).parent / "data")
FIGURES = ("test_accuracy.png", "learning_curves.png", "confusion_matrix.png",
           "misclassified.png", "first_layer_weights.png", "validation_correct_002.png")


def _table(report_text, first_column):
    """Header cells and data rows of the Markdown table whose header starts with
    ``| first_column |``."""
    lines = report_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return [c.strip() for c in lines[start].strip("|").split("|")], rows


# --------------------------------------------------------------------------- the plan
def test_plan_is_package_data_in_json():
    text = resources.files("fastann.experiments").joinpath("plan.json").read_text("utf-8")
    assert json.loads(text)["experiments"]


def test_every_published_value_has_a_source():
    sources = plan.sources()
    n_values = 0
    for exp in experiments.build_plan():
        source = sources[exp.source]
        if source.ours:
            assert not exp.published, exp.key
            continue
        for value in exp.published:
            n_values += 1
            assert source.reference and source.title, exp.key
            assert value.quote.strip() and value.where.strip(), (exp.key, value)
            assert value.metric in ("test_accuracy", "train_accuracy", "validation_correct")
            assert isinstance(value.value, (int, float)), (exp.key, value)
            if value.metric == "validation_correct":
                assert value.epoch is not None and value.out_of, (exp.key, value)
                assert f"{value.value:.0f}" in value.quote
            else:
                assert 0 < value.value <= 100
    assert n_values >= 10


def test_plan_params_are_mlpclassifier_parameters():
    from fastann import MLPClassifier
    known = set(MLPClassifier().get_params())
    for exp in experiments.build_plan():
        assert set(exp.params) <= known, (exp.key, set(exp.params) - known)
        assert isinstance(exp.params["hidden_layer_sizes"], tuple)
        assert exp.params.get("lr_schedule", "constant") in ("constant", "step", "exponential",
                                                             "cosine")


def test_full_plan_covers_every_source_and_the_003_choices():
    full = experiments.build_plan()
    assert {exp.source for exp in full} == set(experiments.SOURCES)
    assert len({exp.key for exp in full}) == len(full)
    grid = [exp for exp in full if exp.source == "003"]
    archs = {tuple(exp.params["hidden_layer_sizes"]) for exp in grid}
    assert archs == {(), (64,), (64, 64)}
    changed = {exp.factor for exp in grid}
    assert changed == {"", "optimizer", "activation", "normalization", "init", "L1", "lr decay"}
    assert all(exp.source_choice for exp in grid if exp.factor)
    quick = experiments.build_plan(quick=True)
    assert {exp.source for exp in quick} == set(experiments.SOURCES)
    assert {exp.key for exp in quick} <= {exp.key for exp in full}


def test_experiments_never_import_the_cli():
    package = Path(experiments.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n == "cli" or n.endswith(".cli") for n in names), (path, names)


# --------------------------------------------------------------------------- options
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


def test_the_cli_wires_the_experiments_command():
    from fastann.cli import build_parser
    args = build_parser().parse_args(["experiments", "--quick", "--only", "002"])
    assert args.handler is experiments.run and args.only == ("002",)


# --------------------------------------------------------------------------- pieces
def test_markdown_table_escapes_pipes_and_checks_widths():
    text = markdown.table(("a", "b"), [(1, "x | y"), (2.5, "z")])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | x \\| y |", "| 2.5 | z |"]
    with pytest.raises(ValueError):
        markdown.table(("a", "b"), [(1,)])


def test_random_shifts_moves_each_image_by_at_most_max_shift_pixels():
    rng = np.random.default_rng(0)
    X = np.zeros((200, 784), np.uint8)
    X[:, 14 * 28 + 14] = 255  # one lit pixel in the middle of every image
    shifted = experiments.random_shifts(X, rng, 2)
    assert shifted.shape == X.shape and shifted.dtype == np.uint8
    rows, cols = np.divmod(shifted.argmax(axis=1), 28)
    assert (shifted.sum(axis=1) == 255).all()  # nothing lost away from the border
    assert np.abs(rows - 14).max() == 2 and np.abs(cols - 14).max() == 2
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 25  # all 5 x 5 offsets occur


def test_fit_with_shifts_follows_the_schedule_and_only_reads_history():
    from fastann import MLPClassifier
    from fastann.experiments.augment import fit_with_shifts
    from fastann.schedules import scheduled_learning_rate
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (120, 784), dtype=np.uint8)
    y = np.arange(120) % 3
    model = MLPClassifier(hidden_layer_sizes=(8,), epochs=4, learning_rate=0.01,
                          lr_schedule="cosine", n_threads=1, random_state=0)
    seconds, history = fit_with_shifts(model, X, y, X[:30], y[:30], max_shift=1, seed=0)
    assert seconds > 0 and len(history) == model.n_iter_ == 4
    assert model.get_params()["learning_rate"] == 0.01
    assert model.get_params()["lr_schedule"] == "cosine"
    expected = [scheduled_learning_rate("cosine", 0.01, e, 4, 0.5, 10) for e in range(4)]
    assert [r["learning_rate"] for r in history] == pytest.approx(expected)
    assert all(0 <= r["val_accuracy"] <= 1 and r["n_validation"] == 30 for r in history)
    assert all(r["val_accuracy"] is None for r in model.history_)  # not written into


def _fake_rows():
    """Rows of the quick plan with made-up results, as the runner returns them."""
    from fastann.experiments.runner import Row
    rows = []
    for i, exp in enumerate(experiments.build_plan(quick=True)):
        history = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.5,
                    "val_loss": 1.0 / e, "val_accuracy": 0.9 + e / 100} for e in (1, 2)]
        result = {"key": exp.key, "status": "ok", "message": "", "seconds": 1.25 + i,
                  "epochs_run": 2, "train_accuracy": 50.0 + i + 0.125,
                  "test_accuracy": 60.0 + i + 0.375, "eval_accuracy": 90.2,
                  "n_train": 2500, "n_eval": 500, "n_test": 1000, "history": history,
                  "monitor": "validation" if exp.split == "50k/10k" else "test"}
        rows.append(Row(exp, dict(exp.params, epochs=2), result))
    return rows


def test_report_tables_are_filled_from_the_results():
    rows = _fake_rows()
    meta = {"quick": True, "seed": 0, "date": "today", "cpu": "CPU", "cores": 2,
            "available": 2, "load_start": "0", "load_end": "0", "software": "fastann",
            "data": "`x`", "command": "fastann experiments --quick", "total_seconds": 1.0,
            "workers": 2, "n_test": 1000}
    text = report.report_text(rows, meta, [])
    header, table_rows = _table(text, "#")
    assert len(table_rows) == len(rows)
    for cells, row in zip(table_rows, rows):
        assert cells[header.index("test acc")] == f"{row.result['test_accuracy']:.2f}%"
        assert cells[header.index("train acc")] == f"{row.result['train_accuracy']:.2f}%"
        assert cells[header.index("wall s")] == f"{row.result['seconds']:.1f}"
        assert cells[header.index("published")] == row.exp.reported
    # Published values side by side: the published number, ours, and where it was read.
    header, compared = _table(text.split("## Published values, side by side")[1], "#")
    assert compared
    by_key = {row.exp.key: row for row in rows}
    for cells in compared:
        row = by_key[cells[header.index("configuration")]]
        metric = cells[header.index("metric")].replace(" ", "_")
        assert cells[header.index("fastann")] == f"{row.result[metric]:.2f}%"
        assert cells[header.index("published")] == row.exp.published_value(metric).text()
        assert plan.sources()[row.exp.source].reference in cells[header.index("where")]
    # 002: the per-epoch counts come from the history and the plan.
    header, per_epoch = _table(text, "after epoch")
    assert per_epoch[0] == ["1", "Epoch 0", "7512/10000", "455/500"]
    assert per_epoch[1] == ["2", "Epoch 1", "8158/10000", "460/500"]
    assert per_epoch[2][3] == "— (not run)"
    # Numbers measured elsewhere (the former "separate checks") live in NOTES.md, not here.
    assert "NOTES.md" in text
    assert not any(number in text for number in ("97.88%", "93.23%", "96.36%", "98.47%"))


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_run_writes_one_row_per_configuration_and_the_figures(tmp_path, capsys):
    out = tmp_path / "report"
    # The Fashion-MNIST row reads the same subset, so the test needs no other data.
    status = experiments.main(["--quick", "--dataset", DATA, "--fashion-dataset", DATA,
                               "--out", str(out), "--jobs", "2", "--seed", "3"])
    assert status == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out
    # What the workers returned, as the progress lines printed it.
    measured = {}
    for line in (captured.out + captured.err).replace("\r", "\n").splitlines():
        found = re.match(r"\s+(.+?)\s+test\s+([\d.]+)%\s+train\s+([\d.]+)%\s+([\d.]+) s$", line)
        if found:
            measured[found[1]] = found.group(2, 3)
    report_text = (out / "REPORT.md").read_text(encoding="utf-8")
    header, rows = _table(report_text, "#")
    quick = experiments.build_plan(quick=True)
    assert len(rows) == len(quick) == len(measured)
    assert [row[0] for row in rows] == [str(i) for i in range(1, len(quick) + 1)]
    for name in ("architecture (as run)", "optimizer", "lr", "epochs", "batch", "train acc",
                 "test acc", "wall s", "published"):
        assert name in header
    for row, exp in zip(rows, quick):
        assert row[header.index("source")] == exp.source
        assert row[header.index("published")] == exp.reported
        test_acc, train_acc = measured[exp.key]
        assert row[header.index("test acc")] == f"{test_acc}%", exp.key
        assert row[header.index("train acc")] == f"{train_acc}%", exp.key
        assert float(row[header.index("wall s")]) >= 0
    assert "Machine:" in report_text
    assert "n_threads=1" in report_text and "ProcessPoolExecutor" in report_text
    assert "## Published values, side by side" in report_text
    for name in FIGURES:
        path = out / name
        assert path.is_file() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp")), "temporary files left behind"


def test_a_missing_dataset_fails_fast_with_one_line(tmp_path, capsys):
    out = tmp_path / "report"
    assert experiments.main(["--quick", "--dataset", str(tmp_path / "missing"),
                             "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err
    assert not out.exists()
