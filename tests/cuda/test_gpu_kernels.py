"""Every ``gpu_*`` kernel against its CPU twin in :mod:`fastann.kernels`, on tiny odd shapes.

Runs under the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1 python -m pytest
tests/cuda -m cudasim``) or on a real GPU; see conftest.py. Shapes and tiles
are tiny because the simulator runs one Python thread per CUDA thread.
"""
import numpy as np
import pytest

from fastann import kernels
from _gpu_setup import cpu_state, hyper, to_device, to_host

pytestmark = pytest.mark.cudasim

ACTIVATIONS = list(kernels.ACTIVATIONS)
# (n_rows, d_in, d_out): batch of 1, the 3x5x7 of the issue, shapes that cross
# tile edges in both directions with the simulator's 4x4 tiles.
SHAPES = [(1, 1, 1), (3, 5, 7), (6, 9, 4)]
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def rand(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def act_outputs(rng, shape, activation, dtype):
    """Plausible forward outputs ``A = f(Z)`` (with exact zeros for ReLU)."""
    Z = rand(rng, shape, dtype)
    kernels.bias_activation_inplace(Z, np.zeros(shape[1], dtype), kernels.ACTIVATIONS[activation])
    return Z


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n,d_in,d_out", SHAPES)
def test_dense_forward(kc, cuda, n, d_in, d_out, activation):
    rng = np.random.default_rng(n * 100 + d_in * 10 + d_out)
    X, W, b = rand(rng, (n, d_in)), rand(rng, (d_in, d_out)), rand(rng, d_out)
    code = kernels.ACTIVATIONS[activation]
    expected = np.empty((n, d_out), np.float32)
    kernels.dense_forward(X, W, b, code, expected)
    out = cuda.device_array((n, d_out), np.float32)
    kc.gpu_dense_forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b), code, out)
    np.testing.assert_allclose(out.copy_to_host(), expected, rtol=2e-5, atol=2e-6 * d_in)


@pytest.mark.parametrize("tile", [1, 2, 8])
def test_dense_forward_any_tile_and_live_rows(kc, cuda, tile):
    """Other tile sizes; rows past ``n_rows`` of a capacity-sized buffer stay untouched."""
    rng = np.random.default_rng(tile)
    capacity, n, d_in, d_out = 7, 5, 10, 3
    X, W, b = rand(rng, (capacity, d_in)), rand(rng, (d_in, d_out)), rand(rng, d_out)
    expected = np.empty((n, d_out), np.float32)
    kernels.dense_forward(X[:n], W, b, kernels.TANH, expected)
    out = cuda.to_device(np.full((capacity, d_out), 7.0, np.float32))
    kc.gpu_dense_forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b), kernels.TANH,
                         out, n_rows=n, tile=tile)
    got = out.copy_to_host()
    np.testing.assert_allclose(got[:n], expected, rtol=2e-5, atol=2e-5)
    assert np.all(got[n:] == 7.0)


