"""The GPU epoch and inference against ``fastann.kernels.train_epoch`` / ``predict_log_proba``,
and :class:`fastann.backends.cuda.CudaBackend` against :class:`fastann.backends.cpu.CpuBackend`.

Same data, same initial parameters, same shuffled order: the loss sums agree
within 1e-4 relative, the correct counts exactly, and the parameters and
optimizer state within float32 tolerance, after a few steps including a last
partial batch. Under the simulator (see conftest.py) shapes stay tiny.
"""
import numpy as np
import pytest

from fastann import kernels
from fastann.backends.cpu import CpuBackend
from _gpu_setup import (cpu_epochs, cpu_log_proba, cpu_state, gpu_buffers, hyper,
                        make_problem, shuffled, to_device, to_host)

pytestmark = pytest.mark.cudasim

LOSS_RTOL = 1e-4
PARAM_TOL = dict(rtol=1e-4, atol=1e-5)  # float32, a handful of steps
STATE_TOL = dict(rtol=1e-4, atol=1e-6)


def gpu_epochs(kc, cuda, X, y, orders, normalization, params, sizes, activation, optimizer,
               hyper, batch_size, capacity, step=0, **options):
    """:func:`gpu_train_epoch` once per order, on device copies of the CPU test's inputs
    (``options``: its keyword arguments)."""
    net = kernels.Network(cuda.to_device(params), sizes, activation)
    state = to_device(cuda, cpu_state(optimizer, params.size, params.dtype))
    buffers = gpu_buffers(cuda, sizes, capacity, params.dtype, batch_size)
    d_X, d_y, d_norm = cuda.to_device(X), cuda.to_device(y), to_device(cuda, normalization)
    results = []
    for order in orders:
        results.append(kc.gpu_train_epoch(d_X, d_y, cuda.to_device(order), d_norm, net,
                                          optimizer, hyper, step, batch_size, state, buffers,
                                          **options))
        step = results[-1][2]
    return results, net.params.copy_to_host(), to_host(state)


def program_arguments(cuda, X, y, order, normalization, params, sizes, optimizer, hyper,
                      batch_size, capacity, activation=kernels.RELU):
    """The positional arguments of :class:`TrainingProgram` for a test problem, on the device."""
    net = kernels.Network(cuda.to_device(params), sizes, activation)
    state = to_device(cuda, cpu_state(optimizer, params.size, params.dtype))
    buffers = gpu_buffers(cuda, sizes, capacity, params.dtype, batch_size)
    return (cuda.to_device(X), cuda.to_device(y), cuda.to_device(order),
            to_device(cuda, normalization), net, optimizer, hyper, state, buffers)


def assert_same_state(gpu_state, cpu_state):
    for name in kernels.OptimizerState._fields:
        want, got = np.asarray(cpu_state[name]), np.asarray(gpu_state[name])
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, err_msg=name, **STATE_TOL)


def assert_same_training(cpu, gpu):
    (cpu_results, cpu_params, cpu_st), (gpu_results, gpu_params, gpu_st) = cpu, gpu
    assert len(gpu_results) == len(cpu_results)
    for (c_loss, c_correct, c_step), (g_loss, g_correct, g_step) in zip(cpu_results,
                                                                       gpu_results):
        assert g_loss == pytest.approx(c_loss, rel=LOSS_RTOL)
        assert g_correct == c_correct
        assert g_step == c_step
    np.testing.assert_allclose(gpu_params, cpu_params, **PARAM_TOL)
    assert_same_state(gpu_st._asdict(), cpu_st._asdict())


@pytest.mark.parametrize("optimizer,activation,sizes", [
    ("adam", "relu", (7, 6, 5, 3)),          # two hidden layers: scratch ping-pong
    ("adamw", "tanh", (7, 5, 3)),
    ("momentum", "sigmoid", (7, 5, 3)),
    ("nesterov", "leaky_relu", (7, 5, 3)),
    ("sgd", "identity", (7, 3)),              # no hidden layer (softmax regression)
])
def test_train_epoch_matches_cpu(kc, cuda, optimizer, activation, sizes):
    """11 samples, batch 4: steps of 4, 4 and a last partial batch of 3."""
    X, y, norm, params, sizes = make_problem(sizes, 11, seed=len(optimizer))
    hp = hyper(learning_rate=0.01 if optimizer.startswith("adam") else 0.1)
    args = (X, y, [shuffled(11, 42)], norm, params, sizes,
            kernels.ACTIVATIONS[activation], kernels.OPTIMIZERS[optimizer], hp, 4, 4)
    assert_same_training(cpu_epochs(*args), gpu_epochs(kc, cuda, *args))


@pytest.mark.parametrize("optimizer,activation,sizes,batch_size,capacity", [
    ("adam", "relu", (7, 6, 5, 3), 4, 4),     # two hidden layers: two ranges of other layers
    ("adamw", "tanh", (7, 5, 3), 5, 2),       # micro-batches: accumulate, then update
    ("momentum", "sigmoid", (7, 5, 3), 4, 4),
    ("nesterov", "leaky_relu", (7, 5, 3), 4, 4),
    ("sgd", "identity", (7, 3), 4, 4),        # no hidden layer: only the first layer
])
def test_update_fused_into_the_first_layers_backward(kc, cuda, optimizer, activation, sizes,
                                                     batch_size, capacity):
    """fuse_update: one launch fewer per micro-step, and the same training as the CPU and as
    the separate optimizer launch (penalties on, so weights and biases are told apart)."""
    X, y, norm, params, sizes = make_problem(sizes, 11, seed=len(optimizer) + 50)
    hp = hyper(learning_rate=0.01 if optimizer.startswith("adam") else 0.1)
    args = (X, y, [shuffled(11, 43), shuffled(11, 44)], norm, params, sizes,
            kernels.ACTIVATIONS[activation], kernels.OPTIMIZERS[optimizer], hp, batch_size,
            capacity)
    fused = gpu_epochs(kc, cuda, *args, fuse_update=True)
    assert_same_training(cpu_epochs(*args), fused)
    separate = gpu_epochs(kc, cuda, *args)
    assert [r[:2] for r in fused[0]] == [r[:2] for r in separate[0]]
    np.testing.assert_allclose(fused[1], separate[1], rtol=1e-6, atol=1e-8)
    n_layers = len(sizes) - 1
    assert (kc.launches_per_step(n_layers, fuse_update=True)
            == kc.launches_per_step(n_layers) - 1)


