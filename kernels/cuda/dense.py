"""Dense layer on the GPU: tiled shared-memory products with fused epilogues.

* :func:`gpu_dense_forward` -- one launch: ``out = f(X @ W + b)``. Each block
  computes a ``tile x tile`` output tile, staging ``tile x tile`` slabs of
  ``X`` and ``W`` in shared memory; the bias and the activation are applied
  to the accumulator before the single store (no pre-activation buffer).
* :func:`gpu_dense_backward` -- one launch for the whole layer: the grid holds
  the tiles of ``dW = X^T dZ`` followed by the tiles of
  ``dX = (dZ W^T) * f'(X)``. The blocks of the first row of ``dW`` tiles also
  sum their staged ``dZ`` slabs into ``db`` (the column sums, in the same row
  order as :func:`kernels.column_sums`, so ``db`` matches the CPU bit for bit).
  With ``accumulate`` the results are added to ``dW``/``db`` instead of
  stored, which is how micro-batches sum their gradients without a
  ``grad_sum`` buffer or an extra launch.

Plain FMA tiles (numba-cuda exposes no tensor-core MMA); tiles are padded to
``tile + 1`` columns so the transposed reads of the ``dX`` product do not hit
the same shared-memory bank. Every thread takes part in every
``syncthreads``: out-of-range rows and columns load zeros instead of leaving.

All arrays are C-contiguous 2-D device arrays sized for ``capacity`` rows;
``n_rows <= capacity`` says how many rows are live (the last batch of an
epoch is shorter), so the buffers and their views are made once per ``fit``.
"""
from functools import lru_cache

import numpy as np
from numba import cuda

from ._device import activation_functions
from ._launch import DEFAULT_TILE, cdiv, float_dtype