def test_dense_forward_float64(kc, cuda):
    rng = np.random.default_rng(64)
    X, W, b = (rand(rng, s, np.float64) for s in [(5, 6), (6, 9), 9])
    expected = np.empty((5, 9))
    kernels.dense_forward(X, W, b, kernels.SIGMOID, expected)
    out = cuda.device_array((5, 9), np.float64)
    kc.gpu_dense_forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b),
                         kernels.SIGMOID, out)
    np.testing.assert_allclose(out.copy_to_host(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("n,d_in,d_out", SHAPES)
def test_dense_backward(kc, cuda, n, d_in, d_out, activation):
    rng = np.random.default_rng(n + 10 * d_out)
    code = kernels.ACTIVATIONS[activation]
    X = act_outputs(rng, (n, d_in), activation, np.float32)
    W, dZ = rand(rng, (d_in, d_out)), rand(rng, (n, d_out))
    dW, db, dX = np.empty_like(W), np.empty(d_out, np.float32), np.empty((n, d_in), np.float32)
    kernels.dense_backward(X, W, dZ, dW, db, dX, code)
    g = {name: cuda.device_array(a.shape, np.float32)
         for name, a in (("dW", dW), ("db", db), ("dX", dX))}
    kc.gpu_dense_backward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(dZ), g["dW"],
                          g["db"], g["dX"], code)
    tol = dict(rtol=2e-5, atol=2e-6 * max(n, d_out))
    np.testing.assert_allclose(g["dW"].copy_to_host(), dW, **tol)
    # The bias gradient is summed in the CPU's row order: identical bits.
    np.testing.assert_array_equal(g["db"].copy_to_host(), db)
    np.testing.assert_allclose(g["dX"].copy_to_host(), dX, **tol)


def test_dense_backward_first_layer_and_accumulate(kc, cuda):
    """No dX for the first layer; ``accumulate`` adds a micro-batch's gradient."""
    rng = np.random.default_rng(5)
    n, d_in, d_out = 5, 6, 3
    X, W, dZ = rand(rng, (n, d_in)), rand(rng, (d_in, d_out)), rand(rng, (n, d_out))
    dW, db = np.empty_like(W), np.empty(d_out, np.float32)
    kernels.dense_backward(X, W, dZ, dW, db, np.empty((0, 0), np.float32), kernels.RELU)
    d_dW = cuda.to_device(np.ones_like(W))
    d_db = cuda.to_device(np.ones(d_out, np.float32))
    args = (cuda.to_device(X), cuda.to_device(W), cuda.to_device(dZ), d_dW, d_db)
    kc.gpu_dense_backward(*args, None, kernels.RELU)
    np.testing.assert_allclose(d_dW.copy_to_host(), dW, rtol=2e-5, atol=1e-5)
    np.testing.assert_array_equal(d_db.copy_to_host(), db)
    kc.gpu_dense_backward(*args, cuda.device_array((0, 0), np.float32), kernels.RELU,
                          accumulate=True)
    np.testing.assert_allclose(d_dW.copy_to_host(), 2 * dW, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(d_db.copy_to_host(), 2 * db, rtol=1e-6)


def test_dense_backward_live_rows_float64(kc, cuda):
    rng = np.random.default_rng(11)
    capacity, n, d_in, d_out = 9, 6, 5, 7
    X = act_outputs(rng, (capacity, d_in), "sigmoid", np.float64)
    W, dZ = rand(rng, (d_in, d_out), np.float64), rand(rng, (capacity, d_out), np.float64)
    dW, db, dX = np.empty_like(W), np.empty(d_out), np.empty((n, d_in))
    kernels.dense_backward(X[:n], W, dZ[:n], dW, db, dX, kernels.SIGMOID)
    d_dX = cuda.to_device(np.full((capacity, d_in), 3.0))
    d_dW, d_db = cuda.device_array(W.shape), cuda.device_array(d_out)
    kc.gpu_dense_backward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(dZ), d_dW, d_db,
                          d_dX, kernels.SIGMOID, n_rows=n, tile=2)
    np.testing.assert_allclose(d_dW.copy_to_host(), dW, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(d_db.copy_to_host(), db)
    got = d_dX.copy_to_host()
    np.testing.assert_allclose(got[:n], dX, rtol=1e-12, atol=1e-13)
    assert np.all(got[n:] == 3.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,k,in_place", [(1, 2, True), (3, 5, False), (4, 37, True)])
def test_softmax_cross_entropy(kc, cuda, n, k, in_place, dtype):
    rng = np.random.default_rng(n * k)
    logits = (rng.standard_normal((n, k)) * 3).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int32)
    labels[0] = int(np.argmax(logits[0]))  # at least one correct row
    scale = 1.0 / n
    grad = np.empty_like(logits)
    loss, correct = kernels.softmax_cross_entropy(logits, labels, scale, grad)
    d_logits, counters = cuda.to_device(logits), cuda.to_device(np.zeros(2))
    d_grad = d_logits if in_place else cuda.device_array_like(logits)
    kc.gpu_softmax_cross_entropy(d_logits, cuda.to_device(labels), scale, d_grad, counters)
    got_loss, got_correct = counters.copy_to_host()
    assert got_loss == pytest.approx(loss, rel=RTOL[dtype])
    assert got_correct == correct
    np.testing.assert_allclose(d_grad.copy_to_host(), grad, rtol=RTOL[dtype] * 10,
                               atol=RTOL[dtype] / n)


def test_softmax_ties_count_first_index_and_live_rows(kc, cuda):
    """Ties go to the first index, as on the CPU; counters accumulate; rows past n_rows idle."""
    logits = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [0, 0, 5, 5], [9, 9, 9, 9]], np.float32)
    labels = np.array([2, 0, 3, 1], np.int32)
    grad = np.empty((3, 4), np.float32)
    loss, correct = kernels.softmax_cross_entropy(logits[:3], labels[:3], 0.5, grad)
    assert correct == 1
    counters = cuda.to_device(np.array([1.0, 1.0]))
    d_logits = cuda.to_device(logits)
    kc.gpu_softmax_cross_entropy(d_logits, cuda.to_device(labels), 0.5, d_logits, counters,
                                 n_rows=3, rows_per_block=2)
    got_loss, got_correct = counters.copy_to_host()
    assert got_loss == pytest.approx(1.0 + loss, rel=1e-6)
    assert got_correct == 1.0 + correct
    got = d_logits.copy_to_host()
    np.testing.assert_allclose(got[:3], grad, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got[3], logits[3])