@pytest.fixture
def narrow_gemm(monkeypatch):
    """Let layers from 5 wide take the GEMM path, so that the simulator's tiles stay small."""
    from fastann.kernels.cuda import blas
    assert blas.is_wide(784, 128) and not blas.is_wide(128, 10)  # the real threshold, 64
    monkeypatch.setattr(blas, "WIDE", 5)
    return blas


@pytest.mark.parametrize("optimizer,sizes,batch_size,capacity,fuse_update", [
    ("adam", (7, 6, 5, 3), 4, 4, False),      # two wide layers: GEMMs in and out
    ("momentum", (7, 6, 5, 3), 5, 2, False),  # micro-batches: dW and db accumulate
    ("adamw", (7, 6, 3), 4, 4, True),         # first layer's backward: the fused update
    ("sgd", (4, 6, 5, 3), 4, 4, False),       # narrow first layer: tiles, then a GEMM
])
def test_gemm_path_matches_cpu(kc, cuda, narrow_gemm, optimizer, sizes, batch_size, capacity,
                               fuse_update):
    """gemm="cublas": wide hidden layers as GEMMs (NumPy in place of cuBLAS in the simulator)
    plus the epilogue kernels train as the CPU does, in any mix with tiled layers."""
    X, y, norm, params, sizes = make_problem(sizes, 11, seed=len(optimizer) + 60)
    n_layers = len(sizes) - 1
    wide = [l for l in range(n_layers - 1) if narrow_gemm.is_wide(sizes[l], sizes[l + 1])]
    assert wide  # the case takes the GEMM path somewhere
    hp = hyper(learning_rate=0.01 if optimizer.startswith("adam") else 0.1)
    args = (X, y, [shuffled(11, 45), shuffled(11, 46)], norm, params, sizes, kernels.RELU,
            kernels.OPTIMIZERS[optimizer], hp, batch_size, capacity)
    assert_same_training(cpu_epochs(*args),
                         gpu_epochs(kc, cuda, *args, fuse_update=fuse_update, gemm="cublas"))


@pytest.mark.parametrize("optimizer,sizes,batch_size,capacity,split_k,fuse_update", [
    ("adam", (9, 6, 5, 3), 4, 4, 2, False),    # gather, dense and softmax forwards all split
    ("momentum", (9, 6, 3), 5, 2, "auto", True),  # micro-batches, the fused update
    ("sgd", (9, 3), 4, 4, 3, False),           # no hidden layer: a split gather, then softmax
])
def test_split_k_matches_cpu(kc, cuda, optimizer, sizes, batch_size, capacity, split_k,
                             fuse_update):
    """split_k: every training forward launch (fewer blocks than the simulated 132
    multiprocessors) split over 2-3 blocks of 2x2 threads x 2x2 outputs trains as the CPU
    does, and leaves every tile's arrival count at zero for the next launch."""
    X, y, norm, params, sizes = make_problem(sizes, 11, seed=len(optimizer) + 70)
    hp = hyper(learning_rate=0.01 if optimizer.startswith("adam") else 0.1)
    orders = [shuffled(11, 47), shuffled(11, 48)]
    args = (X, y, orders, norm, params, sizes, kernels.RELU, kernels.OPTIMIZERS[optimizer], hp,
            batch_size, capacity)
    shape = dict(tile=2, per_thread=2)
    assert_same_training(cpu_epochs(*args), gpu_epochs(kc, cuda, *args, split_k=split_k,
                                                       fuse_update=fuse_update, **shape))
    program = kc.TrainingProgram(
        *program_arguments(cuda, X, y, orders[0], norm, params, sizes,
                           kernels.OPTIMIZERS[optimizer], hp, batch_size, capacity),
        split_k=split_k, fuse_update=fuse_update, **shape)
    split = [call for call in program.calls
             if isinstance(call[1], tuple) and len(call[1]) == 3]  # 3-D grids
    assert len(split) == len(sizes) - 1 and all(call[1][2] >= 2 for call in split)
    assert len(program.calls) == kc.launches_per_step(len(sizes) - 1, n_classes=sizes[-1],
                                                      fuse_update=fuse_update, **shape)
    program.run(11, batch_size, hp, 0)
    for _, arrivals in program.network.split_arrays.values():
        assert not arrivals.copy_to_host().any()


@pytest.mark.parametrize("optimizer,sizes,batch_size,capacity,depth,split_k", [
    ("adam", (9, 6, 5, 3), 4, 4, 2, 1),     # gather, dense and softmax forwards, 2 deep
    ("momentum", (9, 6, 3), 5, 2, 3, 2),    # micro-batches, 3 deep and split
])
def test_deep_slabs_match_cpu(kc, cuda, optimizer, sizes, batch_size, capacity, depth, split_k):
    """depth: every forward kernel of a training step (and the inference that follows)
    staging slabs several tile edges deep trains as the CPU does."""
    X, y, norm, params, sizes = make_problem(sizes, 11, seed=len(optimizer) + 80)
    hp = hyper(learning_rate=0.01 if optimizer.startswith("adam") else 0.1)
    args = (X, y, [shuffled(11, 55), shuffled(11, 56)], norm, params, sizes, kernels.RELU,
            kernels.OPTIMIZERS[optimizer], hp, batch_size, capacity)
    shape = dict(tile=2, per_thread=2, depth=depth, split_k=split_k)
    cpu = cpu_epochs(*args)
    gpu = gpu_epochs(kc, cuda, *args, **shape)
    assert_same_training(cpu, gpu)
    net = kernels.Network(cuda.to_device(gpu[1]), sizes, kernels.RELU)
    buffers = kernels.PredictionBuffers(
        cuda.device_array((4, sizes[0]), np.float32),
        cuda.device_array(kernels.activation_buffer_length(sizes, 4), np.float32))
    out = cuda.device_array((11, sizes[-1]), np.float32)
    kc.gpu_predict_log_proba(cuda.to_device(X), to_device(cuda, norm), net, buffers, out,
                             tile=2, per_thread=2, depth=depth)
    np.testing.assert_allclose(out.copy_to_host(),
                               cpu_log_proba(X, norm, gpu[1], sizes, kernels.RELU, 4),
                               rtol=1e-5, atol=1e-5)


