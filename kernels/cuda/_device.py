"""Device functions shared by the CUDA kernels: activations and penalties.

They follow :mod:`kernels.activations` and :mod:`kernels.optimizers` formula
for formula (same integer codes, derivative through the output ``a = f(z)``,
leaky slope 0.01). Constants are typed per dtype (factory below) so float32
kernels never promote to float64 on the device.
"""
import math
from functools import lru_cache

import numpy as np
from numba import cuda

from ..activations import IDENTITY, LEAKY_RELU, LEAKY_SLOPE, RELU, SIGMOID, TANH


@lru_cache(maxsize=None)
def activation_functions(dtype):
    """``(activate, derivative_times)`` device functions for one float dtype.

    ``activate(z, code)`` is ``f(z)``; ``derivative_times(g, a, code)`` is
    ``g * f'(z)`` written through ``a = f(z)``, exactly as
    :func:`kernels.activation_backward_inplace` does it (``g`` set to 0 where
    ReLU's output is not positive).
    """
    dt = np.dtype(dtype).type
    ZERO, ONE, SLOPE = dt(0.0), dt(1.0), dt(LEAKY_SLOPE)

    @cuda.jit(device=True)
    def activate(z, code):
        if code == RELU:
            return z if z > ZERO else ZERO
        if code == LEAKY_RELU:
            return z if z > ZERO else SLOPE * z
        if code == SIGMOID:
            if z >= ZERO:
                return ONE / (ONE + math.exp(-z))
            e = math.exp(z)
            return e / (ONE + e)
        if code == TANH:
            return math.tanh(z)
        return z  # IDENTITY

    @cuda.jit(device=True)
    def derivative_times(g, a, code):
        if code == RELU:
            return ZERO if a <= ZERO else g
        if code == LEAKY_RELU:
            return g * SLOPE if a <= ZERO else g
        if code == SIGMOID:
            return g * (a * (ONE - a))
        if code == TANH:
            return g * (ONE - a * a)
        return g  # IDENTITY

    return activate, derivative_times


@cuda.jit(device=True)
def penalized(g, w, i, n_weights, l1, l2):
    """``g + (l2 * w + l1 * sign(w))`` for weights (``i < n_weights``), ``g`` for biases.

    The same sum as :func:`kernels.optimizers._penalty_gradient` added to the
    gradient (``sign(0) = 0``); written with branches so that float32 stays
    float32 on the device.
    """
    if i < n_weights:
        p = l2 * w
        if w > 0:
            p += l1
        elif w < 0:
            p -= l1
        g += p
    return g


__all__ = ["activation_functions", "penalized", "IDENTITY", "RELU", "LEAKY_RELU",
           "SIGMOID", "TANH"]