@pytest.mark.parametrize("n,k", [(1, 3), (5, 33)])
def test_log_softmax(kc, cuda, n, k):
    rng = np.random.default_rng(k)
    logits = (rng.standard_normal((n, k)) * 4).astype(np.float32)
    expected = logits.copy()
    kernels.log_softmax_inplace(expected)
    out = cuda.to_device(np.zeros((n + 2, k), np.float32))
    kc.gpu_log_softmax(cuda.to_device(logits), out, out_start=2)
    got = out.copy_to_host()
    np.testing.assert_allclose(got[2:], expected, rtol=1e-5, atol=1e-5)
    assert np.all(got[:2] == 0)


OPTIMIZER_CASES = {
    "sgd": lambda k, p, g, s1, s2, step, n_w: k.sgd_update(p, g, 0.1, 0.01, 0.02, n_w),
    "momentum": lambda k, p, g, s1, s2, step, n_w: k.momentum_update(p, g, s1, 0.1, 0.9, 0.01,
                                                                      0.02, n_w),
    "nesterov": lambda k, p, g, s1, s2, step, n_w: k.nesterov_update(p, g, s1, 0.1, 0.9, 0.01,
                                                                      0.02, n_w),
    "adam": lambda k, p, g, s1, s2, step, n_w: k.adam_update(p, g, s1, s2, step, 0.01, 0.9,
                                                              0.999, 1e-8, 0.01, 0.02, n_w,
                                                              False),
    "adamw": lambda k, p, g, s1, s2, step, n_w: k.adam_update(p, g, s1, s2, step, 0.01, 0.9,
                                                               0.999, 1e-8, 0.01, 0.02, n_w,
                                                               True),
}


