"""A whole MLP as flat buffers: parameter layout, forward and backward passes.

Parameters of all layers live in one flat vector: first every weight matrix
(layer ``l`` is ``W_l``, shape ``(d_l, d_{l+1})``, row-major), then every bias
vector. Keeping the weights first lets the optimizer kernels apply L1/L2 to
the prefix ``[0, n_weights)`` in a single pass, and keeps saving, loading and
optimizer state trivial. ``layer_sizes = [d_0, d_1, ..., d_L]`` with ``d_0``
the number of features and ``d_L`` the number of classes.

Activations of layer ``l`` (``l = 1..L``) live in one flat buffer at offset
``capacity * (d_1 + ... + d_{l-1})``, viewed as ``(n_rows, d_l)``; the output
layer holds logits and, during training, their gradient.

Back-propagation follows Rumelhart, Hinton & Williams (1986); see
:mod:`kernels.dense` for the per-layer formulas.
"""
import numpy as np
from numba import njit

from .activations import IDENTITY
from .dense import dense_backward, dense_forward


@njit(cache=True, error_model="numpy")
def parameter_offsets(layer_sizes):
    """Offsets of every weight matrix and bias vector in the flat vector.

    Parameters
    ----------
    layer_sizes : ndarray, shape (n_layers + 1,), int64

    Returns
    -------
    weight_offsets, bias_offsets : ndarray, shape (n_layers + 1,), int64
        Layer ``l`` occupies ``[weight_offsets[l], weight_offsets[l + 1])`` and
        ``[bias_offsets[l], bias_offsets[l + 1])``; ``weight_offsets[-1]`` is
        the number of weights and ``bias_offsets[-1]`` the number of parameters.
    """
    n_layers = layer_sizes.size - 1
    w_off = np.zeros(n_layers + 1, np.int64)
    for l in range(n_layers):
        w_off[l + 1] = w_off[l] + layer_sizes[l] * layer_sizes[l + 1]
    b_off = np.zeros(n_layers + 1, np.int64)
    b_off[0] = w_off[n_layers]
    for l in range(n_layers):
        b_off[l + 1] = b_off[l] + layer_sizes[l + 1]
    return w_off, b_off


@njit(cache=True, error_model="numpy")
def activation_offsets(layer_sizes, capacity):
    """Offsets of each layer's activations in the flat activation buffer.

    Returns an int64 array of length ``n_layers + 1``; layer ``l`` (1-based)
    uses ``[offsets[l - 1], offsets[l - 1] + capacity * d_l)``, and
    ``offsets[-1]`` is the buffer length needed.
    """
    n_layers = layer_sizes.size - 1
    off = np.zeros(n_layers + 1, np.int64)
    for l in range(n_layers):
        off[l + 1] = off[l] + capacity * layer_sizes[l + 1]
    return off


@njit(cache=True, error_model="numpy", inline="always")
def matrix_view(flat, offset, rows, cols):
    """``flat[offset:offset + rows*cols]`` seen as a C-ordered (rows, cols) matrix."""
    return flat[offset:offset + rows * cols].reshape((rows, cols))


@njit(cache=True, error_model="numpy")
def forward_network(x, n_rows, params, layer_sizes, activation, acts, capacity):
    """Forward pass of the whole network; returns the logits view.

    Parameters
    ----------
    x : ndarray, shape (>= n_rows, d_0), float, C-contiguous
        Normalized input rows (only the first ``n_rows`` are used).
    n_rows : int
    params : ndarray, shape (n_params,), float
    layer_sizes : ndarray, shape (n_layers + 1,), int64
    activation : int
        Hidden-layer activation code; the output layer is linear (softmax is
        applied by the loss).
    acts : ndarray, flat float buffer of length ``activation_offsets(...)[-1]``
    capacity : int
        Rows the buffers were sized for (``>= n_rows``).

    Returns
    -------
    logits : ndarray, shape (n_rows, d_L), a view into ``acts``.
    """
    w_off, b_off = parameter_offsets(layer_sizes)
    return forward_with_offsets(x, n_rows, params, layer_sizes, w_off, b_off,
                                activation_offsets(layer_sizes, capacity), activation, acts, 0)


