"""Shared set-up for the CUDA tests: the CPU-side arrays of a small MLP, as fastann builds them."""
import numpy as np

from fastann import kernels


def make_problem(sizes, n_samples, dtype=np.float32, seed=0, uint8=True):
    """Random features/labels, normalization map and initialized flat parameters."""
    rng = np.random.default_rng(seed)
    sizes = np.asarray(sizes, np.int64)
    d0, k = int(sizes[0]), int(sizes[-1])
    if uint8:
        X = rng.integers(0, 256, (n_samples, d0), dtype=np.uint8)
        scale = np.full(d0, 1.0 / 255.0, dtype)
        shift = np.zeros(d0, dtype)
    else:
        X = rng.standard_normal((n_samples, d0)).astype(dtype)
        scale = rng.uniform(0.5, 1.5, d0).astype(dtype)
        shift = rng.uniform(-0.2, 0.2, d0).astype(dtype)
    y = rng.integers(0, k, n_samples).astype(np.int32)
    params = init_params(sizes, rng, dtype)
    return X, y, kernels.Normalization(scale, shift), params, sizes


def init_params(sizes, rng, dtype):
    w_off, b_off = kernels.parameter_offsets(sizes)
    params = np.zeros(b_off[-1], dtype)
    for layer in range(sizes.size - 1):
        fan_in = int(sizes[layer])
        params[w_off[layer]:w_off[layer + 1]] = (
            rng.standard_normal(w_off[layer + 1] - w_off[layer]) * np.sqrt(2.0 / fan_in))
    params[b_off[0]:] = rng.uniform(-0.1, 0.1, b_off[-1] - b_off[0])
    return params


def hyper(learning_rate=0.05, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
          l1=1e-4, l2=1e-3):
    """:data:`fastann.kernels.Hyperparameters` with the tests' defaults (penalties on)."""
    return kernels.hyperparameters(learning_rate=learning_rate, momentum=momentum,
                                   beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, l1=l1, l2=l2)


def cpu_buffers(sizes, capacity, dtype, batch_size, sparse_input=False):
    """The CPU epoch's :data:`~fastann.kernels.TrainingBuffers`, sized by the shared table."""
    shapes = kernels.training_buffer_shapes(sizes, capacity, batch_size, sparse_input)
    return kernels.TrainingBuffers(**{
        name: np.zeros(shape, dtype if kind == "float" else np.dtype(kind))
        for name, (shape, kind) in shapes.items()})


def cpu_state(optimizer, n_params, dtype):
    """Zeroed host :data:`~fastann.kernels.OptimizerState` (unused fields of size 0)."""
    sizes = kernels.optimizer_state_sizes(optimizer, n_params)
    return kernels.OptimizerState(**{name: np.zeros(size, dtype)
                                     for name, size in sizes.items()})


def gpu_buffers(cuda, sizes, capacity, dtype, batch_size):
    """Zeroed :data:`fastann.kernels.cuda.GpuTrainingBuffers` on the device."""
    from fastann.kernels.cuda import GpuTrainingBuffers
    shapes = kernels.training_buffer_shapes(sizes, capacity, batch_size, False)
    arrays = {name: cuda.to_device(np.zeros(shape, dtype if kind == "float" else kind))
              for name, (shape, kind) in shapes.items() if name in GpuTrainingBuffers._fields}
    return GpuTrainingBuffers(counters=cuda.to_device(np.zeros(2, np.float64)), **arrays)


def to_device(cuda, struct):
    """The same namedtuple with every array uploaded."""
    return type(struct)(*(cuda.to_device(a) for a in struct))


def to_host(struct):
    return type(struct)(*(a.copy_to_host() for a in struct))


def shuffled(n, seed):
    order = np.arange(n, dtype=np.int64)
    kernels.shuffle_inplace(order, seed)
    return order


def cpu_epochs(X, y, orders, normalization, params, sizes, activation, optimizer, hyper,
               batch_size, capacity, step=0, sparse_input=False, state=None):
    """Run :func:`fastann.kernels.train_epoch` once per order.

    Returns ``(results, params, state)``: per-epoch ``(loss_sum, n_correct,
    step)``, the trained copy of ``params`` and the host optimizer state.
    """
    params = params.copy()
    buffers = cpu_buffers(sizes, capacity, params.dtype, batch_size, sparse_input)
    if state is None:
        state = cpu_state(optimizer, params.size, params.dtype)
    net = kernels.Network(params, sizes, activation)
    results = []
    for order in orders:
        loss, correct, step = kernels.train_epoch(X, y, order, normalization, net, optimizer,
                                                  hyper, step, batch_size, state, buffers,
                                                  sparse_input)
        results.append((loss, correct, step))
    return results, params, state


def cpu_log_proba(X, normalization, params, sizes, activation, capacity):
    """:func:`fastann.kernels.predict_log_proba` into a fresh host array."""
    dtype = params.dtype
    buffers = kernels.PredictionBuffers(
        np.zeros((capacity, int(sizes[0])), dtype),
        np.zeros(kernels.activation_buffer_length(sizes, capacity), dtype))
    out = np.empty((X.shape[0], int(sizes[-1])), dtype)
    kernels.predict_log_proba(X, normalization, kernels.Network(params, sizes, activation),
                              buffers, out)
    return out
