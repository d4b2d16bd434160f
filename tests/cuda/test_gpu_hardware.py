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

from fastann import kernels
from _gpu_setup import cpu_log_proba, cpu_epochs, hyper, init_params, shuffled

pytestmark = pytest.mark.gpu

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def compare_cpu_gpu(X, y, X_test, y_test, sizes, optimizer, activation, batch_size, epochs,
                    dtype=np.float32, learning_rate=1e-3, capacity=None, seed=0,
                    **backend_options):
    """Train the same network on both devices; return per-epoch losses, accuracies, params.

    The CPU side runs :func:`fastann.kernels.train_epoch` directly (so that its
    micro-batches have the same ``capacity`` as the GPU's); the GPU side runs
    through :class:`fastann.backends.cuda.CudaBackend`, as the model does.
    """
    from fastann.backends.cuda import CudaBackend
    sizes = np.asarray(sizes, np.int64)
    rng = np.random.default_rng(seed)
    params0 = init_params(sizes, rng, dtype)
    norm = kernels.Normalization(np.full(sizes[0], 1 / 255, dtype), np.zeros(sizes[0], dtype))
    hp = hyper(learning_rate=learning_rate, l1=0.0, l2=1e-4)
    capacity = capacity or min(batch_size, 1024)
    orders = [shuffled(X.shape[0], 1000 + e) for e in range(epochs)]

    cpu_losses, cpu_seconds = [], 0.0
    cpu_params, cpu_state, step = params0, None, 0
    for order in orders:
        t0 = time.perf_counter()
        results, cpu_params, cpu_state = cpu_epochs(X, y, [order], norm, cpu_params, sizes,
                                                    activation, optimizer, hp, batch_size,
                                                    capacity, step=step, state=cpu_state)
        cpu_seconds += time.perf_counter() - t0
        loss, _, step = results[0]
        cpu_losses.append(loss)
    cpu_out = cpu_log_proba(X_test, norm, cpu_params, sizes, activation,
                            min(1024, X_test.shape[0]))

    backend = CudaBackend(sizes, activation, optimizer, norm, params0.copy(), capacity=capacity,
                          **backend_options)
    backend.load_data(X, y, batch_size)
    gpu_losses, step, gpu_seconds = [], 0, 0.0
    for order in orders:
        t0 = time.perf_counter()
        loss, _, step = backend.train(order, hp, step)
        gpu_seconds += time.perf_counter() - t0
        gpu_losses.append(loss)
    gpu_out = backend.predict_log_proba(X_test)
    return dict(
        cpu_losses=np.array(cpu_losses), gpu_losses=np.array(gpu_losses),
        cpu_accuracy=float(np.mean(cpu_out.argmax(1) == y_test)),
        gpu_accuracy=float(np.mean(gpu_out.argmax(1) == y_test)),
        cpu_params=cpu_params, gpu_params=backend.get_parameters(), cpu_out=cpu_out,
        gpu_out=gpu_out, cpu_seconds=cpu_seconds, gpu_seconds=gpu_seconds, steps=step)


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


@pytest.mark.parametrize("sizes,graphs,batch_size", [((784, 128, 10), False, 20),
                                                     ((784, 256, 256, 10), False, 20),
                                                     ((784, 256, 256, 10), True, 30)])
