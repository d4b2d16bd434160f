"""Mini-batch gather on the GPU: rows of the device-resident dataset, normalized.

The dataset stays on the device in its storage dtype (uint8 for MNIST); each
step gathers ``order[start:start + n_rows]`` into the float ``inputs`` buffer
with ``x = raw * scale + shift`` (the same expression as
:func:`kernels.gather_batch`) and copies the labels, in one launch.
"""
from numba import cuda

from ._launch import DEFAULT_THREADS, n_blocks


@cuda.jit(cache=True)
def _gather(X, y, order, start, n_rows, scale, shift, out, labels_out):
    d = X.shape[1]
    for idx in range(cuda.grid(1), n_rows * d, cuda.gridsize(1)):
        i = idx // d
        j = idx - i * d
        row = order[start + i]
        out[i, j] = X[row, j] * scale[j] + shift[j]
        if j == 0:
            labels_out[i] = y[row]


@cuda.jit(cache=True)
def _gather_rows(X, start, n_rows, scale, shift, out):
    d = X.shape[1]
    for idx in range(cuda.grid(1), n_rows * d, cuda.gridsize(1)):
        i = idx // d
        j = idx - i * d
        out[i, j] = X[start + i, j] * scale[j] + shift[j]


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
    grid = n_blocks(n_rows * X.shape[1], threads)
    _gather[grid, threads](X, y, order, int(start), n_rows, scale, shift, out, labels_out)


def gpu_gather_rows(X, start, stop, scale, shift, out, threads=None):
    """Rows ``X[start:stop]`` normalized into ``out`` (inference: no order, no labels)."""
    threads = threads or DEFAULT_THREADS
    n_rows = int(stop) - int(start)
    if n_rows <= 0:
        return
    grid = n_blocks(n_rows * X.shape[1], threads)
    _gather_rows[grid, threads](X, int(start), n_rows, scale, shift, out)
