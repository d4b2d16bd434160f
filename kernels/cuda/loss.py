"""Softmax cross-entropy (training), log-softmax (inference) and evaluation on the GPU.

``lanes`` threads per row (a warp of 32 on a GPU; fewer under the simulator):
a block is ``(lanes, rows_per_block)`` threads, lane ``t`` of row ``r``
handles classes ``t, t + lanes, ...``; the row's max (with the first arg-max,
for the accuracy count) and its sum of exponentials are reduced through
shared memory. Formulas as in :func:`kernels.softmax_cross_entropy` and
:func:`kernels.log_softmax_inplace`: per row, ``loss = log(sum_j exp(z_j -
max)) - (z_y - max)``.

* ``softmax_cross_entropy`` (a launch of its own in training only without a
  hidden layer or with more classes than a dense tile is wide; otherwise the
  last layer's ``forward_softmax`` of :mod:`fastann.kernels.cuda.dense` does
  this work) writes the gradient ``(softmax(z) - onehot(y)) *
  grad_scale`` over the logits in place (or into a separate ``grad``) and adds
  the row's loss and whether it was classified correctly into a float64
  device array with atomics, so a whole epoch accumulates its loss and
  accuracy on the device and the host reads them once.
* ``log_softmax`` writes ``z - max - log(sum)`` into rows ``start + i`` of
  the output.
* ``evaluate`` adds, per row of an evaluation set, the loss, whether it is
  classified correctly and whether any of its log-probabilities is not
  finite into three float64 counters: validation and the divergence check
  read three numbers instead of copying the log-probabilities to the host.

The live rows, the gradient scale and the output offset come from the plan
table at the cursor (:mod:`fastann.kernels.cuda._launch`); ``log_softmax``
and ``evaluate`` end an inference step and advance the cursor.
"""
import math
from functools import lru_cache

import numpy as np
from numba import cuda

from ._launch import (CURRENT, DEFAULT_LANES, DEFAULT_ROWS_PER_BLOCK, GRAD_SCALE, NEXT, ROWS,
                      START, cdiv, float_dtype, numba_type, single_step_plan)

#: Entries of the counters ``evaluate`` adds into.
EVAL_LOSS, EVAL_CORRECT, EVAL_NONFINITE = 0, 1, 2
EVAL_COUNTERS = 3


