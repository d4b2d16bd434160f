"""Whole-epoch training and batched inference, compiled end to end.

:func:`train_epoch` runs every mini-batch of an epoch (gather + normalize,
forward, softmax cross-entropy, backward, optimizer update) without returning
to Python, into buffers allocated once per ``fit``. Mini-batches larger than
the buffers' ``capacity`` (full-batch gradient descent, say) are processed as
micro-batches whose gradients are summed before the single update, so memory
stays bounded by ``capacity`` rows whatever the batch size.
"""
import numpy as np
from numba import njit

from .batching import gather_batch
from .loss import log_softmax_inplace, softmax_cross_entropy
from .network import (activation_offsets, backward_with_offsets, forward_with_offsets,
                      matrix_view, parameter_offsets)
from .sparse import gather_sparse_batch, sparse_dense_backward, sparse_dense_forward
from .activations import IDENTITY
from .optimizers import (ADAM, ADAMW, MOMENTUM, NESTEROV, SGD, adam_update,
                         momentum_update, nesterov_update, sgd_update)

# Positions in the ``hyper`` vector passed to train_epoch.
LEARNING_RATE, MOMENTUM_COEF, BETA1, BETA2, EPSILON, L1, L2 = range(7)
N_HYPER = 7


@njit(cache=True, error_model="numpy")
def apply_update(optimizer, params, grads, state1, state2, step, hyper, n_weights):
    """Dispatch one in-place optimizer step (codes in :mod:`kernels.optimizers`)."""
    lr, l1, l2 = hyper[LEARNING_RATE], hyper[L1], hyper[L2]
    if optimizer == SGD:
        sgd_update(params, grads, lr, l1, l2, n_weights)
    elif optimizer == MOMENTUM:
        momentum_update(params, grads, state1, lr, hyper[MOMENTUM_COEF], l1, l2, n_weights)
    elif optimizer == NESTEROV:
        nesterov_update(params, grads, state1, lr, hyper[MOMENTUM_COEF], l1, l2, n_weights)
    elif optimizer == ADAM or optimizer == ADAMW:
        adam_update(params, grads, state1, state2, step, lr, hyper[BETA1], hyper[BETA2],
                    hyper[EPSILON], l1, l2, n_weights, optimizer == ADAMW)
    else:
        raise ValueError("unknown optimizer code")


