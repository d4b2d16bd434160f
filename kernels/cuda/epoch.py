"""Whole-epoch GPU training and batched inference: host loops over device-only data.

:func:`gpu_train_epoch` mirrors :func:`fastann.kernels.train_epoch` argument for
argument and returns the same ``(loss_sum, n_correct, step)``, but every
array it touches lives on the device: the dataset (uint8 stays uint8), the
labels, the shuffled order, the flat parameters, gradients, optimizer state
and the activation/scratch buffers. The Python loop only launches kernels;
nothing is copied between host and device inside an epoch, except that a
host ``order`` is uploaded once at the start (one host-to-device copy per
epoch) and the two loss/correct counters are read back once at the end.

Launches per optimizer step, for ``L`` dense layers (``L = len(hidden) + 1``)
and a mini-batch that fits in ``capacity`` rows:

=====================================  ==========  ==========================================
kernel                                 launches    fused work
=====================================  ==========  ==========================================
gather (:func:`gpu_gather_batch`)      1           index, normalize, copy labels
dense forward                          L           ``X @ W`` tiles + bias + activation
softmax cross-entropy                  1           loss, correct count (atomics), gradient
dense backward                         L           ``dW``, ``db`` (column sums) and ``dX *
                                                   f'(X)`` of one layer in one grid
optimizer                              1           ``m``, ``v``, weight (Adam), penalty
=====================================  ==========  ==========================================

so ``2 L + 3`` launches per step (7 for one hidden layer), plus one launch per
epoch to zero the counters. A mini-batch larger than ``capacity`` is split
into micro-batches of ``2 L + 2`` launches each whose backward kernels add
into the gradient (no ``grad_sum`` buffer and no summing launch), followed by
the single update: see :func:`launches_per_step`. All launches go to the
default stream in order, so no synchronization is needed between them.
"""
from collections import namedtuple

import numpy as np
from numba import cuda

from ..activations import IDENTITY
from ..epoch import micro_batches
from ..network import activation_offsets, parameter_offsets
from ..optimizers import ADAM, ADAMW, MOMENTUM, NESTEROV, SGD
from . import optimizers as _opt
from ._launch import (DEFAULT_ROWS_PER_BLOCK, DEFAULT_THREADS, DEFAULT_TILE, float_dtype,
                      n_blocks)
from .batching import _gather, _gather_rows
from .dense import backward_grid, dense_kernels, forward_grid
from .loss import loss_kernels, softmax_grid


def launches_per_step(n_layers, micro_batches=1):
    """Kernel launches for one optimizer step of :func:`gpu_train_epoch`."""
    return micro_batches * (2 * n_layers + 2) + 1


@cuda.jit(cache=True)
def _zero(a):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] = 0


def _matrix(flat, offset, rows, cols):
    offset, rows, cols = int(offset), int(rows), int(cols)
    return flat[offset:offset + rows * cols].reshape(rows, cols)


class _Network:
    """Per-layer device views of the flat buffers and cached launch shapes."""

    def __init__(self, params, layer_sizes, activation, acts, capacity, tile,
                 grads=None, scratch=None):
        sizes = [int(s) for s in layer_sizes]
        self.sizes = sizes
        self.n_layers = len(sizes) - 1
        self.tile = tile
        self.dtype = float_dtype(params)
        w_off, b_off = parameter_offsets(np.asarray(layer_sizes, np.int64))
        a_off = activation_offsets(np.asarray(layer_sizes, np.int64), capacity)
        self.n_weights = int(w_off[-1])
        L = self.n_layers
        self.W = [_matrix(params, w_off[l], sizes[l], sizes[l + 1]) for l in range(L)]
        self.b = [params[int(b_off[l]):int(b_off[l + 1])] for l in range(L)]
        self.out = [_matrix(acts, a_off[l], capacity, sizes[l + 1]) for l in range(L)]
        self.codes = [int(activation) if l < L - 1 else IDENTITY for l in range(L)]
        self.activation = int(activation)
        if grads is not None:
            self.dW = [_matrix(grads, w_off[l], sizes[l], sizes[l + 1]) for l in range(L)]
            self.db = [grads[int(b_off[l]):int(b_off[l + 1])] for l in range(L)]
            half = scratch.size // 2
            # dX of layer l (l >= 1) goes to the scratch half that the CPU
            # twin uses, so the gradient being written never aliases the one
            # being read.
            self.dX = [None] + [_matrix(scratch, ((L - 1 - l) % 2) * half, capacity, sizes[l])
                                for l in range(1, L)]
        self.forward, self.backward = dense_kernels(tile, self.dtype)
        self._shapes = {}

    def shapes(self, n_rows):
        """Launch shapes for ``n_rows`` live rows (cached: at most a few per epoch)."""
        got = self._shapes.get(n_rows)
        if got is None:
            s, t = self.sizes, self.tile
            fwd = [forward_grid(n_rows, s[l + 1], t) for l in range(self.n_layers)]
            bwd = [backward_grid(n_rows, s[l], s[l + 1], t, l > 0) for l in range(self.n_layers)]
            got = self._shapes[n_rows] = (fwd, bwd)
        return got

    def forward_pass(self, inputs, n_rows):
        """``L`` launches; returns the logits view (capacity rows, ``n_rows`` live)."""
        fwd, _ = self.shapes(n_rows)
        inp = inputs
        for l in range(self.n_layers):
            grid, block = fwd[l]
            self.forward[grid, block](inp, self.W[l], self.b[l], self.codes[l], self.out[l],
                                      n_rows)
            inp = self.out[l]
        return inp

    def backward_pass(self, inputs, n_rows, accumulate):
        """``L`` launches: back-propagate the gradient stored over the logits."""
        _, bwd = self.shapes(n_rows)
        dZ = self.out[-1]
        for l in range(self.n_layers - 1, -1, -1):
            grid, block, per_row, n_dw = bwd[l]
            if l == 0:
                X, dX = inputs, dZ  # dX unused (no dX tiles): pass a same-typed array
            else:
                X, dX = self.out[l - 1], self.dX[l]
            self.backward[grid, block](X, self.W[l], dZ, self.dW[l], self.db[l], dX,
                                       self.activation, n_rows, accumulate, per_row, n_dw)
            dZ = dX