class _Gpu:
    """``kernels``-like namespace whose updates are the GPU twins."""

    def __init__(self, kc):
        self.sgd_update = kc.gpu_sgd_update
        self.momentum_update = kc.gpu_momentum_update
        self.nesterov_update = kc.gpu_nesterov_update
        self.adam_update = kc.gpu_adam_update


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPTIMIZER_CASES))
def test_optimizer_updates(kc, cuda, name, dtype):
    rng = np.random.default_rng(len(name))
    size, n_weights = 45, 37  # more entries than threads x blocks: grid-stride loop
    params = rand(rng, size, dtype)
    params[[0, 5, 40]] = 0  # sign(0) = 0 for L1, on a weight and on a bias
    cpu = [params.copy(), np.zeros(size, dtype), np.zeros(size, dtype)]
    gpu = [cuda.to_device(a) for a in cpu]
    for step in (1, 2, 3):
        grads = rand(rng, size, dtype)
        OPTIMIZER_CASES[name](kernels, cpu[0], grads, cpu[1], cpu[2], step, n_weights)
        OPTIMIZER_CASES[name](_Gpu(kc), gpu[0], cuda.to_device(grads), gpu[1], gpu[2], step,
                              n_weights)
    for want, got in zip(cpu, gpu):
        np.testing.assert_allclose(got.copy_to_host(), want, rtol=RTOL[dtype] / 4,
                                   atol=RTOL[dtype] / 20)


@pytest.mark.parametrize("optimizer", list(kernels.OPTIMIZERS))
def test_apply_update_dispatch(kc, cuda, optimizer):
    """Same OptimizerState layout on both devices (unused fields of size 0)."""
    rng = np.random.default_rng(3)
    code = kernels.OPTIMIZERS[optimizer]
    params, grads = rand(rng, 20), rand(rng, 20)
    state = cpu_state(code, 20, np.float32)
    d_params, d_state = cuda.to_device(params), to_device(cuda, state)
    kernels.apply_update(code, params, grads, state, 4, hyper(), 12)
    kc.gpu_apply_update(code, d_params, cuda.to_device(grads), d_state, 4, hyper(), 12)
    np.testing.assert_allclose(d_params.copy_to_host(), params, rtol=5e-6, atol=1e-7)
    for name, want, got in zip(state._fields, state, to_host(d_state)):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=5e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("raw_dtype", [np.uint8, np.float64])
def test_gather_batch(kc, cuda, raw_dtype):
    rng = np.random.default_rng(8)
    n, d, capacity = 10, 6, 4
    X = (rng.integers(0, 256, (n, d)) if raw_dtype == np.uint8
         else rng.standard_normal((n, d))).astype(raw_dtype)
    y = rng.integers(0, 10, n).astype(np.int32)
    order = rng.permutation(n).astype(np.int64)
    dtype = np.float64 if raw_dtype == np.float64 else np.float32
    scale, shift = rng.uniform(0.5, 2, d).astype(dtype), rng.uniform(-1, 1, d).astype(dtype)
    out, labels = np.full((capacity, d), -1, dtype), np.full(capacity, -1, np.int32)
    kernels.gather_batch(X, y, order, 7, 10, scale, shift, out, labels)  # last partial batch
    d_out = cuda.to_device(np.full((capacity, d), -1, dtype))
    d_labels = cuda.to_device(np.full(capacity, -1, np.int32))
    kc.gpu_gather_batch(cuda.to_device(X), cuda.to_device(y), cuda.to_device(order), 7, 10,
                        cuda.to_device(scale), cuda.to_device(shift), d_out, d_labels)
    np.testing.assert_allclose(d_out.copy_to_host(), out, rtol=1e-6)
    np.testing.assert_array_equal(d_labels.copy_to_host(), labels)


