"""Inverted dropout on hidden activations: forward and backward passes of a whole MLP.

Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov (2014), "Dropout: a
simple way to prevent neural networks from overfitting", JMLR 15, in its
"inverted" form: during training every hidden unit's activation is kept with
probability ``1 - p`` and then divided by ``1 - p``, or set to 0,

    ``Ã = A * m / (1 - p)``,  ``m_ij ~ Bernoulli(1 - p)``,

so that the expected input of the next layer is unchanged and inference uses
the weights as they are (no dropout, no rescaling:
:func:`fastann.kernels.epoch.predict_log_proba` never calls this module).
Back-propagation multiplies the gradient w.r.t. ``Ã`` by the same
``m / (1 - p)`` before the activation's derivative, which is taken at the
undropped ``A``.

Masks come from the per-row random streams of :mod:`fastann.kernels.streams`
(stream ``DROPOUT_STREAM + l`` for hidden layer ``l``): each SplitMix64 output
gives the masks of two units, its high and its low 32 bits ``u``, the unit being
kept when ``u >= threshold`` with ``threshold = round(p * 2**32)``.

Buffers (the :data:`~fastann.kernels.structs.Dropout` structure): ``keep`` holds
``m / (1 - p)`` and ``dropped`` holds ``Ã``, both laid out like the activation
buffer (:func:`fastann.kernels.network.activation_offsets`); the undropped
``A`` stays in ``acts``.
"""
import numpy as np
from numba import njit

from .activations import IDENTITY, activation_backward_inplace
from .batching import splitmix64
from .dense import column_sums, dense_backward, dense_forward
from .network import matrix_view
from .streams import DROPOUT_STREAM, row_stream

_LOW_32 = 0xFFFFFFFF


def keep_threshold(rate):
    """The 32-bit threshold of a drop probability: ``round(rate * 2**32)`` (int).

    A unit is kept when a uniform 32-bit integer is ``>= threshold``, i.e. with
    probability ``1 - threshold / 2**32`` (``1 - rate`` within ``2**-33``).
    """
    return int(round(float(rate) * 2.0 ** 32))


@njit(cache=True, error_model="numpy")
def dropout_mask(keep, n_rows, threshold, keep_scale, seed, first_position, layer):
    """Draw ``keep[i, j] = keep_scale`` (kept) or 0 (dropped) for ``n_rows`` rows.

    Parameters
    ----------
    keep : ndarray, shape (>= n_rows, n_units), float, written
    n_rows : int
    threshold : numpy.uint64
        :func:`keep_threshold` of the drop rate.
    keep_scale : float
        ``1 / (1 - rate)``.
    seed : int
        The epoch's seed.
    first_position : int
        Position in the epoch's order of row 0; row ``i`` uses the stream of
        position ``first_position + i``, so masks do not depend on how the
        epoch is split into batches.
    layer : int
        Hidden layer (0-based).
    """
    m = keep.shape[1]
    zero = keep.dtype.type(0)
    kept = keep.dtype.type(keep_scale)
    low = np.uint64(_LOW_32)
    for i in range(n_rows):
        state = row_stream(seed, first_position + i, DROPOUT_STREAM + layer)
        for j in range(0, m, 2):
            state, r = splitmix64(state)
            keep[i, j] = kept if (r >> np.uint64(32)) >= threshold else zero
            if j + 1 < m:
                keep[i, j + 1] = kept if (r & low) >= threshold else zero


@njit(cache=True, error_model="numpy")
def _apply_mask(A, keep, out):
    n, m = A.shape
    for i in range(n):
        for j in range(m):
            out[i, j] = A[i, j] * keep[i, j]


@njit(cache=True, error_model="numpy")
def forward_with_dropout(x, n_rows, params, layer_sizes, w_off, b_off, a_off, activation,
                         acts, first_layer, dropout, seed, first_position):
    """:func:`fastann.kernels.network.forward_with_offsets` with dropout after hidden layers.

    Parameters
    ----------
    x, n_rows, params, layer_sizes, w_off, b_off, a_off, activation, acts, first_layer
        As for ``forward_with_offsets``; with ``first_layer = 1`` the first
        layer's activations are already in ``acts`` (sparse first layer) and
        are dropped here.
    dropout : Dropout
        ``threshold`` (uint64, one per hidden layer; 0: no dropout there),
        ``scale`` (float64, ``1 / (1 - rate)``), ``keep`` and ``dropped``
        (flat, laid out like ``acts``), written.
    seed, first_position : int
        See :func:`dropout_mask`.

    Returns
    -------
    logits : ndarray, shape (n_rows, d_L), a view into ``acts``.
    """
    n_layers = layer_sizes.size - 1
    inp = x[:n_rows]
    if first_layer == 1:
        inp = matrix_view(acts, a_off[0], n_rows, layer_sizes[1])
        if n_layers > 1 and dropout.threshold[0] != np.uint64(0):
            keep = matrix_view(dropout.keep, a_off[0], n_rows, layer_sizes[1])
            dropped = matrix_view(dropout.dropped, a_off[0], n_rows, layer_sizes[1])
            dropout_mask(keep, n_rows, dropout.threshold[0], dropout.scale[0], seed,
                         first_position, 0)
            _apply_mask(inp, keep, dropped)
            inp = dropped
    for l in range(first_layer, n_layers):
        d_in, d_out = layer_sizes[l], layer_sizes[l + 1]
        W = matrix_view(params, w_off[l], d_in, d_out)
        b = params[b_off[l]:b_off[l + 1]]
        out = matrix_view(acts, a_off[l], n_rows, d_out)
        dense_forward(inp, W, b, activation if l < n_layers - 1 else IDENTITY, out)
        inp = out
        if l < n_layers - 1 and dropout.threshold[l] != np.uint64(0):
            keep = matrix_view(dropout.keep, a_off[l], n_rows, d_out)
            dropped = matrix_view(dropout.dropped, a_off[l], n_rows, d_out)
            dropout_mask(keep, n_rows, dropout.threshold[l], dropout.scale[l], seed,
                         first_position, l)
            _apply_mask(out, keep, dropped)
            inp = dropped
    return inp


@njit(cache=True, error_model="numpy")
def backward_with_dropout(x, n_rows, params, layer_sizes, w_off, b_off, a_off, activation,
                          acts, scratch, grads, first_layer, dropout):
    """:func:`fastann.kernels.network.backward_with_offsets` through the masks of the forward pass.

    For a layer whose input was dropped: ``dW = Ã^T dZ``, ``db = sum_rows(dZ)``
    and ``dX = (dZ W^T) * keep * f'(A)``; other layers as without dropout.
    Returns the gradient w.r.t. the first layer's pre-activation when
    ``first_layer = 1`` (for :func:`fastann.kernels.sparse.sparse_dense_backward`).
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
            dX = matrix_view(scratch, ((n_layers - 1 - l) % 2) * half, n_rows, d_in)
            if dropout.threshold[l - 1] != np.uint64(0):
                dropped = matrix_view(dropout.dropped, a_off[l - 1], n_rows, d_in)
                keep = matrix_view(dropout.keep, a_off[l - 1], n_rows, d_in)
                np.dot(dropped.T, dZ, dW)
                column_sums(dZ, db)
                np.dot(dZ, W.T, dX)
                for i in range(n_rows):
                    for j in range(d_in):
                        dX[i, j] *= keep[i, j]
                activation_backward_inplace(dX, A_in, activation)
            else:
                dense_backward(A_in, W, dZ, dW, db, dX, activation)
            dZ = dX
    return dZ
