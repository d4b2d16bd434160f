"""Every kernel against a plain NumPy reference (tests/reference.py) on random shapes."""
import numpy as np
import pytest

from fastann import kernels
from fastann.kernels.network import activation_offsets, parameter_offsets

from reference import activate, adam, softmax_cross_entropy

ACTIVATIONS = list(kernels.ACTIVATIONS)
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 13, 9), (33, 17, 65), (128, 784, 10)]


def rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n,d_in,d_out", SHAPES)
def test_dense_forward_matches_numpy(n, d_in, d_out, activation, dtype, rtol):
    rng = np.random.default_rng(n * 1000 + d_in)
    X, W, b = rand(rng, (n, d_in), dtype), rand(rng, (d_in, d_out), dtype), rand(rng, d_out, dtype)
    out = np.empty((n, d_out), dtype)
    kernels.dense_forward(X, W, b, kernels.ACTIVATIONS[activation], out)
    expected = activate(X.astype(np.float64) @ W + b, activation)
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=rtol * np.sqrt(d_in))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n,d_in,d_out", SHAPES)
def test_dense_backward_matches_numpy(n, d_in, d_out, activation):
    rng = np.random.default_rng(n + d_out)
    dtype = np.float64
    A_prev = activate(rand(rng, (n, d_in), dtype), activation)
    W, dZ = rand(rng, (d_in, d_out), dtype), rand(rng, (n, d_out), dtype)
    dW, db, dX = np.empty_like(W), np.empty(d_out), np.empty((n, d_in))
    kernels.dense_backward(A_prev, W, dZ, dW, db, dX, kernels.ACTIVATIONS[activation])
    # Derivative through the output: finite difference of activate() at its pre-image
    # is awkward, so use the closed forms of the kernel's table.
    deriv = {"identity": np.ones_like(A_prev), "sigmoid": A_prev * (1 - A_prev),
             "tanh": 1 - A_prev ** 2, "relu": (A_prev > 0) * 1.0,
             "leaky_relu": np.where(A_prev > 0, 1.0, 0.01)}[activation]
    np.testing.assert_allclose(dW, A_prev.T @ dZ, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dZ.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dX, (dZ @ W.T) * deriv, rtol=1e-12, atol=1e-12)


def test_dense_backward_first_layer_skips_input_gradient():
    rng = np.random.default_rng(0)
    X, W, dZ = rng.random((4, 3)), rng.random((3, 2)), rng.random((4, 2))
    dW, db = np.empty((3, 2)), np.empty(2)
    kernels.dense_backward(X, W, dZ, dW, db, np.empty((0, 0)), kernels.RELU)
    np.testing.assert_allclose(dW, X.T @ dZ)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k", [(1, 2), (7, 3), (128, 10), (65, 31)])
def test_softmax_cross_entropy_matches_numpy(n, k, dtype):
    rng = np.random.default_rng(n * k)
    logits = (5 * rng.standard_normal((n, k))).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int32)
    loss, grad = softmax_cross_entropy(logits, labels)
    out = np.empty_like(logits)
    loss_sum, n_correct = kernels.softmax_cross_entropy(logits, labels, 1.0 / n, out)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss_sum == pytest.approx(loss.sum(), rel=tol)
    assert n_correct == int((logits.argmax(axis=1) == labels).sum())
    np.testing.assert_allclose(out, grad / n, rtol=tol, atol=tol / n)


def test_softmax_cross_entropy_in_place_and_extreme_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], np.float32)
    labels = np.array([0, 1], np.int32)
    loss_sum, n_correct = kernels.softmax_cross_entropy(logits, labels, 0.5, logits)
    assert np.isfinite(loss_sum) and loss_sum == pytest.approx(2e4, rel=1e-6)
    assert n_correct == 1
    np.testing.assert_allclose(logits, [[0, 0, 0], [0, -0.5, 0.5]], atol=1e-7)


def test_log_softmax_matches_numpy():
    rng = np.random.default_rng(3)
    z = 30 * rng.standard_normal((9, 4))
    expected = z - z.max(1, keepdims=True)
    expected -= np.log(np.exp(expected).sum(1, keepdims=True))
    kernels.log_softmax_inplace(z)
    np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- optimizers
