"""Sample and class weights, dropout, augmentation: kernels against NumPy/SciPy, the model."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from sklearn.utils.class_weight import compute_sample_weight

from fastann import MLPClassifier, kernels, load
from fastann.checkpoint import CheckpointError
from fastann.cli import main
from fastann.datasets import load_dataset
from fastann.kernels import augment, streams
from fastann.kernels.network import parameter_offsets

from reference import softmax_cross_entropy

DATA = str(Path(__file__).parent / "data")
REPO = str(Path(__file__).parent.parent)


@pytest.fixture(scope="module")
def mnist():
    X, y = load_dataset(DATA, "train")
    X_test, y_test = load_dataset(DATA, "test")
    return X, y, X_test, y_test


def params_of(model):
    return [p.copy() for p in model.coefs_ + model.intercepts_]


def same_bits(a, b):
    return all(np.array_equal(p, q) for p, q in zip(params_of(a), params_of(b)))


def blobs(n=120, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.standard_normal((n, d)) + 2.0 * np.eye(k, d)[y]
    return X, y


# --------------------------------------------------------------------------
# The epoch kernel with options, against a NumPy reference
# --------------------------------------------------------------------------

SEED = 987654321


def numpy_epoch(X, y, order, params, sizes, batch, lr, weights=None, rates=None):
    """Mini-batch SGD with tanh, per-row weights and inverted dropout, in float64 NumPy.

    Masks come from :func:`fastann.kernels.dropout_mask` for the rows' positions
    in the epoch (the kernel's random streams); everything else is written out here.
    """
    w_off, b_off = parameter_offsets(sizes)
    n_layers = len(sizes) - 1
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        n_rows = len(rows)
        inputs, acts, keeps = [X[rows]], [None], [None]
        for layer in range(n_layers):
            W = params[w_off[layer]:w_off[layer + 1]].reshape(sizes[layer], sizes[layer + 1])
            z = inputs[-1] @ W + params[b_off[layer]:b_off[layer + 1]]
            if layer == n_layers - 1:
                logits = z
                break
            a = np.tanh(z)
            keep = None
            if rates is not None and rates[layer] > 0:
                keep = np.zeros((n_rows, sizes[layer + 1]))
                kernels.dropout_mask(keep, n_rows, np.uint64(round(rates[layer] * 2 ** 32)),
                                     1 / (1 - rates[layer]), SEED, start, layer)
            acts.append(a)
            keeps.append(keep)
            inputs.append(a if keep is None else a * keep)
        _, dz = softmax_cross_entropy(logits, y[rows])
        w = np.ones(n_rows) if weights is None else weights[rows]
        dz *= (w / w.sum())[:, None] if w.sum() > 0 else 0.0
        grads = np.zeros_like(params)
        for layer in range(n_layers - 1, -1, -1):
            W = params[w_off[layer]:w_off[layer + 1]].reshape(sizes[layer], sizes[layer + 1])
            grads[w_off[layer]:w_off[layer + 1]] = (inputs[layer].T @ dz).ravel()
            grads[b_off[layer]:b_off[layer + 1]] = dz.sum(0)
            if layer > 0:
                da = dz @ W.T
                if keeps[layer] is not None:
                    da *= keeps[layer]
                dz = da * (1 - acts[layer] ** 2)
        params = params - lr * grads
    return params


def run_options_epoch(X, y, order, params, sizes, batch, capacity, sparse, weights=None,
                      rates=None, augment_mode=kernels.NO_AUGMENT, image_shape=None, offset=0,
                      scale=0.5):
    shapes = kernels.training_buffer_shapes(sizes, capacity, batch, sparse)
    buffers = kernels.TrainingBuffers(**{
        name: np.zeros(shape, np.float64 if kind == "float" else kind)
        for name, (shape, kind) in shapes.items()})
    options = kernels.epoch_options(sizes, capacity, np.float64, weights, rates, augment_mode,
                                    image_shape)._replace(seed=SEED, offset=offset)
    empty = np.zeros(0)
    d0 = sizes[0]
    return kernels.train_epoch_with_options(
        X, y, order, kernels.Normalization(np.full(d0, scale), np.zeros(d0)),
        kernels.Network(params, sizes, kernels.TANH), kernels.SGD,
        kernels.hyperparameters(learning_rate=0.1), 0, batch,
        kernels.OptimizerState(empty, empty, empty), buffers, sparse, options)


def small_problem(seed, n=50, d=6):
    rng = np.random.default_rng(seed)
    X = np.maximum(rng.standard_normal((n, d)), 0)  # many exact zeros, like pixels
    y = rng.integers(0, 3, n).astype(np.int32)
    return rng, X, y


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("batch", [7, 50])
@pytest.mark.parametrize("weighted,rates", [(True, None), (False, (0.5, 0.25)),
                                            (True, (0.3, 0.0))])
def test_options_epoch_matches_numpy(batch, sparse, weighted, rates):
    rng, X, y = small_problem(batch)
    sizes = np.array([6, 5, 4, 3], np.int64)
    params = 0.5 * rng.standard_normal(parameter_offsets(sizes)[1][-1])
    order = rng.permutation(len(y)).astype(np.int64)
    weights = rng.integers(0, 4, len(y)).astype(np.float64) if weighted else None
    expected = numpy_epoch(0.5 * X, y, order, params.copy(), sizes, batch, 0.1, weights, rates)
    got = params.copy()
    capacity = min(batch, 16)   # batch 50: micro-batches, one weight sum per mini-batch
    loss, correct, step = run_options_epoch(X, y, order, got, sizes, batch, capacity, sparse,
                                            weights, rates)
    assert step == -(-len(y) // batch)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert np.isfinite(loss) and 0 <= correct <= len(y)


def test_options_epoch_with_every_option_off_equals_train_epoch():
    rng, X, y = small_problem(3)
    sizes = np.array([6, 5, 3], np.int64)
    params = 0.5 * rng.standard_normal(parameter_offsets(sizes)[1][-1])
    order = rng.permutation(len(y)).astype(np.int64)
    plain, options = params.copy(), params.copy()
    shapes = kernels.training_buffer_shapes(sizes, 16, 16, False)
    buffers = kernels.TrainingBuffers(**{
        name: np.zeros(shape, np.float64 if kind == "float" else kind)
        for name, (shape, kind) in shapes.items()})
    empty = np.zeros(0)
    expected = kernels.train_epoch(
        X, y, order, kernels.Normalization(np.full(6, 0.5), np.zeros(6)),
        kernels.Network(plain, sizes, kernels.TANH), kernels.SGD,
        kernels.hyperparameters(learning_rate=0.1), 0, 16,
        kernels.OptimizerState(empty, empty, empty), buffers, False)
    got = run_options_epoch(X, y, order, options, sizes, 16, 16, False, weights=np.ones(50))
    assert got == expected
    assert np.array_equal(plain, options)


def test_masks_and_transforms_do_not_depend_on_how_the_epoch_is_split():
    """Two calls with offsets (as the training loop's chunks) equal one call, bit for bit."""
    rng = np.random.default_rng(4)
    X = rng.integers(0, 256, (40, 36)).astype(np.uint8)
    y = rng.integers(0, 3, 40).astype(np.int32)
    sizes = np.array([36, 8, 3], np.int64)
    params = 0.1 * rng.standard_normal(parameter_offsets(sizes)[1][-1])
    order = rng.permutation(40).astype(np.int64)
    whole, split = params.copy(), params.copy()
    common = dict(rates=(0.5,), augment_mode=kernels.ELASTIC, image_shape=(6, 6), scale=1 / 255)
    run_options_epoch(X, y, order, whole, sizes, 8, 8, False, **common)
    run_options_epoch(X, y, order[:16], split, sizes, 8, 8, False, offset=0, **common)
    run_options_epoch(X, y, order[16:], split, sizes, 8, 8, False, offset=16, **common)
    assert np.array_equal(whole, split)


def test_dropout_masks_keep_the_right_fraction_scaled():
    keep = np.zeros((400, 501), np.float32)
    rate = 0.3
    kernels.dropout_mask(keep, 400, np.uint64(round(rate * 2 ** 32)), 1 / (1 - rate), 5, 0, 0)
    assert set(np.unique(keep)) == {0.0, np.float32(1 / (1 - rate))}
    assert abs((keep == 0).mean() - rate) < 0.005
    again = np.zeros_like(keep)
    kernels.dropout_mask(again[:150], 150, np.uint64(round(rate * 2 ** 32)), 1 / (1 - rate),
                         5, 0, 0)
    kernels.dropout_mask(again[150:], 250, np.uint64(round(rate * 2 ** 32)), 1 / (1 - rate),
                         5, 150, 0)
    assert np.array_equal(keep, again)
    other_layer = np.zeros_like(keep)
    kernels.dropout_mask(other_layer, 400, np.uint64(round(rate * 2 ** 32)), 1 / (1 - rate),
                         5, 0, 1)
    assert not np.array_equal(keep, other_layer)


# --------------------------------------------------------------------------
# Augmentation kernels against NumPy / SciPy on single images
# --------------------------------------------------------------------------

def one_image(seed=0, shape=(28, 28)):
    X, _ = load_dataset(DATA, "train")
    image = X[seed].reshape(28, 28)
    return np.ascontiguousarray(image[:shape[0], :shape[1]])


def augment_one(image, mode, seed=11, position=3):
    h, w = image.shape
    options = kernels.epoch_options([h * w, 4], 1, np.float64, augment=mode, image_shape=(h, w))
    out, labels = np.zeros((1, h * w)), np.zeros(1, np.int32)
    kernels.gather_augmented_batch(image.reshape(1, -1), np.zeros(1, np.int32),
                                   np.zeros(1, np.int64), 0, 1, np.ones(h * w), np.zeros(h * w),
                                   out, labels, options.augmentation, seed, position)
    state = streams.row_stream(seed, position, streams.AUGMENT_STREAM)
    return out[0].reshape(h, w), as_state(state)


def as_state(value):
    """A state returned to Python (a signed or unsigned int) as the uint64 the kernels use."""
    return np.uint64(int(value) % 2 ** 64)


def next_uniform(state):
    state, u = streams.next_uniform(as_state(state))
    return as_state(state), u


def test_shift_is_an_exact_translation_with_zero_fill():
    image = one_image(0)
    seen = set()
    for position in range(40):
        got, state = augment_one(image, kernels.SHIFT, position=position)
        state, u = next_uniform(state)
        dy = int(u * 5) - 2
        state, u = next_uniform(state)
        dx = int(u * 5) - 2
        seen.add((dy, dx))
        expected = np.zeros((28, 28))
        expected[max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)] = \
            image[max(-dy, 0):28 + min(-dy, 0), max(-dx, 0):28 + min(-dx, 0)]
        assert np.array_equal(got, expected)
    assert len(seen) > 10 and all(abs(a) <= 2 and abs(b) <= 2 for a, b in seen)


@pytest.mark.parametrize("shape", [(28, 28), (20, 26)])
def test_affine_matches_scipy_bilinear_sampling(shape):
    image = one_image(1, shape).astype(np.float64)
    got, state = augment_one(image, kernels.AFFINE)
    _, m00, m01, m10, m11 = augment.affine_parameters(state)
    h, w = shape
    r, c = np.indices(shape, dtype=np.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    rows = m00 * (r - cy) + m01 * (c - cx) + cy
    cols = m10 * (r - cy) + m11 * (c - cx) + cx
    expected = ndimage.map_coordinates(image, [rows, cols], order=1, mode="grid-constant")
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
    assert not np.allclose(got, image)
    angle = np.degrees(np.arctan2(m10, m11))  # rotation (plus the slant's share)
    assert abs(angle) < 30


@pytest.mark.parametrize("shape", [(28, 28), (20, 26)])
def test_elastic_matches_scipy_gaussian_filter_and_bilinear_sampling(shape):
    image = one_image(2, shape).astype(np.float64)
    got, state = augment_one(image, kernels.ELASTIC)
    n = shape[0] * shape[1]
    fields = np.zeros(2 * n)
    streams.uniform_field(state, fields)
    dy = ndimage.gaussian_filter(fields[:n].reshape(shape), augment.ELASTIC_SIGMA,
                                 mode="constant", truncate=4.0) * augment.ELASTIC_ALPHA
    dx = ndimage.gaussian_filter(fields[n:].reshape(shape), augment.ELASTIC_SIGMA,
                                 mode="constant", truncate=4.0) * augment.ELASTIC_ALPHA
    r, c = np.indices(shape, dtype=np.float64)
    expected = ndimage.map_coordinates(image, [r + dy, c + dx], order=1, mode="grid-constant")
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-8)
    assert 0.3 < np.abs(dy).mean() < 3 and 0.3 < np.abs(dx).mean() < 3  # pixels
    assert not np.allclose(got, image)


def test_blur_matrices_equal_scipy_gaussian_filter():
    field = np.random.default_rng(0).uniform(-1, 1, (17, 23))
    tmp = np.zeros_like(field)
    smoothed = field.copy()
    augment.smooth_field(smoothed, augment.blur_matrix(17, 3.0), augment.blur_matrix(23, 3.0),
                         tmp)
    np.testing.assert_allclose(smoothed, ndimage.gaussian_filter(field, 3.0, mode="constant"),
                               rtol=1e-12, atol=1e-14)


def test_augmented_sparse_first_layer_matches_the_dense_one():
    rng = np.random.default_rng(8)
    X = (rng.random((30, 49)) < 0.3) * rng.integers(1, 256, (30, 49))
    X = X.astype(np.uint8)
    y = rng.integers(0, 3, 30).astype(np.int32)
    sizes = np.array([49, 6, 3], np.int64)
    params = 0.1 * rng.standard_normal(parameter_offsets(sizes)[1][-1])
    order = rng.permutation(30).astype(np.int64)
    dense, sparse = params.copy(), params.copy()
    for mode in (kernels.SHIFT, kernels.AFFINE, kernels.ELASTIC):
        common = dict(rates=(0.2,), augment_mode=mode, image_shape=(7, 7), scale=1 / 255)
        run_options_epoch(X, y, order, dense, sizes, 10, 10, False, **common)
        run_options_epoch(X, y, order, sparse, sizes, 10, 10, True, **common)
        np.testing.assert_allclose(sparse, dense, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------
# Sample and class weights through the model
# --------------------------------------------------------------------------

def test_sample_weight_changes_the_fit_and_unit_weights_change_nothing():
    X, y = blobs()
    params = dict(hidden_layer_sizes=(8,), epochs=3, batch_size=16, random_state=0)
    plain = MLPClassifier(**params).fit(X, y)
    ones = MLPClassifier(**params).fit(X, y, sample_weight=np.ones(len(y)))
    assert same_bits(plain, ones)
    weights = np.random.default_rng(1).uniform(0.1, 5, len(y))
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=weights)
    assert not np.allclose(weighted.coefs_[0], plain.coefs_[0])
    # A weighted mean: scaling every weight by a constant changes nothing (up to rounding).
    scaled = MLPClassifier(**params).fit(X, y, sample_weight=7.5 * weights)
    for a, b in zip(params_of(weighted), params_of(scaled)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("normalization", ["standard", "none"])
def test_integer_weights_equal_repeating_rows_with_full_batch_gd(normalization):
    X, y = blobs(n=90)
    counts = np.random.default_rng(2).integers(0, 4, len(y))
    counts[:3] = 1  # every class keeps rows
    params = dict(hidden_layer_sizes=(7,), solver="gd", learning_rate=0.3, epochs=5,
                  dtype="float64", random_state=0, normalization=normalization)
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=counts)
    repeated = MLPClassifier(**params).fit(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    for a, b in zip(params_of(weighted), params_of(repeated)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose([r["train_loss"] for r in weighted.history_],
                               [r["train_loss"] for r in repeated.history_], rtol=1e-10)


def test_zero_weights_ignore_rows():
    X, y = blobs(n=80)
    rng = np.random.default_rng(3)
    junk_X = rng.standard_normal((40, X.shape[1])) * 10
    junk_y = rng.integers(0, 3, 40)
    params = dict(hidden_layer_sizes=(6,), solver="gd", learning_rate=0.3, epochs=4,
                  dtype="float64", random_state=0)
    clean = MLPClassifier(**params).fit(X, y)
    padded = MLPClassifier(**params).fit(np.vstack([X, junk_X]), np.concatenate([y, junk_y]),
                                         sample_weight=np.r_[np.ones(80), np.zeros(40)])
    for a, b in zip(params_of(clean), params_of(padded)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_class_weight_balanced_equals_the_matching_sample_weight():
    X, y = blobs(n=150)
    keep = (y != 2) | (np.arange(len(y)) % 4 == 0)   # make class 2 rare
    X, y = X[keep], y[keep]
    params = dict(hidden_layer_sizes=(8,), epochs=3, batch_size=16, random_state=0)
    balanced = MLPClassifier(class_weight="balanced", **params).fit(X, y)
    by_sample = MLPClassifier(**params).fit(X, y,
                                            sample_weight=compute_sample_weight("balanced", y))
    assert same_bits(balanced, by_sample)
    assert not same_bits(balanced, MLPClassifier(**params).fit(X, y))
    counts = np.bincount(y)
    as_dict = {c: len(y) / (3 * counts[c]) for c in range(3)}
    assert same_bits(MLPClassifier(class_weight=as_dict, **params).fit(X, y), balanced)
    # Missing classes weigh 1: a dict of ones is no weighting at all.
    assert same_bits(MLPClassifier(class_weight={0: 1.0}, **params).fit(X, y),
                     MLPClassifier(**params).fit(X, y))


def test_heavy_class_weight_pulls_predictions_to_that_class():
    X, y = blobs(n=200, seed=4)
    X = X + np.random.default_rng(5).standard_normal(X.shape) * 3   # overlapping classes
    params = dict(hidden_layer_sizes=(8,), epochs=20, batch_size=16, random_state=0)
    plain = MLPClassifier(**params).fit(X, y).predict(X)
    heavy = MLPClassifier(class_weight={0: 100.0, 1: 0.01, 2: 0.01}, **params).fit(X, y).predict(X)
    assert np.mean(heavy == 0) > max(0.85, np.mean(plain == 0) + 0.3)


def test_history_train_loss_is_the_weighted_mean():
    X, y = blobs(n=60)
    weights = np.random.default_rng(6).uniform(0, 3, len(y))
    model = MLPClassifier(hidden_layer_sizes=(5,), solver="gd", learning_rate=1e-12, epochs=1,
                          dtype="float64", random_state=0).fit(X, y, sample_weight=weights)
    losses = -model.predict_log_proba(X)[np.arange(len(y)), y]
    expected = np.sum(weights * losses) / np.sum(weights)
    assert model.history_[0]["train_loss"] == pytest.approx(expected, rel=1e-9)
    assert model.history_[0]["train_loss"] != pytest.approx(losses.mean(), rel=1e-6)


def test_partial_fit_takes_sample_weight_and_refuses_balanced():
    X, y = blobs()
    a = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    b = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    a.partial_fit(X, y, sample_weight=np.ones(len(y)))
    b.partial_fit(X, y)
    assert same_bits(a, b)
    a.partial_fit(X, y, sample_weight=np.arange(len(y)) % 3)
    b.partial_fit(X, y)
    assert not same_bits(a, b)
    with pytest.raises(ValueError, match="balanced.*partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y)
    weighted = MLPClassifier(hidden_layer_sizes=(4,), class_weight={0: 3.0}, random_state=0)
    assert not same_bits(weighted.partial_fit(X, y),
                         MLPClassifier(hidden_layer_sizes=(4,), random_state=0).partial_fit(X, y))


@pytest.mark.parametrize("weights,message", [
    (np.ones(5), "5 weights but X has 120"),
    (-np.ones(120), "non-negative"),
    (np.zeros(120), "at least one non-zero"),
    (np.full(120, np.nan), "NaN"),
    (np.ones((120, 2)), "1-D"),
])
def test_bad_sample_weights_are_rejected(weights, message):
    X, y = blobs()
    with pytest.raises(ValueError, match=message):
        MLPClassifier(epochs=1).fit(X, y, sample_weight=weights)


def test_bad_class_weights_are_rejected():
    X, y = blobs()
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight="balancd").fit(X, y)
    with pytest.raises(ValueError, match="non-negative"):
        MLPClassifier(class_weight={0: -1.0}).fit(X, y)
    with pytest.raises(ValueError, match="not in class_weight"):
        MLPClassifier(class_weight={0: 2.0, 7: 1.0}).fit(X, y)


# --------------------------------------------------------------------------
# Dropout through the model
# --------------------------------------------------------------------------

def test_dropout_same_seed_same_weights_and_differs_from_no_dropout(mnist):
    X, y = mnist[0][:600], mnist[1][:600]
    params = dict(hidden_layer_sizes=(32, 16), epochs=2, batch_size=32, random_state=0)
    a = MLPClassifier(dropout=0.3, **params).fit(X, y)
    b = MLPClassifier(dropout=0.3, **params).fit(X, y)
    assert same_bits(a, b)
    assert not same_bits(a, MLPClassifier(**params).fit(X, y))
    assert not same_bits(a, MLPClassifier(dropout=0.3, **dict(params, random_state=1)).fit(X, y))
    per_layer = MLPClassifier(dropout=(0.3, 0.0), **params).fit(X, y)
    assert not same_bits(a, per_layer)
    assert same_bits(MLPClassifier(dropout=(0.0, 0.0), **params).fit(X, y),
                     MLPClassifier(**params).fit(X, y))


def test_dropout_is_off_at_predict_time(mnist):
    X, y, X_test, _ = mnist
    model = MLPClassifier(hidden_layer_sizes=(64,), dropout=0.5, epochs=8,
                          random_state=0).fit(X, y)
    first = model.predict_proba(X_test)
    assert np.array_equal(first, model.predict_proba(X_test))       # deterministic
    # The plain forward pass of the same weights, no mask and no rescaling:
    hidden = np.maximum(X_test / 255.0 @ model.coefs_[0] + model.intercepts_[0], 0)
    logits = hidden @ model.coefs_[1] + model.intercepts_[1]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(first, expected, rtol=1e-4, atol=1e-5)
    twin = MLPClassifier(hidden_layer_sizes=(64,), epochs=1, random_state=0).fit(X[:100], y[:100])
    twin.set_weights(model.get_weights())
    assert np.array_equal(twin.predict_proba(X_test), first)
    assert model.score(X_test, mnist[3]) > 0.8


@pytest.mark.parametrize("dropout", [1.0, -0.1, (0.2,), (0.2, 0.2, 0.2), "0.2"])
def test_bad_dropout_is_rejected(dropout):
    X, y = blobs()
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier(hidden_layer_sizes=(4, 4), dropout=dropout, epochs=1).fit(X, y)


# --------------------------------------------------------------------------
# Augmentation through the model
# --------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["shift", "affine", "elastic"])
def test_augmentation_trains_to_a_sane_accuracy_and_is_reproducible(mnist, mode):
    X, y, X_test, y_test = mnist
    params = dict(hidden_layer_sizes=(128,), epochs=10, random_state=0, augment=mode)
    model = MLPClassifier(**params).fit(X, y)
    assert model.score(X_test, y_test) >= 0.85
    assert same_bits(model, MLPClassifier(**params).fit(X, y))
    plain = MLPClassifier(**dict(params, augment=None, epochs=1)).fit(X, y)
    assert not same_bits(MLPClassifier(**dict(params, epochs=1)).fit(X, y), plain)
    # Validation and prediction see the images as they are.
    assert np.array_equal(model.predict_proba(X_test), model.predict_proba(X_test))


def test_augmentation_needs_a_matching_image_shape():
    X = np.random.default_rng(0).integers(0, 256, (40, 30)).astype(np.uint8)
    y = np.arange(40) % 2
    with pytest.raises(ValueError, match="image_shape"):
        MLPClassifier(augment="shift", epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="image_shape"):
        MLPClassifier(augment="shift", image_shape=(4, 8), epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="image_shape"):
        MLPClassifier(augment="shift", image_shape=(5, -6), epochs=1).fit(X, y)
    model = MLPClassifier(augment="elastic", image_shape=(5, 6), hidden_layer_sizes=(4,),
                          epochs=2, random_state=0).fit(X, y)
    assert model.n_iter_ == 2


RSS_SCRIPT = r"""
import sys
import numpy as np
from fastann import MLPClassifier
from fastann.datasets import load_dataset

mode, data = sys.argv[1], sys.argv[2]
augment = None if mode in ("none", "copy") else mode
X, y = load_dataset(data, "train")
X, y = np.tile(X, (30, 1)), np.tile(y, 30)              # 60,000 images, 47 MB of uint8
params = dict(hidden_layer_sizes=(16,), epochs=1, augment=augment, random_state=0)
MLPClassifier(**params).fit(X, y)                       # compile or load every kernel first
with open("/proc/self/clear_refs", "w") as f:           # reset the peak RSS (VmHWM)
    f.write("5")
extra = X.copy() if mode == "copy" else None            # what one copy of the data costs
MLPClassifier(**params).fit(X, y)
status = open("/proc/self/status").read()
print(int(status.split("VmHWM:")[1].split()[0]) * 1024)
"""


def peak_rss(mode):
    result = subprocess.run([sys.executable, "-c", RSS_SCRIPT, mode, DATA], capture_output=True,
                            text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK),
                    reason="needs Linux's /proc/self/clear_refs to reset the peak RSS")
def test_augmentation_never_copies_the_dataset():
    plain = peak_rss("none")
    with_copy = peak_rss("copy")
    assert with_copy > 1.1 * plain    # the measurement sees one uint8 copy of the data
    for mode in ("shift", "elastic"):
        assert peak_rss(mode) <= 1.1 * plain, mode


# --------------------------------------------------------------------------
# Files, checkpoints, CUDA and the command line
# --------------------------------------------------------------------------

def test_new_hyper_parameters_round_trip_through_save_and_load(tmp_path, mnist):
    X, y = mnist[0][:300], mnist[1][:300]
    classes = np.unique(y)
    model = MLPClassifier(hidden_layer_sizes=(8, 6), epochs=1, random_state=0,
                          class_weight={classes[0]: 2.0, np.int64(classes[1]): 0.5},
                          dropout=(0.2, 0.1), augment="affine", image_shape=(28, 28))
    model.fit(X, y)
    model.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    params = loaded.get_params()
    assert params["class_weight"] == {int(classes[0]): 2.0, int(classes[1]): 0.5}
    assert params["dropout"] == (0.2, 0.1) and params["image_shape"] == (28, 28)
    assert params["augment"] == "affine"
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    string_labels = np.array(["a", "b", "c"])[np.arange(60) % 3]
    Xs = np.random.default_rng(0).standard_normal((60, 4))
    model = MLPClassifier(hidden_layer_sizes=(3,), epochs=1, class_weight="balanced").fit(
        Xs, string_labels)
    model.save(tmp_path / "s.npz")
    assert load(tmp_path / "s.npz").class_weight == "balanced"
    model.set_params(class_weight={"a": 3.0}).fit(Xs, string_labels).save(tmp_path / "s.npz")
    assert load(tmp_path / "s.npz").class_weight == {"a": 3.0}


def test_resume_refuses_other_sample_weights(tmp_path, mnist):
    X, y = mnist[0][:200], mnist[1][:200]
    path = tmp_path / "ck.npz"
    weights = np.random.default_rng(0).random(200)
    MLPClassifier(hidden_layer_sizes=(4,), epochs=2, random_state=0).fit(
        X, y, sample_weight=weights, checkpoint=path)
    MLPClassifier.resume(path, X, y, sample_weight=weights)
    for other in (None, weights[::-1].copy()):
        with pytest.raises(CheckpointError, match="not the data"):
            MLPClassifier.resume(path, X, y, sample_weight=other)


@pytest.mark.parametrize("option,value", [("dropout", 0.2), ("augment", "shift"),
                                          ("class_weight", "balanced")])
def test_cuda_refuses_the_new_options_before_touching_a_gpu(option, value):
    X, y = blobs()
    with pytest.raises(ValueError, match=f"{option} is not supported with device='cuda' yet"):
        MLPClassifier(device="cuda", image_shape=(2, 3), **{option: value}).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight is not supported with device='cuda'"):
        MLPClassifier(device="cuda").fit(X, y, sample_weight=np.ones(len(y)))


def test_cli_flags_reach_the_model(tmp_path, capsys):
    path = tmp_path / "m.npz"
    assert main(["train", "--dataset", DATA, "--epochs", "2", "--hidden", "32,16",
                 "--class-weight", "balanced", "--dropout", "0.2,0.1", "--augment", "elastic",
                 "--image-shape", "28,28", "--save", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "dropout (0.2, 0.1)" in out and "augment elastic" in out
    params = load(path).get_params()
    assert params["class_weight"] == "balanced" and params["dropout"] == (0.2, 0.1)
    assert params["augment"] == "elastic" and params["image_shape"] == (28, 28)
    with pytest.raises(SystemExit):
        main(["train", "--dropout", "1.5"])
    with pytest.raises(SystemExit):
        main(["train", "--image-shape", "28"])