def test_gather_rows(kc, cuda):
    rng = np.random.default_rng(9)
    X = rng.integers(0, 256, (5, 4)).astype(np.uint8)
    scale, shift = np.full(4, 1 / 255, np.float32), np.full(4, -0.5, np.float32)
    out = cuda.device_array((3, 4), np.float32)
    kc.gpu_gather_rows(cuda.to_device(X), 2, 5, cuda.to_device(scale), cuda.to_device(shift),
                       out)
    np.testing.assert_allclose(out.copy_to_host(), X[2:5] * scale + shift, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_evaluate_matches_cpu_log_proba(kc, cuda, dtype):
    """gpu_evaluate's loss sum, correct count and non-finite rows against the CPU's log-probabilities."""
    from _gpu_setup import cpu_log_proba, make_problem
    X, y, norm, params, sizes = make_problem((5, 4, 3), 9, dtype=dtype, seed=44)
    capacity = 4
    log_proba = cpu_log_proba(X, norm, params, sizes, kernels.SIGMOID, capacity)
    buffers = kernels.PredictionBuffers(
        cuda.device_array((capacity, 5), dtype),
        cuda.device_array(kernels.activation_buffer_length(sizes, capacity), dtype))
    net = kernels.Network(cuda.to_device(params), sizes, kernels.SIGMOID)
    loss, correct, bad = kc.gpu_evaluate(cuda.to_device(X), cuda.to_device(y),
                                         to_device(cuda, norm), net, buffers)
    assert loss == pytest.approx(-log_proba[np.arange(9), y].sum(), rel=RTOL[dtype])
    assert correct == int((log_proba.argmax(axis=1) == y).sum())
    assert bad == 0
    params = params.copy()
    params[0] = np.nan  # the first input's weight to the first hidden unit: every row
    net = kernels.Network(cuda.to_device(params), sizes, kernels.SIGMOID)
    _, _, bad = kc.gpu_evaluate(cuda.to_device(X), cuda.to_device(y), to_device(cuda, norm),
                                net, buffers)
    assert bad == 9


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, None])
def test_all_finite(kc, cuda, value):
    a = np.linspace(-1, 1, 70).astype(np.float32)
    if value is not None:
        a[53] = value
    assert kc.gpu_all_finite(cuda.to_device(a)) is (value is None)
    assert kc.gpu_all_finite(cuda.to_device(a[:0]))