def test_split_k_refuses_other_values(kc, cuda):
    X, y, norm, params, sizes = make_problem((9, 3), 4, seed=62)
    args = program_arguments(cuda, X, y, shuffled(4, 1), norm, params, sizes, kernels.SGD,
                             hyper(), 4, 4)
    for bad in (0, -2, 1.5, True, "fast"):
        with pytest.raises(ValueError, match="split_k must be a positive int or \"auto\""):
            kc.TrainingProgram(*args, split_k=bad)


def test_gemm_path_refuses_unknown_names(kc, cuda):
    X, y, norm, params, sizes = make_problem((66, 64, 3), 4, seed=61)
    args = program_arguments(cuda, X, y, shuffled(4, 1), norm, params, sizes, kernels.SGD,
                             hyper(), 4, 4)
    with pytest.raises(ValueError, match='"tiles" or "cublas"'):
        kc.TrainingProgram(*args, gemm="cuBLAS")
    assert kc.TrainingProgram(*args, gemm="cublas", graphs=True).gemm == "cublas"


@pytest.mark.parametrize("gemm", ["tiles", "cublas"])
def test_rows_past_the_live_ones_never_reach_the_gradients(kc, cuda, narrow_gemm, gemm):
    """Buffers full of NaN before training (device memory starts as anything): a last
    partial batch and micro-batches leave rows past the live ones untouched, and the
    capacity-row GEMMs of gemm="cublas" (column_sums zeroes those rows of both operands
    first) still train exactly as the CPU, with finite parameters."""
    X, y, norm, params, sizes = make_problem((4, 6, 5, 3), 11, seed=63)
    orders = [shuffled(11, 49), shuffled(11, 50)]
    hp = hyper(learning_rate=0.1)
    cpu = cpu_epochs(X, y, orders, norm, params, sizes, kernels.RELU, kernels.MOMENTUM, hp,
                     5, 2)
    args = program_arguments(cuda, X, y, orders[0], norm, params, sizes, kernels.MOMENTUM, hp,
                             5, 2)
    buffers = args[-1]
    for name in ("inputs", "acts", "scratch", "grads"):
        array = getattr(buffers, name)
        array.copy_to_device(np.full(array.shape, np.nan, array.dtype))
    program = kc.TrainingProgram(*args, gemm=gemm)
    results, step = [], 0
    for order in orders:
        args[2].copy_to_device(order)
        results.append(program.run(11, 5, hp, step))
        step = results[-1][2]
    net, state = args[4], args[7]
    assert np.isfinite(net.params.copy_to_host()).all()
    assert_same_training(cpu, (results, net.params.copy_to_host(), to_host(state)))


def test_train_epoch_matches_cpu_float_input_with_shift(kc, cuda):
    """Float features with a non-zero shift (standard normalization) gather the same way."""
    X, y, norm, params, sizes = make_problem((6, 5, 3), 9, seed=30, uint8=False)
    args = (X, y, [shuffled(9, 6)], norm, params, sizes, kernels.TANH, kernels.ADAM,
            hyper(learning_rate=0.01), 4, 4)
    assert_same_training(cpu_epochs(*args), gpu_epochs(kc, cuda, *args))


def test_train_epoch_matches_cpu_sparse_first_layer(kc, cuda):
    """The CPU's sparse first layer (uint8 input, shift 0) and the GPU's dense one agree."""
    X, y, norm, params, sizes = make_problem((9, 5, 3), 10, seed=17)
    X[X < 180] = 0  # mostly background, like MNIST
    args = (X, y, [shuffled(10, 8)], norm, params, sizes, kernels.RELU, kernels.ADAM,
            hyper(learning_rate=0.01), 4, 4)
    assert_same_training(cpu_epochs(*args, sparse_input=True), gpu_epochs(kc, cuda, *args))


def test_two_epochs_micro_batches(kc, cuda):
    """Batch 5 > capacity 2: micro-batches accumulate in the backward kernels; steps carry on."""
    X, y, norm, params, sizes = make_problem((4, 5, 3), 7, seed=3)
    orders = [shuffled(7, 1), shuffled(7, 2)]
    args = (X, y, orders, norm, params, sizes, kernels.RELU, kernels.ADAM,
            hyper(learning_rate=0.01), 5, 2)
    assert kernels.micro_batches(7, 5, 2).shape[0] == 4  # 2 + 1 micro-batches, then 1
    cpu, gpu = cpu_epochs(*args, step=3), gpu_epochs(kc, cuda, *args, step=3)
    assert [r[2] for r in gpu[0]] == [5, 7]
    assert_same_training(cpu, gpu)


def test_train_epoch_float64(kc, cuda):
    X, y, norm, params, sizes = make_problem((5, 4, 3), 6, dtype=np.float64, seed=9)
    args = (X, y, [shuffled(6, 5)], norm, params, sizes, kernels.TANH,
            kernels.NESTEROV, hyper(), 4, 4)
    cpu, gpu = cpu_epochs(*args), gpu_epochs(kc, cuda, *args)
    assert gpu[0][0][0] == pytest.approx(cpu[0][0][0], rel=1e-12)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-11, atol=1e-13)