class _Updater:
    """One optimizer launch per step, with the epoch-constant scalars precomputed."""

    def __init__(self, optimizer, params, grads, state, hyper, n_weights, threads):
        dt = float_dtype(params).type
        self.optimizer = int(optimizer)
        self.hyper = hyper
        self.grid = n_blocks(params.size, threads)
        self.threads = threads
        lr, l1, l2 = hyper.learning_rate, hyper.l1, hyper.l2
        mu = dt(hyper.momentum)
        nw = int(n_weights)
        if self.optimizer == SGD:
            self.kernel, self.args = _opt._sgd, (params, grads, dt(lr), dt(l1), dt(l2), nw)
        elif self.optimizer == MOMENTUM:
            self.kernel = _opt._momentum
            self.args = (params, grads, state.velocity, dt(lr), mu, dt(l1), dt(l2), nw)
        elif self.optimizer == NESTEROV:
            self.kernel = _opt._nesterov
            self.args = (params, grads, state.velocity, dt(lr), mu, dt(1.0) + mu, dt(l1),
                         dt(l2), nw)
        elif self.optimizer in (ADAM, ADAMW):
            self.kernel = _opt._adam
            self.dtype = float_dtype(params)
            self.arrays = (params, grads, state.m, state.v)
            self.n_weights = nw
        else:
            raise ValueError("unknown optimizer code")

    def __call__(self, step):
        if self.optimizer in (ADAM, ADAMW):
            h = self.hyper
            scalars = _opt.adam_scalars(self.dtype, step, h.learning_rate, h.beta_1, h.beta_2,
                                        h.epsilon, h.l1, h.l2, self.optimizer == ADAMW)
            self.kernel[self.grid, self.threads](*self.arrays, *scalars, self.n_weights)
        else:
            self.kernel[self.grid, self.threads](*self.args)


#: Device work buffers of :func:`gpu_train_epoch`: the fields of
#: :data:`fastann.kernels.TrainingBuffers` that the GPU uses (micro-batches
#: accumulate in the backward kernels, so no ``grad_sum``; the first layer is
#: always dense, so no CSR buffers), plus the loss/correct ``counters``
#: (float64, shape (2,)).
GpuTrainingBuffers = namedtuple("GpuTrainingBuffers",
                                ["grads", "inputs", "labels", "acts", "scratch", "counters"])


def gpu_apply_update(optimizer, params, grads, state, step, hyper, n_weights, threads=None):
    """GPU twin of :func:`fastann.kernels.apply_update` (``hyper`` and ``step`` on the host)."""
    threads = threads or DEFAULT_THREADS
    _Updater(optimizer, params, grads, state, hyper, n_weights, threads)(step)