@pytest.mark.parametrize("tile,per_thread", [(2, 1), (2, 3), (3, 2), (1, 5)])
def test_dense_register_blocking_gives_the_same_layer(kc, cuda, tile, per_thread):
    """Any (tile, per_thread): forward, backward with live rows and accumulation, vs the CPU."""
    rng = np.random.default_rng(tile * 10 + per_thread)
    capacity, n, d_in, d_out = 9, 7, 11, 6
    X = act_outputs(rng, (capacity, d_in), "tanh", np.float32)
    W, b, dZ = rand(rng, (d_in, d_out)), rand(rng, d_out), rand(rng, (capacity, d_out))
    shape = dict(tile=tile, per_thread=per_thread)
    expected = np.empty((n, d_out), np.float32)
    kernels.dense_forward(X[:n], W, b, kernels.TANH, expected)
    out = cuda.to_device(np.full((capacity, d_out), 7.0, np.float32))
    d_X, d_W = cuda.to_device(X), cuda.to_device(W)
    kc.gpu_dense_forward(d_X, d_W, cuda.to_device(b), kernels.TANH, out, n_rows=n, **shape)
    got = out.copy_to_host()
    np.testing.assert_allclose(got[:n], expected, rtol=2e-5, atol=2e-5)
    assert np.all(got[n:] == 7.0)
    dW, db, dX = np.empty_like(W), np.empty(d_out, np.float32), np.empty((n, d_in), np.float32)
    kernels.dense_backward(X[:n], W, dZ[:n], dW, db, dX, kernels.TANH)
    d_dW, d_db = cuda.to_device(np.ones_like(W)), cuda.to_device(np.ones(d_out, np.float32))
    d_dX = cuda.to_device(np.full((capacity, d_in), 3.0, np.float32))
    kc.gpu_dense_backward(d_X, d_W, cuda.to_device(dZ), d_dW, d_db, d_dX, kernels.TANH,
                          n_rows=n, accumulate=True, **shape)
    np.testing.assert_allclose(d_dW.copy_to_host(), dW + 1, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(d_db.copy_to_host(), db + 1, rtol=1e-6, atol=1e-6)
    got = d_dX.copy_to_host()
    np.testing.assert_allclose(got[:n], dX, rtol=2e-5, atol=2e-5)
    assert np.all(got[n:] == 3.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("splits,tile,per_thread", [(2, 2, 1), (3, 1, 3), (6, 2, 1)])
def test_dense_forward_split_k(kc, cuda, dtype, splits, tile, per_thread):
    """forward_split: each output tile's sum over 11 inputs split over ``splits`` blocks and
    added up by the last one matches the CPU and the unsplit kernel; rows past ``n_rows``
    stay untouched."""
    rng = np.random.default_rng(splits * 10 + tile)
    capacity, n, d_in, d_out = 7, 5, 11, 5
    X, W, b = rand(rng, (capacity, d_in), dtype), rand(rng, (d_in, d_out), dtype), rand(
        rng, d_out, dtype)
    expected = np.empty((n, d_out), dtype)
    kernels.dense_forward(X[:n], W, b, kernels.RELU, expected)
    got = {}
    for s in (1, splits):
        out = cuda.to_device(np.full((capacity, d_out), 7.0, dtype))
        kc.gpu_dense_forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b),
                             kernels.RELU, out, n_rows=n, tile=tile, per_thread=per_thread,
                             splits=s)
        got[s] = out.copy_to_host()
        assert np.all(got[s][n:] == 7.0)
    np.testing.assert_allclose(got[splits][:n], expected, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(got[splits], got[1], rtol=RTOL[dtype], atol=RTOL[dtype])


def test_forward_splits_fill_the_multiprocessors():
    """How many blocks share a tile's reduction: only launches with fewer blocks than
    multiprocessors split, at most MAX_SPLITS and one slab each, with no empty split."""
    from fastann.kernels.cuda.dense import MAX_SPLITS, check_split_k, forward_splits
    # S at batch 128 (16x16 tiles) on an H100's 132 SMs: the first layer has 8x8 = 64 blocks.
    assert forward_splits(128, 784, 128, 16, 1, "auto", 132) == 3
    assert forward_splits(128, 784, 128, 16, 1, 2, 132) == 2
    assert forward_splits(128, 784, 128, 16, 1, 1, 132) == 1
    assert forward_splits(128, 128, 10, 16, 1, "auto", 132) == MAX_SPLITS  # 8 blocks, 8 slabs
    assert forward_splits(128, 100, 10, 16, 1, "auto", 132) == 7  # only 7 slabs of 16
    assert forward_splits(256, 1024, 1024, 16, 1, "auto", 132) == 1  # 1024 blocks already
    assert forward_splits(128, 80, 10, 16, 1, 4, 132) == 3  # 5 slabs in 4 would leave 1 empty
    assert check_split_k(3) == 3 and check_split_k("auto") == "auto"
    for bad in (0, 2.0, False, "2"):
        with pytest.raises(ValueError, match="split_k"):
            check_split_k(bad)


@pytest.mark.parametrize("dtype,accumulate", [(np.float32, False), (np.float64, True)])
def test_gemm_column_sums_and_rows_past_the_live_ones(kc, cuda, dtype, accumulate):
    """The GEMM path's column sums: db (+)= the live rows' column sums of dZ (row groups
    added in a fixed order), over more columns than a grid covers at once; the rows past
    the live ones of dZ and X set to zero, the live rows untouched."""
    from fastann.kernels.cuda import blas
    from fastann.kernels.cuda._launch import single_step_plan
    rng = np.random.default_rng(7)
    capacity, n_rows, d_out, d_in = 7, 5, 11, 6
    dZ = rng.standard_normal((capacity, d_out)).astype(dtype)
    X = rng.standard_normal((capacity, d_in)).astype(dtype)
    db = rng.standard_normal(d_out).astype(dtype)
    dZ[n_rows:] = np.nan  # what a dead row may hold
    plan, cursor = single_step_plan(n_rows=n_rows, accumulate=accumulate)
    d_dZ, d_X, d_db = cuda.to_device(dZ), cuda.to_device(X), cuda.to_device(db)
    column_sums = blas.epilogue_kernels(dtype)[1]
    grid, block = blas.column_sums_grid(d_out)
    column_sums[grid, block](d_dZ, d_db, d_X, cuda.to_device(plan), cuda.to_device(cursor))
    want = dZ[:n_rows].sum(axis=0) + (db if accumulate else 0)
    np.testing.assert_allclose(d_db.copy_to_host(), want, rtol=1e-5)
    for got, original in ((d_dZ.copy_to_host(), dZ), (d_X.copy_to_host(), X)):
        np.testing.assert_array_equal(got[:n_rows], original[:n_rows])
        assert not got[n_rows:].any()


@pytest.mark.parametrize("depth,tile,per_thread", [(2, 2, 1), (3, 1, 3), (4, 2, 2)])
def test_dense_forward_deep_slabs(kc, cuda, depth, tile, per_thread):
    """depth: slabs ``depth`` tile edges deep (11 inputs: the last slab partial) give the
    same bits as 1-deep slabs (the same sums in the same order), and with split-K (slabs
    of the deeper size) the CPU's layer; rows past ``n_rows`` stay untouched."""
    rng = np.random.default_rng(depth * 10 + tile)
    capacity, n, d_in, d_out = 7, 5, 11, 5
    X, W, b = rand(rng, (capacity, d_in)), rand(rng, (d_in, d_out)), rand(rng, d_out)
    expected = np.empty((n, d_out), np.float32)
    kernels.dense_forward(X[:n], W, b, kernels.RELU, expected)
    got = {}
    for d, splits in ((1, 1), (depth, 1), (depth, 2)):
        out = cuda.to_device(np.full((capacity, d_out), 7.0, np.float32))
        kc.gpu_dense_forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b),
                             kernels.RELU, out, n_rows=n, tile=tile, per_thread=per_thread,
                             splits=splits, depth=d)
        got[d, splits] = out.copy_to_host()
        assert np.all(got[d, splits][n:] == 7.0)
    np.testing.assert_array_equal(got[depth, 1], got[1, 1])
    np.testing.assert_allclose(got[depth, 2][:n], expected, rtol=2e-5, atol=2e-5)


