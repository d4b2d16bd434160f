"""Softmax cross-entropy (training) and log-softmax (inference) on the GPU.

One warp per row: a block is ``(32, rows_per_block)`` threads, lane ``t`` of
row ``r`` handles classes ``t, t + 32, ...``; the row's max (with the first
arg-max, for the accuracy count) and its sum of exponentials are reduced
through shared memory. :func:`gpu_softmax_cross_entropy` writes the gradient
``(softmax(z) - onehot(y)) * grad_scale`` over the logits in place (or into a
separate ``grad``) and adds the row's loss and whether it was classified
correctly into a two-entry float64 device array with atomics, so a whole
epoch accumulates its loss and accuracy on the device and the host reads them
once. Formulas as in :func:`kernels.softmax_cross_entropy`.
"""
import math
from functools import lru_cache

import numpy as np
from numba import cuda

from ._launch import DEFAULT_ROWS_PER_BLOCK, WARP, cdiv, float_dtype
from .dense import _numba_type


@lru_cache(maxsize=None)
def loss_kernels(rows_per_block, dtype):
    """``(softmax_cross_entropy, log_softmax)`` kernels for one block shape and dtype."""
    dtype = np.dtype(dtype)
    nbtype = _numba_type(dtype)
    from numba import int32
    ZERO = dtype.type(0.0)
    ROWS = int(rows_per_block)
    SHAPE = (ROWS, WARP)
    HALF = WARP // 2

    @cuda.jit(device=True)
    def row_sum_exp(logits, row, zmax, live, red, r, lane):
        """Sum over row ``row`` of ``exp(z - zmax)``, reduced across the warp's lanes."""
        total = ZERO
        if live:
            for j in range(lane, logits.shape[1], WARP):
                total += math.exp(logits[row, j] - zmax)
        red[r, lane] = total
        cuda.syncthreads()
        offset = HALF
        while offset > 0:
            if lane < offset:
                red[r, lane] += red[r, lane + offset]
            cuda.syncthreads()
            offset //= 2
        return red[r, 0]

    @cuda.jit(cache=True)
    def softmax_cross_entropy(logits, labels, grad_scale, grad, counters, n_rows):
        red = cuda.shared.array(SHAPE, nbtype)
        arg = cuda.shared.array(SHAPE, int32)
        lane = cuda.threadIdx.x
        r = cuda.threadIdx.y
        row = cuda.blockIdx.x * ROWS + r
        k = logits.shape[1]
        live = row < n_rows
        # Pass 1: max and first arg-max (ties keep the smaller index).
        zmax = ZERO
        best = 0
        if live:
            zmax = logits[row, 0]
            for j in range(lane, k, WARP):
                z = logits[row, j]
                if z > zmax:
                    zmax = z
                    best = j
        red[r, lane] = zmax
        arg[r, lane] = best
        cuda.syncthreads()
        offset = HALF
        while offset > 0:
            if lane < offset:
                v = red[r, lane + offset]
                i = arg[r, lane + offset]
                if v > red[r, lane] or (v == red[r, lane] and i < arg[r, lane]):
                    red[r, lane] = v
                    arg[r, lane] = i
            cuda.syncthreads()
            offset //= 2
        zmax = red[r, 0]
        best = arg[r, 0]
        y = 0
        zy = ZERO
        if live:
            y = labels[row]
            zy = logits[row, y]  # read before any lane overwrites the logits
        cuda.syncthreads()
        # Pass 2: sum of exponentials.
        total = row_sum_exp(logits, row, zmax, live, red, r, lane)
        if live:
            if lane == 0:
                cuda.atomic.add(counters, 0, math.log(total) - (zy - zmax))
                if best == y:
                    cuda.atomic.add(counters, 1, 1.0)
            # Pass 3: gradient, written over the logits when grad is logits.
            inv = grad_scale / total
            for j in range(lane, k, WARP):
                g = math.exp(logits[row, j] - zmax) * inv
                if j == y:
                    g -= grad_scale
                grad[row, j] = g

    @cuda.jit(cache=True)
    def log_softmax(logits, out, out_start, n_rows):
        red = cuda.shared.array(SHAPE, nbtype)
        lane = cuda.threadIdx.x
        r = cuda.threadIdx.y
        row = cuda.blockIdx.x * ROWS + r
        k = logits.shape[1]
        live = row < n_rows
        zmax = ZERO
        if live:
            zmax = logits[row, 0]
            for j in range(lane, k, WARP):
                z = logits[row, j]
                if z > zmax:
                    zmax = z
        red[r, lane] = zmax
        cuda.syncthreads()
        offset = HALF
        while offset > 0:
            if lane < offset:
                if red[r, lane + offset] > red[r, lane]:
                    red[r, lane] = red[r, lane + offset]
            cuda.syncthreads()
            offset //= 2
        zmax = red[r, 0]
        cuda.syncthreads()
        total = row_sum_exp(logits, row, zmax, live, red, r, lane)
        if live:
            shift = zmax + math.log(total)
            for j in range(lane, k, WARP):
                out[out_start + row, j] = logits[row, j] - shift

    return softmax_cross_entropy, log_softmax


def softmax_grid(n_rows, rows_per_block):
    return max(1, cdiv(n_rows, rows_per_block)), (WARP, rows_per_block)


def gpu_softmax_cross_entropy(logits, labels, grad_scale, grad, counters, n_rows=None,
                              rows_per_block=None):
    """GPU twin of :func:`kernels.softmax_cross_entropy`.

    Parameters
    ----------
    logits : device array, shape (>= n_rows, n_classes), float32 or float64
    labels : device array, shape (>= n_rows,), int32, values in ``[0, n_classes)``
    grad_scale : float
        Multiplies the gradient (``1 / batch_size`` for the mean loss).
    grad : device array like ``logits``, written in place; may be ``logits``.
    counters : device array, shape (2,), float64
        ``counters[0] +=`` summed loss (nats), ``counters[1] +=`` correct
        count; the caller zeroes it and reads it back (the CPU twin returns
        the two numbers instead).
    n_rows : int, optional
    rows_per_block : int, optional
        Warps (rows) per block.
    """
    rows_per_block = rows_per_block or DEFAULT_ROWS_PER_BLOCK
    n_rows = logits.shape[0] if n_rows is None else int(n_rows)
    if n_rows == 0:
        return
    dtype = float_dtype(logits)
    kernel, _ = loss_kernels(rows_per_block, dtype)
    grid, block = softmax_grid(n_rows, rows_per_block)
    kernel[grid, block](logits, labels, dtype.type(grad_scale), grad, counters, n_rows)


def gpu_log_softmax(logits, out, out_start=0, n_rows=None, rows_per_block=None):
    """``out[out_start + i] = logits[i] - logsumexp(logits[i])`` for ``i < n_rows``.

    GPU twin of :func:`kernels.log_softmax_inplace` that writes into a
    separate output (pass ``out=logits`` for in place).
    """
    rows_per_block = rows_per_block or DEFAULT_ROWS_PER_BLOCK
    n_rows = logits.shape[0] if n_rows is None else int(n_rows)
    if n_rows == 0:
        return
    _, kernel = loss_kernels(rows_per_block, float_dtype(logits))
    grid, block = softmax_grid(n_rows, rows_per_block)
    kernel[grid, block](logits, out, int(out_start), n_rows)
