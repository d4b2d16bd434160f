"""A training epoch on all cores, without BLAS, for narrow networks (one thread pool).

For networks whose layers after the first are small (MNIST's 784-128-10,
784-64-64-10: their weights stay in each core's cache), every mini-batch step
is two parallel regions of Numba's own thread pool and nothing else:

1. **Rows** (``prange`` over :data:`~fastann.kernels.structs.ROW_CHUNKS`
   fixed chunks of the batch's rows): gather, run every layer forward over
   the chunk (the first layer from each row's nonzero inputs only when the
   input is sparse), softmax cross-entropy, and back-propagate the error to
   every hidden layer. Rows are independent, so this needs no reduction.
2. **Parameters** (``prange`` over tasks): :data:`~fastann.kernels.structs.COLUMN_BLOCKS`
   contiguous blocks of the first layer's weight rows,
   ``dW_0[j, :] = sum_i X[i, j] dZ_1[i, :]``, accumulated over the batch rows
   in order (for sparse input from each row's nonzeros in the block only),
   the block staying in L1 cache until the optimizer has updated it
   (:func:`fastann.kernels.optimizers.update_range`); then one task per bias
   vector and one per later (small) layer, whose gradient is computed
   transposed so that every inner loop runs over a contiguous row.

With a sparse first layer the dataset's nonzeros are compressed once per fit
(:func:`compressed_rows`, which also records where each row's nonzeros enter
each column block). The rows of the next mini-batches are prefetched
(:mod:`fastann.kernels.prefetch`), and denormals are flushed to zero on every
thread while the kernel runs (:mod:`fastann.kernels.denormals`).

Only the innermost loops (scaled row additions, dot products) are compiled
with fast-math flags, each as a function of its own: Numba compiles a callee
with its caller's fast-math flags when the callee sets none, so a fast-math
caller of the shared kernels (softmax cross-entropy, activations) would
change their arithmetic for every other caller in the process.

Every sum runs in a fixed order that does not depend on the number of
threads, so the result is the same with 1 or 16 threads. The first layer's
input gradient is never formed. Formulas: back-propagation as in
:mod:`fastann.kernels.network` (Rumelhart, Hinton & Williams 1986); softmax
cross-entropy as in :mod:`fastann.kernels.loss`; optimizers as in
:mod:`fastann.kernels.optimizers`.
"""
import numpy as np
from numba import njit, prange

from .denormals import flush_denormals, restore_denormals
from .activations import IDENTITY, activation_backward_inplace, bias_activation_inplace
from .loss import softmax_cross_entropy
from .network import activation_offsets, matrix_view, parameter_offsets
from .optimizers import FASTMATH, step_scalars, update_range
from .prefetch import prefetch
from .structs import COLUMN_BLOCKS

#: Later layers with at least this many outputs run forward as scaled rows of
#: ``W``; narrower ones (the logits) as dot products with its columns.
WIDE_OUTPUT = 32


def compressed_rows(X, n_blocks=COLUMN_BLOCKS):
    """The nonzeros of ``X`` in compressed sparse rows, built once per ``fit``.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features), uint8 or float, C-contiguous
    n_blocks : int
        Number of contiguous column blocks whose start in each row is recorded.

    Returns
    -------
    row_ptr : ndarray, shape (n_samples + 1,), int64
    index : ndarray, shape (nnz,), int32
        Column of each nonzero, ascending within a row.
    value : ndarray, shape (nnz,), dtype of ``X``
        The raw values (normalization is applied where they are used).
    block_start : ndarray, shape (n_samples, n_blocks + 1), int32
        Row ``i``'s nonzeros in columns ``[b * d // n_blocks, (b + 1) * d // n_blocks)``
        are ``index[row_ptr[i] + block_start[i, b]:row_ptr[i] + block_start[i, b + 1]]``.

    Notes
    -----
    The arrays are allocated by NumPy, which asks Linux for transparent huge
    pages for large arrays: the epoch reads rows in shuffled order, and with
    4 KiB pages each row can also miss the TLB. The gain measured was small:
    workload S, shuffled rows, 2 threads, 0.171-0.174 s per epoch against
    0.178 s with Numba's allocation (2-core Xeon, a few runs).
    """
    row_ptr = _row_offsets(X)
    index = np.empty(row_ptr[-1], np.int32)
    value = np.empty(row_ptr[-1], X.dtype)
    _fill_rows(X, row_ptr, index, value)
    block_start = np.empty((X.shape[0], n_blocks + 1), np.int32)
    _block_starts(X.shape[1], row_ptr, index, block_start)
    return row_ptr, index, value, block_start