def test_train_epoch_accepts_host_order_and_subset(kc, cuda):
    """A host order is uploaded once; an order shorter than the data set trains on a subset."""
    X, y, norm, params, sizes = make_problem((6, 4, 3), 9, seed=4)
    order = shuffled(9, 7)[:5]
    hp = hyper()
    cpu = cpu_epochs(X, y, [order], norm, params, sizes, kernels.RELU, kernels.SGD, hp, 3, 3)
    net = kernels.Network(cuda.to_device(params), sizes, kernels.RELU)
    empty = cuda.to_device(np.zeros(0, np.float32))
    loss, correct, step = kc.gpu_train_epoch(
        cuda.to_device(X), cuda.to_device(y), order, to_device(cuda, norm), net, kernels.SGD,
        hp, 0, 3, kernels.OptimizerState(empty, empty, empty),
        gpu_buffers(cuda, sizes, 3, np.float32, 3))
    assert (step, correct) == (2, cpu[0][0][1])
    assert loss == pytest.approx(cpu[0][0][0], rel=LOSS_RTOL)
    np.testing.assert_allclose(net.params.copy_to_host(), cpu[1], **PARAM_TOL)


@pytest.mark.parametrize("capacity", [3, 8])
def test_predict_log_proba_matches_cpu(kc, cuda, capacity):
    X, _, norm, params, sizes = make_problem((6, 5, 4, 3), 7, seed=capacity)
    expected = cpu_log_proba(X, norm, params, sizes, kernels.TANH, capacity)
    buffers = kernels.PredictionBuffers(
        cuda.device_array((capacity, int(sizes[0])), np.float32),
        cuda.device_array(kernels.activation_buffer_length(sizes, capacity), np.float32))
    out = cuda.device_array((7, 3), np.float32)
    kc.gpu_predict_log_proba(cuda.to_device(X), to_device(cuda, norm),
                             kernels.Network(cuda.to_device(params), sizes, kernels.TANH),
                             buffers, out)
    np.testing.assert_allclose(out.copy_to_host(), expected, rtol=1e-5, atol=1e-5)


def test_launch_count_documented(kc):
    assert kc.launches_per_step(2) == 5          # softmax fused into the last layer
    assert kc.launches_per_step(3, micro_batches=2) == 14
    assert kc.launches_per_step(1) == 4          # no hidden layer: softmax on its own
    assert kc.launches_per_step(2, n_classes=17, tile=4, per_thread=4) == 6
    assert kc.launches_per_step(2, fuse_update=True) == 4


# --------------------------------------------------------------- CudaBackend
def backends(norm, params, sizes, activation, optimizer, optimizer_state=None, **cuda_kwargs):
    """A CpuBackend and a CudaBackend made from the same host arrays (the CPU one on a copy)."""
    from fastann.backends.cuda import CudaBackend
    cpu = CpuBackend(sizes, activation, optimizer, norm, params.copy(),
                     optimizer_state=optimizer_state)
    gpu = CudaBackend(sizes, activation, optimizer, norm, params,
                      optimizer_state=optimizer_state, **cuda_kwargs)
    return cpu, gpu


def assert_same_backends(cpu, gpu, results=None):
    if results is not None:
        for (c_loss, c_correct, c_step), (g_loss, g_correct, g_step) in zip(*results):
            assert g_loss == pytest.approx(c_loss, rel=LOSS_RTOL)
            assert (g_correct, g_step) == (c_correct, c_step)
    got = gpu.get_parameters()
    assert got.dtype == cpu.get_parameters().dtype
    np.testing.assert_allclose(got, cpu.get_parameters(), **PARAM_TOL)
    assert_same_state(gpu.get_optimizer_state(), cpu.get_optimizer_state())


@pytest.mark.parametrize("optimizer,capacity,fuse_update,gemm", [
    ("adam", None, False, "tiles"), ("momentum", 3, False, "tiles"), ("adam", 3, True, "tiles"),
    ("adam", 3, False, "cublas")])
def test_cuda_backend_matches_cpu_backend(cuda, narrow_gemm, optimizer, capacity, fuse_update,
                                          gemm):
    """Host arrays in, host arrays out, as fastann.training drives a backend: 2 epochs (with
    gemm="cublas", the first layer (7 x 5) takes the GEMM path)."""
    X, y, norm, params, sizes = make_problem((7, 5, 3), 10, seed=12)
    code = kernels.OPTIMIZERS[optimizer]
    hp = hyper(learning_rate=0.01 if optimizer == "adam" else 0.1)
    params0 = params.copy()
    cpu, gpu = backends(norm, params, sizes, kernels.RELU, code, capacity=capacity,
                        fuse_update=fuse_update, gemm=gemm)
    np.testing.assert_array_equal(params, params0)  # the CUDA backend trains its own copy
    orders = [shuffled(10, 3), shuffled(10, 4)]
    results = ([], [])
    for backend, out in zip((cpu, gpu), results):
        backend.load_data(X, y, 4)
        step = 0
        with backend.running():
            for order in orders:
                out.append(backend.train(order, hp, step))
                step = out[-1][2]
    assert [r[2] for r in results[1]] == [3, 6]
    assert_same_backends(cpu, gpu, results)
    assert gpu.parameters_finite()
    # The kernels' own CPU epoch gives the same as the CPU backend.
    ref_results, ref_params, _ = cpu_epochs(X, y, orders, norm, params0, sizes, kernels.RELU,
                                            code, hp, 4, 4)
    assert [r[1:] for r in ref_results] == [r[1:] for r in results[0]]
    np.testing.assert_allclose(ref_params, cpu.get_parameters(), rtol=1e-6, atol=1e-7)

    # Inference on the device parameters (chunks of `capacity` rows), host array out.
    got = gpu.predict_log_proba(X)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (10, 3)
    np.testing.assert_allclose(got, cpu.predict_log_proba(X), rtol=1e-4, atol=1e-4)
    assert gpu.predict_log_proba(X[:0]).shape == (0, 3)


