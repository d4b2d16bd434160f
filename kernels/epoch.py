"""Whole-epoch training and batched inference, compiled end to end.

:func:`train_epoch` runs every mini-batch of an epoch (gather + normalize,
forward, softmax cross-entropy, backward, optimizer update) without returning
to Python, into buffers allocated once per ``fit``; its arguments travel as
the named structures of :mod:`fastann.kernels.structs`. Mini-batches larger than
the buffers' ``capacity`` (full-batch gradient descent, say) are processed as
micro-batches whose gradients are summed before the single update, so memory
stays bounded by ``capacity`` rows whatever the batch size.
"""
import numpy as np
from numba import njit

from .denormals import flush_denormals, restore_denormals
from .batching import gather_batch
from .loss import log_softmax_inplace, softmax_cross_entropy
from .network import (activation_offsets, backward_with_offsets, forward_with_offsets,
                      matrix_view, parameter_offsets)
from .sparse import gather_sparse_batch, sparse_dense_backward, sparse_dense_forward
from .activations import IDENTITY
from .optimizers import (ADAM, ADAMW, MOMENTUM, NESTEROV, SGD, adam_update,
                         momentum_update, nesterov_update, sgd_update)


@njit(cache=True, error_model="numpy")
def apply_update(optimizer, params, grads, state, step, hyper, n_weights):
    """Dispatch one in-place optimizer step.

    Parameters
    ----------
    optimizer : int
        Code from :mod:`fastann.kernels.optimizers`.
    params, grads : ndarray, shape (n_params,), float
        ``params`` is updated in place.
    state : OptimizerState
        ``velocity`` (momentum, Nesterov) or ``m`` and ``v`` (Adam, AdamW),
        updated in place.
    step : int
        1-based index of this update (Adam's ``t``).
    hyper : Hyperparameters
    n_weights : int
        Entries ``[0, n_weights)`` of ``params`` are weights (penalized).
    """
    lr, l1, l2 = hyper.learning_rate, hyper.l1, hyper.l2
    if optimizer == SGD:
        sgd_update(params, grads, lr, l1, l2, n_weights)
    elif optimizer == MOMENTUM:
        momentum_update(params, grads, state.velocity, lr, hyper.momentum, l1, l2, n_weights)
    elif optimizer == NESTEROV:
        nesterov_update(params, grads, state.velocity, lr, hyper.momentum, l1, l2, n_weights)
    elif optimizer == ADAM or optimizer == ADAMW:
        adam_update(params, grads, state.m, state.v, step, lr, hyper.beta_1, hyper.beta_2,
                    hyper.epsilon, l1, l2, n_weights, optimizer == ADAMW)
    else:
        raise ValueError("unknown optimizer code")


@njit(cache=True, error_model="numpy")
def micro_batches(n, batch_size, capacity):
    """The mini-batches of an epoch over ``n`` rows, split into micro-batches.

    Parameters
    ----------
    n, batch_size, capacity : int
        Rows in the epoch, rows per update, rows that the buffers hold.

    Returns
    -------
    ndarray, shape (n_micro_batches, 4), int64
        Rows ``[batch_start, batch_stop, micro_start, micro_stop]`` in order:
        positions in the epoch's row order. A mini-batch's gradient is the sum
        over its micro-batches, and the update follows its last one
        (``micro_stop == batch_stop``).
    """
    count = 0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        count += (stop - start + capacity - 1) // capacity
    bounds = np.empty((count, 4), np.int64)
    k = 0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        for micro_start in range(start, stop, capacity):
            bounds[k, 0], bounds[k, 1] = start, stop
            bounds[k, 2], bounds[k, 3] = micro_start, min(micro_start + capacity, stop)
            k += 1
    return bounds