@njit(cache=True, error_model="numpy")
def _block_starts(d, row_ptr, index, block_start):
    """Fill ``block_start`` of :func:`compressed_rows`."""
    n_blocks = block_start.shape[1] - 1
    for i in range(block_start.shape[0]):
        p = row_ptr[i]
        for b in range(n_blocks + 1):
            j = b * d // n_blocks
            while p < row_ptr[i + 1] and index[p] < j:
                p += 1
            block_start[i, b] = p - row_ptr[i]


@njit(cache=True, error_model="numpy")
def _row_offsets(X):
    """``row_ptr`` of :func:`compressed_rows`: where each row's nonzeros start."""
    n, d = X.shape
    row_ptr = np.zeros(n + 1, np.int64)
    for i in range(n):
        count = 0
        for j in range(d):
            if X[i, j] != 0:
                count += 1
        row_ptr[i + 1] = row_ptr[i] + count
    return row_ptr


@njit(cache=True, error_model="numpy")
def _fill_rows(X, row_ptr, index, value):
    """Write the nonzeros of ``X`` into ``index`` and ``value`` (:func:`compressed_rows`)."""
    n, d = X.shape
    for i in range(n):
        p = row_ptr[i]
        for j in range(d):
            if X[i, j] != 0:
                index[p] = j
                value[p] = X[i, j]
                p += 1


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _add_scaled_row(out, v, W, j):
    """``out += v * W[j, :]``."""
    for k in range(out.size):
        out[k] += v * W[j, k]


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _add_scaled_rows4(out, v0, j0, v1, j1, v2, j2, v3, j3, W):
    """``out += v0 W[j0] + v1 W[j1] + v2 W[j2] + v3 W[j3]``: one pass over ``out``
    for four rows, so ``out`` is loaded and stored a quarter as often."""
    for k in range(out.size):
        out[k] += (v0 * W[j0, k] + v1 * W[j1, k]) + (v2 * W[j2, k] + v3 * W[j3, k])


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _scatter_scaled_row(G, j_lo, index, value, scale, lo, hi, dZ, r):
    """``G[index[p] - j_lo, :] += value[p] * scale[index[p]] * dZ[r, :]`` for ``p in [lo, hi)``."""
    d = G.shape[1]
    for p in range(lo, hi):
        j = index[p]
        v = value[p] * scale[j]
        row = j - j_lo
        for k in range(d):
            G[row, k] += v * dZ[r, k]


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _dot_row(W, j, x):
    """``W[j, :] @ x``."""
    total = x.dtype.type(0.0)
    for k in range(x.size):
        total += W[j, k] * x[k]
    return total


@njit(cache=True, error_model="numpy")
def _row_times_matrix(out, x, W):
    """``out += x @ W`` as scaled rows of ``W``, four at a time."""
    j = 0
    n = x.size
    while j + 4 <= n:
        _add_scaled_rows4(out, x[j], j, x[j + 1], j + 1, x[j + 2], j + 2, x[j + 3], j + 3, W)
        j += 4
    while j < n:
        _add_scaled_row(out, x[j], W, j)
        j += 1