def _state(seed, n=11):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n), rng.random(n)


def test_sgd_step_by_hand():
    w = np.array([1.0, -2.0, 0.0, 3.0])
    g = np.array([0.5, 0.5, 0.5, 0.5])
    # n_weights=3: the last entry is a bias, exempt from penalties.
    kernels.sgd_update(w, g, 0.1, 0.2, 0.3, 3)
    # w - lr * (g + l2 * w + l1 * sign(w))
    np.testing.assert_allclose(w, [1 - 0.1 * (0.5 + 0.3 + 0.2), -2 - 0.1 * (0.5 - 0.6 - 0.2),
                                   0 - 0.1 * 0.5, 3 - 0.1 * 0.5])


def test_momentum_and_nesterov_steps_by_hand():
    w, g, v = np.array([1.0]), np.array([2.0]), np.array([0.5])
    kernels.momentum_update(w, g, v, 0.1, 0.9, 0.0, 0.0, 1)
    assert v[0] == pytest.approx(0.9 * 0.5 - 0.1 * 2.0)   # 0.25
    assert w[0] == pytest.approx(1.25)
    w, v = np.array([1.0]), np.array([0.5])
    kernels.nesterov_update(w, g, v, 0.1, 0.9, 0.0, 0.0, 1)
    assert v[0] == pytest.approx(0.25)
    assert w[0] == pytest.approx(1.0 - 0.9 * 0.5 + 1.9 * 0.25)   # 1.025


@pytest.mark.parametrize("step", [1, 2, 50])
def test_adam_matches_algorithm_1(step):
    w, g, m, v = _state(step)
    expected_w, expected_m, expected_v = adam(w, g, m, v, step, 1e-3, 0.9, 0.999, 1e-8)
    kernels.adam_update(w, g, m, v, step, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0.0, w.size, False)
    np.testing.assert_allclose(m, expected_m, rtol=1e-12)
    np.testing.assert_allclose(v, expected_v, rtol=1e-12)
    np.testing.assert_allclose(w, expected_w, rtol=1e-12)


def test_adam_with_l2_penalty_and_adamw_decay():
    w, g, m, v = _state(7)
    n_weights = 6
    w1, m1, v1 = w.copy(), m.copy(), v.copy()
    g_pen = g + np.where(np.arange(w.size) < n_weights, 0.01 * w, 0.0)
    expected, _, _ = adam(w, g_pen, m, v, 3, 1e-2, 0.9, 0.999, 1e-8)
    kernels.adam_update(w1, g, m1, v1, 3, 1e-2, 0.9, 0.999, 1e-8, 0.0, 0.01, n_weights, False)
    np.testing.assert_allclose(w1, expected, rtol=1e-12)
    # AdamW: decay lr * wd * w outside the adaptive step, weights only.
    w2, m2, v2 = w.copy(), m.copy(), v.copy()
    decayed = w - np.where(np.arange(w.size) < n_weights, 1e-2 * 0.01 * w, 0.0)
    step_only, _, _ = adam(np.zeros_like(w), g, m, v, 3, 1e-2, 0.9, 0.999, 1e-8)
    kernels.adam_update(w2, g, m2, v2, 3, 1e-2, 0.9, 0.999, 1e-8, 0.0, 0.01, n_weights, True)
    np.testing.assert_allclose(w2, decayed + step_only, rtol=1e-12)


