"""Learning-rate schedules: plateau (Keras's ReduceLROnPlateau) and linear warm-up."""
from pathlib import Path

import numpy as np
import pytest

import fastann.callbacks as callbacks_module
from fastann import MLPClassifier
from fastann.checkpoint import read_checkpoint
from fastann.cli import main
from fastann.datasets import load_dataset
from fastann.schedules import (SCHEDULES, learning_rate_schedule, monitored_losses,
                               plateau_learning_rate, scheduled_learning_rate, warmup_factor)

DATA = str(Path(__file__).parent / "data")


@pytest.fixture(scope="module")
def train_data():
    X, y = load_dataset(DATA, "train")
    return X[:600], y[:600]


def test_plateau_reduces_after_patience_epochs_without_improvement():
    # best 1.0 -> 0.9 (improves), then 0.95, 0.92: two epochs without improvement.
    losses = [1.0, 0.9, 0.95, 0.92, 0.91, 0.7, 0.8, 0.8, 0.8, 0.8]
    rates = [plateau_learning_rate(1.0, losses[:e], 0.5, 2, 1e-4, 0.0) for e in range(11)]
    #        epoch: 0    1    2    3    4    5     6     7     8     9      10
    assert rates == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_plateau_improvement_needs_more_than_tol_and_stops_at_min_lr():
    losses = [1.0, 0.99, 0.98, 0.97, 0.96, 0.95]  # improves by 0.01 < tol each epoch
    assert plateau_learning_rate(1.0, losses, 0.1, 1, 0.1, 0.0) == pytest.approx(1e-5)
    assert plateau_learning_rate(1.0, losses, 0.1, 1, 0.001, 0.0) == 1.0
    assert plateau_learning_rate(1.0, losses, 0.1, 1, 0.1, 0.02) == 0.02


def test_warmup_rises_linearly_and_composes_with_any_schedule():
    assert [warmup_factor(e, 3) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
    for schedule in ("constant", "step", "exponential", "cosine"):
        for epoch in range(6):
            plain = scheduled_learning_rate(schedule, 0.1, epoch, 6, 0.5, 2)
            warmed = scheduled_learning_rate(schedule, 0.1, epoch, 6, 0.5, 2, warmup_epochs=3)
            assert warmed == pytest.approx(plain * warmup_factor(epoch, 3))
    losses = [1.0, 2.0, 3.0]
    assert scheduled_learning_rate("plateau", 0.1, 3, 6, 0.5, 2, losses=losses, patience=2,
                                   warmup_epochs=4) == pytest.approx(0.05 * 4 / 5)


def test_plateau_needs_the_losses_of_earlier_epochs():
    assert "plateau" in SCHEDULES
    with pytest.raises(ValueError, match="losses"):
        scheduled_learning_rate("plateau", 0.1, 3, 6, 0.5, 2, losses=[1.0])


def test_monitored_losses_prefer_validation():
    history = [{"train_loss": 1.0, "val_loss": 2.0}, {"train_loss": 0.5, "val_loss": None}]
    assert monitored_losses(history) == [2.0, 0.5]


def test_fit_records_the_rates_the_schedule_gives_for_its_history(train_data):
    X, y = train_data
    # tol=10: after the first epoch nothing counts as an improvement, so with
    # patience 1 the rate halves every epoch from the third on.
    model = MLPClassifier(hidden_layer_sizes=(16,), epochs=6, learning_rate=0.01,
                          lr_schedule="plateau", lr_patience=1, tol=10.0, warmup_epochs=2,
                          validation_fraction=0.2, n_threads=1, random_state=0).fit(X, y)
    rates = [r["learning_rate"] for r in model.history_]
    assert rates == pytest.approx([0.01 / 3, 0.02 / 3, 0.005, 0.0025, 0.00125, 0.000625])
    rate_at = learning_rate_schedule(model.get_params())
    assert rates == [rate_at(e, 6, model.history_[:e]) for e in range(6)]
    # Without validation data the training loss is monitored.
    no_val = MLPClassifier(hidden_layer_sizes=(16,), epochs=3, lr_schedule="plateau",
                           lr_patience=1, tol=10.0, n_threads=1, random_state=0).fit(X, y)
    assert [r["learning_rate"] for r in no_val.history_] == pytest.approx([1e-3, 1e-3, 5e-4])


def test_resume_with_plateau_and_warmup_is_bit_identical(tmp_path, monkeypatch, train_data):
    X, y = train_data
    params = dict(hidden_layer_sizes=(16,), epochs=5, batch_size=32, random_state=3,
                  n_threads=1, lr_schedule="plateau", lr_patience=1, tol=10.0, lr_decay=0.5,
                  warmup_epochs=2, validation_fraction=0.2)
    reference = MLPClassifier(**params).fit(X, y)
    path = tmp_path / "ck.npz"
    save = callbacks_module.write_checkpoint

    class Crash(Exception):
        pass

    def crash_after_three_epochs(file, state, **kwargs):
        save(file, state, **kwargs)
        if state.n_iter >= 3:
            raise Crash

    monkeypatch.setattr(callbacks_module, "write_checkpoint", crash_after_three_epochs)
    with pytest.raises(Crash):
        MLPClassifier(**params).fit(X, y, checkpoint=path)
    monkeypatch.undo()
    assert read_checkpoint(path).n_iter == 3
    resumed = MLPClassifier.resume(path, X, y)
    assert [r["learning_rate"] for r in resumed.history_] == \
        [r["learning_rate"] for r in reference.history_]
    assert len({r["learning_rate"] for r in reference.history_[2:]}) == 3  # it did reduce
    for a, b in zip(resumed.coefs_ + resumed.intercepts_,
                    reference.coefs_ + reference.intercepts_):
        assert np.array_equal(a, b)


def test_new_options_are_validated_and_on_the_command_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="lr_patience"):
        MLPClassifier(lr_patience=0).fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="warmup_epochs"):
        MLPClassifier(warmup_epochs=-1).fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="min_lr"):
        MLPClassifier(min_lr=-1.0).fit(np.eye(4), [0, 1, 0, 1])
    assert main(["train", "--dataset", DATA, "--epochs", "3", "--hidden", "8", "--quiet",
                 "--lr-schedule", "plateau", "--lr-patience", "1", "--min-lr", "1e-4",
                 "--warmup-epochs", "1", "--learning-rate", "0.002",
                 "--log-dir", str(tmp_path)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    import json
    hparams = json.loads((tmp_path / "hparams.json").read_text())["hyperparameters"]
    assert (hparams["lr_schedule"], hparams["lr_patience"], hparams["min_lr"],
            hparams["warmup_epochs"]) == ("plateau", 1, 1e-4, 1)
    assert main(["train", "--dataset", DATA, "--warmup-epochs", "-2"]) == 2
    assert "warmup_epochs" in capsys.readouterr().err