def test_cuda_backend_chunks_micro_batches_and_float_input(cuda):
    """Chunked orders (as fastann.training calls train), batch 5 > capacity 2, float input."""
    X, y, norm, params, sizes = make_problem((4, 5, 3), 12, seed=31, uint8=False)
    cpu, gpu = backends(norm, params, sizes, kernels.TANH, kernels.NESTEROV, capacity=2)
    hp = hyper(learning_rate=0.05)
    order = shuffled(12, 9)
    cpu.load_data(X, y, 5)
    gpu.load_data(X, y, 5)
    want = cpu.train(order, hp, 7)
    got, step = [0.0, 0], 7
    for lo, hi in ((0, 5), (5, 10), (10, 12)):  # chunk bounds fall on batch bounds
        loss, correct, step = gpu.train(order[lo:hi], hp, step)
        got[0] += loss
        got[1] += correct
    assert step == want[2] == 10
    assert got[0] == pytest.approx(want[0], rel=LOSS_RTOL)
    assert got[1] == want[1]
    assert_same_backends(cpu, gpu)


def test_cuda_backend_optimizer_state_in_and_out(cuda):
    """A backend made with an optimizer state continues as the CPU one does; set/get round trip."""
    X, y, norm, params, sizes = make_problem((5, 4, 3), 8, seed=21)
    hp = hyper(learning_rate=0.01)
    _, trained, state = cpu_epochs(X, y, [shuffled(8, 1)], norm, params, sizes, kernels.RELU,
                                   kernels.ADAMW, hp, 3, 3)
    state = state._asdict()
    cpu, gpu = backends(norm, trained, sizes, kernels.RELU, kernels.ADAMW,
                        optimizer_state=state)
    assert_same_state(gpu.get_optimizer_state(), state)
    assert gpu.get_optimizer_state()["velocity"].size == 0
    for backend in (cpu, gpu):
        backend.load_data(X, y, 3)
        assert backend.train(shuffled(8, 2), hp, 3)[2] == 6
    assert_same_backends(cpu, gpu)

    gpu.set_parameters(params)
    gpu.set_optimizer_state(state)
    np.testing.assert_array_equal(gpu.get_parameters(), params)
    for name, array in gpu.get_optimizer_state().items():
        np.testing.assert_array_equal(array, state[name])


def test_cuda_backend_snapshot_restore_round_trip(cuda):
    X, y, norm, params, sizes = make_problem((5, 4, 3), 8, seed=22)
    hp = hyper()
    _, gpu = backends(norm, params, sizes, kernels.SIGMOID, kernels.MOMENTUM)
    gpu.load_data(X, y, 3)
    gpu.train(shuffled(8, 1), hp, 0)
    saved_params, saved_state = gpu.get_parameters(), gpu.get_optimizer_state()
    snap = gpu.snapshot()
    first = gpu.train(shuffled(8, 2), hp, 3)
    after = gpu.get_parameters()
    assert not np.array_equal(after, saved_params)
    gpu.restore(snap)
    np.testing.assert_array_equal(gpu.get_parameters(), saved_params)
    for name, array in gpu.get_optimizer_state().items():
        np.testing.assert_array_equal(array, saved_state[name])
    # The snapshot is a copy: training again from it gives the same epoch, bit for bit.
    assert gpu.train(shuffled(8, 2), hp, 3) == pytest.approx(first, rel=1e-6)
    np.testing.assert_array_equal(gpu.get_parameters(), after)
    gpu.restore(snap)  # a snapshot can be restored more than once
    np.testing.assert_array_equal(gpu.get_parameters(), saved_params)


def test_cuda_backend_load_data_uploads_once_and_release(kc, cuda, monkeypatch):
    X, y, norm, params, sizes = make_problem((5, 4, 3), 8, seed=23)
    _, gpu = backends(norm, params, sizes, kernels.RELU, kernels.SGD)
    uploads = []
    real_to_device = cuda.to_device

    def to_device(array, *args, **kwargs):
        if np.shape(array)[1:] != (kc.PLAN_FIELDS,):  # not counting the small per-call plans
            uploads.append(np.shape(array))
        return real_to_device(array, *args, **kwargs)

    monkeypatch.setattr(cuda, "to_device", to_device)
    gpu.load_data(X, y, 3)
    assert sorted(uploads) == sorted([X.shape, y.shape])
    uploads.clear()
    gpu.load_data(X, y, 4)  # same arrays, another batch size: buffers only
    gpu.train(shuffled(8, 1), hyper(), 0)
    buffers, program = gpu._data[5], gpu._program
    gpu.load_data(X, y.astype(np.int64), 4)  # labels encoded anew, same values
    assert uploads == []
    assert gpu._data[5] is buffers and gpu._program is program  # partial_fit: all kept
    other_y = (y + 1) % 3
    gpu.load_data(X, other_y, 4)  # other labels: only they are uploaded
    assert uploads == [y.shape]
    uploads.clear()
    X2 = X.copy()
    gpu.load_data(X2, other_y, 4)  # another X: both uploaded again
    assert sorted(uploads) == sorted([X.shape, y.shape])
    uploads.clear()
    # The training loop alternates the divergence check on a sample of the
    # training rows (a new view every epoch: read from the device copy of X)
    # and validation (uploaded once, labels too); other arrays are uploaded
    # when they are not among the last two.
    X_val, y_val = X[::-1].copy(), other_y[::-1].copy()
    for epoch in range(3):
        assert gpu.outputs_finite(X2[:4])
        gpu.evaluate(X_val, y_val)
        gpu.predict_log_proba(X[:4])
    assert uploads == [(4,), X_val.shape, y_val.shape, (4, 5), (4, 5), (4, 5)]

    params_before = gpu.get_parameters()
    gpu.release()
    np.testing.assert_array_equal(gpu.get_parameters(), params_before)
    gpu.load_data(X, y, 4)  # usable again after release
    assert gpu.train(shuffled(8, 2), hyper(), 0)[2] == 2


def test_cuda_backend_parameters_finite(cuda):
    _, _, norm, params, sizes = make_problem((3, 2), 1, seed=24)
    _, gpu = backends(norm, params, sizes, kernels.RELU, kernels.ADAM)
    assert gpu.parameters_finite()
    bad = params.copy()
    bad[-1] = np.nan
    gpu.set_parameters(bad)
    assert not gpu.parameters_finite()


