"""CSVLogger and ``fastann train --log-dir``: metrics.csv, hparams.json, summary.json."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

import fastann.callbacks as callbacks_module
from fastann import MLPClassifier
from fastann.callbacks import CSVLogger
from fastann.cli import main
from fastann.datasets import load_dataset

DATA = str(Path(__file__).parent / "data")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def small():
    X, y = load_dataset(DATA, "train")
    return X[:300], y[:300]


def test_csv_logger_writes_one_row_per_epoch_and_appends(tmp_path, small):
    X, y = small
    path = tmp_path / "logs" / "metrics.csv"
    model = MLPClassifier(hidden_layer_sizes=(8,), epochs=3, n_threads=1, random_state=0)
    model.fit(X, y, callbacks=[CSVLogger(path)])
    rows = read_csv(path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == list(model.history_[0])  # the record's keys, in order
    for row, record in zip(rows, model.history_):
        assert float(row["train_loss"]) == record["train_loss"]
        assert row["val_loss"] == ""  # no validation data: empty cell
    # append=True continues the file (one header); append=False starts it anew.
    model.partial_fit(X, y)
    more = MLPClassifier(hidden_layer_sizes=(8,), epochs=2, n_threads=1, random_state=1)
    more.fit(X, y, validation_data=(X[:50], y[:50]), callbacks=[CSVLogger(path, append=True)])
    rows = read_csv(path)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 1, 2]
    assert float(rows[-1]["val_accuracy"]) == more.history_[-1]["val_accuracy"]
    assert path.read_text().count("epoch,") == 1
    model.fit(X, y, callbacks=[CSVLogger(path, separator=";")])
    text = path.read_text().splitlines()
    assert len(text) == 4 and text[0].startswith("epoch;learning_rate;")


def test_train_log_dir_writes_metrics_hparams_and_summary(tmp_path, capsys):
    log_dir = tmp_path / "run"
    assert main(["train", "--dataset", DATA, "--epochs", "3", "--hidden", "16", "--seed", "4",
                 "--threads", "1", "--quiet", "--log-dir", str(log_dir)]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy: ")[1].split("%")[0])
    rows = read_csv(log_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(0 <= float(r["val_accuracy"]) <= 1 for r in rows)
    hparams = json.loads((log_dir / "hparams.json").read_text())
    assert hparams["hyperparameters"]["hidden_layer_sizes"] == [16]
    assert hparams["hyperparameters"]["random_state"] == 4
    assert hparams["data"] == {"dataset": DATA, "n_train": 1667, "n_validation": 333,
                               "n_test": 500}
    summary = json.loads((log_dir / "summary.json").read_text())
    assert round(100 * summary["test_accuracy"], 2) == accuracy
    assert summary["seed"] == 4 and summary["threads"] == 1 and summary["epochs"] == 3
    assert summary["seconds"] > 0 and summary["n_test"] == 500
    assert summary["final_epoch"]["epoch"] == 3
    assert set(summary["versions"]) >= {"fastann", "numpy", "numba", "scikit-learn"}


def test_resume_appends_each_epoch_once(tmp_path, monkeypatch, capsys):
    def argv(directory):
        return ["train", "--dataset", DATA, "--epochs", "5", "--hidden", "16", "--seed", "2",
                "--threads", "1", "--quiet", "--checkpoint-dir", str(directory / "ck"),
                "--log-dir", str(directory / "log")]

    class Crash(Exception):
        pass

    save = callbacks_module.write_checkpoint

    def crash_before_saving_epoch_3(file, state, **kwargs):
        if state.n_iter >= 3:  # epoch 3 is logged, but never checkpointed
            raise Crash
        save(file, state, **kwargs)

    monkeypatch.setattr(callbacks_module, "write_checkpoint", crash_before_saving_epoch_3)
    with pytest.raises(Crash):
        main(argv(tmp_path / "a"))
    monkeypatch.undo()
    assert len(read_csv(tmp_path / "a" / "log" / "metrics.csv")) == 3
    assert main([*argv(tmp_path / "a"), "--resume"]) == 0
    assert main(argv(tmp_path / "b")) == 0  # uninterrupted reference
    resumed = read_csv(tmp_path / "a" / "log" / "metrics.csv")
    reference = read_csv(tmp_path / "b" / "log" / "metrics.csv")
    assert [int(r["epoch"]) for r in resumed] == [1, 2, 3, 4, 5]
    for a, b in zip(resumed, reference):
        assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]
    summary = json.loads((tmp_path / "a" / "log" / "summary.json").read_text())
    assert summary["epochs"] == 5
    assert np.isclose(summary["test_accuracy"],
                      json.loads((tmp_path / "b" / "log" / "summary.json").read_text())
                      ["test_accuracy"])