# ------------------------------------------------------------ whole network
def _loss(params, X, y, sizes, activation):
    w_off, b_off = parameter_offsets(sizes)
    a = X
    for layer in range(len(sizes) - 1):
        W = params[w_off[layer]:w_off[layer + 1]].reshape(sizes[layer], sizes[layer + 1])
        z = a @ W + params[b_off[layer]:b_off[layer + 1]]
        a = activate(z, activation) if layer < len(sizes) - 2 else z
    return softmax_cross_entropy(a, y)[0].mean()


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("sizes", [[5, 3], [6, 4, 3], [7, 5, 4, 3]])
def test_backprop_matches_central_differences(activation, sizes):
    sizes = np.array(sizes, np.int64)
    rng = np.random.default_rng(len(sizes))
    n, capacity = 5, 8
    X, y = rng.standard_normal((n, sizes[0])), rng.integers(0, sizes[-1], n).astype(np.int32)
    params = rng.standard_normal(parameter_offsets(sizes)[1][-1])
    x_buf = np.zeros((capacity, sizes[0]))
    x_buf[:n] = X
    acts = np.zeros(activation_offsets(sizes, capacity)[-1])
    scratch = np.zeros(2 * capacity * max(sizes[1:-1].max(initial=1), 1))
    grads = np.zeros_like(params)
    code = kernels.ACTIVATIONS[activation]
    logits = kernels.forward_network(x_buf, n, params, sizes, code, acts, capacity)
    kernels.softmax_cross_entropy(logits, y, 1.0 / n, logits)
    kernels.backward_network(x_buf, n, params, sizes, code, acts, capacity, scratch, grads)
    h = 1e-6
    numeric = np.empty_like(params)
    for i in range(params.size):
        up, down = params.copy(), params.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (_loss(up, X, y, sizes, activation) - _loss(down, X, y, sizes, activation)) / (2 * h)
    np.testing.assert_allclose(grads, numeric, rtol=1e-5, atol=1e-7)


def test_shuffle_is_a_seeded_permutation():
    a, b, c = np.arange(1000), np.arange(1000), np.arange(1000)
    kernels.shuffle_inplace(a, 42)
    kernels.shuffle_inplace(b, 42)
    kernels.shuffle_inplace(c, 43)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(np.sort(a), np.arange(1000))


def test_gather_batch_normalizes_uint8_rows():
    X = np.arange(24, dtype=np.uint8).reshape(6, 4)
    y = np.arange(6, dtype=np.int32)
    order = np.array([5, 0, 3, 1, 2, 4])
    out, labels = np.zeros((3, 4), np.float32), np.zeros(3, np.int32)
    scale, shift = np.full(4, 0.5, np.float32), np.full(4, -1.0, np.float32)
    kernels.gather_batch(X, y, order, 1, 4, scale, shift, out, labels)
    np.testing.assert_allclose(out, X[[0, 3, 1]] * 0.5 - 1.0)
    assert labels.tolist() == [0, 3, 1]


def _numpy_epoch(X, y, order, params, sizes, batch, lr):
    """Mini-batch SGD written with the reference functions (float64)."""
    w_off, b_off = parameter_offsets(sizes)
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        xb, yb = X[rows], y[rows]
        acts = [xb]
        for layer in range(len(sizes) - 1):
            W = params[w_off[layer]:w_off[layer + 1]].reshape(sizes[layer], sizes[layer + 1])
            z = acts[-1] @ W + params[b_off[layer]:b_off[layer + 1]]
            acts.append(np.tanh(z) if layer < len(sizes) - 2 else z)
        _, dz = softmax_cross_entropy(acts[-1], yb)
        dz /= len(rows)
        grads = np.zeros_like(params)
        for layer in range(len(sizes) - 2, -1, -1):
            W = params[w_off[layer]:w_off[layer + 1]].reshape(sizes[layer], sizes[layer + 1])
            grads[w_off[layer]:w_off[layer + 1]] = (acts[layer].T @ dz).ravel()
            grads[b_off[layer]:b_off[layer + 1]] = dz.sum(0)
            dz = (dz @ W.T) * (1 - acts[layer] ** 2)
        params = params - lr * grads
    return params


def _run_train_epoch(X, y, order, params, sizes, batch, capacity, sparse):
    d0 = sizes[0]
    shapes = kernels.training_buffer_shapes(sizes, capacity, batch, sparse)
    buffers = kernels.TrainingBuffers(**{
        name: np.zeros(shape, np.float64 if kind == "float" else kind)
        for name, (shape, kind) in shapes.items()})
    empty = np.zeros(0)
    return kernels.train_epoch(
        X, y, order, kernels.Normalization(np.full(d0, 0.5), np.zeros(d0)),
        kernels.Network(params, sizes, kernels.TANH), kernels.SGD,
        kernels.hyperparameters(learning_rate=0.1), 0, batch,
        kernels.OptimizerState(empty, empty, empty), buffers, sparse)


