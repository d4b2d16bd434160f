"""Mini-batch gather on the GPU: rows of the device-resident dataset, normalized.

The dataset stays on the device in its storage dtype (uint8 for MNIST); each
step gathers its rows into the float ``inputs`` buffer with
``x = raw * scale + shift`` (the same expression as
:func:`kernels.gather_batch`) and copies the labels, in one launch. The row
range comes from the plan table at the cursor (see
:mod:`fastann.kernels.cuda._launch`): these kernels are the first of a step,
so they copy ``cursor[NEXT]`` into ``cursor[CURRENT]`` for the kernels after
them.
"""
from numba import cuda

from ._launch import (CURRENT, DEFAULT_THREADS, NEXT, ROWS, START, n_blocks,
                      single_step_plan)


@cuda.jit(cache=True)
def _gather(X, y, order, plan, cursor, scale, shift, out, labels_out):
    c = cursor[NEXT]
    cursor[CURRENT] = c  # the same value from every thread; nobody here reads this slot
    start = int(plan[c, START])
    n_rows = int(plan[c, ROWS])
    d = X.shape[1]
    for idx in range(cuda.grid(1), n_rows * d, cuda.gridsize(1)):
        i = idx // d
        j = idx - i * d
        row = order[start + i]
        out[i, j] = X[row, j] * scale[j] + shift[j]
        if j == 0:
            labels_out[i] = y[row]


@cuda.jit(cache=True)
def _gather_rows(X, plan, cursor, scale, shift, out):
    c = cursor[NEXT]
    cursor[CURRENT] = c
    start = int(plan[c, START])
    n_rows = int(plan[c, ROWS])
    d = X.shape[1]
    for idx in range(cuda.grid(1), n_rows * d, cuda.gridsize(1)):
        i = idx // d
        j = idx - i * d
        out[i, j] = X[start + i, j] * scale[j] + shift[j]


def gather_grid(capacity, n_features, threads):
    """``(blocks, threads)`` of a gather over ``capacity`` rows (the launch is the same every step)."""
    return n_blocks(capacity * n_features, threads), threads


def gpu_gather_batch(X, y, order, start, stop, scale, shift, out, labels_out, threads=None):
    """GPU twin of :func:`kernels.gather_batch`.

    Parameters
    ----------
    X : device array, shape (n_samples, n_features), uint8 or float, C-contiguous
    y : device array, shape (n_samples,), int32
    order : device array, shape (n,), int64
    start, stop : int
        Half-open range of positions in ``order``.
    scale, shift : device arrays, shape (n_features,), dtype of ``out``
    out : device array, shape (>= stop - start, n_features), float, written in place
    labels_out : device array, shape (>= stop - start,), int32, written in place
    threads : int, optional
    """
    threads = threads or DEFAULT_THREADS
    n_rows = int(stop) - int(start)
    if n_rows <= 0:
        return
    plan, cursor = single_step_plan(start=int(start), n_rows=n_rows)
    grid, block = gather_grid(n_rows, X.shape[1], threads)
    _gather[grid, block](X, y, order, cuda.to_device(plan), cuda.to_device(cursor), scale, shift,
                         out, labels_out)


def gpu_gather_rows(X, start, stop, scale, shift, out, threads=None):
    """Rows ``X[start:stop]`` normalized into ``out`` (inference: no order, no labels)."""
    threads = threads or DEFAULT_THREADS
    n_rows = int(stop) - int(start)
    if n_rows <= 0:
        return
    plan, cursor = single_step_plan(start=int(start), n_rows=n_rows)
    grid, block = gather_grid(n_rows, X.shape[1], threads)
    _gather_rows[grid, block](X, cuda.to_device(plan), cuda.to_device(cursor), scale, shift, out)
