"""Shared set-up for the CUDA tests: the CPU-side arrays of a small MLP, as fastann builds them."""
import numpy as np

import kernels
from kernels.epoch import BETA1, BETA2, EPSILON, L1, L2, LEARNING_RATE, MOMENTUM_COEF


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
    return X, y, scale, shift, params, sizes


def init_params(sizes, rng, dtype):
    w_off, b_off = kernels.parameter_offsets(sizes)
    params = np.zeros(b_off[-1], dtype)
    for layer in range(sizes.size - 1):
        fan_in = int(sizes[layer])
        params[w_off[layer]:w_off[layer + 1]] = (
            rng.standard_normal(w_off[layer + 1] - w_off[layer]) * np.sqrt(2.0 / fan_in))
    params[b_off[0]:] = rng.uniform(-0.1, 0.1, b_off[-1] - b_off[0])
    return params


def hyper_vector(learning_rate=0.05, momentum=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 l1=1e-4, l2=1e-3):
    hyper = np.zeros(kernels.N_HYPER, np.float64)
    hyper[LEARNING_RATE], hyper[MOMENTUM_COEF] = learning_rate, momentum
    hyper[BETA1], hyper[BETA2], hyper[EPSILON] = beta1, beta2, epsilon
    hyper[L1], hyper[L2] = l1, l2
    return hyper


def buffers(sizes, capacity, dtype, n_params, need_grad_sum):
    """The CPU path's buffers, sized exactly as MLPClassifier._train sizes them."""
    widest_hidden = int(sizes[1:-1].max()) if sizes.size > 2 else 1
    return dict(
        grads=np.zeros(n_params, dtype),
        grad_sum=np.zeros(n_params, dtype) if need_grad_sum else np.zeros(0, dtype),
        state1=np.zeros(n_params, dtype),
        state2=np.zeros(n_params, dtype),
        inputs=np.zeros((capacity, int(sizes[0])), dtype),
        labels=np.zeros(capacity, np.int32),
        acts=np.zeros(kernels.activation_offsets(sizes, capacity)[-1], dtype),
        scratch=np.zeros(2 * capacity * widest_hidden, dtype),
    )


def shuffled(n, seed):
    order = np.arange(n, dtype=np.int64)
    kernels.shuffle_inplace(order, seed)
    return order


def sparse_buffers(capacity, d0, dtype, sparse_input):
    """The CSR buffers of the CPU's sparse first layer (empty when it is not used)."""
    size = capacity * d0 if sparse_input else 0
    return (bool(sparse_input), np.zeros(capacity + 1, np.int64), np.zeros(size, np.int32),
            np.zeros(size, dtype))


def cpu_epochs(X, y, orders, scale, shift, params, sizes, activation, optimizer, hyper,
               batch_size, capacity, step=0, sparse_input=False):
    """Run :func:`kernels.train_epoch` once per order; returns per-epoch results and state."""
    params = params.copy()
    buf = buffers(sizes, capacity, params.dtype, params.size, batch_size > capacity)
    sparse = sparse_buffers(capacity, int(sizes[0]), params.dtype, sparse_input)
    results = []
    for order in orders:
        loss, correct, step = kernels.train_epoch(
            X, y, order, scale, shift, params, sizes, activation, optimizer, hyper, step,
            batch_size, buf["grads"], buf["grad_sum"], buf["state1"], buf["state2"],
            buf["inputs"], buf["labels"], buf["acts"], buf["scratch"], *sparse)
        results.append((loss, correct, step))
    return results, params, buf


def to_device(cuda, buf):
    return {name: cuda.to_device(array) for name, array in buf.items()}
