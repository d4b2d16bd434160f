"""The named structures the epoch kernels take, and the shapes of their buffers.

Numba compiles ``collections.namedtuple`` arguments as tuples whose fields
are read by name, so a kernel takes a handful of named bundles instead of
two dozen positional arrays. The CPU kernels (:mod:`fastann.kernels.epoch`)
and their CUDA twins (:mod:`fastann.kernels.cuda.epoch`) take the same
bundles, filled with host or device arrays; :func:`training_buffer_shapes`
and :func:`optimizer_state_sizes` are the one description of how large each
array is, which both backends allocate from.
"""
from collections import namedtuple

import numpy as np

from .optimizers import ADAM, ADAMW, MOMENTUM, NESTEROV

#: The network: flat parameters (layout in :mod:`fastann.kernels.network`),
#: ``layer_sizes`` (int64, ``[d_0, ..., d_L]``) and the hidden activation code.
Network = namedtuple("Network", ["params", "layer_sizes", "activation"])

#: Per-feature normalization ``x = raw * scale + shift`` (float, shape ``(d_0,)``).
Normalization = namedtuple("Normalization", ["scale", "shift"])

#: Optimizer hyper-parameters, all Python floats (compiled as one float64 tuple).
Hyperparameters = namedtuple("Hyperparameters",
                             ["learning_rate", "momentum", "beta_1", "beta_2", "epsilon",
                              "l1", "l2"])

#: Optimizer state, each shaped like ``params`` or empty when the optimizer
#: does not use it: ``velocity`` (momentum, Nesterov), ``m`` and ``v`` (Adam's
#: first and second moments).
OptimizerState = namedtuple("OptimizerState", ["velocity", "m", "v"])

#: Work buffers of one training epoch (shapes in :func:`training_buffer_shapes`).
TrainingBuffers = namedtuple("TrainingBuffers",
                             ["grads", "grad_sum", "inputs", "labels", "acts", "scratch",
                              "row_ptr", "nz_index", "nz_value"])

#: Work buffers of :func:`fastann.kernels.fused.train_epoch_parallel`
#: (shapes in :func:`parallel_buffer_shapes`).
ParallelBuffers = namedtuple("ParallelBuffers",
                             ["inputs", "labels", "acts", "deltas", "row_loss", "row_correct",
                              "grads", "wt", "wt_grads", "col_ptr", "col_rows", "col_values",
                              "chunk_counts"])

#: Rows of a mini-batch are processed in this many chunks by
#: :func:`fastann.kernels.fused.train_epoch_parallel`, whatever the thread count.
ROW_CHUNKS = 16

#: Work buffers of batched inference.
PredictionBuffers = namedtuple("PredictionBuffers", ["inputs", "acts"])


def hyperparameters(learning_rate=0.0, momentum=0.0, beta_1=0.0, beta_2=0.0, epsilon=0.0,
                    l1=0.0, l2=0.0):
    """A :data:`Hyperparameters` with every field converted to ``float``.

    Mixing ints and floats would compile a second specialization of every
    kernel, so fields are always floats.
    """
    return Hyperparameters(float(learning_rate), float(momentum), float(beta_1),
                           float(beta_2), float(epsilon), float(l1), float(l2))


def optimizer_state_sizes(optimizer, n_params):
    """Length of ``velocity``, ``m`` and ``v`` for an optimizer code.

    Parameters
    ----------
    optimizer : int
        Code from :mod:`fastann.kernels.optimizers`.
    n_params : int

    Returns
    -------
    dict
        ``{"velocity": int, "m": int, "v": int}``; unused state has length 0.
    """
    momentum = optimizer in (MOMENTUM, NESTEROV)
    adam = optimizer in (ADAM, ADAMW)
    return {"velocity": n_params if momentum else 0,
            "m": n_params if adam else 0,
            "v": n_params if adam else 0}


def activation_buffer_length(layer_sizes, capacity):
    """Length of the flat activation buffer: ``capacity * (d_1 + ... + d_L)``."""
    return int(capacity) * int(np.sum(np.asarray(layer_sizes)[1:]))


def training_buffer_shapes(layer_sizes, capacity, batch_size, sparse_input):
    """Shape and dtype kind of every :data:`TrainingBuffers` field.

    Parameters
    ----------
    layer_sizes : array-like of int, ``[d_0, ..., d_L]``
    capacity : int
        Rows processed at once; mini-batches larger than this are split into
        micro-batches whose gradients are summed in ``grad_sum``.
    batch_size : int
    sparse_input : bool
        Whether the first layer runs on the nonzero inputs only (CSR buffers).

    Returns
    -------
    dict
        ``{name: (shape, kind)}`` with ``kind`` one of ``"float"`` (the
        parameters' dtype), ``"int32"`` or ``"int64"``.
    """
    sizes = [int(s) for s in layer_sizes]
    n_params = sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))
    widest_hidden = max(sizes[1:-1]) if len(sizes) > 2 else 1
    csr = capacity * sizes[0] if sparse_input else 0
    return {
        "grads": ((n_params,), "float"),
        "grad_sum": ((n_params if batch_size > capacity else 0,), "float"),
        "inputs": ((capacity, sizes[0]), "float"),
        "labels": ((capacity,), "int32"),
        "acts": ((activation_buffer_length(sizes, capacity),), "float"),
        "scratch": ((2 * capacity * widest_hidden,), "float"),
        "row_ptr": ((capacity + 1,), "int64"),
        "nz_index": ((csr,), "int32"),
        "nz_value": ((csr,), "float"),
    }


def parallel_buffer_shapes(layer_sizes, capacity, sparse_input):
    """Shape and dtype kind of every :data:`ParallelBuffers` field (as :func:`training_buffer_shapes`).

    ``capacity`` must be at least the batch size; ``deltas`` mirrors ``acts``;
    the mini-batch's compressed columns (``col_*``) are empty unless
    ``sparse_input``, and ``inputs`` is empty when it is; ``wt`` and
    ``wt_grads`` hold the layers after the first, transposed.
    """
    sizes = [int(s) for s in layer_sizes]
    n_params = sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))
    nnz = capacity * sizes[0] if sparse_input else 0
    acts = activation_buffer_length(sizes, capacity)
    n_later = sum(sizes[i] * sizes[i + 1] for i in range(1, len(sizes) - 1))
    return {
        "inputs": ((0 if sparse_input else capacity, sizes[0]), "float"),
        "labels": ((capacity,), "int32"),
        "acts": ((acts,), "float"),
        "deltas": ((acts,), "float"),
        "row_loss": ((capacity,), "float64"),
        "row_correct": ((capacity,), "int64"),
        "grads": ((n_params,), "float"),
        "wt": ((n_later,), "float"),
        "wt_grads": ((n_later,), "float"),
        "col_ptr": ((sizes[0] + 1 if sparse_input else 1,), "int64"),
        "col_rows": ((nnz,), "int32"),
        "col_values": ((nnz,), "float"),
        "chunk_counts": ((ROW_CHUNKS, sizes[0] if sparse_input else 1), "int64"),
    }