def test_backend_class_picks_cuda():
    from fastann.backends import backend_class
    from fastann.backends.cuda import CudaBackend
    assert backend_class("cuda") is CudaBackend


# ------------------------------------------------- plan, programs, evaluation
def test_training_plan_follows_micro_batches_and_adam_factors(kc):
    """The plan's rows are the CPU's micro-batches; Adam's factors are the CPU's, in float64."""
    from fastann.kernels.cuda import _launch as L
    hp = hyper(learning_rate=0.01, l2=0.02)
    plan, step = kc.training_plan(7, 5, 2, kernels.ADAMW, hp, 3)
    bounds = kernels.micro_batches(7, 5, 2)
    assert plan.shape == (len(bounds), kc.PLAN_FIELDS) and plan.dtype == np.float64
    assert step == 5
    np.testing.assert_array_equal(plan[:, L.START], bounds[:, 2])
    np.testing.assert_array_equal(plan[:, L.ROWS], bounds[:, 3] - bounds[:, 2])
    np.testing.assert_array_equal(plan[:, L.GRAD_SCALE], 1.0 / (bounds[:, 1] - bounds[:, 0]))
    np.testing.assert_array_equal(plan[:, L.ACCUMULATE], [0, 1, 1, 0])
    np.testing.assert_array_equal(plan[:, L.UPDATE], [0, 0, 1, 1])
    for row, t in ((2, 4), (3, 5)):
        want = kernels.adam_step_factors(t, 0.01, 0.9, 0.999, 1e-8, 0.02, True)
        assert tuple(plan[row, [L.LR, L.EPS_HAT, L.DECAY]]) == tuple(want)
    sgd, _ = kc.training_plan(7, 5, 2, kernels.SGD, hp, 0)
    np.testing.assert_array_equal(sgd[:, L.LR], [0, 0, 0.01, 0.01])
    # An epoch of S: 469 updates, the factors still the CPU's to the bit.
    plan, step = kc.training_plan(60000, 128, 128, kernels.ADAM, hp, 1000)
    assert step == 1469 and plan.shape[0] == 469 and plan[:, L.UPDATE].all()
    for row in (0, 1, 233, 468):
        want = kernels.adam_step_factors(1001 + row, 0.01, 0.9, 0.999, 1e-8, 0.02, False)
        assert tuple(plan[row, [L.LR, L.EPS_HAT, L.DECAY]]) == tuple(want)


def test_training_program_reused_across_calls_and_learning_rates(kc, cuda):
    """One program (constant launch arguments) for every call, with the learning rate changing
    per call, gives what a fresh gpu_train_epoch per call gives; the cursor ends past the plan."""
    X, y, norm, params, sizes = make_problem((6, 5, 3), 9, seed=40)
    orders = [shuffled(9, 1), shuffled(9, 2)]
    rates = [0.01, 0.003]
    fresh = []
    net = kernels.Network(cuda.to_device(params), sizes, kernels.RELU)
    state = to_device(cuda, cpu_state(kernels.ADAM, params.size, params.dtype))
    buffers = gpu_buffers(cuda, sizes, 4, params.dtype, 4)
    d_X, d_y, d_norm = cuda.to_device(X), cuda.to_device(y), to_device(cuda, norm)
    step = 0
    for order, rate in zip(orders, rates):
        fresh.append(kc.gpu_train_epoch(d_X, d_y, order, d_norm, net, kernels.ADAM,
                                        hyper(learning_rate=rate), step, 4, state, buffers))
        step = fresh[-1][2]
    fresh_params = net.params.copy_to_host()

    net = kernels.Network(cuda.to_device(params), sizes, kernels.RELU)
    state = to_device(cuda, cpu_state(kernels.ADAM, params.size, params.dtype))
    d_order = cuda.device_array(9, np.int64)
    plan = cuda.device_array((3, kc.PLAN_FIELDS), np.float64)  # 3 micro-steps an epoch
    program = kc.TrainingProgram(d_X, d_y, d_order, d_norm, net, kernels.ADAM,
                                 hyper(learning_rate=rates[0]), state, buffers, plan=plan)
    calls = program.calls
    assert len(calls) == kc.launches_per_step(2)
    step = 0
    for order, rate, want in zip(orders, rates, fresh):
        d_order.copy_to_device(order)
        got = program.run(9, 4, hyper(learning_rate=rate), step)
        step = got[2]
        assert got[1:] == want[1:] and got[0] == pytest.approx(want[0], rel=1e-6)
        assert program.calls is calls and program.plan is plan  # the same launches
        assert program.cursor.copy_to_host()[1] == 3  # micro-steps run
    np.testing.assert_allclose(net.params.copy_to_host(), fresh_params, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="other than the learning rate"):
        program.run(9, 4, hyper(learning_rate=0.01, l2=0.5), step)


def small_backend_args(seed):
    """``CudaBackend``'s positional arguments for a tiny SGD model: for the option tests."""
    _, _, norm, params, sizes = make_problem((3, 2), 1, seed=seed)
    return sizes, kernels.RELU, kernels.SGD, norm, params


@pytest.mark.parametrize("option,variable", [("graphs", "FASTANN_CUDA_GRAPHS"),
                                             ("fuse_update", "FASTANN_CUDA_FUSE_UPDATE")])
def test_hardware_options_default_from_the_environment(cuda, monkeypatch, option, variable):
    """Off by default; the environment turns them on for models and the CLI; the argument wins."""
    from fastann.backends import cuda as cuda_backend
    assert variable in (cuda_backend.GRAPHS_ENV, cuda_backend.FUSE_UPDATE_ENV)
    args = small_backend_args(seed=46)

    def value(**kwargs):
        return getattr(cuda_backend.CudaBackend(*args, **kwargs), option)

    monkeypatch.delenv(variable, raising=False)
    assert value() is False
    monkeypatch.setenv(variable, "1")
    assert value() is True
    assert value(**{option: False}) is False
    monkeypatch.setenv(variable, "0")
    assert value() is False


