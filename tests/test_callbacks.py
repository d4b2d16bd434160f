"""Keras-style callbacks: hooks in order, stop_training, and fastann's own behaviour as callbacks."""
import numpy as np
import pytest

from fastann import MLPClassifier
from fastann.callbacks import Callback, EarlyStopping, EpochLogger


def blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (3, 4))
    y = np.arange(n) % 3
    return centers[y] + rng.normal(0, 1, (n, 4)), y


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", logs["epochs"]))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, logs["epoch"], logs["train_loss"]))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", logs["interrupted"]))


def test_hooks_run_in_order_with_the_history_records():
    X, y = blobs()
    recorder = Recorder()
    model = MLPClassifier(hidden_layer_sizes=(8,), epochs=3, random_state=0)
    model.fit(X, y, callbacks=[recorder])
    kinds = [c[0] for c in recorder.calls]
    assert kinds == ["train_begin"] + ["epoch_begin", "epoch_end"] * 3 + ["train_end"]
    assert recorder.calls[0] == ("train_begin", 3)
    ends = [c for c in recorder.calls if c[0] == "epoch_end"]
    assert [(e[1], e[2]) for e in ends] == [(0, 1), (1, 2), (2, 3)]
    assert [e[3] for e in ends] == [r["train_loss"] for r in model.history_]
    assert recorder.calls[-1] == ("train_end", False)
    for callback_model in (recorder.model,):
        assert callback_model is model


def test_a_callback_stops_training_after_one_epoch():
    class StopNow(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    X, y = blobs()
    model = MLPClassifier(hidden_layer_sizes=(8,), epochs=10, random_state=0)
    model.fit(X, y, callbacks=[StopNow()])
    assert model.n_iter_ == 1 and len(model.history_) == 1
    # stop_training is reset by the next fit, which runs all its epochs.
    model.fit(X, y)
    assert model.n_iter_ == 10


def test_stopping_early_gives_the_same_weights_as_fewer_epochs():
    class StopAfter(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    X, y = blobs()
    stopped = MLPClassifier(hidden_layer_sizes=(8,), epochs=10, random_state=0, lr_schedule="constant")
    stopped.fit(X, y, callbacks=[StopAfter()])
    short = MLPClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0).fit(X, y)
    for a, b in zip(stopped.get_weights(), short.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_callback_restores_the_best_weights():
    X, y = blobs()
    X_val, y_val = blobs(seed=1)
    seen = []

    class Keep(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["val_loss"], self.model.get_weights()))

    model = MLPClassifier(hidden_layer_sizes=(8,), epochs=12, learning_rate=0.5, solver="sgd",
                          random_state=0)
    early = EarlyStopping(min_delta=0.0, patience=2)
    model.fit(X, y, validation_data=(X_val, y_val), callbacks=[early, Keep()])
    best_loss, best_weights = min(seen, key=lambda s: s[0])
    assert early.best == best_loss
    for a, b in zip(model.get_weights(), best_weights):
        np.testing.assert_array_equal(a, b)


def test_get_and_set_weights_round_trip_in_keras_order():
    X, y = blobs()
    model = MLPClassifier(hidden_layer_sizes=(5, 4), epochs=1, random_state=0).fit(X, y)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(4, 5), (5,), (5, 4), (4,), (4, 3), (3,)]
    before = model.predict_proba(X)
    model.set_weights([np.zeros_like(w) for w in weights])
    np.testing.assert_allclose(model.predict_proba(X), 1 / 3)
    model.set_weights(weights)
    np.testing.assert_array_equal(model.predict_proba(X), before)
    with pytest.raises(ValueError, match="shapes get_weights returns"):
        model.set_weights(weights[:-1])


def test_verbose_printout_is_the_epoch_logger(capsys):
    X, y = blobs()
    MLPClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0, verbose=1).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch   1/2  train loss")
    MLPClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0).fit(
        X, y, callbacks=[EpochLogger()])
    assert capsys.readouterr().out.strip().splitlines()[1].startswith("epoch   2/2")


def test_callbacks_must_be_callback_instances():
    X, y = blobs()
    with pytest.raises(TypeError, match="fastann.callbacks.Callback"):
        MLPClassifier(epochs=1).fit(X, y, callbacks=[print])