def gpu_train_epoch(X, y, order, normalization, net, optimizer, hyper, step, batch_size,
                    state, buffers, *, tile=None, threads=None, rows_per_block=None):
    """GPU twin of :func:`fastann.kernels.train_epoch`: one pass over ``order``.

    Arguments are those of the CPU kernel, with device arrays inside the
    named structures, except that ``net.layer_sizes`` is a small host array
    read by the launching loop, ``hyper`` holds host floats, and ``buffers``
    is a :data:`GpuTrainingBuffers`. The mini-batch / micro-batch bounds come
    from the same :func:`fastann.kernels.micro_batches` as on the CPU.

    Parameters
    ----------
    X : device array, shape (n_samples, d_0), uint8 or float
    y : device array, shape (n_samples,), int32
    order : device array, shape (n_used,), int64
        Rows to visit; a host ndarray is accepted and uploaded once.
    normalization : Normalization of device arrays, shape (d_0,), dtype of ``params``
    net : Network
        ``params`` (device, float32 or float64, updated in place),
        ``layer_sizes`` (host int64) and the activation code.
    optimizer : int
    hyper : Hyperparameters
    step : int
        Updates made before this epoch (Adam's ``t - 1``).
    batch_size : int
    state : OptimizerState of device arrays (unused ones may have size 0)
    buffers : GpuTrainingBuffers
        Sized from :func:`fastann.kernels.training_buffer_shapes`;
        ``inputs.shape[0]`` is the capacity in rows.
    tile, threads, rows_per_block : int, optional
        Launch-shape overrides (defaults in :mod:`fastann.kernels.cuda._launch`).

    Returns
    -------
    loss_sum : float
    n_correct : int
    step : int
    """
    tile = tile or DEFAULT_TILE
    threads = threads or DEFAULT_THREADS
    rows_per_block = rows_per_block or DEFAULT_ROWS_PER_BLOCK
    if isinstance(order, np.ndarray):
        order = cuda.to_device(np.ascontiguousarray(order, np.int64))
    params, layer_sizes, activation = net
    scale, shift = normalization
    inputs, labels, counters = buffers.inputs, buffers.labels, buffers.counters
    capacity = inputs.shape[0]
    network = _Network(params, layer_sizes, activation, buffers.acts, capacity, tile,
                       grads=buffers.grads, scratch=buffers.scratch)
    update = _Updater(optimizer, params, buffers.grads, state, hyper, network.n_weights,
                      threads)
    dt = network.dtype.type
    softmax, _ = loss_kernels(rows_per_block, network.dtype)
    logits = network.out[-1]
    d0 = inputs.shape[1]
    step = int(step)

    _zero[1, 32](counters)
    for start, stop, micro_start, micro_stop in micro_batches(order.shape[0], int(batch_size),
                                                              capacity).tolist():
        grad_scale = dt(1.0 / (stop - start))
        n_rows = micro_stop - micro_start
        _gather[n_blocks(n_rows * d0, threads), threads](
            X, y, order, micro_start, n_rows, scale, shift, inputs, labels)
        network.forward_pass(inputs, n_rows)
        grid, block = softmax_grid(n_rows, rows_per_block)
        softmax[grid, block](logits, labels, grad_scale, logits, counters, n_rows)
        network.backward_pass(inputs, n_rows, 0 if micro_start == start else 1)
        if micro_stop == stop:
            step += 1
            update(step)
    loss_sum, n_correct = counters.copy_to_host()
    return float(loss_sum), int(round(n_correct)), step


def gpu_predict_log_proba(X, normalization, net, buffers, out, tile=None, threads=None,
                          rows_per_block=None):
    """GPU twin of :func:`fastann.kernels.predict_log_proba` (device arrays in, ``out`` written).

    ``buffers`` is a :data:`fastann.kernels.PredictionBuffers` of device
    arrays. Per chunk of ``capacity = buffers.inputs.shape[0]`` rows: 1
    gather, ``L`` dense forward launches and 1 log-softmax launch that writes
    straight into ``out``; nothing is copied back (the caller copies ``out``).
    """
    tile = tile or DEFAULT_TILE
    threads = threads or DEFAULT_THREADS
    rows_per_block = rows_per_block or DEFAULT_ROWS_PER_BLOCK
    params, layer_sizes, activation = net
    scale, shift = normalization
    inputs, acts = buffers
    capacity = inputs.shape[0]
    network = _Network(params, layer_sizes, activation, acts, capacity, tile)
    _, log_softmax = loss_kernels(rows_per_block, network.dtype)
    d0 = inputs.shape[1]
    n = X.shape[0]
    for start in range(0, n, capacity):
        n_rows = min(start + capacity, n) - start
        _gather_rows[n_blocks(n_rows * d0, threads), threads](X, start, n_rows, scale, shift,
                                                               inputs)
        logits = network.forward_pass(inputs, n_rows)
        grid, block = softmax_grid(n_rows, rows_per_block)
        log_softmax[grid, block](logits, out, start, n_rows)
