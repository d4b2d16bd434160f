"""Element-wise activation functions and their derivatives, as Numba kernels.

Every activation is identified by a small integer code so that compiled loops can
select it without Python objects. The derivative is expressed through the
activation's *output* ``a = f(z)``, which is what the forward pass keeps, so no
pre-activation buffer is needed:

==========  ===========================  ==========================
code        f(z)                         f'(z) written with a = f(z)
==========  ===========================  ==========================
IDENTITY    z                            1
SIGMOID     1 / (1 + exp(-z))            a (1 - a)
TANH        tanh(z)                      1 - a**2
RELU        max(z, 0)                    1 if a > 0 else 0
LEAKY_RELU  z if z > 0 else 0.01 z       1 if a > 0 else 0.01
==========  ===========================  ==========================

Leaky ReLU's slope 0.01 is that of Maas, Hannun & Ng (2013), "Rectifier
nonlinearities improve neural network acoustic models".
"""
import numpy as np
from numba import njit

IDENTITY = 0
SIGMOID = 1
TANH = 2
RELU = 3
LEAKY_RELU = 4

LEAKY_SLOPE = 0.01


@njit(cache=True, error_model="numpy", inline="always")
def sigmoid(z):
    """Logistic function, evaluated without overflow for large ``|z|``."""
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@njit(cache=True, error_model="numpy")
def bias_activation_inplace(Z, b, activation):
    """Add the bias row and apply the activation in one pass over ``Z``.

    Parameters
    ----------
    Z : ndarray, shape (n_samples, n_units), float32 or float64, C-contiguous
        Pre-activations ``X @ W`` on entry, activations ``f(X @ W + b)`` on exit.
    b : ndarray, shape (n_units,), same dtype as ``Z``
    activation : int
        One of the codes of this module.
    """
    n, m = Z.shape
    slope = Z.dtype.type(LEAKY_SLOPE)
    if activation == IDENTITY:
        for i in range(n):
            for j in range(m):
                Z[i, j] += b[j]
    elif activation == RELU:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > 0 else 0
    elif activation == LEAKY_RELU:
        for i in range(n):
            for j in range(m):
                z = Z[i, j] + b[j]
                Z[i, j] = z if z > 0 else slope * z
    elif activation == SIGMOID:
        for i in range(n):
            for j in range(m):
                Z[i, j] = sigmoid(Z[i, j] + b[j])
    elif activation == TANH:
        for i in range(n):
            for j in range(m):
                Z[i, j] = np.tanh(Z[i, j] + b[j])
    else:
        raise ValueError("unknown activation code")


@njit(cache=True, error_model="numpy")
def activation_backward_inplace(dA, A, activation):
    """Turn a gradient w.r.t. activations into one w.r.t. pre-activations.

    ``dA <- dA * f'(z)`` with ``f'(z)`` written through the output ``A = f(z)``
    (see the module table).

    Parameters
    ----------
    dA : ndarray, shape (n_samples, n_units), float, C-contiguous
        Gradient of the loss w.r.t. ``A`` on entry, w.r.t. ``Z`` on exit.
    A : ndarray, shape (n_samples, n_units), same dtype
        Activations saved by the forward pass.
    activation : int
    """
    n, m = dA.shape
    one = dA.dtype.type(1.0)
    slope = dA.dtype.type(LEAKY_SLOPE)
    if activation == IDENTITY:
        return
    elif activation == RELU:
        for i in range(n):
            for j in range(m):
                if A[i, j] <= 0:
                    dA[i, j] = 0
    elif activation == LEAKY_RELU:
        for i in range(n):
            for j in range(m):
                if A[i, j] <= 0:
                    dA[i, j] *= slope
    elif activation == SIGMOID:
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                dA[i, j] *= a * (one - a)
    elif activation == TANH:
        for i in range(n):
            for j in range(m):
                a = A[i, j]
                dA[i, j] *= one - a * a
    else:
        raise ValueError("unknown activation code")
