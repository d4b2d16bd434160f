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

from .augment import ELASTIC, ELASTIC_ALPHA, ELASTIC_SIGMA, NO_AUGMENT, blur_matrix
from .dropout import keep_threshold
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
                             ["inputs", "labels", "acts", "deltas", "chunk_loss", "chunk_correct",
                              "grads", "wt", "wt_grads"])

#: Rows of a mini-batch are processed in this many chunks by
#: :func:`fastann.kernels.fused.train_epoch_parallel`, whatever the thread count.
ROW_CHUNKS = 16

#: The first layer's weight gradient is computed in this many contiguous
#: blocks of input columns (rows of ``W_0``), each small enough to stay in L1
#: cache while the batch's rows add into it (784 x 128 floats: 12.5 KiB each).
COLUMN_BLOCKS = 32

#: Work buffers of batched inference.
PredictionBuffers = namedtuple("PredictionBuffers", ["inputs", "acts"])

#: Per-row weights of the weighted mean loss: ``weights`` (float64, one per
#: training row) and the work buffer ``row_weights`` (float64, ``capacity``);
#: both empty when the rows are not weighted.
SampleWeights = namedtuple("SampleWeights", ["weights", "row_weights"])

#: Inverted dropout (:mod:`fastann.kernels.dropout`): per hidden layer the
#: ``threshold`` (uint64, 0 for no dropout) and ``scale`` (float64,
#: ``1 / (1 - rate)``); ``keep`` and ``dropped``: flat buffers laid out like
#: the activation buffer (float, empty when no layer drops).
Dropout = namedtuple("Dropout", ["threshold", "scale", "keep", "dropped"])

#: Augmentation while gathering (:mod:`fastann.kernels.augment`): ``mode`` (int
#: code), ``image_shape`` (int64 ``(height, width)``), ``blur_rows`` and
#: ``blur_cols`` (float64 Gaussian blur matrices for ``elastic``, shapes
#: ``(height, height)`` and ``(width, width)``), ``alpha`` (float) and ``work``
#: (float64, ``3 * height * width``: one row's displacement fields).
Augmentation = namedtuple("Augmentation",
                          ["mode", "image_shape", "blur_rows", "blur_cols", "alpha", "work"])

#: The optional parts of a training epoch
#: (:func:`fastann.kernels.epoch_options.train_epoch_with_options`), and the
#: epoch's random ``seed`` (int) and ``offset`` (int: position in the epoch of
#: the first row of the ``order`` passed), which key the per-row random streams.
EpochOptions = namedtuple("EpochOptions",
                          ["sample_weight", "dropout", "augmentation", "seed", "offset"])


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


def epoch_options(layer_sizes, capacity, dtype, sample_weight=None, dropout_rates=None,
                  augment=NO_AUGMENT, image_shape=None):
    """An :data:`EpochOptions` with its work buffers allocated (seed and offset 0).

    Parameters
    ----------
    layer_sizes : array-like of int, ``[d_0, ..., d_L]``
    capacity : int
        Rows of the training buffers.
    dtype : numpy float dtype
        Of the parameters (``keep`` and ``dropped`` buffers).
    sample_weight : ndarray, shape (n_samples,), optional
        Per-row weights (converted to float64); None: unweighted.
    dropout_rates : sequence of float, optional
        Drop probability of each hidden layer, each in ``[0, 1)``; None: none.
    augment : int
        Code from :mod:`fastann.kernels.augment` (``NO_AUGMENT`` for none).
    image_shape : tuple (height, width), optional
        Needed with ``augment``; ``height * width == d_0``.

    Returns
    -------
    EpochOptions

    Raises
    ------
    ValueError
        ``dropout_rates`` of the wrong length or outside ``[0, 1)``, or an
        ``image_shape`` that does not hold ``d_0`` pixels.
    """
    sizes = [int(s) for s in layer_sizes]
    n_hidden = len(sizes) - 2
    weights = np.zeros(0) if sample_weight is None else np.ascontiguousarray(sample_weight,
                                                                           np.float64)
    row_weights = np.zeros(capacity if weights.size else 0)
    rates = np.zeros(n_hidden) if dropout_rates is None else np.asarray(dropout_rates, np.float64)
    if rates.shape != (n_hidden,) or np.any(rates < 0) or np.any(rates >= 1):
        raise ValueError(f"dropout needs one rate in [0, 1) per hidden layer ({n_hidden}), "
                         f"got {dropout_rates!r}")
    threshold = np.array([keep_threshold(r) for r in rates], np.uint64)
    buffer = activation_buffer_length(sizes, capacity) if np.any(threshold) else 0
    dropout = Dropout(threshold, 1.0 / (1.0 - rates), np.zeros(buffer, dtype),
                      np.zeros(buffer, dtype))
    shape = np.zeros(2, np.int64)
    work = np.zeros(0)
    if augment != NO_AUGMENT:
        shape[:] = image_shape
        if shape[0] * shape[1] != sizes[0] or np.any(shape <= 0):
            raise ValueError(f"image_shape {tuple(image_shape)} does not hold the "
                             f"{sizes[0]} features of a row")
        work = np.zeros(3 * sizes[0])
    if augment == ELASTIC:
        blur_rows, blur_cols = blur_matrix(shape[0], ELASTIC_SIGMA), blur_matrix(shape[1],
                                                                                ELASTIC_SIGMA)
    else:
        blur_rows = blur_cols = np.zeros((0, 0))
    augmentation = Augmentation(int(augment), shape, blur_rows, blur_cols, float(ELASTIC_ALPHA),
                                work)
    return EpochOptions(SampleWeights(weights, row_weights), dropout, augmentation, 0, 0)


def parallel_buffer_shapes(layer_sizes, capacity, sparse_input):
    """Shape and dtype kind of every :data:`ParallelBuffers` field (as :func:`training_buffer_shapes`).

    ``capacity`` must be at least the batch size; ``deltas`` mirrors ``acts``;
    ``inputs`` (the normalized batch) is empty with ``sparse_input``; ``wt``
    and ``wt_grads`` hold the layers after the first, transposed.
    """
    sizes = [int(s) for s in layer_sizes]
    n_params = sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))
    acts = activation_buffer_length(sizes, capacity)
    n_later = sum(sizes[i] * sizes[i + 1] for i in range(1, len(sizes) - 1))
    return {
        "inputs": ((0 if sparse_input else capacity, sizes[0]), "float"),
        "labels": ((capacity,), "int32"),
        "acts": ((acts,), "float"),
        "deltas": ((acts,), "float"),
        "chunk_loss": ((ROW_CHUNKS,), "float64"),
        "chunk_correct": ((ROW_CHUNKS,), "int64"),
        "grads": ((n_params,), "float"),
        "wt": ((n_later,), "float"),
        "wt_grads": ((n_later,), "float"),
    }