def test_cublas_gemm_path_matches_cpu(mnist_subset, sizes, graphs, batch_size):
    """gemm="cublas" (CuPy's cuBLAS on the same device arrays; off by default until this
    passes): an epoch of Adam steps as the CPU within the hardware tolerances, launched
    eagerly or with the GEMMs captured in CUDA graphs (batch 30: a last partial batch, whose
    capacity-row GEMMs must add nothing from the rows past the live ones)."""
    pytest.importorskip("cupy", reason='gemm="cublas" needs CuPy')
    X, y, X_test, y_test = mnist_subset
    r = compare_cpu_gpu(X, y, X_test, y_test, sizes, kernels.ADAM, kernels.RELU,
                        batch_size=batch_size, epochs=1, gemm="cublas", graphs=graphs)
    assert r["steps"] == -(-X.shape[0] // batch_size)
    np.testing.assert_allclose(r["gpu_losses"], r["cpu_losses"], rtol=1e-4)
    assert abs(r["gpu_accuracy"] - r["cpu_accuracy"]) <= 0.003 + 1e-12
    np.testing.assert_allclose(r["gpu_params"], r["cpu_params"], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("split_k,graphs", [("auto", False), (3, True)])
def test_split_k_matches_cpu_and_repeats_bit_for_bit(mnist_subset, split_k, graphs):
    """split_k (off by default until this passes): at batch 20 every forward launch has
    fewer blocks than the GPU has multiprocessors, so each splits its reduction; 100 Adam
    steps as the CPU within the hardware tolerances, and a second run gives the same bits
    whatever order the blocks finished in (the last one adds the partials in split order)."""
    X, y, X_test, y_test = mnist_subset
    runs = [compare_cpu_gpu(X, y, X_test, y_test, (784, 128, 10), kernels.ADAM, kernels.RELU,
                            batch_size=20, epochs=1, split_k=split_k, graphs=graphs)
            for _ in range(2)]
    r = runs[0]
    assert r["steps"] == 100
    np.testing.assert_allclose(r["gpu_losses"], r["cpu_losses"], rtol=1e-4)
    assert abs(r["gpu_accuracy"] - r["cpu_accuracy"]) <= 0.003 + 1e-12
    np.testing.assert_allclose(r["gpu_params"], r["cpu_params"], rtol=1e-3, atol=1e-4)
    assert np.array_equal(runs[1]["gpu_params"], r["gpu_params"])
    assert np.array_equal(runs[1]["gpu_losses"], r["gpu_losses"])


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


def test_second_process_loads_cuda_kernels_from_the_cache(tmp_path):
    """``cache=True``: a second process trains without compiling any CUDA kernel."""
    import os
    import subprocess
    import sys
    import textwrap
    code = textwrap.dedent("""
        import numpy as np
        from fastann import MLPClassifier
        from ptx_check import kernels_to_check
        X = np.random.default_rng(0).integers(0, 255, (256, 20)).astype(np.uint8)
        y = np.arange(256) % 3
        MLPClassifier(hidden_layer_sizes=(8,), epochs=1, random_state=0, device="cuda",
                      validation_fraction=0.1).fit(X, y).predict_proba(X)
        kernels = {id(k): k for _, k, _ in kernels_to_check()}.values()
        print(sum(sum(k._cache_hits.values()) for k in kernels),
              sum(sum(k._cache_misses.values()) for k in kernels))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=str(pathlib.Path(__file__).resolve().parent))

    def run():
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return [int(v) for v in result.stdout.split()[-2:]]

    hits, misses = run()
    assert misses >= 5
    hits, misses = run()
    assert misses == 0 and hits >= 5


@pytest.mark.parametrize("mode", ["graphs", "prepared", "fuse_update"])
@pytest.mark.parametrize("per_thread", [1, 2])
def test_cuda_graphs_match_eager_launches(mnist_subset, per_thread, mode):
    """graphs=True, prepared=True and fuse_update=True (off by default until this passes on
    hardware) train as the dispatcher's eager launches with a separate optimizer launch,
    across epochs whose chunks have different numbers of micro-steps. Graphs and prepared
    launches run the same kernels (same bits); the fused update runs the same update function
    inside another kernel, where the compiler may contract differently (1e-5)."""
    from fastann.backends.cuda import CudaBackend
    X, y, _, _ = mnist_subset
    sizes = np.array([784, 64, 10], np.int64)
    params0 = init_params(sizes, np.random.default_rng(0), np.float32)
    norm = kernels.Normalization(np.full(784, 1 / 255, np.float32), np.zeros(784, np.float32))
    hp = hyper(learning_rate=1e-3, l1=0.0, l2=1e-4)
    runs = []
    for on in (False, True):
        backend = CudaBackend(sizes, kernels.RELU, kernels.ADAM, norm, params0.copy(),
                              graphs=on and mode == "graphs",
                              prepared=on and mode == "prepared",
                              fuse_update=on and mode == "fuse_update", per_thread=per_thread)
        backend.load_data(X, y, 32)
        results, step = [], 0
        for epoch in range(3):
            order = shuffled(X.shape[0], 50 + epoch)
            for lo, hi in ((0, 640), (640, 1280), (1280, X.shape[0])):  # chunks, as in training
                loss, correct, step = backend.train(order[lo:hi], hp, step)
                results.append((loss, correct, step))
        runs.append((results, backend.get_parameters()))
    (eager, eager_params), (graphed, graphed_params) = runs
    rtol = 1e-5 if mode == "fuse_update" else 1e-6
    assert [r[1:] for r in graphed] == [r[1:] for r in eager]
    np.testing.assert_allclose([r[0] for r in graphed], [r[0] for r in eager], rtol=rtol)
    np.testing.assert_allclose(graphed_params, eager_params, rtol=rtol, atol=rtol / 10)
