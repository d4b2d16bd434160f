"""Training on a real NVIDIA GPU against the CPU kernels, on the real MNIST subset in tests/data.

Marked ``gpu``: skipped without a usable GPU (and under the simulator, which
would take hours). Same initial weights, same shuffled order, 100 Adam steps
of 20 images on 784-128-10: the summed training losses agree within 1e-4
relative and the test accuracies (500 images) within 0.3 percentage points.
"""
import pathlib
import time

import numpy as np
import pytest

import kernels
from _gpu_setup import buffers, hyper_vector, init_params, shuffled, sparse_buffers

pytestmark = pytest.mark.gpu

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def compare_cpu_gpu(X, y, X_test, y_test, sizes, optimizer, activation, batch_size, epochs,
                    dtype=np.float32, learning_rate=1e-3, capacity=None, seed=0):
    """Train the same network on both devices; return per-epoch losses, accuracies, params."""
    from fastann import cuda_backend
    sizes = np.asarray(sizes, np.int64)
    rng = np.random.default_rng(seed)
    params0 = init_params(sizes, rng, dtype)
    scale, shift = np.full(sizes[0], 1 / 255, dtype), np.zeros(sizes[0], dtype)
    hyper = hyper_vector(learning_rate=learning_rate, l1=0.0, l2=1e-4)
    capacity = capacity or min(batch_size, 1024)
    orders = [shuffled(X.shape[0], 1000 + e) for e in range(epochs)]

    cpu_params = params0.copy()
    buf = buffers(sizes, capacity, dtype, cpu_params.size, batch_size > capacity)
    sparse = sparse_buffers(capacity, int(sizes[0]), dtype, False)
    cpu_losses, step, cpu_seconds = [], 0, 0.0
    for order in orders:
        t0 = time.perf_counter()
        loss, _, step = kernels.train_epoch(
            X, y, order, scale, shift, cpu_params, sizes, activation, optimizer, hyper, step,
            batch_size, buf["grads"], buf["grad_sum"], buf["state1"], buf["state2"],
            buf["inputs"], buf["labels"], buf["acts"], buf["scratch"], *sparse)
        cpu_seconds += time.perf_counter() - t0
        cpu_losses.append(loss)
    cpu_out = np.empty((X_test.shape[0], int(sizes[-1])), dtype)
    pbuf = buffers(sizes, min(1024, X_test.shape[0]), dtype, cpu_params.size, False)
    kernels.predict_log_proba(X_test, scale, shift, cpu_params, sizes, activation,
                              pbuf["inputs"], pbuf["acts"], cpu_out)

    gpu_params = params0.copy()
    s1, s2 = np.zeros_like(gpu_params), np.zeros_like(gpu_params)
    trainer = cuda_backend.CudaTrainer(X, y, scale, shift, gpu_params, sizes, activation,
                                       optimizer, batch_size, s1, s2, capacity=capacity)
    gpu_losses, step, gpu_seconds = [], 0, 0.0
    for order in orders:
        t0 = time.perf_counter()
        loss, _, step = trainer.train_epoch(order, hyper, step)
        gpu_seconds += time.perf_counter() - t0
        gpu_losses.append(loss)
    gpu_out = trainer.predict_log_proba(X_test)
    return dict(
        cpu_losses=np.array(cpu_losses), gpu_losses=np.array(gpu_losses),
        cpu_accuracy=float(np.mean(cpu_out.argmax(1) == y_test)),
        gpu_accuracy=float(np.mean(gpu_out.argmax(1) == y_test)),
        cpu_params=cpu_params, gpu_params=gpu_params, cpu_out=cpu_out, gpu_out=gpu_out,
        cpu_seconds=cpu_seconds, gpu_seconds=gpu_seconds, steps=step)


@pytest.fixture(scope="module")
def mnist_subset():
    from fastann.datasets import load_dataset
    X, y = load_dataset(str(DATA), "train")
    X_test, y_test = load_dataset(str(DATA), "test")
    return (np.ascontiguousarray(X), y.astype(np.int32), np.ascontiguousarray(X_test),
            y_test.astype(np.int32))


def test_100_adam_steps_match_cpu(mnist_subset):
    X, y, X_test, y_test = mnist_subset
    r = compare_cpu_gpu(X, y, X_test, y_test, (784, 128, 10), kernels.ADAM, kernels.RELU,
                        batch_size=20, epochs=1)
    assert r["steps"] == 100
    np.testing.assert_allclose(r["gpu_losses"], r["cpu_losses"], rtol=1e-4)
    assert abs(r["gpu_accuracy"] - r["cpu_accuracy"]) <= 0.003 + 1e-12
    np.testing.assert_allclose(r["gpu_params"], r["cpu_params"], rtol=1e-3, atol=1e-4)
    print(f"\n100 steps: CPU {r['cpu_seconds']:.3f}s, GPU {r['gpu_seconds']:.3f}s "
          f"(first GPU epoch includes compilation); test accuracy CPU {r['cpu_accuracy']:.3f}, "
          f"GPU {r['gpu_accuracy']:.3f}")


def test_micro_batched_gradient_descent_float64_matches_cpu(mnist_subset):
    """Full-batch steps split into micro-batches of 512 rows, in float64, with momentum."""
    X, y, X_test, y_test = mnist_subset
    r = compare_cpu_gpu(X, y, X_test, y_test, (784, 64, 32, 10), kernels.MOMENTUM,
                        kernels.TANH, batch_size=2000, epochs=5, dtype=np.float64,
                        learning_rate=0.1, capacity=512)
    assert r["steps"] == 5
    np.testing.assert_allclose(r["gpu_losses"], r["cpu_losses"], rtol=1e-10)
    np.testing.assert_allclose(r["gpu_params"], r["cpu_params"], rtol=1e-9, atol=1e-12)
    assert r["gpu_accuracy"] == r["cpu_accuracy"]