def test_depth_refuses_other_values(kc, cuda):
    from fastann.kernels.cuda.dense import check_depth, dense_kernels, forward_splits
    assert check_depth(3) == 3 and check_depth(np.int64(2)) == 2
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="depth must be a positive int"):
            check_depth(bad)
    with pytest.raises(ValueError, match="4 deep, need"):
        dense_kernels(16, np.float64, 4, 4)  # 64 x 257 + 256 x 65 doubles: over 48 KiB
    # Split-K counts slabs of the deeper size: S's first layer, 784 inputs in 13 slabs of 64.
    assert forward_splits(128, 784, 128, 16, 1, "auto", 132, depth=4) == 3
    assert forward_splits(128, 128, 10, 16, 1, "auto", 132, depth=4) == 2  # 2 slabs of 64


def test_kernel_tests_run_under_the_race_check(kc, cuda):
    """Under the simulator the conftest fixture checks these tests' launches for races."""
    import os
    import racecheck
    if not kc.SIMULATOR or os.environ.get("FASTANN_RACECHECK", "1") in ("", "0"):
        pytest.skip("the race check runs under the simulator, unless FASTANN_RACECHECK=0")
    log = racecheck._active
    assert log is not None
    before = log.accesses
    X, W, b = (np.ones(shape, np.float32) for shape in ((3, 5), (5, 7), 7))
    out = cuda.device_array((3, 7), np.float32)
    kc.gpu_dense_forward(cuda.to_device(X), cuda.to_device(W), cuda.to_device(b),
                         kernels.RELU, out)
    assert log.accesses > before and not log.races
    np.testing.assert_array_equal(out.copy_to_host(), np.full((3, 7), 6.0, np.float32))