@lru_cache(maxsize=None)
def dense_kernels(tile, dtype):
    """``(forward, backward)`` CUDA kernels for one tile size and float dtype."""
    dtype = np.dtype(dtype)
    nbtype = _numba_type(dtype)
    dt = dtype.type
    ZERO = dt(0.0)
    TILE = int(tile)
    SHAPE = (TILE, TILE + 1)
    activate, derivative_times = activation_functions(dtype)

    @cuda.jit(cache=True)
    def forward(X, W, b, activation, out, n_rows):
        A = cuda.shared.array(SHAPE, nbtype)
        B = cuda.shared.array(SHAPE, nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        d_in = W.shape[0]
        d_out = W.shape[1]
        acc = ZERO
        for k0 in range(0, d_in, TILE):
            k = k0 + tx
            A[ty, tx] = X[row, k] if (row < n_rows and k < d_in) else ZERO
            k = k0 + ty
            B[ty, tx] = W[k, col] if (k < d_in and col < d_out) else ZERO
            cuda.syncthreads()
            for kk in range(TILE):
                acc += A[ty, kk] * B[kk, tx]
            cuda.syncthreads()
        if row < n_rows and col < d_out:
            out[row, col] = activate(acc + b[col], activation)

    @cuda.jit(cache=True)
    def backward(X, W, dZ, dW, db, dX, input_activation, n_rows, accumulate,
                 dw_tiles_per_row, n_dw_blocks):
        A = cuda.shared.array(SHAPE, nbtype)
        B = cuda.shared.array(SHAPE, nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        d_in = W.shape[0]
        d_out = W.shape[1]
        block = cuda.blockIdx.x
        acc = ZERO
        if block < n_dw_blocks:
            # dW tile (ti, tj): rows = input features, columns = output units.
            ti = block // dw_tiles_per_row
            tj = block - ti * dw_tiles_per_row
            i = ti * TILE + ty
            j = tj * TILE + tx
            f = ti * TILE + tx
            with_bias = ti == 0 and ty == 0
            bias = ZERO
            for s0 in range(0, n_rows, TILE):
                s = s0 + ty
                A[ty, tx] = X[s, f] if (s < n_rows and f < d_in) else ZERO
                B[ty, tx] = dZ[s, j] if (s < n_rows and j < d_out) else ZERO
                cuda.syncthreads()
                for kk in range(TILE):
                    acc += A[kk, ty] * B[kk, tx]
                if with_bias:
                    for kk in range(TILE):
                        bias += B[kk, tx]
                cuda.syncthreads()
            if i < d_in and j < d_out:
                if accumulate:
                    dW[i, j] += acc
                else:
                    dW[i, j] = acc
            if with_bias and j < d_out:
                if accumulate:
                    db[j] += bias
                else:
                    db[j] = bias
        else:
            # dX tile (ts, ti): rows = samples, columns = input features.
            t = block - n_dw_blocks
            dx_tiles_per_row = (d_in + TILE - 1) // TILE
            ts = t // dx_tiles_per_row
            ti = t - ts * dx_tiles_per_row
            s = ts * TILE + ty
            i = ti * TILE + tx
            w_row = ti * TILE + ty
            for j0 in range(0, d_out, TILE):
                c = j0 + tx
                A[ty, tx] = dZ[s, c] if (s < n_rows and c < d_out) else ZERO
                B[ty, tx] = W[w_row, c] if (w_row < d_in and c < d_out) else ZERO
                cuda.syncthreads()
                for kk in range(TILE):
                    acc += A[ty, kk] * B[tx, kk]
                cuda.syncthreads()
            if s < n_rows and i < d_in:
                dX[s, i] = derivative_times(acc, X[s, i], input_activation)

    return forward, backward


def _numba_type(dtype):
    from numba import float32, float64
    return float32 if np.dtype(dtype) == np.float32 else float64


def forward_grid(n_rows, d_out, tile):
    return (cdiv(d_out, tile), max(1, cdiv(n_rows, tile))), (tile, tile)


def backward_grid(n_rows, d_in, d_out, tile, with_dx):
    """``(grid, block, dw_tiles_per_row, n_dw_blocks)`` for one backward launch."""
    dw_tiles_per_row = cdiv(d_out, tile)
    n_dw = cdiv(d_in, tile) * dw_tiles_per_row
    n_dx = cdiv(n_rows, tile) * cdiv(d_in, tile) if with_dx else 0
    return n_dw + n_dx, (tile, tile), dw_tiles_per_row, n_dw


def gpu_dense_forward(X, W, b, activation, out, n_rows=None, tile=None):
    """GPU twin of :func:`kernels.dense_forward`: ``out[:n_rows] = f(X[:n_rows] @ W + b)``.

    Parameters
    ----------
    X : device array, shape (>= n_rows, n_in), float32 or float64, C-contiguous
    W : device array, shape (n_in, n_out), same dtype
    b : device array, shape (n_out,), same dtype
    activation : int
        Code from :mod:`kernels.activations`.
    out : device array, shape (>= n_rows, n_out), same dtype, written in place
    n_rows : int, optional
        Live rows (default ``X.shape[0]``).
    tile : int, optional
        Tile edge (threads per block = tile**2); default :data:`DEFAULT_TILE`.
    """
    tile = tile or DEFAULT_TILE
    n_rows = X.shape[0] if n_rows is None else int(n_rows)
    if n_rows == 0:
        return
    forward, _ = dense_kernels(tile, float_dtype(out))
    grid, block = forward_grid(n_rows, W.shape[1], tile)
    forward[grid, block](X, W, b, int(activation), out, n_rows)


def gpu_dense_backward(X, W, dZ, dW, db, dX, input_activation, n_rows=None,
                       accumulate=False, tile=None):
    """GPU twin of :func:`kernels.dense_backward`, in a single launch.

    ``dW = X^T dZ``, ``db = sum_rows(dZ)`` and, when ``dX`` is not ``None``
    and not empty, ``dX = (dZ W^T) * f'(X)`` with ``f`` = ``input_activation``
    (derivative through the output ``X = f(.)``).

    Parameters
    ----------
    X : device array, shape (>= n_rows, n_in)
    W : device array, shape (n_in, n_out)
    dZ : device array, shape (>= n_rows, n_out)
    dW : device array, shape (n_in, n_out), written (or added to) in place
    db : device array, shape (n_out,), written (or added to) in place
    dX : device array, shape (>= n_rows, n_in), or None / size 0 for the
        first layer. Must not share memory with ``X`` or ``dZ``.
    input_activation : int
    n_rows : int, optional
        Live rows (default ``dZ.shape[0]``).
    accumulate : bool
        Add into ``dW`` and ``db`` instead of overwriting them (micro-batches).
    tile : int, optional
    """
    tile = tile or DEFAULT_TILE
    n_rows = dZ.shape[0] if n_rows is None else int(n_rows)
    with_dx = dX is not None and dX.size > 0
    _, backward = dense_kernels(tile, float_dtype(dW))
    grid, block, per_row, n_dw = backward_grid(n_rows, W.shape[0], W.shape[1], tile, with_dx)
    backward[grid, block](X, W, dZ, dW, db, dX if with_dx else dZ, int(input_activation),
                          n_rows, 1 if accumulate else 0, per_row, n_dw)
