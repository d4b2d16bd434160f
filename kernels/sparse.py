"""The first dense layer computed from the nonzero inputs only.

MNIST-style images are mostly background: about 81% of MNIST's pixels are 0.
With a normalization that maps 0 to 0 ("simple" or "none"), the first layer's
products ``X W`` and ``X^T dZ`` need only the nonzero entries of ``X``. The
mini-batch is gathered straight into compressed sparse rows (CSR: for row
``i``, entries ``ptr[i]:ptr[i + 1]`` of ``index``/``value``), then

- forward: ``Z[i, :] = sum_p value[p] * W[index[p], :]`` — one contiguous
  row of ``W`` per nonzero, vectorized across the layer's width;
- backward: ``dW[index[p], :] += value[p] * dZ[i, :]``.

On MNIST this does ~19% of the dense multiply-adds. It is used only for the
first layer (hidden activations are produced densely) and only when the
caller measured the input to be sparse enough; see ``fastann.model``.
"""
from numba import njit

from .activations import bias_activation_inplace
from .dense import column_sums
from .optimizers import FASTMATH


@njit(cache=True, error_model="numpy")
def gather_sparse_batch(X, y, order, start, stop, scale, labels_out, row_ptr, index, value):
    """Gather rows ``order[start:stop]`` of ``X`` as CSR, scaled by ``scale``.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features), uint8 or float, C-contiguous
    y : ndarray, shape (n_samples,), int32
    order : ndarray, int64
    start, stop : int
    scale : ndarray, shape (n_features,), float
        Per-feature factor; the shift must be 0 (zeros stay zeros).
    labels_out : ndarray, shape (>= stop - start,), int32, written
    row_ptr : ndarray, shape (>= stop - start + 1,), int64, written
    index : ndarray, shape (>= (stop - start) * n_features,), int32, written
    value : ndarray, same shape as ``index``, float, written

    Returns
    -------
    nnz : int
        Number of nonzeros gathered.
    """
    d = X.shape[1]
    nnz = 0
    row_ptr[0] = 0
    for i in range(stop - start):
        row = order[start + i]
        labels_out[i] = y[row]
        for j in range(d):
            raw = X[row, j]
            if raw != 0:
                index[nnz] = j
                value[nnz] = raw * scale[j]
                nnz += 1
        row_ptr[i + 1] = nnz
    return nnz


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def sparse_dense_forward(row_ptr, index, value, n_rows, W, b, activation, out):
    """``out = f(X W + b)`` with ``X`` given as CSR rows.

    Parameters
    ----------
    row_ptr, index, value : ndarray
        CSR of the ``n_rows`` input rows (see :func:`gather_sparse_batch`).
    n_rows : int
    W : ndarray, shape (n_features, n_out), float, C-contiguous
    b : ndarray, shape (n_out,)
    activation : int
    out : ndarray, shape (n_rows, n_out), written in place
    """
    m = W.shape[1]
    for i in range(n_rows):
        row = out[i]
        for j in range(m):
            row[j] = 0
        for p in range(row_ptr[i], row_ptr[i + 1]):
            v = value[p]
            w = W[index[p]]
            for j in range(m):
                row[j] += v * w[j]
    bias_activation_inplace(out, b, activation)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def sparse_dense_backward(row_ptr, index, value, n_rows, dZ, dW, db):
    """``dW = X^T dZ`` and ``db = sum_rows(dZ)`` with ``X`` given as CSR rows.

    Parameters
    ----------
    row_ptr, index, value, n_rows
        As for :func:`sparse_dense_forward`.
    dZ : ndarray, shape (n_rows, n_out)
    dW : ndarray, shape (n_features, n_out), written in place
    db : ndarray, shape (n_out,), written in place
    """
    m = dW.shape[1]
    dW[:, :] = 0
    for i in range(n_rows):
        g = dZ[i]
        for p in range(row_ptr[i], row_ptr[i + 1]):
            v = value[p]
            target = dW[index[p]]
            for j in range(m):
                target[j] += v * g[j]
    column_sums(dZ, db)


@njit(cache=True, error_model="numpy")
def dense_to_csr(dense, n_rows, row_ptr, index, value):
    """Compress the first ``n_rows`` rows of an already gathered batch into CSR.

    For batches built by :func:`fastann.kernels.augment.gather_augmented_batch`
    (augmented rows are computed densely, then the first layer runs sparse).

    Parameters
    ----------
    dense : ndarray, shape (>= n_rows, n_features), float
    n_rows : int
    row_ptr, index, value
        As for :func:`gather_sparse_batch`, written.

    Returns
    -------
    nnz : int
    """
    d = dense.shape[1]
    nnz = 0
    row_ptr[0] = 0
    for i in range(n_rows):
        for j in range(d):
            v = dense[i, j]
            if v != 0:
                index[nnz] = j
                value[nnz] = v
                nnz += 1
        row_ptr[i + 1] = nnz
    return nnz