def test_gemm_default_comes_from_the_environment(cuda, monkeypatch):
    from fastann.backends.cuda import GEMM_ENV, CudaBackend
    args = small_backend_args(seed=48)
    monkeypatch.delenv(GEMM_ENV, raising=False)
    assert CudaBackend(*args).gemm == "tiles"
    monkeypatch.setenv(GEMM_ENV, "cublas")
    assert CudaBackend(*args).gemm == "cublas"
    assert CudaBackend(*args, gemm="tiles").gemm == "tiles"
    monkeypatch.setenv(GEMM_ENV, "blas")
    with pytest.raises(ValueError, match="FASTANN_CUDA_GEMM"):
        CudaBackend(*args)


def test_split_k_default_comes_from_the_environment(cuda, monkeypatch):
    from fastann.backends.cuda import SPLIT_K_ENV, CudaBackend
    args = small_backend_args(seed=49)
    monkeypatch.delenv(SPLIT_K_ENV, raising=False)
    assert CudaBackend(*args).split_k == 1
    monkeypatch.setenv(SPLIT_K_ENV, "auto")
    assert CudaBackend(*args).split_k == "auto"
    monkeypatch.setenv(SPLIT_K_ENV, "4")
    assert CudaBackend(*args).split_k == 4
    assert CudaBackend(*args, split_k=1).split_k == 1
    for bad in ("0", "two"):
        monkeypatch.setenv(SPLIT_K_ENV, bad)
        with pytest.raises(ValueError, match="FASTANN_CUDA_SPLIT_K"):
            CudaBackend(*args)


def test_depth_default_comes_from_the_environment(cuda, monkeypatch):
    from fastann.backends.cuda import DEPTH_ENV, CudaBackend
    args = small_backend_args(seed=50)
    monkeypatch.delenv(DEPTH_ENV, raising=False)
    assert CudaBackend(*args).launch["depth"] is None  # the kernels' default
    assert CudaBackend(*args, depth=4).launch["depth"] == 4
    monkeypatch.setenv(DEPTH_ENV, "2")
    assert CudaBackend(*args).launch["depth"] == 2
    assert CudaBackend(*args, depth=1).launch["depth"] == 1
    with pytest.raises(ValueError, match="depth must be a positive int, got 0"):
        CudaBackend(*args, depth=0)
    for bad in ("0", "deep"):
        monkeypatch.setenv(DEPTH_ENV, bad)
        with pytest.raises(ValueError, match="FASTANN_CUDA_DEPTH must be a positive int"):
            CudaBackend(*args)


def test_graphs_option_is_ignored_under_the_simulator(kc, cuda):
    """graphs=True captures on hardware only; here it runs the same eager launches."""
    X, y, norm, params, sizes = make_problem((5, 3), 6, seed=41)
    args = (X, y, [shuffled(6, 3)], norm, params, sizes, kernels.IDENTITY, kernels.SGD,
            hyper(), 3, 3)
    from fastann.backends.cuda import CudaBackend
    backend = CudaBackend(sizes, kernels.IDENTITY, kernels.SGD, norm, params.copy(),
                          graphs=True)
    backend.load_data(X, y, 3)
    got = backend.train(args[2][0], hyper(), 0)
    assert backend._program.graphs is (not kc.SIMULATOR)
    cpu = cpu_epochs(*args)
    assert got[1:] == cpu[0][0][1:]
    np.testing.assert_allclose(backend.get_parameters(), cpu[1], **PARAM_TOL)


def test_cuda_backend_evaluate_matches_cpu_backend(cuda):
    """Validation on the device: mean loss and accuracy as the CPU computes them."""
    X, y, norm, params, sizes = make_problem((6, 5, 4), 11, seed=42)
    X_val, y_val = X[::-1].copy(), ((y + 1) % 4)[::-1].copy()
    y_val[:3] = np.argmax(CpuBackend(sizes, kernels.TANH, kernels.SGD, norm, params.copy())
                          .predict_log_proba(X_val[:3]), axis=1)  # some correct rows
    for capacity in (None, 4):  # one chunk, or three
        cpu, gpu = backends(norm, params.copy(), sizes, kernels.TANH, kernels.SGD,
                            capacity=capacity)
        want, got = cpu.evaluate(X_val, y_val), gpu.evaluate(X_val, y_val)
        assert got[0] == pytest.approx(want[0], rel=1e-5)
        assert got[1] == want[1] and want[1] >= 3 / 11
        assert gpu.outputs_finite(X_val) and cpu.outputs_finite(X_val)


def test_cuda_backend_finite_checks_stay_on_the_device(cuda, monkeypatch):
    """Non-finite parameters and overflowing outputs are found without copying parameters
    or log-probabilities to the host."""
    X, y, norm, params, sizes = make_problem((4, 3, 3), 6, seed=43)
    cpu, gpu = backends(norm, params.copy(), sizes, kernels.RELU, kernels.SGD)
    gpu.load_data(X, y, 3)
    huge = params.copy()
    huge[:] = 3e38  # finite float32 weights whose outputs overflow
    gpu.set_parameters(huge)
    cpu.set_parameters(huge)

    def no_host_copy(*args, **kwargs):
        raise AssertionError("copied to the host")

    monkeypatch.setattr(type(gpu), "get_parameters", no_host_copy)
    monkeypatch.setattr(type(gpu), "predict_log_proba", no_host_copy)
    assert gpu.parameters_finite() and cpu.parameters_finite()
    assert not cpu.outputs_finite(X[:4])
    assert not gpu.outputs_finite(X[:4])
    monkeypatch.undo()
    bad = params.copy()
    bad[2] = np.inf
    gpu.set_parameters(bad)
    assert not gpu.parameters_finite()
    gpu.set_parameters(params)
    assert gpu.parameters_finite() and gpu.outputs_finite(X[:4])