@njit(cache=True, error_model="numpy")
def _first_layer_sparse(out, W, index, value, lo, hi, scale):
    """``out += sum_p value[p] * scale[index[p]] * W[index[p], :]`` over ``p in [lo, hi)``."""
    p = lo
    while p + 4 <= hi:
        j0, j1, j2, j3 = index[p], index[p + 1], index[p + 2], index[p + 3]
        _add_scaled_rows4(out, value[p] * scale[j0], j0, value[p + 1] * scale[j1], j1,
                          value[p + 2] * scale[j2], j2, value[p + 3] * scale[j3], j3, W)
        p += 4
    while p < hi:
        j = index[p]
        _add_scaled_row(out, value[p] * scale[j], W, j)
        p += 1


@njit(cache=True, error_model="numpy")
def _rows_forward_backward(lo, hi, rows, X, csr, normalization, inputs, sparse_input, net,
                           offsets, wt, t_off, acts, deltas, labels, grad_scale):
    """Forward, loss and back-propagation of batch rows ``lo .. hi - 1`` (region 1).

    ``rows[r]`` is the dataset row of batch row ``r``. Writes the rows'
    activations into ``acts`` and their error signals ``dL/dz`` into
    ``deltas`` (same layout); returns the rows' ``(loss_sum, n_correct)``.
    Each layer runs over the whole chunk at once (one call of the shared
    activation and loss kernels per chunk, not per row). Layers after the
    first read their weights transposed (``wt``, offsets ``t_off``), so each
    output and each back-propagated error is one contiguous dot product or
    scaled row.
    """
    params, layer_sizes, activation = net
    scale, shift = normalization
    w_off, b_off, a_off = offsets
    n_layers = layer_sizes.size - 1
    m = hi - lo
    for l in range(n_layers):
        d_in, d_out = layer_sizes[l], layer_sizes[l + 1]
        out = matrix_view(acts, a_off[l] + lo * d_out, m, d_out)
        out[:] = 0
        if l > 0 and d_out >= WIDE_OUTPUT:
            # A wide output row as scaled rows of W (no reductions)
            prev = matrix_view(acts, a_off[l - 1] + lo * d_in, m, d_in)
            W = matrix_view(params, w_off[l], d_in, d_out)
            for i in range(m):
                _row_times_matrix(out[i], prev[i], W)
        elif l > 0:
            # A narrow one (the 10 logits) as dot products with W's columns
            prev = matrix_view(acts, a_off[l - 1] + lo * d_in, m, d_in)
            Wt = matrix_view(wt, t_off[l], d_out, d_in)
            for i in range(m):
                for k in range(d_out):
                    out[i, k] = _dot_row(Wt, k, prev[i])
        elif sparse_input:
            W = matrix_view(params, w_off[0], d_in, d_out)
            for i in range(m):
                g = rows[lo + i]
                _first_layer_sparse(out[i], W, csr[1], csr[2], csr[0][g], csr[0][g + 1], scale)
        else:
            W = matrix_view(params, w_off[0], d_in, d_out)
            for i in range(m):
                g = rows[lo + i]
                row = inputs[lo + i]
                for j in range(d_in):
                    row[j] = X[g, j] * scale[j] + shift[j]
                for j in range(d_in):
                    v = row[j]
                    if v != 0:
                        _add_scaled_row(out[i], v, W, j)
        bias_activation_inplace(out, params[b_off[l]:b_off[l + 1]],
                                activation if l < n_layers - 1 else IDENTITY)
    k = layer_sizes[n_layers]
    top = a_off[n_layers - 1] + lo * k
    loss, correct = softmax_cross_entropy(matrix_view(acts, top, m, k), labels[lo:hi],
                                          grad_scale, matrix_view(deltas, top, m, k))
    for l in range(n_layers - 1, 0, -1):
        d_in, d_out = layer_sizes[l], layer_sizes[l + 1]
        Wt = matrix_view(wt, t_off[l], d_out, d_in)
        upper = matrix_view(deltas, a_off[l] + lo * d_out, m, d_out)
        lower = matrix_view(deltas, a_off[l - 1] + lo * d_in, m, d_in)
        lower[:] = 0
        for i in range(m):
            below = lower[i]
            for k in range(d_out):
                _add_scaled_row(below, upper[i, k], Wt, k)
        activation_backward_inplace(lower, matrix_view(acts, a_off[l - 1] + lo * d_in, m, d_in),
                                    activation)
    return loss, correct