@lru_cache(maxsize=None)
def loss_kernels(rows_per_block, dtype, lanes=DEFAULT_LANES):
    """``(softmax_cross_entropy, log_softmax, evaluate)`` for one block shape and dtype.

    Parameters
    ----------
    rows_per_block : int
    dtype : float32 or float64
    lanes : int, power of two
        Threads per row.
    """
    dtype = np.dtype(dtype)
    nbtype = numba_type(dtype)
    from numba import int32
    ZERO = dtype.type(0.0)
    ONE = dtype.type(1.0)
    ROWS_PER_BLOCK = int(rows_per_block)
    LANES = int(lanes)
    if LANES < 1 or LANES & (LANES - 1):
        raise ValueError(f"lanes must be a power of two, got {lanes}")
    SHAPE = (ROWS_PER_BLOCK, LANES)
    HALF = LANES // 2

    @cuda.jit(device=True)
    def row_max(logits, row, live, red, arg, r, lane):
        """Max of row ``row`` and its first arg-max (ties keep the smaller index)."""
        zmax = ZERO
        best = 0
        if live:
            zmax = logits[row, 0]
            for j in range(lane, logits.shape[1], LANES):
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
        cuda.syncthreads()  # red is reused next
        return zmax, best

    @cuda.jit(device=True)
    def row_sum(value, red, r, lane):
        """Sum of ``value`` over the row's lanes."""
        red[r, lane] = value
        cuda.syncthreads()
        offset = HALF
        while offset > 0:
            if lane < offset:
                red[r, lane] += red[r, lane + offset]
            cuda.syncthreads()
            offset //= 2
        total = red[r, 0]
        cuda.syncthreads()  # red is reused next
        return total

    @cuda.jit(device=True)
    def row_sum_exp(logits, row, zmax, live, red, r, lane):
        """Sum over row ``row`` of ``exp(z - zmax)``, reduced across the row's lanes."""
        total = ZERO
        if live:
            for j in range(lane, logits.shape[1], LANES):
                total += math.exp(logits[row, j] - zmax)
        return row_sum(total, red, r, lane)

    @cuda.jit(cache=True)
    def softmax_cross_entropy(logits, labels, grad, counters, plan, cursor):
        red = cuda.shared.array(SHAPE, nbtype)
        arg = cuda.shared.array(SHAPE, int32)
        step = cursor[CURRENT]
        n_rows = int(plan[step, ROWS])
        grad_scale = nbtype(plan[step, GRAD_SCALE])
        lane = cuda.threadIdx.x
        r = cuda.threadIdx.y
        row = cuda.blockIdx.x * ROWS_PER_BLOCK + r
        k = logits.shape[1]
        live = row < n_rows
        zmax, best = row_max(logits, row, live, red, arg, r, lane)
        y = 0
        zy = ZERO
        if live:
            y = labels[row]
            zy = logits[row, y]  # read before any lane overwrites the logits
        cuda.syncthreads()
        total = row_sum_exp(logits, row, zmax, live, red, r, lane)
        if live:
            if lane == 0:
                cuda.atomic.add(counters, 0, math.log(total) - (zy - zmax))
                if best == y:
                    cuda.atomic.add(counters, 1, 1.0)
            # The gradient, written over the logits when grad is logits.
            inv = grad_scale / total
            for j in range(lane, k, LANES):
                g = math.exp(logits[row, j] - zmax) * inv
                if j == y:
                    g -= grad_scale
                grad[row, j] = g

    @cuda.jit(cache=True)
    def log_softmax(logits, out, plan, cursor):
        red = cuda.shared.array(SHAPE, nbtype)
        arg = cuda.shared.array(SHAPE, int32)
        step = cursor[CURRENT]
        cursor[NEXT] = step + 1  # the last kernel of an inference step
        start = int(plan[step, START])
        n_rows = int(plan[step, ROWS])
        lane = cuda.threadIdx.x
        r = cuda.threadIdx.y
        row = cuda.blockIdx.x * ROWS_PER_BLOCK + r
        live = row < n_rows
        zmax, _ = row_max(logits, row, live, red, arg, r, lane)
        total = row_sum_exp(logits, row, zmax, live, red, r, lane)
        if live:
            shift = zmax + math.log(total)
            for j in range(lane, logits.shape[1], LANES):
                out[start + row, j] = logits[row, j] - shift

    @cuda.jit(cache=True)
    def evaluate(logits, labels, counters, plan, cursor):
        red = cuda.shared.array(SHAPE, nbtype)
        arg = cuda.shared.array(SHAPE, int32)
        step = cursor[CURRENT]
        cursor[NEXT] = step + 1  # the last kernel of an inference step
        start = int(plan[step, START])
        n_rows = int(plan[step, ROWS])
        lane = cuda.threadIdx.x
        r = cuda.threadIdx.y
        row = cuda.blockIdx.x * ROWS_PER_BLOCK + r
        live = row < n_rows
        zmax, best = row_max(logits, row, live, red, arg, r, lane)
        total = row_sum_exp(logits, row, zmax, live, red, r, lane)
        shift = zmax + math.log(total) if live else ZERO
        bad = ZERO
        if live:
            for j in range(lane, logits.shape[1], LANES):
                v = logits[row, j] - shift
                if math.isnan(v) or math.isinf(v):
                    bad = ONE
        n_bad = row_sum(bad, red, r, lane)
        if live and lane == 0:
            y = labels[start + row]
            cuda.atomic.add(counters, EVAL_LOSS, math.log(total) - (logits[row, y] - zmax))
            if best == y:
                cuda.atomic.add(counters, EVAL_CORRECT, 1.0)
            if n_bad > ZERO:
                cuda.atomic.add(counters, EVAL_NONFINITE, 1.0)

    return softmax_cross_entropy, log_softmax, evaluate


def softmax_grid(n_rows, rows_per_block, lanes=DEFAULT_LANES):
    """``(grid, block)`` of a softmax launch over ``n_rows`` rows (the capacity, in the drivers)."""
    return max(1, cdiv(n_rows, rows_per_block)), (lanes, rows_per_block)


def gpu_softmax_cross_entropy(logits, labels, grad_scale, grad, counters, n_rows=None,
                              rows_per_block=None, lanes=None):
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
    rows_per_block, lanes : int, optional
        Rows per block and threads per row.
    """
    rows_per_block = rows_per_block or DEFAULT_ROWS_PER_BLOCK
    lanes = lanes or DEFAULT_LANES
    n_rows = logits.shape[0] if n_rows is None else int(n_rows)
    if n_rows == 0:
        return
    kernel = loss_kernels(rows_per_block, float_dtype(logits), lanes)[0]
    grid, block = softmax_grid(n_rows, rows_per_block, lanes)
    plan, cursor = single_step_plan(n_rows=n_rows, grad_scale=float(grad_scale))
    kernel[grid, block](logits, labels, grad, counters, cuda.to_device(plan),
                        cuda.to_device(cursor))


def gpu_log_softmax(logits, out, out_start=0, n_rows=None, rows_per_block=None, lanes=None):
    """``out[out_start + i] = logits[i] - logsumexp(logits[i])`` for ``i < n_rows``.

    GPU twin of :func:`kernels.log_softmax_inplace` that writes into a
    separate output (pass ``out=logits`` for in place).
    """
    rows_per_block = rows_per_block or DEFAULT_ROWS_PER_BLOCK
    lanes = lanes or DEFAULT_LANES
    n_rows = logits.shape[0] if n_rows is None else int(n_rows)
    if n_rows == 0:
        return
    kernel = loss_kernels(rows_per_block, float_dtype(logits), lanes)[1]
    grid, block = softmax_grid(n_rows, rows_per_block, lanes)
    plan, cursor = single_step_plan(start=int(out_start), n_rows=n_rows)
    kernel[grid, block](logits, out, cuda.to_device(plan), cuda.to_device(cursor))
