"""The whole GPU epoch and inference against ``kernels.train_epoch`` / ``predict_log_proba``.

Same data, same initial parameters, same shuffled order: the loss sums agree
within 1e-4 relative, the correct counts exactly, and the parameters and
optimizer state within float32 tolerance, after a few steps including a last
partial batch. Under the simulator (see conftest.py) shapes stay tiny.
"""
import numpy as np
import pytest

import kernels
from _gpu_setup import (buffers, cpu_epochs, hyper_vector, make_problem, shuffled,
                        to_device)

pytestmark = pytest.mark.cudasim

LOSS_RTOL = 1e-4
PARAM_TOL = dict(rtol=1e-4, atol=1e-5)  # float32, a handful of steps


def gpu_epochs(kc, cuda, X, y, orders, scale, shift, params, sizes, activation, optimizer,
               hyper, batch_size, capacity, step=0):
    d_params = cuda.to_device(params)
    buf = to_device(cuda, buffers(sizes, capacity, params.dtype, params.size, False))
    d_X, d_y = cuda.to_device(X), cuda.to_device(y)
    d_scale, d_shift = cuda.to_device(scale), cuda.to_device(shift)
    counters = cuda.device_array(2, np.float64)
    results = []
    for order in orders:
        results.append(kc.gpu_train_epoch(
            d_X, d_y, cuda.to_device(order), d_scale, d_shift, d_params, sizes, activation,
            optimizer, hyper, step, batch_size, buf["grads"], None, buf["state1"],
            buf["state2"], buf["inputs"], buf["labels"], buf["acts"], buf["scratch"],
            counters=counters))
        step = results[-1][2]
    host = {name: a.copy_to_host() for name, a in buf.items()}
    return results, d_params.copy_to_host(), host


