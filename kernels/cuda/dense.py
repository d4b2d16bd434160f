"""Dense layer on the GPU: tiled shared-memory products with fused epilogues.

* :func:`gpu_dense_forward` -- one launch: ``out = f(X @ W + b)``. A block of
  ``tile x tile`` threads computes a ``B x B`` output tile, ``B = tile *
  per_thread``: each thread keeps ``per_thread x per_thread`` accumulators
  (register blocking: rows ``ty + i * tile``, columns ``tx + j * tile``) and
  reads ``2 * per_thread`` shared values per ``per_thread**2`` FMAs; slabs of
  ``X`` and ``W`` (``B x B``, or ``depth`` times deeper: :func:`dense_kernels`)
  are staged in shared memory by all threads together. The bias and the activation are applied to the accumulators
  before the single store (no pre-activation buffer).
* :func:`gpu_dense_backward` -- one launch for the whole layer: the grid holds
  the tiles of ``dW = X^T dZ`` followed by the tiles of
  ``dX = (dZ W^T) * f'(X)``. The blocks of the first row of ``dW`` tiles also
  sum their staged ``dZ`` slabs into ``db`` (the column sums, in the same row
  order as :func:`kernels.column_sums`, so ``db`` matches the CPU bit for bit).
  With ``accumulate`` the results are added to ``dW``/``db`` instead of
  stored, which is how micro-batches sum their gradients without a
  ``grad_sum`` buffer or an extra launch.
* :func:`backward_update_kernel` -- the first layer's backward pass with the
  optimizer step fused in (``fuse_update``): its ``dW`` tiles update the
  weights from their accumulators, and extra blocks update the other layers.
* In the training and inference drivers (:mod:`fastann.kernels.cuda.epoch`)
  the first layer's forward is ``forward_gather`` / ``forward_rows``, which
  read the raw rows (through ``order`` for training) and normalize them inside
  the tile loads, and the last layer's forward in training is
  ``forward_softmax``, which ends in the softmax cross-entropy and leaves the
  loss gradient in the logits (see :data:`DenseKernels`).

Plain FMA tiles (numba-cuda exposes no tensor-core MMA); shared tiles are
padded to ``B + 1`` columns so the transposed reads do not hit the same
shared-memory bank. Every output's sum runs over ``k`` in increasing order
whatever ``tile`` and ``per_thread`` are, so they change the speed, not the
result (up to FMA contraction). ``per_thread`` is 1 on a GPU by default (the
shapes reviewed for issue 11; larger blocks are for measuring, see
benchmarks/gpu_compare.py) and 4 under the simulator, where it divides the
number of Python threads by 16. Every thread takes part in every
``syncthreads``: out-of-range rows and columns load zeros instead of leaving.

All arrays are C-contiguous 2-D device arrays sized for ``capacity`` rows;
the live row count ``n_rows <= capacity`` (the last batch of an epoch is
shorter) and, for the backward pass, whether to accumulate, are read from the
plan table at the cursor (:mod:`fastann.kernels.cuda._launch`), so a step's
launches are the same every step: grids cover ``capacity`` rows, and blocks
whose rows all lie past ``n_rows`` return at once (a block-uniform test, so
no ``syncthreads`` is skipped by part of a block).
"""
import math
from collections import namedtuple
from functools import lru_cache

import numpy as np
from numba import cuda, int64

from ._device import activation_functions
from ._launch import (ACCUMULATE, CURRENT, DECAY, DEFAULT_DEPTH, DEFAULT_PER_THREAD,
                      DEFAULT_TILE, EPS_HAT,
                      GRAD_SCALE, LR, MAX_BLOCKS, NEXT, ROWS, START, UPDATE, cdiv, float_dtype,
                      numba_type, single_step_plan)
from .optimizers import update_function

#: The most blocks that split one output tile's reduction (:func:`forward_splits`).
MAX_SPLITS = 8


#: The kernels of one ``(tile, dtype, per_thread)``: ``forward`` and ``backward`` of a layer,
#: and the first layer's forward with the gather fused in, for training (``forward_gather``:
#: rows through ``order``, keeps the normalized inputs and the labels for the backward pass)
#: and for inference (``forward_rows``: consecutive rows); and the last layer's forward with
#: softmax cross-entropy fused in (``forward_softmax``, when a block holds every class);
#: and the ``*_split`` twins of the training forward kernels, which split the reduction over
#: ``gridDim.z`` blocks (split-K) to fill a GPU's multiprocessors when the output has few
#: tiles (see :func:`forward_splits`).
DenseKernels = namedtuple("DenseKernels", ["forward", "backward", "forward_gather",
                                           "forward_rows", "forward_softmax",
                                           "weight_gradient_tile", "forward_split",
                                           "forward_gather_split", "forward_softmax_split"])

#: Static shared memory a block may use (48 KiB on every GPU since compute capability 3.0).
MAX_STATIC_SHARED = 48 * 1024


