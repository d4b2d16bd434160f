"""The parallel BLAS-free epoch (fastann.kernels.fused) against the BLAS epoch."""
import subprocess
import sys

import numpy as np
import pytest

from fastann import MLPClassifier, kernels
from fastann.backends.cpu import CpuBackend, allocate
from fastann.datasets import load_dataset

DATA = __import__("pathlib").Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def mnist_subset():
    X, y = load_dataset(DATA, "train")
    return X[:1000], y[:1000].astype(np.int32)


def _epoch(path, X, y, sizes, activation, optimizer, batch, dtype, sparse=True, shift=0.0):
    sizes = np.array(sizes, np.int64)
    rng = np.random.default_rng(7)
    n_params = kernels.parameter_offsets(sizes)[1][-1]
    params = (0.05 * rng.standard_normal(n_params)).astype(dtype)
    norm = kernels.Normalization(np.full(sizes[0], 1 / 255, dtype), np.full(sizes[0], shift, dtype))
    hyper = kernels.hyperparameters(0.01, 0.9, 0.9, 0.999, 1e-8, 1e-5, 1e-4)
    state = kernels.OptimizerState(**{k: np.zeros(v, dtype) for k, v in
                                      kernels.optimizer_state_sizes(optimizer, n_params).items()})
    order = rng.permutation(X.shape[0]).astype(np.int64)
    net = kernels.Network(params, sizes, activation)
    if path == "parallel":
        csr = kernels.compressed_rows(X)
        buffers = kernels.ParallelBuffers(**allocate(
            kernels.parallel_buffer_shapes(sizes, batch, sparse), dtype))
        result = kernels.train_epoch_parallel(X, y, csr, order, norm, net, optimizer, hyper, 0,
                                              batch, state, buffers, sparse)
    else:
        buffers = kernels.TrainingBuffers(**allocate(
            kernels.training_buffer_shapes(sizes, batch, batch, False), dtype))
        result = kernels.train_epoch(X, y, order, norm, net, optimizer, hyper, 0, batch, state,
                                     buffers, False)
    return result, params, state


@pytest.mark.parametrize("sizes, activation, optimizer", [
    ([784, 32, 10], kernels.RELU, kernels.ADAM),
    ([784, 16, 12, 10], kernels.SIGMOID, kernels.MOMENTUM),
    ([784, 40, 36, 10], kernels.SIGMOID, kernels.MOMENTUM),     # a wide later layer
    ([784, 10], kernels.IDENTITY, kernels.SGD),
    ([784, 24, 10], kernels.TANH, kernels.ADAMW),
    ([784, 20, 10], kernels.LEAKY_RELU, kernels.NESTEROV),
])
@pytest.mark.parametrize("batch", [1, 50, 128])
def test_parallel_epoch_matches_the_blas_epoch(mnist_subset, sizes, activation, optimizer, batch):
    X, y = mnist_subset
    X = X[:300]
    (loss_a, correct_a, step_a), params_a, state_a = _epoch("blas", X, y, sizes, activation,
                                                            optimizer, batch, np.float64)
    (loss_b, correct_b, step_b), params_b, state_b = _epoch("parallel", X, y, sizes, activation,
                                                            optimizer, batch, np.float64)
    assert step_a == step_b == -(-300 // batch)
    assert correct_a == correct_b
    assert loss_b == pytest.approx(loss_a, rel=1e-10)
    np.testing.assert_allclose(params_b, params_a, rtol=1e-6, atol=1e-10)
    for a, b in zip(state_a, state_b):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-12)


def test_dense_first_layer_variant_matches(mnist_subset):
    X, y = mnist_subset
    X = X[:200]
    (loss_a, _, _), params_a, _ = _epoch("blas", X, y, [784, 16, 10], kernels.RELU, kernels.ADAM,
                                         32, np.float64, shift=-0.1)
    (loss_b, _, _), params_b, _ = _epoch("parallel", X, y, [784, 16, 10], kernels.RELU,
                                         kernels.ADAM, 32, np.float64, sparse=False, shift=-0.1)
    assert loss_b == pytest.approx(loss_a, rel=1e-10)
    np.testing.assert_allclose(params_b, params_a, rtol=1e-6, atol=1e-10)


def test_compressed_rows_hold_exactly_the_nonzeros():
    X = np.array([[0, 3, 0], [0, 0, 0], [7, 0, 9]], np.uint8)
    ptr, index, value, block_start = kernels.compressed_rows(X, n_blocks=3)
    assert ptr.tolist() == [0, 1, 1, 3] and index.tolist() == [1, 0, 2]
    assert value.tolist() == [3, 7, 9] and value.dtype == np.uint8
    # blocks of one column each: where each row's nonzeros in column 0, 1, 2 start
    assert block_start.tolist() == [[0, 0, 1, 1], [0, 0, 0, 0], [0, 1, 1, 2]]


