"""The training epoch with its optional parts: sample weights, dropout, augmentation.

:func:`train_epoch_with_options` is :func:`fastann.kernels.epoch.train_epoch`
plus an :data:`~fastann.kernels.structs.EpochOptions` argument. It is a
separate kernel so that the default epoch (no weights, no dropout, no
augmentation) stays exactly the code it was: the backend calls this one only
when an option is on. With every option off it computes the same bits as
``train_epoch`` (same kernels, same order of operations).

- **Sample weights** (``options.sample_weight``): the loss of a mini-batch
  ``B`` is the weighted mean ``sum_{i in B} w_i loss_i / sum_{i in B} w_i``,
  so row ``i``'s softmax cross-entropy gradient is scaled by
  ``w_i / sum_B w`` instead of ``1 / |B|`` (a mini-batch whose weights sum
  to 0 contributes a zero gradient; its update is still applied, so
  penalties and momentum act). The returned ``loss_sum`` is
  ``sum_i w_i loss_i``.
- **Dropout** (``options.dropout``): :mod:`fastann.kernels.dropout`.
- **Augmentation** (``options.augmentation``): rows are gathered through
  :func:`fastann.kernels.augment.gather_augmented_batch`; with the sparse
  first layer, the augmented rows are gathered densely and then compressed
  (:func:`fastann.kernels.sparse.dense_to_csr`).

Random numbers (masks, transforms) come from per-row streams keyed by
``options.seed`` and the row's position in the epoch, ``options.offset`` +
its index in ``order`` (:mod:`fastann.kernels.streams`).
"""
from numba import njit

from .denormals import flush_denormals, restore_denormals
from .activations import IDENTITY
from .augment import NO_AUGMENT, gather_augmented_batch
from .batching import gather_batch
from .dropout import backward_with_dropout, forward_with_dropout
from .epoch import apply_update, micro_batches
from .loss import softmax_cross_entropy, weighted_softmax_cross_entropy
from .network import activation_offsets, matrix_view, parameter_offsets
from .sparse import dense_to_csr, gather_sparse_batch, sparse_dense_backward, sparse_dense_forward


@njit(cache=True, error_model="numpy")
def train_epoch_with_options(X, y, order, normalization, net, optimizer, hyper, step,
                             batch_size, state, buffers, sparse_input, options):
    """:func:`fastann.kernels.epoch.train_epoch` with sample weights, dropout and augmentation.

    Parameters
    ----------
    X, y, order, normalization, net, optimizer, hyper, step, batch_size, state, buffers, sparse_input
        As for :func:`fastann.kernels.epoch.train_epoch`. With augmentation,
        ``X`` holds images of ``options.augmentation.image_shape``.
    options : EpochOptions
        Built by :func:`fastann.kernels.structs.epoch_options`; ``seed`` and
        ``offset`` set for this call.

    Returns
    -------
    loss_sum : float
        Sum over the epoch's rows of ``w_i * loss_i`` (``w_i = 1`` without
        sample weights), each with the parameters current at its batch.
    n_correct : int
        Rows whose arg-max prediction matched the label (not weighted).
    step : int
        Updates made so far, including this epoch's.
    """
    saved_mxcsr = flush_denormals()  # see fastann.kernels.denormals
    params, layer_sizes, activation = net
    scale, shift = normalization
    grads, grad_sum, inputs, labels = buffers.grads, buffers.grad_sum, buffers.inputs, buffers.labels
    acts, scratch = buffers.acts, buffers.scratch
    row_ptr, nz_index, nz_value = buffers.row_ptr, buffers.nz_index, buffers.nz_value
    weights, row_weights = options.sample_weight
    dropout, augmentation = options.dropout, options.augmentation
    seed, offset = options.seed, options.offset
    weighted = weights.size > 0
    augmenting = augmentation.mode != NO_AUGMENT
    capacity = inputs.shape[0]
    w_off, b_off = parameter_offsets(layer_sizes)
    a_off = activation_offsets(layer_sizes, capacity)
    n_weights = w_off[-1]
    n_layers = layer_sizes.size - 1
    first = 1 if sparse_input else 0
    loss_sum = 0.0
    n_correct = 0
    grad_scale = 0.0
    bounds = micro_batches(order.size, batch_size, capacity)
    for k in range(bounds.shape[0]):
        start, stop, micro_start, micro_stop = bounds[k, 0], bounds[k, 1], bounds[k, 2], bounds[k, 3]
        if micro_start == start:
            if weighted:
                total = 0.0
                for p in range(start, stop):
                    total += weights[order[p]]
                grad_scale = 1.0 / total if total > 0 else 0.0
            else:
                grad_scale = 1.0 / (stop - start)
        n_rows = micro_stop - micro_start
        position = offset + micro_start
        if augmenting:
            gather_augmented_batch(X, y, order, micro_start, micro_stop, scale, shift, inputs,
                                   labels, augmentation, seed, position)
            if sparse_input:
                dense_to_csr(inputs, n_rows, row_ptr, nz_index, nz_value)
        elif sparse_input:
            gather_sparse_batch(X, y, order, micro_start, micro_stop, scale, labels,
                                row_ptr, nz_index, nz_value)
        else:
            gather_batch(X, y, order, micro_start, micro_stop, scale, shift, inputs, labels)
        if sparse_input:
            sparse_dense_forward(row_ptr, nz_index, nz_value, n_rows,
                                 matrix_view(params, w_off[0], layer_sizes[0], layer_sizes[1]),
                                 params[b_off[0]:b_off[1]],
                                 activation if n_layers > 1 else IDENTITY,
                                 matrix_view(acts, a_off[0], n_rows, layer_sizes[1]))
        logits = forward_with_dropout(inputs, n_rows, params, layer_sizes, w_off, b_off, a_off,
                                      activation, acts, first, dropout, seed, position)
        if weighted:
            for i in range(n_rows):
                row_weights[i] = weights[order[micro_start + i]]
            batch_loss, batch_correct = weighted_softmax_cross_entropy(
                logits, labels[:n_rows], row_weights[:n_rows], grad_scale, logits)
        else:
            batch_loss, batch_correct = softmax_cross_entropy(logits, labels[:n_rows],
                                                              grad_scale, logits)
        loss_sum += batch_loss
        n_correct += batch_correct
        target = grads if micro_start == start else grad_sum
        dZ0 = backward_with_dropout(inputs, n_rows, params, layer_sizes, w_off, b_off, a_off,
                                    activation, acts, scratch, target, first, dropout)
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
