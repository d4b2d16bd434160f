"""Benchmarks of the Numba kernels at the S shapes, each checked against NumPy.

The repository's pytest configuration passes ``--benchmark-disable``, so by
default every benchmarked call runs once and these are ordinary correctness
tests. For timings::

    pytest tests/test_kernel_benchmarks.py --benchmark-enable

S = 784-128-10, ReLU, mini-batch 128 (the workload of ``benchmarks/``).
"""
import numpy as np
import pytest

# The repository's kernels/ folder is installed as fastann.kernels (there is no
# top-level "kernels" package once installed, so importing that skipped this file).
kernels = pytest.importorskip("fastann.kernels")
pytest.importorskip("pytest_benchmark")

BATCH, N_IN, N_HIDDEN, N_CLASSES = 128, 784, 128, 10
N_WEIGHTS = N_IN * N_HIDDEN + N_HIDDEN * N_CLASSES
N_PARAMS = N_WEIGHTS + N_HIDDEN + N_CLASSES
F32 = np.float32


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _relu(z):
    return np.maximum(z, 0)


def test_dense_forward_S(benchmark, rng):
    X = rng.random((BATCH, N_IN), dtype=F32)
    W = rng.standard_normal((N_IN, N_HIDDEN), dtype=F32) * F32(0.05)
    b = rng.standard_normal(N_HIDDEN, dtype=F32)
    out = np.empty((BATCH, N_HIDDEN), F32)

    benchmark(kernels.dense_forward, X, W, b, kernels.RELU, out)

    expected = _relu(X.astype(np.float64) @ W + b)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("with_dx", [False, True], ids=["first_layer", "hidden_layer"])
def test_dense_backward_S(benchmark, rng, with_dx):
    # hidden_layer: the 128 -> 10 output layer, whose input is the ReLU hidden layer.
    n_in, n_out = (N_IN, N_HIDDEN) if not with_dx else (N_HIDDEN, N_CLASSES)
    X = _relu(rng.standard_normal((BATCH, n_in), dtype=F32))   # has exact zeros
    W = rng.standard_normal((n_in, n_out), dtype=F32) * F32(0.05)
    dZ = rng.standard_normal((BATCH, n_out), dtype=F32)
    dW = np.empty_like(W)
    db = np.empty(n_out, F32)
    dX = np.empty((BATCH, n_in) if with_dx else (0, 0), F32)

    benchmark(kernels.dense_backward, X, W, dZ, dW, db, dX, kernels.RELU)

    X64, dZ64 = X.astype(np.float64), dZ.astype(np.float64)
    np.testing.assert_allclose(dW, X64.T @ dZ64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, dZ64.sum(axis=0), rtol=1e-4, atol=1e-4)
    if with_dx:
        np.testing.assert_allclose(dX, (dZ64 @ W.T) * (X > 0), rtol=1e-4, atol=1e-4)


def test_softmax_cross_entropy_S(benchmark, rng):
    logits = rng.standard_normal((BATCH, N_CLASSES), dtype=F32) * F32(3)
    labels = rng.integers(0, N_CLASSES, BATCH).astype(np.int32)
    grad = np.empty_like(logits)
    scale = 1.0 / BATCH

    loss_sum, n_correct = benchmark(kernels.softmax_cross_entropy, logits, labels, scale, grad)

    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    rows = np.arange(BATCH)
    np.testing.assert_allclose(loss_sum, -np.log(p[rows, labels]).sum(), rtol=1e-5)
    assert n_correct == int((logits.argmax(axis=1) == labels).sum())
    expected_grad = p.copy()
    expected_grad[rows, labels] -= 1
    np.testing.assert_allclose(grad, expected_grad * scale, rtol=1e-4, atol=1e-6)


def test_adam_update_S(benchmark, rng):
    lr, b1, b2, eps, step = 1e-3, 0.9, 0.999, 1e-8, 5
    params0 = rng.standard_normal(N_PARAMS, dtype=F32)
    grads = rng.standard_normal(N_PARAMS, dtype=F32) * F32(1e-2)
    m0 = rng.standard_normal(N_PARAMS, dtype=F32) * F32(1e-2)
    v0 = rng.random(N_PARAMS, dtype=F32) * F32(1e-4)
    state = {}

    def fresh():
        # adam_update works in place: give every timed call the same inputs.
        state.update(p=params0.copy(), m=m0.copy(), v=v0.copy())
        return (state["p"], grads, state["m"], state["v"], step, lr, b1, b2, eps,
                0.0, 0.0, N_WEIGHTS, False), {}

    benchmark.pedantic(kernels.adam_update, setup=fresh, rounds=50, warmup_rounds=1)

    # Kingma & Ba (2015), Algorithm 1, literally, in float64.
    g = grads.astype(np.float64)
    m = b1 * m0 + (1 - b1) * g
    v = b2 * v0 + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1 ** step), v / (1 - b2 ** step)
    expected = params0 - lr * m_hat / (np.sqrt(v_hat) + eps)
    np.testing.assert_allclose(state["m"], m, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(state["v"], v, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(state["p"], expected, rtol=1e-5, atol=1e-6)