@pytest.fixture
def recording_graphs(monkeypatch):
    """cuda.core's graph builder replaced by one that records what a capture would (kernel
    launches, and cuBLAS calls with the arguments they had then) and replays it eagerly:
    the real capture needs a GPU. Returns the list of captured graphs' lengths."""
    import importlib
    core = importlib.import_module("cuda.core")  # cuda-core, a numba-cuda dependency
    from fastann.kernels.cuda import blas, epoch
    captured = []
    real_run, real_gemm = epoch._run, blas.gemm

    class Graph:
        def __init__(self, calls):
            self.calls = calls

        def launch(self, stream):
            for call in self.calls:
                if call[0] == "gemm":
                    real_gemm(*call[1], **call[2])
                else:
                    real_run([call])

    class Builder:
        def begin_building(self):
            self.calls = []

        def end_building(self):
            captured.append(len(self.calls))
            return type("Done", (), {"complete": lambda _: Graph(self.calls)})()

    class Device:
        def set_current(self):
            pass

        def create_stream(self):
            return type("Stream", (), {"sync": lambda _: None})()

        def create_graph_builder(self):
            return Builder()

    def run(calls, stream=None):
        if not isinstance(stream, Builder):
            return real_run(calls, stream)
        for call in calls:
            if call[1] is None:  # a host GEMM: records itself through gemm(stream=builder)
                call[0](stream)
            else:
                stream.calls.append(call)

    def gemm(*args, stream=None, **options):
        if isinstance(stream, Builder):
            stream.calls.append(("gemm", args, options))
        else:
            real_gemm(*args, stream=stream, **options)

    monkeypatch.setattr(core, "Device", Device)
    monkeypatch.setattr(epoch, "_run", run)
    monkeypatch.setattr(blas, "gemm", gemm)
    return captured


def graph_training(kc, cuda, calls, X, y, norm, params, sizes, optimizer, hp, capacity,
                   **options):
    """Train one program with ``graphs`` forced on (what graphs=True sets on a GPU), one
    ``run`` per ``(order, batch_size)`` of ``calls``, each over the order's positions."""
    args = program_arguments(cuda, X, y, np.arange(X.shape[0]), norm, params, sizes, optimizer,
                             hp, calls[0][1], capacity)
    program = kc.TrainingProgram(*args, plan=cuda.device_array((8, kc.PLAN_FIELDS), np.float64),
                                 **options)
    program.graphs = True
    results, step = [], 0
    for order, batch_size in calls:
        args[2][:order.size].copy_to_device(order)
        results.append(program.run(order.size, batch_size, hp, step))
        step = results[-1][2]
    return program, (results, args[4].params.copy_to_host(), to_host(args[7]))


def cpu_training(calls, X, y, norm, params, sizes, optimizer, hp, capacity):
    """The CPU twin of :func:`graph_training`: ``cpu_epochs`` call after call."""
    results, state, step = [], None, 0
    for order, batch_size in calls:
        out, params, state = cpu_epochs(X, y, [order], norm, params, sizes, kernels.RELU,
                                        optimizer, hp, batch_size, capacity, step=step,
                                        state=state)
        results += out
        step = out[-1][2]
    return results, params, state


def test_graph_replay_logic_with_a_recording_graph_builder(kc, cuda, recording_graphs):
    """The control flow of graphs=True: the first micro-step runs eagerly, a graph is
    captured once per micro-step count and replayed."""
    X, y, norm, params, sizes = make_problem((6, 5, 3), 10, seed=45)
    calls = [(shuffled(10, s), 4) for s in (1, 2, 3)]
    hp = hyper(learning_rate=0.01)
    problem = (X, y, norm, params, sizes, kernels.ADAM, hp, 4)
    _, gpu = graph_training(kc, cuda, calls, *problem)
    n_launches = kc.launches_per_step(2)
    assert recording_graphs == [2 * n_launches, 3 * n_launches]  # 1 eager + 2, 3, a replay
    assert_same_training(cpu_training(calls, *problem), gpu)


def test_cublas_gemms_captured_with_the_graph(kc, cuda, narrow_gemm, recording_graphs):
    """gemm="cublas" with graphs: each GEMM is captured with the kernels, over all capacity
    rows and with the beta of its micro-batch, so a graph is kept per pattern of
    accumulating micro-batches; replayed, it trains as the CPU (micro-batches of 2, last
    partial batches)."""
    from fastann.kernels.cuda._launch import ACCUMULATE
    X, y, norm, params, sizes = make_problem((7, 6, 5, 3), 11, seed=64)
    # Mini-batches of 5 (2 + 2 + 1 rows) three times, then of 3 (2 + 1) over 10 rows: both
    # 7 micro-steps, accumulating in a different pattern.
    calls = [(shuffled(11, s), 5) for s in (51, 52, 53)] + [(shuffled(11, 54)[:10], 3)]
    hp = hyper(learning_rate=0.01)
    problem = (X, y, norm, params, sizes, kernels.ADAM, hp, 2)
    patterns = [kc.training_plan(order.size, batch, 2, kernels.ADAM, hp, 0)[0][:, ACCUMULATE]
                for order, batch in calls[2:]]
    assert [p.tolist() for p in patterns] == [[0, 1, 1, 0, 1, 1, 0], [0, 1, 0, 1, 0, 1, 0]]
    program, gpu = graph_training(kc, cuda, calls, *problem, gemm="cublas")
    per_step = len(program.calls)
    # The first micro-step eager, then graphs of 6 and 7, a replay, and 7 again (new pattern).
    assert recording_graphs == [6 * per_step, 7 * per_step, 7 * per_step]
    assert len(program._graphs) == 3
    assert_same_training(cpu_training(calls, *problem), gpu)


def test_prepared_launch_falls_back_to_the_dispatcher():
    """prepared=True (GPU only) keeps launching through numba-cuda's dispatcher when the
    arguments cannot be prepared (another numba-cuda, or the simulator's kernels)."""
    from fastann.kernels.cuda import epoch
    launched = []

    class Kernel:  # what numba-cuda's dispatcher looks like from the outside
        def __getitem__(self, config):
            return lambda *args: launched.append((config, args))

    launch = epoch._PreparedLaunch(Kernel(), 3, 32, ("a", 1))
    for _ in range(3):
        launch()
    assert launched == [((3, 32), ("a", 1))] * 3
    assert launch._ready is False