@njit(cache=True, error_model="numpy")
def train_epoch(X, y, order, normalization, net, optimizer, hyper, step, batch_size,
                state, buffers, sparse_input):
    """Train for one pass over ``order`` and return the running loss and accuracy.

    Parameters
    ----------
    X : ndarray, shape (n_samples, d_0), uint8 or float, C-contiguous
    y : ndarray, shape (n_samples,), int32, values in ``[0, d_L)``
    order : ndarray, shape (n_used,), int64
        Rows to visit, in order (already shuffled by the caller).
    normalization : Normalization
        Per-feature ``scale`` and ``shift`` (see
        :func:`fastann.kernels.batching.gather_batch`).
    net : Network
        ``params`` (flat, float32 or float64, updated in place; layout in
        :mod:`fastann.kernels.network`), ``layer_sizes`` (int64) and the hidden
        ``activation`` code.
    optimizer : int
        Code from :mod:`fastann.kernels.optimizers`.
    hyper : Hyperparameters
        This epoch's learning rate and the optimizer's other constants.
    step : int
        Number of updates made before this epoch (Adam's ``t - 1``).
    batch_size : int
        Samples per update; the last batch of an epoch may be smaller.
    state : OptimizerState
        Updated in place (sizes in :func:`~fastann.kernels.structs.optimizer_state_sizes`).
    buffers : TrainingBuffers
        Work arrays (shapes in :func:`~fastann.kernels.structs.training_buffer_shapes`);
        ``inputs.shape[0]`` is the capacity in rows. Batches larger than the
        capacity run as micro-batches whose gradients are summed in
        ``grad_sum`` before the single update.
    sparse_input : bool
        Compute the first layer from the nonzero inputs only
        (:mod:`fastann.kernels.sparse`, CSR buffers ``row_ptr``, ``nz_index``,
        ``nz_value``); requires ``shift == 0``.

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
    saved_mxcsr = flush_denormals()  # see fastann.kernels.denormals
    params, layer_sizes, activation = net
    scale, shift = normalization
    grads, grad_sum, inputs, labels = buffers.grads, buffers.grad_sum, buffers.inputs, buffers.labels
    acts, scratch = buffers.acts, buffers.scratch
    row_ptr, nz_index, nz_value = buffers.row_ptr, buffers.nz_index, buffers.nz_value
    capacity = inputs.shape[0]
    w_off, b_off = parameter_offsets(layer_sizes)
    a_off = activation_offsets(layer_sizes, capacity)
    n_weights = w_off[-1]
    n_layers = layer_sizes.size - 1
    first = 1 if sparse_input else 0
    loss_sum = 0.0
    n_correct = 0
    bounds = micro_batches(order.size, batch_size, capacity)
    for k in range(bounds.shape[0]):
        start, stop, micro_start, micro_stop = bounds[k, 0], bounds[k, 1], bounds[k, 2], bounds[k, 3]
        grad_scale = 1.0 / (stop - start)
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
        logits = forward_with_offsets(inputs, n_rows, params, layer_sizes, w_off, b_off, a_off,
                                      activation, acts, first)
        batch_loss, batch_correct = softmax_cross_entropy(logits, labels[:n_rows], grad_scale,
                                                          logits)
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
        if micro_stop == stop:
            step += 1
            apply_update(optimizer, params, grads, state, step, hyper, n_weights)
    restore_denormals(saved_mxcsr)
    return loss_sum, n_correct, step


@njit(cache=True, error_model="numpy")
def predict_log_proba(X, normalization, net, buffers, out):
    """Log-probabilities of every class for every row of ``X``, in chunks.

    Parameters
    ----------
    X : ndarray, shape (n_samples, d_0), uint8 or float
    normalization, net
        As for :func:`train_epoch`.
    buffers : PredictionBuffers
        ``inputs`` of shape ``(capacity, d_0)`` and the flat ``acts`` buffer
        (length :func:`~fastann.kernels.structs.activation_buffer_length`).
    out : ndarray, shape (n_samples, d_L), float, written in place
    """
    params, layer_sizes, activation = net
    scale, shift = normalization
    inputs, acts = buffers
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