@njit(cache=True, error_model="numpy")
def _first_layer_gradient_dense(block, n_blocks, n_rows, inputs, net, offsets, deltas, grads,
                                optimizer, state, scalars, hyper):
    """:func:`_first_layer_gradient_sparse` for dense input (the normalized batch in ``inputs``).

    Row ``j`` is ``dW_0[j, :] = sum_i X[i, j] dZ_1[i, :]``, summed in batch row
    order over the rows whose input ``j`` is nonzero.
    """
    params, layer_sizes, activation = net
    w_off, b_off, a_off = offsets
    d_in, d_out = layer_sizes[0], layer_sizes[1]
    j_lo, j_hi = block * d_in // n_blocks, (block + 1) * d_in // n_blocks
    lo, hi = w_off[0] + j_lo * d_out, w_off[0] + j_hi * d_out
    dZ = matrix_view(deltas, a_off[0], n_rows, d_out)
    for j in range(j_lo, j_hi):
        g = grads[w_off[0] + j * d_out:w_off[0] + (j + 1) * d_out]
        g[:] = 0
        for i in range(n_rows):
            v = inputs[i, j]
            if v != 0:
                _add_scaled_row(g, v, dZ, i)
    update_range(optimizer, params, grads, state, lo, hi, scalars, hyper.beta_1, hyper.beta_2,
                 True)


@njit(cache=True, error_model="numpy")
def _first_layer_gradient_sparse(block, n_blocks, rows, csr, scale, net, offsets, deltas, grads,
                                 optimizer, state, scalars, hyper):
    """Rows ``j_lo .. j_hi - 1`` (column block ``block``) of the first layer's weight
    gradient from the batch's nonzero inputs, then their optimizer update (region 2).

    ``dW_0[j, :] = sum_i X[i, j] dZ_1[i, :]``, accumulated over the batch rows
    in order: each row's nonzeros in the block (``block_start`` of
    :func:`compressed_rows`) add its error row to theirs. The block's rows of
    ``dW_0`` (``(j_hi - j_lo) * d_1`` floats) stay in L1 cache meanwhile.
    """
    params, layer_sizes, activation = net
    w_off, b_off, a_off = offsets
    row_ptr, index, value, block_start = csr
    d_in, d_out = layer_sizes[0], layer_sizes[1]
    j_lo, j_hi = block * d_in // n_blocks, (block + 1) * d_in // n_blocks
    lo, hi = w_off[0] + j_lo * d_out, w_off[0] + j_hi * d_out
    if lo == hi:
        return
    G = matrix_view(grads, lo, j_hi - j_lo, d_out)
    G[:] = 0
    dZ = matrix_view(deltas, a_off[0], rows.size, d_out)
    for r in range(rows.size):
        g = rows[r]
        start = row_ptr[g]
        p, end = start + block_start[g, block], start + block_start[g, block + 1]
        if p < end:
            _scatter_scaled_row(G, j_lo, index, value, scale, p, end, dZ, r)
    update_range(optimizer, params, grads, state, lo, hi, scalars, hyper.beta_1, hyper.beta_2,
                 True)


@njit(cache=True, error_model="numpy")
def _bias_gradient(l, n_rows, net, offsets, deltas, grads, optimizer, state, scalars, hyper):
    """``db_l = sum_i dZ_{l+1}[i, :]`` in row order, then its optimizer update (region 2)."""
    params, layer_sizes, activation = net
    w_off, b_off, a_off = offsets
    d_out = layer_sizes[l + 1]
    lo = b_off[l]
    g = grads[lo:lo + d_out]
    g[:] = 0
    dZ = matrix_view(deltas, a_off[l], n_rows, d_out)
    for i in range(n_rows):
        for k in range(d_out):
            g[k] += dZ[i, k]
    update_range(optimizer, params, grads, state, lo, lo + d_out, scalars, hyper.beta_1,
                 hyper.beta_2, False)


