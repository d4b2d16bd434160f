"""In-place optimizer steps on the GPU: SGD, momentum, Nesterov, Adam/AdamW.

One launch per step over the whole flat parameter vector (weights first, then
biases, as in :mod:`kernels.network`); each thread reads its gradient,
parameter and state entries once and writes them once (Adam: ``m``, ``v`` and
the weight fused). The L1/L2 penalty is applied to the weight prefix
``[0, n_weights)`` exactly as :mod:`kernels.optimizers` does, with AdamW's
decoupled decay when ``decoupled``. Scalars are converted to the parameters'
dtype on the host (and Adam's bias corrections folded into ``lr_t`` and
``eps_hat`` there, in float64 as the CPU kernel does), so float32 updates
never promote to float64 on the device.
"""
import math

import numpy as np
from numba import cuda

from ..optimizers import adam_step_factors
from ._device import penalized
from ._launch import DEFAULT_THREADS, float_dtype, n_blocks


@cuda.jit(cache=True)
def _sgd(params, grads, lr, l1, l2, n_weights):
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        w = params[i]
        params[i] = w - lr * penalized(grads[i], w, i, n_weights, l1, l2)


@cuda.jit(cache=True)
def _momentum(params, grads, velocity, lr, mu, l1, l2, n_weights):
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        w = params[i]
        v = mu * velocity[i] - lr * penalized(grads[i], w, i, n_weights, l1, l2)
        velocity[i] = v
        params[i] = w + v


@cuda.jit(cache=True)
def _nesterov(params, grads, velocity, lr, mu, one_plus_mu, l1, l2, n_weights):
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        w = params[i]
        v_old = velocity[i]
        v = mu * v_old - lr * penalized(grads[i], w, i, n_weights, l1, l2)
        velocity[i] = v
        params[i] = w - mu * v_old + one_plus_mu * v


@cuda.jit(cache=True)
def _adam(params, grads, m, v, lr_t, eps_hat, b1, b2, one_minus_b1, one_minus_b2,
          l1, l2, decay, n_weights):
    for i in range(cuda.grid(1), params.size, cuda.gridsize(1)):
        w = params[i]
        g = penalized(grads[i], w, i, n_weights, l1, l2)
        mi = b1 * m[i] + one_minus_b1 * g
        vi = b2 * v[i] + one_minus_b2 * g * g
        m[i] = mi
        v[i] = vi
        if i < n_weights:
            w -= decay * w
        params[i] = w - lr_t * mi / (math.sqrt(vi) + eps_hat)


def _launch(kernel, params, threads, *args):
    threads = threads or DEFAULT_THREADS
    kernel[n_blocks(params.size, threads), threads](params, *args)


def gpu_sgd_update(params, grads, learning_rate, l1, l2, n_weights, threads=None):
    """GPU twin of :func:`kernels.sgd_update` (device arrays, updated in place)."""
    dt = float_dtype(params).type
    _launch(_sgd, params, threads, grads, dt(learning_rate), dt(l1), dt(l2), int(n_weights))


def gpu_momentum_update(params, grads, velocity, learning_rate, momentum, l1, l2, n_weights,
                        threads=None):
    """GPU twin of :func:`kernels.momentum_update`."""
    dt = float_dtype(params).type
    _launch(_momentum, params, threads, grads, velocity, dt(learning_rate), dt(momentum),
            dt(l1), dt(l2), int(n_weights))


def gpu_nesterov_update(params, grads, velocity, learning_rate, momentum, l1, l2, n_weights,
                        threads=None):
    """GPU twin of :func:`kernels.nesterov_update`."""
    dt = float_dtype(params).type
    mu = dt(momentum)
    _launch(_nesterov, params, threads, grads, velocity, dt(learning_rate), mu,
            dt(1.0) + mu, dt(l1), dt(l2), int(n_weights))


def adam_scalars(dtype, step, learning_rate, beta1, beta2, epsilon, l1, l2, decoupled):
    """The per-step scalars of :func:`fastann.kernels.adam_update`, from the same
    :func:`~fastann.kernels.optimizers.adam_step_factors`, cast to ``dtype``."""
    dt = np.dtype(dtype).type
    lr_t, eps_hat, decay = adam_step_factors(int(step), float(learning_rate), float(beta1),
                                             float(beta2), float(epsilon), float(l2),
                                             bool(decoupled))
    b1, b2 = dt(beta1), dt(beta2)
    one = dt(1.0)
    a2 = dt(0.0) if decoupled else dt(l2)
    return dt(lr_t), dt(eps_hat), b1, b2, one - b1, one - b2, dt(l1), a2, dt(decay)


def gpu_adam_update(params, grads, m, v, step, learning_rate, beta1, beta2, epsilon,
                    l1, l2, n_weights, decoupled, threads=None):
    """GPU twin of :func:`kernels.adam_update` (Adam, or AdamW with ``decoupled``)."""
    scalars = adam_scalars(float_dtype(params), step, learning_rate, beta1, beta2, epsilon,
                           l1, l2, decoupled)
    _launch(_adam, params, threads, grads, m, v, *scalars, int(n_weights))