@njit(cache=True, error_model="numpy")
def forward_with_offsets(x, n_rows, params, layer_sizes, w_off, b_off, a_off, activation, acts,
                         first_layer):
    """:func:`forward_network` with the offsets precomputed (no allocation).

    With ``first_layer = 1`` the first layer's activations must already be in
    ``acts`` (computed by :func:`kernels.sparse.sparse_dense_forward`) and ``x``
    is not read.
    """
    n_layers = layer_sizes.size - 1
    inp = x[:n_rows] if first_layer == 0 else matrix_view(acts, a_off[0], n_rows, layer_sizes[1])
    for l in range(first_layer, n_layers):
        d_in, d_out = layer_sizes[l], layer_sizes[l + 1]
        W = matrix_view(params, w_off[l], d_in, d_out)
        b = params[b_off[l]:b_off[l + 1]]
        out = matrix_view(acts, a_off[l], n_rows, d_out)
        dense_forward(inp, W, b, activation if l < n_layers - 1 else IDENTITY, out)
        inp = out
    return inp


@njit(cache=True, error_model="numpy")
def backward_network(x, n_rows, params, layer_sizes, activation, acts, capacity,
                     scratch, grads):
    """Back-propagate the logits' gradient (stored in place of the logits).

    Parameters
    ----------
    x, n_rows, params, layer_sizes, activation, acts, capacity
        As for :func:`forward_network`, after it ran; the logits region of
        ``acts`` must hold ``dL/dlogits``.
    scratch : ndarray, flat float buffer of length ``>= 2 * capacity * max(d_1..d_{L-1})``
    grads : ndarray, shape (n_params,), float
        Written in place with the gradient (same layout as ``params``).
    """
    w_off, b_off = parameter_offsets(layer_sizes)
    backward_with_offsets(x, n_rows, params, layer_sizes, w_off, b_off,
                          activation_offsets(layer_sizes, capacity), activation, acts,
                          scratch, grads, 0)


@njit(cache=True, error_model="numpy")
def backward_with_offsets(x, n_rows, params, layer_sizes, w_off, b_off, a_off, activation,
                          acts, scratch, grads, first_layer):
    """:func:`backward_network` with the offsets precomputed (no allocation).

    Processes layers ``L-1 .. first_layer`` and returns the gradient w.r.t. the
    pre-activation of layer ``first_layer - 1``'s output (a view into
    ``scratch`` or ``acts``), which the sparse first layer consumes when
    ``first_layer = 1``.
    """
    n_layers = layer_sizes.size - 1
    empty = scratch[:0].reshape((0, 0))
    half = scratch.size // 2
    dZ = matrix_view(acts, a_off[n_layers - 1], n_rows, layer_sizes[n_layers])
    for l in range(n_layers - 1, first_layer - 1, -1):
        d_in, d_out = layer_sizes[l], layer_sizes[l + 1]
        W = matrix_view(params, w_off[l], d_in, d_out)
        dW = matrix_view(grads, w_off[l], d_in, d_out)
        db = grads[b_off[l]:b_off[l + 1]]
        if l == 0:
            dense_backward(x[:n_rows], W, dZ, dW, db, empty, activation)
        else:
            A_in = matrix_view(acts, a_off[l - 1], n_rows, d_in)
            # Ping-pong between the two halves of ``scratch`` so that the
            # gradient being written never aliases the one being read.
            dX = matrix_view(scratch, ((n_layers - 1 - l) % 2) * half, n_rows, d_in)
            dense_backward(A_in, W, dZ, dW, db, dX, activation)
            dZ = dX
    return dZ