@njit(cache=True, error_model="numpy")
def _later_layer_gradient(l, n_rows, net, offsets, t_off, acts, deltas, wt_grads, grads,
                          optimizer, state, scalars, hyper):
    """The whole weight gradient of a later (small) layer ``l >= 1`` and its update (region 2).

    Computed transposed, ``dW_l^T[k, :] = sum_i dZ[i, k] A[i, :]`` (contiguous
    rows, summed in row order), then written back in ``W_l``'s layout.
    """
    params, layer_sizes, activation = net
    w_off, b_off, a_off = offsets
    d_in, d_out = layer_sizes[l], layer_sizes[l + 1]
    A = matrix_view(acts, a_off[l - 1], n_rows, d_in)
    dZ = matrix_view(deltas, a_off[l], n_rows, d_out)
    gt = matrix_view(wt_grads, t_off[l], d_out, d_in)
    gt[:] = 0
    for k in range(d_out):
        row = gt[k]
        i = 0
        while i + 4 <= n_rows:
            _add_scaled_rows4(row, dZ[i, k], i, dZ[i + 1, k], i + 1, dZ[i + 2, k], i + 2,
                              dZ[i + 3, k], i + 3, A)
            i += 4
        while i < n_rows:
            _add_scaled_row(row, dZ[i, k], A, i)
            i += 1
    lo = w_off[l]
    g = matrix_view(grads, lo, d_in, d_out)
    for j in range(d_in):
        for k in range(d_out):
            g[j, k] = gt[k, j]
    update_range(optimizer, params, grads, state, lo, lo + d_in * d_out, scalars, hyper.beta_1,
                 hyper.beta_2, True)


@njit(cache=True, error_model="numpy")
def _prefetch_next_rows(order, lo, hi, batch_size, csr, y):
    """Prefetch what the next two mini-batches read at positions ``lo .. hi - 1`` of ``order``.

    The rows' nonzeros (``csr`` index and value) one batch ahead, whose row
    offsets were prefetched a step earlier; the row offsets and labels two
    batches ahead (:mod:`fastann.kernels.prefetch`).
    """
    row_ptr, index, value, block_start = csr
    n = order.size
    for position in range(lo, min(hi, n)):
        g = order[position]
        for p in range(row_ptr[g], row_ptr[g + 1], 16):
            prefetch(index, p)
        for p in range(row_ptr[g], row_ptr[g + 1], 64):
            prefetch(value, p)
    for position in range(lo + batch_size, min(hi + batch_size, n)):
        g = order[position]
        prefetch(row_ptr, g)
        prefetch(y, g)
        prefetch(block_start[g], 0)
        prefetch(block_start[g], block_start.shape[1] - 1)