_SAME_RESULT_ANY_THREADS = """
import sys, numpy as np, numba
from fastann import MLPClassifier
from fastann.datasets import load_dataset
X, y = load_dataset(sys.argv[1], "train")
m = MLPClassifier(hidden_layer_sizes=(32,), epochs=2, batch_size=64, random_state=0, cpu_kernel="parallel",
                  n_threads=int(sys.argv[2])).fit(X[:800], y[:800])
print(m.history_[-1]["train_loss"], float(np.abs(np.concatenate([c.ravel() for c in m.coefs_])).sum()))
"""


def test_parallel_epoch_gives_the_same_weights_with_one_or_two_threads():
    outs = [subprocess.run([sys.executable, "-c", _SAME_RESULT_ANY_THREADS, str(DATA), t],
                           capture_output=True, text=True, check=True).stdout.strip()
            for t in ("1", "2")]
    assert outs[0] == outs[1]


def test_model_uses_the_parallel_epoch_for_sparse_input_and_small_later_layers(mnist_subset):
    X, _ = mnist_subset
    norm = kernels.Normalization(np.full(784, 1 / 255, np.float32), np.zeros(784, np.float32))
    n = kernels.parameter_offsets(np.array([784, 128, 10]))[1][-1]
    small = CpuBackend([784, 128, 10], kernels.RELU, kernels.ADAM, norm, np.zeros(n, np.float32),
                       kernel="parallel")
    assert not CpuBackend([784, 128, 10], kernels.RELU, kernels.ADAM, norm,
                          np.zeros(n, np.float32), kernel="blas").uses_parallel_epoch(128)
    assert CpuBackend([784, 128, 10], kernels.RELU, kernels.ADAM, norm,
                      np.zeros(n, np.float32)).uses_parallel_epoch(128)      # auto
    assert small.uses_parallel_epoch(128) and small.input_is_sparse(X)
    assert not small.uses_parallel_epoch(5000)          # micro-batches: BLAS epoch
    n = kernels.parameter_offsets(np.array([784, 1024, 1024, 10]))[1][-1]
    wide = CpuBackend([784, 1024, 1024, 10], kernels.RELU, kernels.ADAM, norm,
                      np.zeros(n, np.float32), kernel="parallel")
    assert not wide.uses_parallel_epoch(256)


def test_s_still_learns_mnist(mnist_subset):
    X, y = mnist_subset
    X_test, y_test = load_dataset(DATA, "test")
    model = MLPClassifier(hidden_layer_sizes=(128,), epochs=5, batch_size=64, random_state=0,
                          cpu_kernel="parallel")
    model.fit(X, y)
    assert model.score(X_test, y_test) > 0.85


def test_float32_loss_curve_matches_the_blas_epoch(mnist_subset):
    """Same model, same seed: the parallel epoch's float32 losses follow the BLAS epoch's."""
    X, y = mnist_subset
    curves = []
    for cpu_kernel in ("blas", "parallel"):
        model = MLPClassifier(hidden_layer_sizes=(32,), epochs=4, batch_size=50, random_state=3,
                              n_threads=1, cpu_kernel=cpu_kernel).fit(X, y)
        curves.append([h["train_loss"] for h in model.history_])
    assert curves[0][-1] < 0.5 * curves[0][0]      # it learns
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-3)


def test_auto_keeps_the_blas_epoch_for_denser_input_like_fashion_mnist():
    """Fashion-MNIST (49% nonzero) trained faster with BLAS: auto must not pick parallel."""
    rng = np.random.default_rng(0)
    dense = (rng.random((500, 784)) < 0.49) * rng.integers(1, 256, (500, 784))
    sparse = (rng.random((500, 784)) < 0.19) * rng.integers(1, 256, (500, 784))
    y = rng.integers(0, 10, 500).astype(np.int32)
    norm = kernels.Normalization(np.full(784, 1 / 255, np.float32), np.zeros(784, np.float32))
    n = kernels.parameter_offsets(np.array([784, 32, 10]))[1][-1]
    chosen = {}
    for name, X in (("dense", dense), ("sparse", sparse)):
        for kernel in ("auto", "parallel"):
            backend = CpuBackend([784, 32, 10], kernels.RELU, kernels.ADAM, norm,
                                 np.zeros(n, np.float32), kernel=kernel)
            backend.load_data(X.astype(np.uint8), y, 64)
            chosen[name, kernel] = backend._data[5] is not None      # compressed rows: parallel
    assert chosen == {("dense", "auto"): False, ("dense", "parallel"): True,
                      ("sparse", "auto"): True, ("sparse", "parallel"): True}