@lru_cache(maxsize=None)
def dense_kernels(tile, dtype, per_thread=1, depth=1):
    """The :data:`DenseKernels` for one tile size, float dtype, register blocking and depth.

    Parameters
    ----------
    tile : int
        Threads per block edge (``tile**2`` threads per block).
    dtype : float32 or float64
    per_thread : int
        Outputs per thread along each edge; a block computes
        ``(tile * per_thread)**2`` outputs.
    depth : int
        Slab depth of the forward kernels, in tile edges: each round of a
        forward block stages ``B x depth * B`` of ``X`` and ``depth * B x B``
        of ``W`` (``B = tile * per_thread``), so a layer with ``d_in`` inputs
        takes ``d_in / (depth * B)`` rounds of loads and two ``syncthreads``
        instead of ``d_in / B``: more loads in flight per round for launches
        with few blocks per multiprocessor, whose rounds wait on memory. The
        backward kernels keep ``B``-deep slabs.

    Raises
    ------
    ValueError
        A ``depth`` that is not a positive int, or tiles that need more
        static shared memory than a block may have.
    """
    depth = check_depth(depth)
    dtype = np.dtype(dtype)
    nbtype = numba_type(dtype)
    dt = dtype.type
    ZERO = dt(0.0)
    T = int(tile)
    R = int(per_thread)
    BT = T * R              # the block's output tile edge, and the reduction slab
    NT = T * T              # threads per block
    SHAPE = (BT, BT + 1)
    K = BT * depth          # the forward kernels' slab depth
    A_SHAPE = (BT, K + 1)   # a slab of X: rows x k
    B_SHAPE = (K, BT + 1)   # a slab of W: k x columns
    ACC = (R, R)
    shared = (BT * (K + 1) + K * (BT + 1)) * dtype.itemsize
    if shared > MAX_STATIC_SHARED:
        raise ValueError(f"dense tiles of {T}x{T} threads x {R}x{R} outputs, {depth} deep, "
                         f"need {shared} bytes of shared memory in {dtype}; at most "
                         f"{MAX_STATIC_SHARED}")
    activate, derivative_times = activation_functions(dtype)

    @cuda.jit(device=True)
    def clear(acc):
        for i in range(R):
            for j in range(R):
                acc[i, j] = ZERO

    @cuda.jit(device=True)
    def store(out, acc, b, activation, row0, col0, n_rows, tx, ty):
        d_out = out.shape[1]
        for i in range(R):
            row = row0 + ty + i * T
            for j in range(R):
                col = col0 + tx + j * T
                if row < n_rows and col < d_out:
                    out[row, col] = activate(acc[i, j] + b[col], activation)

    def slab_product(DEPTH):
        """``multiply(A, B, acc, a, tx, ty)``: ``acc += A[rows, :DEPTH] @ B[:DEPTH, columns]``
        for the thread's outputs of slabs ``DEPTH`` deep (a compile-time constant)."""

        @cuda.jit(device=True)
        def multiply(A, B, acc, a, tx, ty):
            for kk in range(DEPTH):
                for i in range(R):
                    a[i] = A[ty + i * T, kk]
                for j in range(R):
                    w = B[kk, tx + j * T]
                    for i in range(R):
                        acc[i, j] += a[i] * w

        return multiply

    multiply_slab = slab_product(BT)  # the backward kernels' B-deep slabs
    multiply_deep = slab_product(K)   # the forward kernels' slabs

    @cuda.jit(device=True)
    def stage_weight(W, B, e, k0, k_end, col0):
        """Element ``e`` of the slab ``B = W[k0:k0 + K, col0:col0 + BT]`` (zero past ``k_end``
        and the last column); consecutive ``e`` are consecutive columns. The slabs of ``X``
        and ``W`` both have ``BT * K`` elements, so one loop over ``e`` stages both."""
        kk = e // BT
        c = e - kk * BT
        gk = k0 + kk
        gc = col0 + c
        B[kk, c] = W[gk, gc] if (gk < k_end and gc < W.shape[1]) else ZERO

    @cuda.jit(device=True)
    def product_tile(X, W, row0, col0, n_rows, k_begin, k_end, A, B, acc, a, tx, ty, tid):
        """``acc += X[rows, k_begin:k_end] @ W[k_begin:k_end, columns]`` of the tile at
        ``(row0, col0)``, in slabs of ``K``, ``k`` increasing."""
        for k0 in range(k_begin, k_end, K):
            for e in range(tid, BT * K, NT):
                r = e // K
                k = e - r * K
                gr = row0 + r
                gk = k0 + k
                A[r, k] = X[gr, gk] if (gr < n_rows and gk < k_end) else ZERO
                stage_weight(W, B, e, k0, k_end, col0)
            cuda.syncthreads()
            multiply_deep(A, B, acc, a, tx, ty)
            cuda.syncthreads()

    @cuda.jit(device=True)
    def split_range(d_in):
        """The ``[k_begin, k_end)`` of this block's split of the reduction: whole slabs, spread
        over ``gridDim.z`` splits in order (the whole of ``d_in`` when there is one)."""
        n_slabs = (d_in + K - 1) // K
        per_split = (n_slabs + cuda.gridDim.z - 1) // cuda.gridDim.z
        k_begin = min(d_in, cuda.blockIdx.z * per_split * K)
        return k_begin, min(d_in, k_begin + per_split * K)

    @cuda.jit(device=True)
    def combine_splits(acc, partials, arrivals, flag, row0, col0, n_rows, d_out, tx, ty, tid):
        """Split-K's deterministic reduction; True in the block that then holds the sums.

        Every split stores its partial tile in ``partials[z * capacity + row, col]``, then
        counts itself in ``arrivals[tile]`` (an integer atomic, after a memory fence). The
        last of the tile's splits to arrive adds the ``gridDim.z`` partials into ``acc`` in
        split order, so the sums do not depend on which block came last, and resets the
        count for the next launch. The other blocks return False.
        """
        splits = cuda.gridDim.z
        capacity = partials.shape[0] // splits
        base = cuda.blockIdx.z * capacity
        for i in range(R):
            row = row0 + ty + i * T
            for j in range(R):
                col = col0 + tx + j * T
                if row < n_rows and col < d_out:
                    partials[base + row, col] = acc[i, j]
        cuda.threadfence()  # the partial tile is visible to every block before it is counted
        cuda.syncthreads()
        tile_index = cuda.blockIdx.y * cuda.gridDim.x + cuda.blockIdx.x
        if tid == 0:
            flag[0] = cuda.atomic.add(arrivals, tile_index, 1)
        cuda.syncthreads()
        if flag[0] != splits - 1:
            return False  # block-uniform: flag is shared
        cuda.threadfence()
        for i in range(R):
            row = row0 + ty + i * T
            for j in range(R):
                col = col0 + tx + j * T
                if row < n_rows and col < d_out:
                    total = partials[row, col]
                    for z in range(1, splits):
                        total += partials[z * capacity + row, col]
                    acc[i, j] = total
        if tid == 0:
            arrivals[tile_index] = 0
        return True

    @cuda.jit(device=True)
    def softmax_rows(acc, b, labels, counters, out, A, row0, n_rows, d_out, grad_scale, tx, ty):
        """The softmax cross-entropy of the block's rows of logits ``acc + b`` (see
        ``forward_softmax``), staged through ``A``."""
        for i in range(R):
            for j in range(R):
                c = tx + j * T
                if c < d_out:
                    A[ty + i * T, c] = acc[i, j] + b[c]  # identity: the logits
        cuda.syncthreads()
        if tx == 0:
            for i in range(R):
                r = ty + i * T
                row = row0 + r
                if row < n_rows:
                    best = 0
                    zmax = A[r, 0]
                    for c in range(1, d_out):
                        if A[r, c] > zmax:
                            zmax = A[r, c]
                            best = c
                    y = labels[row]
                    if best == y:
                        cuda.atomic.add(counters, 1, 1.0)
                    zy = A[r, y]
                    total = ZERO
                    for c in range(d_out):
                        e = math.exp(A[r, c] - zmax)
                        A[r, c] = e
                        total += e
                    cuda.atomic.add(counters, 0, math.log(total) - (zy - zmax))
                    inv = grad_scale / total
                    for c in range(d_out):
                        g = A[r, c] * inv
                        if c == y:
                            g -= grad_scale
                        out[row, c] = g

    def forward_bodies(SPLIT):
        """The forward kernels' bodies, with split-K (``SPLIT``, a compile-time constant) or
        without. Without it, ``partials`` and ``arrivals`` are never touched (the kernels
        pass ``out`` and ``cursor`` in their place)."""

        @cuda.jit(device=True)
        def dense(X, W, b, activation, out, partials, arrivals, plan, cursor):
            n_rows = int(plan[cursor[CURRENT], ROWS])
            row0 = cuda.blockIdx.y * BT
            if row0 >= n_rows:
                return  # the whole block is past the live rows
            col0 = cuda.blockIdx.x * BT
            A = cuda.shared.array(A_SHAPE, nbtype)
            B = cuda.shared.array(B_SHAPE, nbtype)
            flag = cuda.shared.array(1, int64)
            acc = cuda.local.array(ACC, nbtype)
            a = cuda.local.array(R, nbtype)
            tx = cuda.threadIdx.x
            ty = cuda.threadIdx.y
            tid = ty * T + tx
            d_in = W.shape[0]
            k_begin, k_end = split_range(d_in) if SPLIT else (0, d_in)
            clear(acc)
            product_tile(X, W, row0, col0, n_rows, k_begin, k_end, A, B, acc, a, tx, ty, tid)
            if SPLIT:
                if not combine_splits(acc, partials, arrivals, flag, row0, col0, n_rows,
                                      W.shape[1], tx, ty, tid):
                    return
            store(out, acc, b, activation, row0, col0, n_rows, tx, ty)

        @cuda.jit(device=True)
        def softmax(X, W, b, labels, counters, out, partials, arrivals, plan, cursor):
            step = cursor[CURRENT]
            n_rows = int(plan[step, ROWS])
            grad_scale = nbtype(plan[step, GRAD_SCALE])
            row0 = cuda.blockIdx.y * BT
            if row0 >= n_rows:
                return  # the whole block is past the live rows
            A = cuda.shared.array(A_SHAPE, nbtype)
            B = cuda.shared.array(B_SHAPE, nbtype)
            flag = cuda.shared.array(1, int64)
            acc = cuda.local.array(ACC, nbtype)
            a = cuda.local.array(R, nbtype)
            tx = cuda.threadIdx.x
            ty = cuda.threadIdx.y
            tid = ty * T + tx
            d_in = W.shape[0]
            d_out = W.shape[1]
            k_begin, k_end = split_range(d_in) if SPLIT else (0, d_in)
            clear(acc)
            product_tile(X, W, row0, 0, n_rows, k_begin, k_end, A, B, acc, a, tx, ty, tid)
            if SPLIT:
                if not combine_splits(acc, partials, arrivals, flag, row0, 0, n_rows, d_out,
                                      tx, ty, tid):
                    return
            softmax_rows(acc, b, labels, counters, out, A, row0, n_rows, d_out, grad_scale,
                         tx, ty)

        @cuda.jit(device=True)
        def gather(X, y, order, scale, shift, inputs, labels, W, b, activation, out, partials,
                   arrivals, plan, cursor):
            c = cursor[NEXT]
            cursor[CURRENT] = c  # the same value from every thread; nobody here reads this slot
            start = int(plan[c, START])
            n_rows = int(plan[c, ROWS])
            row0 = cuda.blockIdx.y * BT
            if row0 >= n_rows:
                return  # the whole block is past the live rows
            col0 = cuda.blockIdx.x * BT
            keep = cuda.blockIdx.x == 0
            A = cuda.shared.array(A_SHAPE, nbtype)
            B = cuda.shared.array(B_SHAPE, nbtype)
            flag = cuda.shared.array(1, int64)
            acc = cuda.local.array(ACC, nbtype)
            a = cuda.local.array(R, nbtype)
            tx = cuda.threadIdx.x
            ty = cuda.threadIdx.y
            tid = ty * T + tx
            d_in = W.shape[0]
            d_out = W.shape[1]
            k_begin, k_end = split_range(d_in) if SPLIT else (0, d_in)
            sources = cuda.shared.array(BT, int64)  # the block's dataset rows, read once
            for r in range(tid, BT, NT):
                sources[r] = order[start + row0 + r] if row0 + r < n_rows else 0
            clear(acc)
            cuda.syncthreads()
            for k0 in range(k_begin, k_end, K):
                for e in range(tid, BT * K, NT):
                    r = e // K
                    k = e - r * K
                    gr = row0 + r
                    gk = k0 + k
                    v = ZERO
                    if gr < n_rows and gk < k_end:
                        source = sources[r]
                        v = X[source, gk] * scale[gk] + shift[gk]
                        if keep:
                            inputs[gr, gk] = v
                            if gk == 0:
                                labels[gr] = y[source]
                    A[r, k] = v
                    stage_weight(W, B, e, k0, k_end, col0)
                cuda.syncthreads()
                multiply_deep(A, B, acc, a, tx, ty)
                cuda.syncthreads()
            if SPLIT:
                if not combine_splits(acc, partials, arrivals, flag, row0, col0, n_rows, d_out,
                                      tx, ty, tid):
                    return
            store(out, acc, b, activation, row0, col0, n_rows, tx, ty)

        return dense, softmax, gather

    dense_body, softmax_body, gather_body = forward_bodies(False)
    dense_split, softmax_split, gather_split = forward_bodies(True)

    @cuda.jit(cache=True)
    def forward(X, W, b, activation, out, plan, cursor):
        dense_body(X, W, b, activation, out, out, cursor, plan, cursor)

    @cuda.jit(cache=True)
    def forward_split(X, W, b, activation, out, partials, arrivals, plan, cursor):
        """``forward`` with the reduction split over ``gridDim.z`` blocks (split-K):
        ``partials`` (``gridDim.z * capacity``, d_out) and ``arrivals`` (int64, one zero per
        output tile) as in ``combine_splits``."""
        dense_split(X, W, b, activation, out, partials, arrivals, plan, cursor)

    @cuda.jit(cache=True)
    def forward_softmax(X, W, b, labels, counters, out, plan, cursor):
        """The last layer of a training step with softmax cross-entropy fused in.

        Needs every class of a row in one block (``d_out <= tile * per_thread``,
        a grid one block wide). The logits ``X @ W + b`` go to shared memory;
        one thread per row then computes, in the CPU's order
        (:func:`kernels.softmax_cross_entropy`), the max and first arg-max, the
        sum of exponentials, the loss and correct count (added into the float64
        ``counters`` with atomics) and writes the gradient ``(softmax(z) -
        onehot(y)) * grad_scale`` into ``out``.
        """
        softmax_body(X, W, b, labels, counters, out, out, cursor, plan, cursor)

    @cuda.jit(cache=True)
    def forward_softmax_split(X, W, b, labels, counters, out, partials, arrivals, plan, cursor):
        """``forward_softmax`` with split-K (see ``forward_split``)."""
        softmax_split(X, W, b, labels, counters, out, partials, arrivals, plan, cursor)

    @cuda.jit(cache=True)
    def forward_gather(X, y, order, scale, shift, inputs, labels, W, b, activation, out, plan,
                       cursor):
        """The first layer of a training step, with the gather fused into its tile loads.

        Row ``i`` of the step is ``X[order[start + i]] * scale + shift``, loaded
        straight into the shared tile (each block reads its rows' positions in
        ``order`` once, into shared memory, so that a slab's loads do not wait
        on a load of ``order`` first); the blocks of the first column of output
        tiles also store it into ``inputs`` (for the backward pass) and the
        label into ``labels``. The first kernel of a step: moves the cursor.
        """
        gather_body(X, y, order, scale, shift, inputs, labels, W, b, activation, out, out,
                    cursor, plan, cursor)

    @cuda.jit(cache=True)
    def forward_gather_split(X, y, order, scale, shift, inputs, labels, W, b, activation, out,
                             partials, arrivals, plan, cursor):
        """``forward_gather`` with split-K (see ``forward_split``); each split keeps its own
        columns of ``inputs``."""
        gather_split(X, y, order, scale, shift, inputs, labels, W, b, activation, out,
                     partials, arrivals, plan, cursor)

    @cuda.jit(cache=True)
    def forward_rows(X, scale, shift, W, b, activation, out, plan, cursor):
        """The first layer of an inference step: rows ``X[start + i] * scale + shift``
        loaded straight into the tiles (no ``inputs`` buffer). Moves the cursor."""
        c = cursor[NEXT]
        cursor[CURRENT] = c
        start = int(plan[c, START])
        n_rows = int(plan[c, ROWS])
        row0 = cuda.blockIdx.y * BT
        if row0 >= n_rows:
            return
        col0 = cuda.blockIdx.x * BT
        A = cuda.shared.array(A_SHAPE, nbtype)
        B = cuda.shared.array(B_SHAPE, nbtype)
        acc = cuda.local.array(ACC, nbtype)
        a = cuda.local.array(R, nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * T + tx
        d_in = W.shape[0]
        clear(acc)
        for k0 in range(0, d_in, K):
            for e in range(tid, BT * K, NT):
                r = e // K
                k = e - r * K
                gr = row0 + r
                gk = k0 + k
                v = ZERO
                if gr < n_rows and gk < d_in:
                    v = X[start + gr, gk] * scale[gk] + shift[gk]
                A[r, k] = v
                stage_weight(W, B, e, k0, d_in, col0)
            cuda.syncthreads()
            multiply_deep(A, B, acc, a, tx, ty)
            cuda.syncthreads()
        store(out, acc, b, activation, row0, col0, n_rows, tx, ty)

    @cuda.jit(device=True)
    def weight_gradient_tile(X, dZ, n_rows, d_in, d_out, f0, j0, with_bias, A, B, acc, a, bias,
                             tx, ty, tid):
        """``acc`` = the thread's outputs of the ``dW = X^T dZ`` tile at ``(f0, j0)`` (rows =
        input features, columns = output units), summed over the live rows in slabs of
        ``BT``; with ``with_bias`` also ``bias`` = its columns' sums of ``dZ`` (``db``),
        row after row as the CPU sums them. ``acc`` and ``bias`` start at zero."""
        for s0 in range(0, n_rows, BT):
            for e in range(tid, BT * BT, NT):
                k = e // BT
                m = e - k * BT
                s = s0 + k
                f = f0 + m
                A[k, m] = X[s, f] if (s < n_rows and f < d_in) else ZERO
                j = j0 + m
                B[k, m] = dZ[s, j] if (s < n_rows and j < d_out) else ZERO
            cuda.syncthreads()
            for kk in range(BT):
                for i in range(R):
                    a[i] = A[kk, ty + i * T]
                for j in range(R):
                    g = B[kk, tx + j * T]
                    for i in range(R):
                        acc[i, j] += a[i] * g
            if with_bias:
                for kk in range(BT):
                    for j in range(R):
                        bias[j] += B[kk, tx + j * T]
            cuda.syncthreads()

    @cuda.jit(cache=True)
    def backward(X, W, dZ, dW, db, dX, input_activation, plan, cursor, dw_tiles_per_row,
                 n_dw_blocks):
        step = cursor[CURRENT]
        n_rows = int(plan[step, ROWS])
        accumulate = plan[step, ACCUMULATE] != 0.0
        A = cuda.shared.array(SHAPE, nbtype)
        B = cuda.shared.array(SHAPE, nbtype)
        acc = cuda.local.array(ACC, nbtype)
        a = cuda.local.array(R, nbtype)
        bias = cuda.local.array(R, nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * T + tx
        d_in = W.shape[0]
        d_out = W.shape[1]
        block = cuda.blockIdx.x
        for i in range(R):
            bias[i] = ZERO
            for j in range(R):
                acc[i, j] = ZERO
        if block < n_dw_blocks:
            ti = block // dw_tiles_per_row
            f0 = ti * BT
            j0 = (block - ti * dw_tiles_per_row) * BT
            with_bias = ti == 0 and ty == 0
            weight_gradient_tile(X, dZ, n_rows, d_in, d_out, f0, j0, with_bias, A, B, acc, a,
                                 bias, tx, ty, tid)
            for i in range(R):
                fi = f0 + ty + i * T
                for j in range(R):
                    jj = j0 + tx + j * T
                    if fi < d_in and jj < d_out:
                        if accumulate:
                            dW[fi, jj] += acc[i, j]
                        else:
                            dW[fi, jj] = acc[i, j]
            if with_bias:
                for j in range(R):
                    jj = j0 + tx + j * T
                    if jj < d_out:
                        if accumulate:
                            db[jj] += bias[j]
                        else:
                            db[jj] = bias[j]
        else:
            # dX tile (ts, ti): rows = samples, columns = input features; the
            # sum runs over the output units c, in slabs of BT units.
            t = block - n_dw_blocks
            dx_tiles_per_row = (d_in + BT - 1) // BT
            ts = t // dx_tiles_per_row
            ti = t - ts * dx_tiles_per_row
            s0 = ts * BT
            if s0 >= n_rows:
                return  # the whole block is past the live rows
            f0 = ti * BT
            for c0 in range(0, d_out, BT):
                for e in range(tid, BT * BT, NT):
                    m = e // BT
                    k = e - m * BT
                    s = s0 + m
                    c = c0 + k
                    A[m, k] = dZ[s, c] if (s < n_rows and c < d_out) else ZERO
                    f = f0 + m
                    B[m, k] = W[f, c] if (f < d_in and c < d_out) else ZERO
                cuda.syncthreads()
                for kk in range(BT):
                    for i in range(R):
                        a[i] = A[ty + i * T, kk]
                    for j in range(R):
                        w = B[tx + j * T, kk]
                        for i in range(R):
                            acc[i, j] += a[i] * w
                cuda.syncthreads()
            for i in range(R):
                s = s0 + ty + i * T
                for j in range(R):
                    f = f0 + tx + j * T
                    if s < n_rows and f < d_in:
                        dX[s, f] = derivative_times(acc[i, j], X[s, f], input_activation)

    return DenseKernels(forward, backward, forward_gather, forward_rows, forward_softmax,
                        weight_gradient_tile, forward_split, forward_gather_split,
                        forward_softmax_split)


def forward_grid(n_rows, d_out, tile, per_thread=1, splits=1):
    """``(grid, block)`` of a forward launch over ``n_rows`` rows (the capacity, in the drivers);
    with ``splits > 1`` the grid is 3-D, ``splits`` deep (a ``*_split`` kernel)."""
    edge = tile * per_thread
    grid = (cdiv(d_out, edge), max(1, cdiv(n_rows, edge)))
    return (grid + (int(splits),) if splits > 1 else grid), (tile, tile)


def forward_splits(n_rows, d_in, d_out, tile, per_thread, split_k, multiprocessors, depth=1):
    """How many blocks share each output tile's reduction in a forward launch (split-K).

    1 when ``split_k`` is 1 or the launch already has at least one block per
    multiprocessor. Else ``split_k`` (an int), or for ``"auto"`` the fewest
    splits that give every multiprocessor a block; at most :data:`MAX_SPLITS`
    and the number of ``depth * tile * per_thread`` slabs of ``d_in``, then
    lowered so that no split is left without a slab.

    Parameters
    ----------
    n_rows, d_in, d_out : int
        The launch's rows (the capacity) and the layer's inputs and outputs.
    tile, per_thread : int
    split_k : int or "auto"
    multiprocessors : int
        The GPU's streaming multiprocessors (:func:`~._launch.multiprocessors`).
    depth : int
        The kernels' slab depth (:func:`dense_kernels`).

    Returns
    -------
    int
    """
    (gx, gy), _ = forward_grid(n_rows, d_out, tile, per_thread)
    blocks = gx * gy
    if split_k == 1 or blocks >= multiprocessors:
        return 1
    want = cdiv(multiprocessors, blocks) if split_k == "auto" else int(split_k)
    n_slabs = cdiv(d_in, depth * tile * per_thread)
    want = max(1, min(want, MAX_SPLITS, n_slabs))
    return cdiv(n_slabs, cdiv(n_slabs, want))


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def check_depth(depth):
    """``depth`` as an int if it is a positive int, else a ValueError."""
    if _is_positive_int(depth):
        return int(depth)
    raise ValueError(f"depth must be a positive int, got {depth!r}")


def check_split_k(split_k):
    """``split_k`` if it is ``"auto"`` or an int >= 1 (as an int), else a ValueError."""
    if split_k == "auto":
        return split_k
    if _is_positive_int(split_k):
        return int(split_k)
    raise ValueError(f'split_k must be a positive int or "auto", got {split_k!r}')


def split_buffers(n_rows, d_out, splits, tile, per_thread, dtype):
    """``(partials, arrivals)`` device arrays of a ``*_split`` forward launch: the splits'
    partial tiles, shape (``splits * n_rows``, d_out), and one arrival count per output
    tile (int64, zeros; each launch leaves them at zero)."""
    (gx, gy), _ = forward_grid(n_rows, d_out, tile, per_thread)
    return (cuda.device_array((int(splits) * int(n_rows), int(d_out)), dtype),
            cuda.to_device(np.zeros(gx * gy, np.int64)))


def backward_grid(n_rows, d_in, d_out, tile, with_dx, per_thread=1):
    """``(grid, block, dw_tiles_per_row, n_dw_blocks)`` for one backward launch over ``n_rows``."""
    edge = tile * per_thread
    dw_tiles_per_row = cdiv(d_out, edge)
    n_dw = cdiv(d_in, edge) * dw_tiles_per_row
    n_dx = cdiv(n_rows, edge) * cdiv(d_in, edge) if with_dx else 0
    return n_dw + n_dx, (tile, tile), dw_tiles_per_row, n_dw


def gpu_dense_forward(X, W, b, activation, out, n_rows=None, tile=None, per_thread=None,
                      splits=1, depth=None):
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
        Threads per block edge (threads per block = tile**2); default
        :data:`DEFAULT_TILE`.
    per_thread : int, optional
        Outputs per thread along each edge; default :data:`DEFAULT_PER_THREAD`.
    splits : int, optional
        Blocks that share each output tile's sum over ``n_in`` (split-K, the
        ``forward_split`` kernel; at most the number of ``depth * tile *
        per_thread`` slabs of ``n_in``). The partial sums are added in split
        order, so the result is the same every run; it may differ from
        ``splits=1`` in the last bits.
    depth : int, optional
        Slab depth in tile edges (:func:`dense_kernels`); default
        :data:`DEFAULT_DEPTH`.

    Raises
    ------
    ValueError
        A ``depth`` that is not a positive int.
    """
    tile = tile or DEFAULT_TILE
    per_thread = per_thread or DEFAULT_PER_THREAD
    depth = DEFAULT_DEPTH if depth is None else depth
    n_rows = X.shape[0] if n_rows is None else int(n_rows)
    if n_rows == 0:
        return
    kernels = dense_kernels(tile, float_dtype(out), per_thread, depth)
    grid, block = forward_grid(n_rows, W.shape[1], tile, per_thread, splits)
    plan, cursor = (cuda.to_device(a) for a in single_step_plan(n_rows=n_rows))
    if splits > 1:
        partials, arrivals = split_buffers(n_rows, W.shape[1], splits, tile, per_thread,
                                           float_dtype(out))
        kernels.forward_split[grid, block](X, W, b, int(activation), out, partials, arrivals,
                                           plan, cursor)
    else:
        kernels.forward[grid, block](X, W, b, int(activation), out, plan, cursor)


def gpu_dense_backward(X, W, dZ, dW, db, dX, input_activation, n_rows=None,
                       accumulate=False, tile=None, per_thread=None):
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
    tile, per_thread : int, optional
        As in :func:`gpu_dense_forward`.
    """
    tile = tile or DEFAULT_TILE
    per_thread = per_thread or DEFAULT_PER_THREAD
    n_rows = dZ.shape[0] if n_rows is None else int(n_rows)
    with_dx = dX is not None and dX.size > 0
    backward = dense_kernels(tile, float_dtype(dW), per_thread).backward
    grid, block, per_row, n_dw = backward_grid(n_rows, W.shape[0], W.shape[1], tile, with_dx,
                                               per_thread)
    plan, cursor = single_step_plan(n_rows=n_rows, accumulate=accumulate)
    backward[grid, block](X, W, dZ, dW, db, dX if with_dx else dZ, int(input_activation),
                          cuda.to_device(plan), cuda.to_device(cursor), per_row, n_dw)


@lru_cache(maxsize=None)
def backward_update_kernel(tile, dtype, per_thread, optimizer):
    """The first layer's backward pass with the optimizer step fused in (``fuse_update``).

    The last kernel of a training micro-step when the update is fused; it
    replaces the first layer's :func:`gpu_dense_backward` launch and the
    separate optimizer launch. Blocks ``[0, n_dw_blocks)`` compute the tiles of
    the first layer's ``dW = X^T dZ`` and ``db`` exactly as the backward kernel
    does, then, when the plan's ``UPDATE`` is set, apply the optimizer to those
    weights straight from the accumulators (adding the earlier micro-batches'
    sum from ``grads`` first): the first layer's gradient is never stored and
    read back. Otherwise they store (or add) it into ``grads``. The blocks
    after them update every other layer's parameters, whose gradients the
    earlier backward launches of the step completed; no block of this launch
    reads the parameters that another one writes. It advances the cursor, as
    the optimizer kernel does.

    Launch signature::

        backward_update[grid, (tile, tile)](X, dZ, params, grads, s1, s2, plan, cursor,
                                            c0, c1, c2, c3, l1, l2, n_weights,
                                            dw_tiles_per_row, n_dw_blocks)

    ``X`` the first layer's inputs (capacity, d_0), ``dZ`` its output gradient
    (capacity, d_1), the rest as in
    :func:`fastann.kernels.cuda.optimizers.update_function` with flat
    ``params``/``grads``/state (weights first, the first layer's at
    ``[0, d_0 * d_1)``; biases from ``n_weights``). Grid: see
    :func:`backward_update_grid`.

    Parameters
    ----------
    tile, per_thread : int
        As in :func:`dense_kernels`.
    dtype : float32 or float64
    optimizer : {"sgd", "momentum", "nesterov", "adam"}
        AdamW is ``"adam"`` with its decay in the plan.
    """
    dtype = np.dtype(dtype)
    nbtype = numba_type(dtype)
    ZERO = dtype.type(0.0)
    T = int(tile)
    R = int(per_thread)
    BT = T * R
    NT = T * T
    SHAPE = (BT, BT + 1)
    ACC = (R, R)
    weight_gradient_tile = dense_kernels(tile, dtype, per_thread).weight_gradient_tile
    update = update_function(optimizer, dtype)

    @cuda.jit(cache=True)
    def backward_update(X, dZ, params, grads, s1, s2, plan, cursor, c0, c1, c2, c3, l1, l2,
                        n_weights, dw_tiles_per_row, n_dw_blocks):
        step = cursor[CURRENT]
        cursor[NEXT] = step + 1  # the last kernel of a training step
        n_rows = int(plan[step, ROWS])
        accumulate = plan[step, ACCUMULATE] != 0.0
        do_update = plan[step, UPDATE] != 0.0
        lr = nbtype(plan[step, LR])
        eps_hat = nbtype(plan[step, EPS_HAT])
        decay = nbtype(plan[step, DECAY])
        d_in = X.shape[1]
        d_out = dZ.shape[1]
        first_weights = d_in * d_out
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * T + tx
        block = cuda.blockIdx.x
        if block >= n_dw_blocks:
            # The other layers: weights [first_weights, n_weights), then the biases after
            # the first layer's d_out, both complete since their backward launches.
            if do_update:
                other_weights = n_weights - first_weights
                n_other = params.size - first_weights - d_out
                stride = (cuda.gridDim.x - n_dw_blocks) * NT
                for k in range((block - n_dw_blocks) * NT + tid, n_other, stride):
                    i = first_weights + k if k < other_weights else k + first_weights + d_out
                    update(params, s1, s2, i, grads[i], n_weights, lr, eps_hat, decay,
                           c0, c1, c2, c3, l1, l2)
            return  # the whole block
        A = cuda.shared.array(SHAPE, nbtype)
        B = cuda.shared.array(SHAPE, nbtype)
        acc = cuda.local.array(ACC, nbtype)
        a = cuda.local.array(R, nbtype)
        bias = cuda.local.array(R, nbtype)
        for i in range(R):
            bias[i] = ZERO
            for j in range(R):
                acc[i, j] = ZERO
        ti = block // dw_tiles_per_row
        f0 = ti * BT
        j0 = (block - ti * dw_tiles_per_row) * BT
        with_bias = ti == 0 and ty == 0
        weight_gradient_tile(X, dZ, n_rows, d_in, d_out, f0, j0, with_bias, A, B, acc, a, bias,
                             tx, ty, tid)
        for i in range(R):
            fi = f0 + ty + i * T
            for j in range(R):
                jj = j0 + tx + j * T
                if fi < d_in and jj < d_out:
                    k = fi * d_out + jj
                    g = grads[k] + acc[i, j] if accumulate else acc[i, j]
                    if do_update:
                        update(params, s1, s2, k, g, n_weights, lr, eps_hat, decay,
                               c0, c1, c2, c3, l1, l2)
                    else:
                        grads[k] = g
        if with_bias:
            for j in range(R):
                jj = j0 + tx + j * T
                if jj < d_out:
                    k = n_weights + jj
                    g = grads[k] + bias[j] if accumulate else bias[j]
                    if do_update:
                        update(params, s1, s2, k, g, n_weights, lr, eps_hat, decay,
                               c0, c1, c2, c3, l1, l2)
                    else:
                        grads[k] = g

    return backward_update


def backward_update_grid(n_params, d_in, d_out, tile, per_thread=1):
    """``(grid, block, dw_tiles_per_row, n_dw_blocks)`` of a :func:`backward_update_kernel`
    launch: the first layer's ``dW`` tiles, then grid-stride blocks over the
    ``n_params - d_in * d_out - d_out`` other parameters (at least one)."""
    edge = tile * per_thread
    dw_tiles_per_row = cdiv(d_out, edge)
    n_dw = cdiv(d_in, edge) * dw_tiles_per_row
    n_other = int(n_params) - int(d_in) * int(d_out) - int(d_out)
    n_rest = max(1, min(MAX_BLOCKS, cdiv(n_other, tile * tile)))
    return n_dw + n_rest, (tile, tile), dw_tiles_per_row, n_dw