@njit(cache=True, error_model="numpy", parallel=True)
def train_epoch_parallel(X, y, csr, order, normalization, net, optimizer, hyper, step,
                         batch_size, state, buffers, sparse_input):
    """:func:`fastann.kernels.train_epoch` on all of Numba's threads, without BLAS.

    Same arguments and results as :func:`~fastann.kernels.train_epoch`, plus
    ``csr``, the dataset's nonzeros (the tuple ``(row_ptr, index, value,
    block_start)`` of :func:`compressed_rows`, built with
    ``n_blocks=COLUMN_BLOCKS``; read only when ``sparse_input``), and with
    ``buffers`` a :data:`~fastann.kernels.structs.ParallelBuffers` (shapes in
    :func:`~fastann.kernels.structs.parallel_buffer_shapes`) whose capacity
    (``labels.shape[0]``) is at least ``batch_size``: no micro-batches.
    Mathematically the same epoch; sums run in another order, so results agree
    with the BLAS path to rounding, and do not depend on the thread count.

    Notes
    -----
    Back-propagation as in Rumelhart, Hinton & Williams (1986), "Learning
    representations by back-propagating errors", Nature 323; the optimizers as
    in :mod:`fastann.kernels.optimizers` (Adam: Kingma & Ba 2015, Alg. 1).
    """
    saved_mxcsr = flush_denormals()  # see fastann.kernels.denormals
    params, layer_sizes, activation = net
    scale = normalization.scale
    inputs, labels, acts, deltas = buffers.inputs, buffers.labels, buffers.acts, buffers.deltas
    chunk_loss, chunk_correct, grads = buffers.chunk_loss, buffers.chunk_correct, buffers.grads
    capacity = labels.shape[0]
    w_off, b_off = parameter_offsets(layer_sizes)
    offsets = (w_off, b_off, activation_offsets(layer_sizes, capacity))
    n_layers = layer_sizes.size - 1
    n_blocks = COLUMN_BLOCKS
    n_tasks = n_blocks + 2 * n_layers - 1
    t_off = np.zeros(n_layers + 1, np.int64)  # W_l^T for l >= 1 in wt, W_0 not copied
    for l in range(1, n_layers):
        t_off[l + 1] = t_off[l] + layer_sizes[l] * layer_sizes[l + 1]
    wt, wt_grads = buffers.wt, buffers.wt_grads
    n = order.size
    loss_sum = 0.0
    n_correct = 0
    n_chunks = chunk_loss.shape[0]
    for start in range(0, n, batch_size):
        n_rows = min(start + batch_size, n) - start
        grad_scale = 1.0 / n_rows
        per_chunk = (n_rows + n_chunks - 1) // n_chunks
        rows = order[start:start + n_rows]
        for r in range(n_rows):
            labels[r] = y[rows[r]]
        for l in range(1, n_layers):
            W = matrix_view(params, w_off[l], layer_sizes[l], layer_sizes[l + 1])
            Wt = matrix_view(wt, t_off[l], layer_sizes[l + 1], layer_sizes[l])
            for j in range(layer_sizes[l]):
                for k in range(layer_sizes[l + 1]):
                    Wt[k, j] = W[j, k]
        # Region 1: rows, in a fixed number of chunks (so that no sum depends
        # on the thread count).
        for c in prange(n_chunks):
            worker_mxcsr = flush_denormals()
            lo, hi = min(c * per_chunk, n_rows), min((c + 1) * per_chunk, n_rows)
            if sparse_input:
                _prefetch_next_rows(order, start + batch_size + lo, start + batch_size + hi,
                                    batch_size, csr, y)
            chunk_loss[c], chunk_correct[c] = _rows_forward_backward(
                lo, hi, rows, X, csr, normalization, inputs, sparse_input, net, offsets, wt,
                t_off, acts, deltas, labels, grad_scale)
            restore_denormals(worker_mxcsr)
        for c in range(n_chunks):
            loss_sum += chunk_loss[c]
            n_correct += chunk_correct[c]
        step += 1
        scalars = step_scalars(optimizer, step, hyper)
        for task in prange(n_tasks):
            worker_mxcsr = flush_denormals()
            if task < n_blocks and sparse_input:
                _first_layer_gradient_sparse(task, n_blocks, rows, csr, scale, net, offsets,
                                             deltas, grads, optimizer, state, scalars, hyper)
            elif task < n_blocks:
                _first_layer_gradient_dense(task, n_blocks, n_rows, inputs, net, offsets, deltas,
                                            grads, optimizer, state, scalars, hyper)
            elif task < n_blocks + n_layers:
                _bias_gradient(task - n_blocks, n_rows, net, offsets, deltas, grads, optimizer,
                               state, scalars, hyper)
            else:
                _later_layer_gradient(task - n_blocks - n_layers + 1, n_rows, net, offsets,
                                      t_off, acts, deltas, wt_grads, grads, optimizer, state,
                                      scalars, hyper)
            restore_denormals(worker_mxcsr)
    restore_denormals(saved_mxcsr)
    return loss_sum, n_correct, step