def test_micro_batches_cover_every_row_once_and_end_each_batch():
    bounds = kernels.micro_batches(50, 20, 8)
    assert bounds.tolist() == [[0, 20, 0, 8], [0, 20, 8, 16], [0, 20, 16, 20],
                               [20, 40, 20, 28], [20, 40, 28, 36], [20, 40, 36, 40],
                               [40, 50, 40, 48], [40, 50, 48, 50]]
    assert kernels.micro_batches(5, 128, 1024).tolist() == [[0, 5, 0, 5]]


def test_training_buffer_shapes_follow_the_layer_sizes():
    shapes = kernels.training_buffer_shapes([784, 32, 16, 10], 64, 128, True)
    n_params = 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert shapes["grads"] == ((n_params,), "float")
    assert shapes["grad_sum"] == ((n_params,), "float")      # batch 128 > capacity 64
    assert shapes["acts"] == ((64 * (32 + 16 + 10),), "float")
    assert shapes["scratch"] == ((2 * 64 * 32,), "float")
    assert shapes["nz_index"] == ((64 * 784,), "int32")
    dense = kernels.training_buffer_shapes([784, 10], 64, 64, False)
    assert dense["grad_sum"][0] == (0,) and dense["nz_value"][0] == (0,)
    assert kernels.optimizer_state_sizes(kernels.MOMENTUM, 7) == {"velocity": 7, "m": 0, "v": 0}
    assert kernels.optimizer_state_sizes(kernels.ADAM, 7) == {"velocity": 0, "m": 7, "v": 7}


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("sizes", [[6, 5, 3], [6, 3], [6, 4, 5, 3]])
@pytest.mark.parametrize("batch", [1, 7, 16, 50])
def test_train_epoch_matches_numpy_sgd_including_last_partial_batch(batch, sizes, sparse):
    rng = np.random.default_rng(batch)
    sizes = np.array(sizes, np.int64)
    n = 50
    # Non-negative inputs with many exact zeros, like image pixels.
    X = np.maximum(rng.standard_normal((n, 6)), 0)
    y = rng.integers(0, 3, n).astype(np.int32)
    params = 0.5 * rng.standard_normal(parameter_offsets(sizes)[1][-1])
    order = rng.permutation(n).astype(np.int64)
    expected = _numpy_epoch(0.5 * X, y, order, params.copy(), sizes, batch, 0.1)
    capacity = min(batch, 16)          # batch 50 > capacity: micro-batches + summed gradient
    got = params.copy()
    loss, correct, step = _run_train_epoch(X, y, order, got, sizes, batch, capacity, sparse)
    assert step == -(-n // batch)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert np.isfinite(loss) and 0 <= correct <= n


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_sparse_first_layer_matches_dense_kernels(activation):
    rng = np.random.default_rng(5)
    n, d, m = 9, 30, 17
    X = (rng.random((n, d)) < 0.2) * rng.integers(1, 256, (n, d))
    X = X.astype(np.uint8)
    scale = np.full(d, 1 / 255, np.float32)
    W, b = rng.standard_normal((d, m)).astype(np.float32), rng.standard_normal(m).astype(np.float32)
    row_ptr, index = np.zeros(n + 1, np.int64), np.zeros(n * d, np.int32)
    value, labels = np.zeros(n * d, np.float32), np.zeros(n, np.int32)
    order = np.arange(n)
    nnz = kernels.gather_sparse_batch(X, np.zeros(n, np.int32), order, 0, n, scale, labels,
                                      row_ptr, index, value)
    assert nnz == np.count_nonzero(X)
    dense = (X * scale).astype(np.float32)
    code = kernels.ACTIVATIONS[activation]
    out, expected = np.empty((n, m), np.float32), np.empty((n, m), np.float32)
    kernels.sparse_dense_forward(row_ptr, index, value, n, W, b, code, out)
    kernels.dense_forward(dense, W, b, code, expected)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    dZ = rng.standard_normal((n, m)).astype(np.float32)
    dW, db = np.full((d, m), np.nan, np.float32), np.empty(m, np.float32)
    kernels.sparse_dense_backward(row_ptr, index, value, n, dZ, dW, db)
    np.testing.assert_allclose(dW, dense.T @ dZ, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db, dZ.sum(0), rtol=1e-5, atol=1e-5)