def assert_same_training(cpu, gpu):
    (cpu_results, cpu_params, cpu_buf), (gpu_results, gpu_params, gpu_buf) = cpu, gpu
    for (c_loss, c_correct, c_step), (g_loss, g_correct, g_step) in zip(cpu_results,
                                                                       gpu_results):
        assert g_loss == pytest.approx(c_loss, rel=LOSS_RTOL)
        assert g_correct == c_correct
        assert g_step == c_step
    np.testing.assert_allclose(gpu_params, cpu_params, **PARAM_TOL)
    for name in ("state1", "state2"):
        np.testing.assert_allclose(gpu_buf[name], cpu_buf[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("optimizer,activation,sizes", [
    ("adam", "relu", (7, 6, 5, 3)),          # two hidden layers: scratch ping-pong
    ("adamw", "tanh", (7, 5, 3)),
    ("momentum", "sigmoid", (7, 5, 3)),
    ("nesterov", "leaky_relu", (7, 5, 3)),
    ("sgd", "identity", (7, 3)),              # no hidden layer (softmax regression)
])
def test_train_epoch_matches_cpu(kc, cuda, optimizer, activation, sizes):
    """11 samples, batch 4: steps of 4, 4 and a last partial batch of 3."""
    X, y, scale, shift, params, sizes = make_problem(sizes, 11, seed=len(optimizer))
    hyper = hyper_vector(learning_rate=0.01 if optimizer.startswith("adam") else 0.1)
    args = (X, y, [shuffled(11, 42)], scale, shift, params, sizes,
            kernels.ACTIVATIONS[activation], kernels.OPTIMIZERS[optimizer], hyper, 4, 4)
    assert_same_training(cpu_epochs(*args), gpu_epochs(kc, cuda, *args))


def test_train_epoch_matches_cpu_sparse_first_layer(kc, cuda):
    """The CPU's sparse first layer (uint8 input, shift 0) and the GPU's dense one agree."""
    X, y, scale, shift, params, sizes = make_problem((9, 5, 3), 10, seed=17)
    X[X < 180] = 0  # mostly background, like MNIST
    args = (X, y, [shuffled(10, 8)], scale, shift, params, sizes, kernels.RELU, kernels.ADAM,
            hyper_vector(learning_rate=0.01), 4, 4)
    assert_same_training(cpu_epochs(*args, sparse_input=True), gpu_epochs(kc, cuda, *args))


def test_two_epochs_micro_batches(kc, cuda):
    """Batch 5 > capacity 2: micro-batches accumulate in the backward kernels; steps carry on."""
    X, y, scale, shift, params, sizes = make_problem((4, 5, 3), 7, seed=3)
    orders = [shuffled(7, 1), shuffled(7, 2)]
    args = (X, y, orders, scale, shift, params, sizes, kernels.RELU, kernels.ADAM,
            hyper_vector(learning_rate=0.01), 5, 2)
    cpu, gpu = cpu_epochs(*args, step=3), gpu_epochs(kc, cuda, *args, step=3)
    assert [r[2] for r in gpu[0]] == [5, 7]
    assert_same_training(cpu, gpu)


def test_train_epoch_float64(kc, cuda):
    X, y, scale, shift, params, sizes = make_problem((5, 4, 3), 6, dtype=np.float64, seed=9)
    args = (X, y, [shuffled(6, 5)], scale, shift, params, sizes, kernels.TANH,
            kernels.NESTEROV, hyper_vector(), 4, 4)
    cpu, gpu = cpu_epochs(*args), gpu_epochs(kc, cuda, *args)
    assert gpu[0][0][0] == pytest.approx(cpu[0][0][0], rel=1e-12)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-11, atol=1e-13)


def test_train_epoch_accepts_host_order_and_subset(kc, cuda):
    """A host order is uploaded once; an order shorter than the data set trains on a subset."""
    X, y, scale, shift, params, sizes = make_problem((6, 4, 3), 9, seed=4)
    order = shuffled(9, 7)[:5]
    hyper = hyper_vector()
    cpu = cpu_epochs(X, y, [order], scale, shift, params, sizes, kernels.RELU, kernels.SGD,
                     hyper, 3, 3)
    d_params = cuda.to_device(params)
    buf = to_device(cuda, buffers(sizes, 3, np.float32, params.size, False))
    loss, correct, step = kc.gpu_train_epoch(
        cuda.to_device(X), cuda.to_device(y), order, cuda.to_device(scale),
        cuda.to_device(shift), d_params, sizes, kernels.RELU, kernels.SGD, hyper, 0, 3,
        buf["grads"], None, buf["state1"], buf["state2"], buf["inputs"], buf["labels"],
        buf["acts"], buf["scratch"])
    assert (step, correct) == (2, cpu[0][0][1])
    assert loss == pytest.approx(cpu[0][0][0], rel=LOSS_RTOL)
    np.testing.assert_allclose(d_params.copy_to_host(), cpu[1], **PARAM_TOL)


@pytest.mark.parametrize("capacity", [3, 8])
def test_predict_log_proba_matches_cpu(kc, cuda, capacity):
    X, _, scale, shift, params, sizes = make_problem((6, 5, 4, 3), 7, seed=capacity)
    expected = np.empty((7, 3), np.float32)
    buf = buffers(sizes, capacity, np.float32, params.size, False)
    kernels.predict_log_proba(X, scale, shift, params, sizes, kernels.TANH, buf["inputs"],
                              buf["acts"], expected)
    d = to_device(cuda, buf)
    out = cuda.device_array((7, 3), np.float32)
    kc.gpu_predict_log_proba(cuda.to_device(X), cuda.to_device(scale), cuda.to_device(shift),
                             cuda.to_device(params), sizes, kernels.TANH, d["inputs"],
                             d["acts"], out)
    np.testing.assert_allclose(out.copy_to_host(), expected, rtol=1e-5, atol=1e-5)


def test_launch_count_documented(kc):
    assert kc.launches_per_step(2) == 7
    assert kc.launches_per_step(3, micro_batches=2) == 17


def test_backend_trainer_matches_cpu(cuda):
    """fastann.cuda_backend: host arrays in, host arrays out, as the model will call it."""
    from fastann import cuda_backend
    X, y, scale, shift, params, sizes = make_problem((7, 5, 3), 10, seed=12)
    hyper = hyper_vector(learning_rate=0.01)
    orders = [shuffled(10, 3), shuffled(10, 4)]
    cpu_results, cpu_params, cpu_buf = cpu_epochs(X, y, orders, scale, shift, params, sizes,
                                                  kernels.RELU, kernels.ADAM, hyper, 4, 4)
    gpu_params = params.copy()
    state1, state2 = np.zeros_like(params), np.zeros_like(params)
    seen = []
    history, step = cuda_backend.train_epochs_cuda(
        X, y, iter(orders), scale, shift, gpu_params, sizes, kernels.RELU, kernels.ADAM, hyper,
        0, 4, state1, state2, learning_rates=[0.01, 0.01],
        on_epoch=lambda e, loss, correct, t: seen.append((e, t, gpu_params.copy())) and False)
    assert step == cpu_results[-1][2] == 6
    assert [s[:2] for s in seen] == [(0, 3), (1, 6)]
    for (c_loss, c_correct, _), (g_loss, g_correct) in zip(cpu_results, history):
        assert g_loss == pytest.approx(c_loss, rel=LOSS_RTOL)
        assert g_correct == c_correct
    np.testing.assert_allclose(gpu_params, cpu_params, **PARAM_TOL)
    np.testing.assert_array_equal(seen[-1][2], gpu_params)
    np.testing.assert_allclose(state1, cpu_buf["state1"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(state2, cpu_buf["state2"], rtol=1e-4, atol=1e-6)

    expected = np.empty((10, 3), np.float32)
    buf = buffers(sizes, 10, np.float32, params.size, False)
    kernels.predict_log_proba(X, scale, shift, cpu_params, sizes, kernels.RELU, buf["inputs"],
                              buf["acts"], expected)
    got = cuda_backend.predict_log_proba_cuda(X, scale, shift, gpu_params, sizes, kernels.RELU,
                                              capacity=4)
    assert got.dtype == np.float32 and got.shape == (10, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_backend_trainer_object(cuda):
    """CudaTrainer: per-epoch calls, host params refreshed, validation on device params."""
    from fastann import cuda_backend
    X, y, scale, shift, params, sizes = make_problem((5, 4, 3), 8, seed=21)
    hyper = hyper_vector()
    cpu_results, cpu_params, cpu_buf = cpu_epochs(X, y, [shuffled(8, 1)], scale, shift, params,
                                                  sizes, kernels.RELU, kernels.MOMENTUM, hyper,
                                                  3, 3)
    host = params.copy()
    s1, s2 = np.zeros_like(host), np.zeros_like(host)
    trainer = cuda_backend.CudaTrainer(X, y, scale, shift, host, sizes, kernels.RELU,
                                       kernels.MOMENTUM, 3, s1, s2)
    loss, correct, step = trainer.train_epoch(shuffled(8, 1), hyper, 0)
    assert step == 3 and correct == cpu_results[0][1]
    assert loss == pytest.approx(cpu_results[0][0], rel=LOSS_RTOL)
    np.testing.assert_allclose(host, cpu_params, **PARAM_TOL)
    np.testing.assert_allclose(s1, cpu_buf["state1"], rtol=1e-4, atol=1e-6)  # velocity synced
    val = trainer.predict_log_proba(X[:5])
    np.testing.assert_allclose(val, cuda_backend.predict_log_proba_cuda(
        X[:5], scale, shift, host, sizes, kernels.RELU), rtol=1e-6, atol=1e-6)
    # Roll back on the host, upload, and the next epoch starts from there.
    host[:], s1[:] = params, 0
    trainer.upload()
    trainer.train_epoch(shuffled(8, 1), hyper, 0, sync=False)
    np.testing.assert_array_equal(host, params)  # not synced
    trainer.download()
    np.testing.assert_allclose(host, cpu_params, **PARAM_TOL)