@njit(cache=True, error_model="numpy")
def train_epoch(X, y, order, scale, shift, params, layer_sizes, activation,
                optimizer, hyper, step, batch_size,
                grads, grad_sum, state1, state2, inputs, labels, acts, scratch,
                sparse_input, row_ptr, nz_index, nz_value):
    """Train for one pass over ``order`` and return the running loss and accuracy.

    Parameters
    ----------
    X : ndarray, shape (n_samples, d_0), uint8 or float, C-contiguous
    y : ndarray, shape (n_samples,), int32, values in ``[0, d_L)``
    order : ndarray, shape (n_used,), int64
        Rows to visit, in order (already shuffled by the caller).
    scale, shift : ndarray, shape (d_0,), float
        Per-feature normalization (see :func:`kernels.batching.gather_batch`).
    params : ndarray, shape (n_params,), float32 or float64
        Flat parameters (layout in :mod:`kernels.network`), updated in place.
    layer_sizes : ndarray, shape (n_layers + 1,), int64
    activation, optimizer : int
        Codes from :mod:`kernels.activations` and :mod:`kernels.optimizers`.
    hyper : ndarray, shape (7,), float64
        Learning rate, momentum, beta1, beta2, epsilon, l1, l2 (indices are
        this module's constants).
    step : int
        Number of updates made before this epoch (Adam's ``t - 1``).
    batch_size : int
        Samples per update; the last batch of an epoch may be smaller.
    grads, grad_sum : ndarray, shape (n_params,), float
        Gradient buffers (``grad_sum`` is used only when a batch is larger
        than ``capacity`` and must be split).
    state1, state2 : ndarray, shape (n_params,), float
        Optimizer state (velocity, or Adam's ``m`` and ``v``), updated in place.
    inputs : ndarray, shape (capacity, d_0), float
    labels : ndarray, shape (capacity,), int32
    acts, scratch : ndarray, flat float buffers sized by
        :func:`kernels.network.activation_offsets` and ``2 * capacity * max hidden width``.
    sparse_input : bool
        Compute the first layer from the nonzero inputs only
        (:mod:`kernels.sparse`); requires ``shift == 0``.
    row_ptr, nz_index, nz_value : ndarray
        CSR buffers of shapes ``(capacity + 1,)`` int64, ``(capacity * d_0,)``
        int32 and float; may be empty when ``sparse_input`` is False.

    Returns
    -------
    loss_sum : float
        Sum of per-sample cross-entropy losses (nats) over the epoch, each
        computed with the parameters current at its batch (no penalty term).
    n_correct : int
        Samples whose arg-max prediction matched the label, likewise.
    step : int
        Updates made so far, including this epoch's.
    """
    n = order.size
    capacity = inputs.shape[0]
    w_off, b_off = parameter_offsets(layer_sizes)
    a_off = activation_offsets(layer_sizes, capacity)
    n_weights = w_off[-1]
    n_layers = layer_sizes.size - 1
    loss_sum = 0.0
    n_correct = 0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        grad_scale = 1.0 / (stop - start)
        for micro_start in range(start, stop, capacity):
            micro_stop = min(micro_start + capacity, stop)
            n_rows = micro_stop - micro_start
            if sparse_input:
                gather_sparse_batch(X, y, order, micro_start, micro_stop, scale, labels,
                                    row_ptr, nz_index, nz_value)
                sparse_dense_forward(row_ptr, nz_index, nz_value, n_rows,
                                     matrix_view(params, w_off[0], layer_sizes[0], layer_sizes[1]),
                                     params[b_off[0]:b_off[1]],
                                     activation if n_layers > 1 else IDENTITY,
                                     matrix_view(acts, a_off[0], n_rows, layer_sizes[1]))
            else:
                gather_batch(X, y, order, micro_start, micro_stop, scale, shift, inputs, labels)
            first = 1 if sparse_input else 0
            logits = forward_with_offsets(inputs, n_rows, params, layer_sizes, w_off, b_off, a_off,
                                          activation, acts, first)
            batch_loss, batch_correct = softmax_cross_entropy(logits, labels[:n_rows], grad_scale, logits)
            loss_sum += batch_loss
            n_correct += batch_correct
            target = grads if micro_start == start else grad_sum
            dZ0 = backward_with_offsets(inputs, n_rows, params, layer_sizes, w_off, b_off, a_off,
                                        activation, acts, scratch, target, first)
            if sparse_input:
                sparse_dense_backward(row_ptr, nz_index, nz_value, n_rows, dZ0,
                                      matrix_view(target, w_off[0], layer_sizes[0], layer_sizes[1]),
                                      target[b_off[0]:b_off[1]])
            if micro_start != start:
                for i in range(grads.size):
                    grads[i] += grad_sum[i]
        step += 1
        apply_update(optimizer, params, grads, state1, state2, step, hyper, n_weights)
    return loss_sum, n_correct, step


@njit(cache=True, error_model="numpy")
def predict_log_proba(X, scale, shift, params, layer_sizes, activation, inputs, acts, out):
    """Log-probabilities of every class for every row of ``X``, in chunks.

    Parameters
    ----------
    X : ndarray, shape (n_samples, d_0), uint8 or float
    scale, shift, params, layer_sizes, activation
        As for :func:`train_epoch`.
    inputs : ndarray, shape (capacity, d_0), float
    acts : ndarray, flat float buffer (see :func:`train_epoch`)
    out : ndarray, shape (n_samples, d_L), float, written in place
    """
    n = X.shape[0]
    capacity = inputs.shape[0]
    order = np.arange(n)
    dummy_y = np.zeros(n, np.int32)
    labels = np.zeros(capacity, np.int32)
    w_off, b_off = parameter_offsets(layer_sizes)
    a_off = activation_offsets(layer_sizes, capacity)
    for start in range(0, n, capacity):
        stop = min(start + capacity, n)
        n_rows = stop - start
        gather_batch(X, dummy_y, order, start, stop, scale, shift, inputs, labels)
        logits = forward_with_offsets(inputs, n_rows, params, layer_sizes, w_off, b_off, a_off,
                                      activation, acts, 0)
        log_softmax_inplace(logits)
        out[start:stop] = logits
