"""Behaviour of MLPClassifier: it learns, it records, it validates, it is reproducible."""
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastann import MLPClassifier, NotFittedError

DATA_DIR = Path(__file__).parent / "data"
SOLVERS = ["gd", "sgd", "momentum", "nesterov", "adam", "adamw"]
# A step size per solver that trains the small problem in a few epochs.
SOLVER_RATES = {"gd": 0.5, "sgd": 0.1, "momentum": 0.05, "nesterov": 0.05,
                "adam": 0.01, "adamw": 0.01}
HISTORY_KEYS = {"epoch", "learning_rate", "train_loss", "train_accuracy",
                "val_loss", "val_accuracy", "seconds", "eval_seconds", "n_validation"}


def blobs(n=120, n_features=4, n_classes=3, seed=0, spread=1.0):
    """Gaussian blobs around well separated centers; float64 X, int y in [0, n_classes)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (n_classes, n_features))
    y = np.arange(n) % n_classes
    X = centers[y] + spread * rng.standard_normal((n, n_features))
    return X, y


def log_loss(model, X, y):
    """Mean cross-entropy of ``model`` on ``(X, y)``, y given as labels in ``classes_``."""
    idx = np.searchsorted(model.classes_, y)
    return float(-model.predict_log_proba(X)[np.arange(len(y)), idx].mean())


def small(**params):
    defaults = dict(hidden_layer_sizes=(8,), epochs=10, batch_size=16, random_state=0)
    defaults.update(params)
    return MLPClassifier(**defaults)


# ------------------------------------------------------------------ real data
def test_mnist_subset_reaches_90_percent_test_accuracy():
    datasets = pytest.importorskip("fastann.datasets")
    X_train, y_train = datasets.load_dataset(DATA_DIR, "train")
    X_test, y_test = datasets.load_dataset(DATA_DIR, "test")
    assert X_train.shape == (2000, 784) and X_train.dtype == np.uint8
    assert X_test.shape == (500, 784) and y_test.shape == (500,)
    model = MLPClassifier(hidden_layer_sizes=(128,), solver="momentum", learning_rate=0.05,
                          batch_size=32, epochs=20, random_state=0)
    model.fit(X_train, y_train)
    assert model.normalization_scale_[0] == pytest.approx(1 / 255)  # uint8 -> "simple"
    assert model.score(X_test, y_test) >= 0.90
    np.testing.assert_array_equal(model.classes_, np.arange(10))


# ------------------------------------------------------------ learning at all
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_every_solver_reduces_training_loss(solver, activation):
    X, y = blobs()
    model = small(solver=solver, activation=activation, learning_rate=SOLVER_RATES[solver],
                  epochs=1)
    model.fit(X, y)
    loss_before = log_loss(model, X, y)
    for _ in range(15):
        model.partial_fit(X, y)
    loss_after = log_loss(model, X, y)
    assert loss_after < 0.8 * loss_before
    if solver == "gd":
        assert model.t_ == model.n_iter_  # one full-batch update per epoch
    else:
        assert model.t_ == model.n_iter_ * math.ceil(len(X) / 16)


@pytest.mark.parametrize("activation", ["leaky_relu", "identity"])
def test_other_activations_train(activation):
    X, y = blobs()
    model = small(activation=activation, learning_rate=0.01, epochs=30).fit(X, y)
    assert model.score(X, y) > 0.9


def test_softmax_regression_without_hidden_layers():
    X, y = blobs()
    model = small(hidden_layer_sizes=(), learning_rate=0.05, epochs=30).fit(X, y)
    assert [c.shape for c in model.coefs_] == [(4, 3)]
    assert [b.shape for b in model.intercepts_] == [(3,)]
    assert model.score(X, y) > 0.9


def test_three_hidden_layers():
    X, y = blobs()
    model = small(hidden_layer_sizes=(16, 8, 4), learning_rate=0.01, epochs=40).fit(X, y)
    assert [c.shape for c in model.coefs_] == [(4, 16), (16, 8), (8, 4), (4, 3)]
    assert model.score(X, y) > 0.9


def test_float64_parameters_and_training():
    X, y = blobs()
    model = small(dtype="float64", learning_rate=0.01, epochs=30).fit(X, y)
    assert all(c.dtype == np.float64 for c in model.coefs_ + model.intercepts_)
    assert model.normalization_scale_.dtype == np.float64
    assert model.score(X, y) > 0.9
    assert model.predict_proba(X).dtype == np.float64


def test_float32_is_the_default_precision():
    X, y = blobs()
    model = small().fit(X, y)
    assert all(c.dtype == np.float32 for c in model.coefs_ + model.intercepts_)


# --------------------------------------------------------------------- labels
def test_string_labels_round_trip():
    X, y = blobs()
    names = np.array(["cat", "dog", "emu"])
    model = small(learning_rate=0.01, epochs=30).fit(X, names[y])
    np.testing.assert_array_equal(model.classes_, names)
    pred = model.predict(X)
    assert pred.dtype.kind == "U"
    assert set(pred) <= set(names)
    assert np.mean(pred == names[y]) > 0.9
    assert model.score(X, names[y]) > 0.9


def test_non_contiguous_integer_labels_round_trip():
    X, y = blobs()
    labels = np.array([3, 7, 10])
    model = small(learning_rate=0.01, epochs=30).fit(X, labels[y])
    np.testing.assert_array_equal(model.classes_, labels)
    pred = model.predict(X)
    assert set(pred.tolist()) <= {3, 7, 10}
    assert np.mean(pred == labels[y]) > 0.9
    assert model.predict_proba(X).shape == (len(X), 3)


def test_list_inputs_are_accepted():
    X, y = blobs(n=30)
    model = small(epochs=2).fit(X.tolist(), y.tolist())
    assert model.predict(X.tolist()).shape == (30,)


def test_predict_proba_rows_sum_to_one_and_match_predict():
    X, y = blobs()
    model = small(epochs=5).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X))
    np.testing.assert_allclose(np.exp(model.predict_log_proba(X)), proba, rtol=1e-6)


def test_predict_on_uint8_images():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 20), dtype=np.uint8)
    y = (X[:, 0] > 127).astype(int)
    model = small(epochs=60, learning_rate=0.03).fit(X, y)
    np.testing.assert_allclose(model.normalization_scale_, 1 / 255, rtol=1e-6)
    assert model.score(X, y) > 0.9
    # The same pixels as floats go through the same normalization.
    np.testing.assert_allclose(model.predict_proba(X.astype(np.float64)),
                               model.predict_proba(X), rtol=1e-5, atol=1e-7)


# -------------------------------------------------------------------- history
def test_history_has_one_record_per_epoch_with_documented_keys():
    X, y = blobs()
    model = small(epochs=4).fit(X, y)
    assert model.n_iter_ == 4
    assert len(model.history_) == 4
    for i, record in enumerate(model.history_):
        assert set(record) == HISTORY_KEYS
        assert record["epoch"] == i + 1
        assert record["val_loss"] is None and record["val_accuracy"] is None
        assert record["train_loss"] > 0 and 0 <= record["train_accuracy"] <= 1
        assert record["seconds"] >= 0 and record["eval_seconds"] == 0.0
        assert record["learning_rate"] == 1e-3


def test_validation_data_fills_validation_metrics():
    X, y = blobs(n=150)
    X_val, y_val = blobs(n=60, seed=0)  # same centers, fresh noise would need seed reuse
    model = small(epochs=3, learning_rate=0.01).fit(X, y, validation_data=(X_val, y_val))
    for record in model.history_:
        assert record["val_loss"] > 0
        assert 0 <= record["val_accuracy"] <= 1
        assert record["eval_seconds"] >= 0
    last = model.history_[-1]
    assert last["val_loss"] == pytest.approx(log_loss(model, X_val, y_val), rel=1e-5)
    assert last["val_accuracy"] == pytest.approx(model.score(X_val, y_val))
    # All of X was used for training: ceil(150 / 16) updates per epoch.
    assert model.t_ == 3 * 10


def test_validation_data_with_unknown_labels_is_rejected():
    X, y = blobs()
    with pytest.raises(ValueError, match="not seen"):
        small(epochs=1).fit(X, y, validation_data=(X[:5], np.array([0, 1, 2, 9, 0])))
    with pytest.raises(ValueError, match="features"):
        small(epochs=1).fit(X, y, validation_data=(X[:5, :3], y[:5]))


def test_validation_fraction_holds_out_part_of_the_data():
    X, y = blobs(n=100)
    model = small(validation_fraction=0.2, batch_size=10, epochs=3).fit(X, y)
    assert all(r["val_loss"] is not None and r["val_accuracy"] is not None
               for r in model.history_)
    assert model.t_ == 3 * 8  # 80 training rows in batches of 10
    with pytest.raises(ValueError, match="validation_fraction"):
        small(validation_fraction=1.0).fit(X, y)


def test_early_stopping_stops_and_restores_the_best_weights():
    # Validation labels are the training labels shifted by one class, so the
    # better the model fits the training data, the worse its validation loss:
    # the best validation loss comes early and training must stop early.
    X, y = blobs(n=90)
    y_val = (y + 1) % 3
    model = small(early_stopping=True, n_iter_no_change=3, epochs=50, learning_rate=0.01)
    model.fit(X, y, validation_data=(X, y_val))
    losses = [r["val_loss"] for r in model.history_]
    best = int(np.argmin(losses))
    assert len(losses) < 50
    assert len(losses) == best + 1 + 3
    # The kept weights are those of the best epoch, not of the last one.
    assert log_loss(model, X, y_val) == pytest.approx(losses[best], rel=1e-5)
    assert log_loss(model, X, y_val) < losses[-1]


def test_early_stopping_uses_a_default_validation_split():
    X, y = blobs(n=100)
    model = small(early_stopping=True, batch_size=10, epochs=2).fit(X, y)
    assert model.history_[0]["val_loss"] is not None
    assert model.t_ == 2 * 9  # 10% held out: 90 training rows


# ----------------------------------------------------------------- schedules
@pytest.mark.parametrize("schedule,expected", [
    ("constant", lambda i: 0.1),
    ("step", lambda i: 0.1 * 0.5 ** (i // 2)),
    ("exponential", lambda i: 0.1 * 0.5 ** i),
    ("cosine", lambda i: 0.1 * 0.5 * (1 + math.cos(math.pi * i / 6))),
])
def test_learning_rate_schedules(schedule, expected):
    X, y = blobs(n=60)
    model = small(solver="sgd", learning_rate=0.1, lr_schedule=schedule, lr_decay=0.5,
                  lr_step_size=2, epochs=6).fit(X, y)
    rates = [r["learning_rate"] for r in model.history_]
    np.testing.assert_allclose(rates, [expected(i) for i in range(6)], rtol=1e-12)
    if schedule != "constant":
        assert rates[-1] < rates[0]


# ---------------------------------------------------------------- determinism
def test_same_random_state_gives_bit_identical_weights():
    X, y = blobs()
    a = small(epochs=5, validation_fraction=0.2).fit(X, y)
    b = small(epochs=5, validation_fraction=0.2).fit(X, y)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(wa, wb)
    c = small(epochs=5, validation_fraction=0.2, random_state=1).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


def test_refit_starts_from_scratch():
    X, y = blobs()
    model = small(epochs=3)
    first = [c.copy() for c in model.fit(X, y).coefs_]
    second = model.fit(X, y).coefs_
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert model.n_iter_ == 3 and len(model.history_) == 3


def test_fit_does_not_modify_its_input_or_hyper_parameters():
    X, y = blobs()
    X_copy, y_copy = X.copy(), y.copy()
    model = small(hidden_layer_sizes=[8])
    params = model.get_params()
    model.fit(X, y)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)
    assert model.get_params() == params
    assert model.hidden_layer_sizes == [8]


# ---------------------------------------------------------------- partial_fit
def test_partial_fit_continues_training():
    X, y = blobs()
    model = small(learning_rate=0.01)
    model.partial_fit(X, y, classes=[0, 1, 2])
    losses = [log_loss(model, X, y)]
    for _ in range(5):
        model.partial_fit(X, y)
        losses.append(log_loss(model, X, y))
    assert losses[-1] < losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert model.n_iter_ == 6 and len(model.history_) == 6
    assert [r["epoch"] for r in model.history_] == list(range(1, 7))


def test_partial_fit_after_fit_continues_from_the_fitted_weights():
    X, y = blobs()
    model = small(learning_rate=0.01, epochs=3).fit(X, y)
    loss = log_loss(model, X, y)
    model.partial_fit(X, y)
    assert model.n_iter_ == 4
    assert log_loss(model, X, y) < loss


def test_partial_fit_with_classes_missing_from_the_first_batch():
    X, y = blobs()
    model = small()
    model.partial_fit(X[y < 2], y[y < 2], classes=np.array([0, 1, 2]))
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])
    model.partial_fit(X, y)
    assert model.predict_proba(X).shape == (len(X), 3)


def test_partial_fit_rejects_unseen_labels_and_wrong_feature_count():
    X, y = blobs()
    model = small().partial_fit(X, y)
    with pytest.raises(ValueError, match=r"not seen.*\[5\]"):
        model.partial_fit(X[:3], np.array([0, 5, 1]))
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        model.partial_fit(X[:, :3], y)


def test_partial_fit_needs_two_classes_on_the_first_call():
    X, y = blobs()
    with pytest.raises(ValueError, match="classes"):
        small().partial_fit(X[y == 0], y[y == 0])


def test_failed_first_partial_fit_leaves_the_model_unfitted():
    X, y = blobs()
    model = small()
    with pytest.raises(ValueError, match="not seen"):
        model.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(NotFittedError):
        model.predict(X)
    model.partial_fit(X, y, classes=[0, 1, 2])  # a corrected call starts afresh
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])


# ----------------------------------------------------------------- penalties
@pytest.mark.parametrize("penalty", ["l1", "l2"])
@pytest.mark.parametrize("solver", ["sgd", "adam", "adamw"])
def test_penalties_shrink_weights(penalty, solver):
    X, y = blobs()
    rate = SOLVER_RATES[solver]
    # AdamW's l2 is decoupled weight decay, w <- w - lr * l2 * w: it needs a larger
    # coefficient than a gradient penalty for the same shrinkage.
    strength = 0.5 if (solver, penalty) == ("adamw", "l2") else 0.05
    plain = small(solver=solver, learning_rate=rate, epochs=30).fit(X, y)
    penalized = small(solver=solver, learning_rate=rate, epochs=30,
                      **{penalty: strength}).fit(X, y)
    norm = (lambda m: sum(np.abs(c).sum() for c in m.coefs_)) if penalty == "l1" else \
        (lambda m: sum((c.astype(np.float64) ** 2).sum() for c in m.coefs_))
    assert norm(penalized) < 0.8 * norm(plain)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("X,message", [
    (np.zeros(10), "Expected 2D array, got 1D array"),
    (np.zeros((10, 2, 2)), "Expected 2D array, got 3D array"),
    (np.zeros((0, 3)), "0 sample"),
    (np.zeros((10, 0)), "0 feature"),
    (np.where(np.eye(10, 3) == 1, np.nan, 0.0), "NaN"),
    (np.where(np.eye(10, 3) == 1, np.inf, 0.0), "infinity"),
    (np.full((10, 3), "abc"), "numeric"),
    (np.zeros((10, 3), complex), "Complex"),
])
def test_bad_X_is_rejected_with_a_clear_message(X, message):
    with pytest.raises(ValueError, match=message):
        small().fit(X, np.arange(len(X)) % 2)


def test_sparse_X_is_rejected():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse"):
        small().fit(sparse.csr_matrix(np.eye(4)), [0, 1, 0, 1])


@pytest.mark.parametrize("y,message", [
    (np.arange(9) % 2, "different numbers of samples: 10 and 9"),
    (np.zeros(10, int), "only one class"),
    (np.linspace(0, 1, 10), "Unknown label type"),
    (np.where(np.arange(10) == 3, np.nan, np.arange(10) % 2), "NaN"),
    (np.zeros((10, 2)), "1d array"),
    (None, "y"),
])
def test_bad_y_is_rejected_with_a_clear_message(y, message):
    with pytest.raises(ValueError, match=message):
        small().fit(np.random.default_rng(0).random((10, 3)), y)


@pytest.mark.parametrize("param, value, message", [
    ("activation", "softplus", "'activation' parameter of MLPClassifier must be a str among"),
    ("solver", "lbfgs", "'solver' parameter of MLPClassifier must be a str among .*Got 'lbfgs'"),
    ("init", "zeros", "'init' parameter .* Got 'zeros' instead"),
    ("normalization", "minmax", "'normalization' parameter .* Got 'minmax' instead"),
    ("lr_schedule", "linear", "'lr_schedule' parameter .* Got 'linear' instead"),
    ("dtype", "float16", "'dtype' parameter .* Got 'float16' instead"),
    ("dtype", np.int32, "dtype must be one of float32, float64"),
    ("batch_size", 0, r"'batch_size' parameter .* int in the range \[1, inf\). Got 0"),
    ("batch_size", -3, r"'batch_size' parameter .* Got -3"),
    ("batch_size", 2.5, r"'batch_size' parameter .* Got 2.5"),
    ("learning_rate", 0.0, r"'learning_rate' parameter .* range \(0.0, inf\). Got 0.0"),
    ("learning_rate", -1e-3, "'learning_rate' parameter"),
    ("epochs", 0, "'epochs' parameter"),
    ("hidden_layer_sizes", (8, 0), "hidden_layer_sizes must be a tuple of positive integers"),
    ("momentum", 1.0, r"'momentum' parameter .* range \[0.0, 1.0\)"),
    ("l2", -0.1, r"'l2' parameter .* range \[0.0, inf\)"),
    ("lr_decay", 0.0, r"'lr_decay' parameter .* range \(0.0, 1.0\]"),
    ("early_stopping", "no", "'early_stopping' parameter .* instance of 'bool'"),
    ("validation_fraction", None, "'validation_fraction' parameter .* Got None"),
    ("verbose", "x", "'verbose' parameter"),
])
def test_bad_hyper_parameters_are_rejected_in_fit(param, value, message):
    X, y = blobs(n=20)
    model = small(**{param: value})  # __init__ accepts anything, like scikit-learn
    assert getattr(model, param) == value
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)


def test_predict_before_fit_raises_not_fitted_error():
    X, _ = blobs(n=10)
    model = small()
    for method in (model.predict, model.predict_proba, model.predict_log_proba):
        with pytest.raises(NotFittedError, match="not fitted"):
            method(X)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_predict_with_wrong_feature_count():
    X, y = blobs()
    model = small(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match="Expected 2D array"):
        model.predict(X[0])


def test_set_params_rejects_unknown_names():
    with pytest.raises(ValueError, match="Invalid parameter 'hidden_layers'.*hidden_layer_sizes"):
        small().set_params(hidden_layers=(3,))


# ----------------------------------------------------------------- divergence
def test_huge_learning_rate_warns_or_trains_and_keeps_finite_weights():
    X, y = blobs()
    model = small(solver="sgd", learning_rate=1e3, epochs=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    diverged = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    if diverged:
        assert "diverged" in str(diverged[0].message)
        assert "learning_rate" in str(diverged[0].message)
        assert len(model.history_) < 10
    assert all(np.isfinite(c).all() for c in model.coefs_ + model.intercepts_)
    assert np.isfinite(model.predict_proba(X)).all()


def test_divergence_is_reported_as_runtime_warning():
    # Identity activation and a huge step: the weights overflow for certain.
    X, y = blobs()
    model = small(solver="sgd", activation="identity", learning_rate=1e6, epochs=10,
                  hidden_layer_sizes=(8, 8))
    with pytest.warns(RuntimeWarning, match="diverged"):
        model.fit(X, y)
    assert all(np.isfinite(c).all() for c in model.coefs_ + model.intercepts_)
    assert np.isfinite(model.predict_proba(X)).all()


def test_diverged_epoch_is_rolled_back_with_the_optimizer_state():
    # Momentum's velocity becomes non-finite together with the weights; if it
    # were kept, every later call would diverge again whatever the step size.
    X, y = blobs()
    model = small(solver="momentum", activation="identity", learning_rate=1e6,
                  hidden_layer_sizes=(8, 8), epochs=10)
    with pytest.warns(RuntimeWarning, match="diverged"):
        model.fit(X, y)
    assert model.n_iter_ == len(model.history_)
    assert model.t_ == model.n_iter_ * math.ceil(len(X) / 16)
    model.set_params(learning_rate=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.partial_fit(X, y)
    assert model.n_iter_ == len(model.history_)
    assert np.isfinite(model.history_[-1]["train_loss"])


# ----------------------------------------------------------------------- repr
def test_repr_lists_changed_parameters():
    assert repr(MLPClassifier()) == "MLPClassifier()"
    assert repr(MLPClassifier(epochs=3, solver="sgd")) == "MLPClassifier(epochs=3, solver='sgd')"
    text = repr(MLPClassifier(hidden_layer_sizes=np.array([16, 8])))
    assert text == "MLPClassifier(hidden_layer_sizes=array([16,  8]))"


def test_sparse_first_layer_trains_like_the_dense_one(monkeypatch):
    from fastann.backends import cpu
    from fastann.datasets import load_dataset
    X, y = load_dataset(DATA_DIR, "train")
    X, y = X[:600], y[:600]
    params = dict(hidden_layer_sizes=(32,), epochs=2, batch_size=50, n_threads=1, random_state=0)
    sparse = MLPClassifier(**params)
    assert X.dtype == np.uint8
    sparse.fit(X, y)
    monkeypatch.setattr(cpu, "SPARSE_INPUT_MAX_DENSITY", -1.0)
    dense = MLPClassifier(**params).fit(X, y)
    for a, b in zip(sparse.history_, dense.history_):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    np.testing.assert_allclose(sparse.coefs_[0], dense.coefs_[0], rtol=1e-3, atol=1e-5)


def test_sparse_path_is_chosen_only_for_one_thread_and_zero_shift():
    from fastann import kernels
    from fastann.backends.cpu import CpuBackend
    X = np.zeros((10, 20), np.uint8)
    X[:, 0] = 7
    params = np.zeros(20 * 2 + 2, np.float32)

    def backend(n_threads, shift=0.0):
        norm = kernels.Normalization(np.full(20, 1 / 255, np.float32), np.full(20, shift, np.float32))
        return CpuBackend([20, 2], kernels.RELU, kernels.SGD, norm, params, n_threads=n_threads)
    assert backend(1).wants_sparse_input(X)
    assert not backend(2).wants_sparse_input(X)
    assert not backend(1, shift=-0.5).wants_sparse_input(X)
    assert not backend(1).wants_sparse_input(np.full((10, 20), 3, np.uint8))  # dense data
