"""Fully-connected (dense) layer: forward and backward passes.

The matrix products go to BLAS ``sgemm``/``dgemm`` through Numba's ``np.dot``
(which calls SciPy's bundled OpenBLAS); the element-wise work (bias,
activation, activation derivative, bias gradient) is fused into one pass each
over the product while it is still in cache. No memory is allocated: every
output goes into a buffer the caller owns.

Notation (Goodfellow, Bengio & Courville, *Deep Learning*, 2016, sec. 6.5):
``Z = X W + b``, ``A = f(Z)``; backward receives ``dZ = dL/dZ`` and returns
``dW = X^T dZ``, ``db = sum_rows(dZ)`` and ``dX = dZ W^T``.
"""
import numpy as np
from numba import njit

from .activations import activation_backward_inplace, bias_activation_inplace


@njit(cache=True, error_model="numpy")
def dense_forward(X, W, b, activation, out):
    """Fused dense layer: ``out = f(X @ W + b)``.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_in), float32 or float64
        Layer input.
    W : ndarray, shape (n_in, n_out), same dtype, C-contiguous
    b : ndarray, shape (n_out,), same dtype
    activation : int
        Activation code from :mod:`kernels.activations`.
    out : ndarray, shape (n_samples, n_out), same dtype, C-contiguous
        Written in place.
    """
    np.dot(X, W, out)
    bias_activation_inplace(out, b, activation)


@njit(cache=True, error_model="numpy")
def column_sums(dZ, db):
    """``db[j] = sum_i dZ[i, j]`` (the bias gradient), written in place."""
    n, m = dZ.shape
    for j in range(m):
        db[j] = 0
    for i in range(n):
        for j in range(m):
            db[j] += dZ[i, j]


@njit(cache=True, error_model="numpy")
def dense_backward(X, W, dZ, dW, db, dX, input_activation):
    """Backward pass of a dense layer, fused with the previous layer's activation.

    Computes ``dW = X^T dZ`` and ``db = sum_rows(dZ)``; when ``dX`` is
    non-empty also ``dX = (dZ W^T) * f'(X)``, i.e. the gradient w.r.t. the
    previous layer's *pre-activation*, with ``f`` = ``input_activation`` and
    its derivative expressed through ``X = f(.)``.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_in)
        The input the forward pass saw (the previous layer's activations).
    W : ndarray, shape (n_in, n_out)
    dZ : ndarray, shape (n_samples, n_out)
        Gradient of the loss w.r.t. this layer's pre-activation.
    dW : ndarray, shape (n_in, n_out), written in place
    db : ndarray, shape (n_out,), written in place
    dX : ndarray, shape (n_samples, n_in) or size 0, written in place
        Pass an empty array for the first layer, whose input needs no gradient.
        Must not share memory with ``X``.
    input_activation : int
        Activation code of the layer that produced ``X``.
    """
    np.dot(X.T, dZ, dW)
    column_sums(dZ, db)
    if dX.size > 0:
        np.dot(dZ, W.T, dX)
        activation_backward_inplace(dX, X, input_activation)
