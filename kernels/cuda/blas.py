"""Wide dense layers through cuBLAS: a library GEMM on the device arrays, plus small epilogues.

Optional (``gemm="cublas"`` in :class:`~fastann.kernels.cuda.TrainingProgram`,
off by default until it has run on hardware). For layers whose inputs and
outputs are both at least :data:`WIDE` wide, the training step replaces the
tiled kernels of :mod:`fastann.kernels.cuda.dense` with:

* forward: ``out = X @ W`` (GEMM), then ``out = f(out + b)`` on the live rows
  (:func:`epilogue_kernels` ``bias_activation``); the first layer gathers its
  rows first (:func:`fastann.kernels.cuda.batching` ``_gather``, which moves
  the cursor);
* backward: ``db (+)=`` the column sums of ``dZ`` (``column_sums``, in a
  fixed order), then ``dW (+)= X^T dZ`` (GEMM, ``beta = 1`` for a later
  micro-batch) and, below the first layer, ``dX = dZ W^T`` (GEMM) then
  ``dX *= f'(X)`` (``derivative_times``).

The GEMM is cuBLAS's ``sgemm``/``dgemm`` called through CuPy's bindings
(``pip install cupy-cuda13x`` or ``cupy-cuda12x``) on the same memory, no
copies: row-major ``C = op(A) op(B)`` is column-major ``C^T = op(B)^T
op(A)^T``, so the operands are passed swapped, each with its row length as
leading dimension. It runs on the stream the step's kernels go to: the legacy
default stream, where numba-cuda launches, or the stream of a CUDA graph
being captured (cuBLAS calls can be captured; since CUDA 12.2 cuBLAS takes
the workspace it needs during a capture from ``cudaMallocAsync``, which is
why PyTorch stopped setting one, pytorch/pytorch#113994), so the
kernels and GEMMs of a step stay in order. cuBLAS's default math mode
computes float32 in float32 (no TF32). Under the simulator a NumPy product
stands in for cuBLAS, so everything around the call (rows, accumulation,
epilogues, order) is tested without a GPU.

**Every GEMM covers all ``capacity`` rows of the buffers**, so that its
arguments never change and a step with GEMMs can be captured as a CUDA graph
(the row count of a cuBLAS call is a host value; a partial mini-batch's count
lives in device memory). The rows past the live ones contribute nothing:
before a layer's ``dW`` GEMM, ``column_sums`` sets them to zero in both
operands (``dZ`` and ``X``, which may hold anything there, NaN included), so
``dW`` adds only zeros from them and ``dX = dZ W^T`` is zero there; the
forward GEMM's outputs in those rows are never read by a live row. The extra
rows are work only in an epoch's last, partial micro-batch.
"""
from functools import lru_cache

import numpy as np
from numba import cuda

from ._device import activation_functions
from ._launch import ACCUMULATE, CURRENT, ROWS, SIMULATOR, WARP, n_blocks, numba_type

#: Layers with at least this many inputs and outputs take the GEMM path.
WIDE = 64
#: Threads of a ``column_sums`` block: columns (a warp's lanes) x row groups. A column's
#: rows are spread over the groups, so that a 1024-column layer at batch 256 has 32 blocks of
#: 8 warps, each thread summing 32 rows, instead of 1024 threads summing 256 rows one after
#: another. Small under the simulator, where every thread is a Python thread.
COLUMN_SUMS_BLOCK = (4, 2) if SIMULATOR else (WARP, 8)
#: The values of the ``gemm`` option: numba-cuda's tiles, or cuBLAS for wide layers.
GEMMS = ("tiles", "cublas")


def is_wide(d_in, d_out):
    """Whether a ``d_in x d_out`` layer takes the GEMM path."""
    return int(d_in) >= WIDE and int(d_out) >= WIDE


def require_cupy():
    """CuPy's cuBLAS bindings, or an ImportError that says how to install them."""
    try:
        import cupy
        from cupy_backends.cuda.libs import cublas
    except ImportError as exc:
        raise ImportError('gemm="cublas" needs CuPy: pip install "fastann[cublas13]" '
                          '(cupy-cuda13x) or "fastann[cublas12]" (cupy-cuda12x)') from exc
    return cupy, cublas


def _pointer(array):
    return array.__cuda_array_interface__["data"][0]


def gemm(a, b, c, trans_a=False, beta=0.0, trans_b=False, stream=None):
    """``c = op(a) @ op(b) + beta * c`` on device arrays, all their rows.

    The drivers pass buffers of ``capacity`` rows (module docstring): ``c =
    a @ op(b)``, or with ``trans_a`` ``c = a^T @ b``, a sum over the rows.

    Parameters
    ----------
    a, b, c : device arrays, 2-D, C-contiguous, float32 or float64 (one dtype)
    trans_a, trans_b : bool
    beta : float
        0 overwrites ``c``; 1 adds to it.
    stream : object with ``__cuda_stream__``, optional
        Where cuBLAS runs (a ``cuda.core`` stream or graph builder); default
        the legacy default stream, numba-cuda's.
    """
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    n_out = b.shape[0] if trans_b else b.shape[1]
    if m == 0 or n_out == 0:
        return
    if SIMULATOR:
        A, B, C = a._ary, b._ary, c._ary
        product = (A.T if trans_a else A) @ (B.T if trans_b else B)
        C[...] = product if beta == 0.0 else C + product
        return
    _cublas_gemm(a, b, c, m, n_out, k, trans_a, trans_b, beta, stream)


def _cublas_gemm(a, b, c, m, n, k, trans_a, trans_b, beta, stream):  # pragma: no cover - GPU
    cupy, cublas = require_cupy()
    handle = cupy.cuda.device.get_cublas_handle()
    dtype = np.dtype(c.dtype)
    alpha, beta = np.array(1.0, dtype), np.array(beta, dtype)
    function = cublas.sgemm if dtype == np.float32 else cublas.dgemm
    op_a = cublas.CUBLAS_OP_T if trans_a else cublas.CUBLAS_OP_N
    op_b = cublas.CUBLAS_OP_T if trans_b else cublas.CUBLAS_OP_N
    target = (cupy.cuda.Stream.null if stream is None
              else cupy.cuda.ExternalStream(int(stream.__cuda_stream__()[1])))
    mode = cublas.getPointerMode(handle)
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)  # alpha, beta read now
    try:
        # Set on the handle here, and made CuPy's current stream for the bindings that set
        # the handle's stream themselves. Column-major C^T (n x m) = op(B)^T @ op(A)^T.
        with target:
            cublas.setStream(handle, target.ptr)
            function(handle, op_b, op_a, n, m, k, alpha.ctypes.data, _pointer(b), b.shape[1],
                     _pointer(a), a.shape[1], beta.ctypes.data, _pointer(c), c.shape[1])
    finally:
        cublas.setPointerMode(handle, mode)
        if stream is not None:
            cublas.setStream(handle, cupy.cuda.Stream.null.ptr)


def column_sums_grid(n_columns):
    """``(blocks, (COLUMNS, GROUPS))`` of the ``column_sums`` launch over ``n_columns``."""
    return n_blocks(n_columns, COLUMN_SUMS_BLOCK[0]), COLUMN_SUMS_BLOCK


@lru_cache(maxsize=None)
def epilogue_kernels(dtype):
    """``(bias_activation, column_sums, derivative_times)`` kernels for one float dtype.

    Each reads the live row count (and whether to accumulate) from the plan at
    the cursor, as the tiled kernels do:

    * ``bias_activation(out, b, code, plan, cursor)``: ``out = f(out + b)``;
    * ``column_sums(dZ, db, X, plan, cursor)``: ``db (+)= sum over rows of dZ``
      in blocks of :data:`COLUMN_SUMS_BLOCK` threads (:func:`column_sums_grid`):
      a column per lane, each of the ``GROUPS`` row groups adding every
      ``GROUPS``-th row, then the groups' sums added in group order (a fixed
      order: the same bits every run, not the CPU's row order); then the rows
      of ``dZ`` and ``X`` past the live ones set to zero, for the
      capacity-row GEMMs after it (module docstring);
    * ``derivative_times(dX, X, code, plan, cursor)``: ``dX = dX * f'(.)``
      through the outputs ``X = f(.)``.
    """
    activate, derivative = activation_functions(np.dtype(dtype))
    zero = np.dtype(dtype).type(0.0)
    nbtype = numba_type(dtype)
    COLUMNS, GROUPS = COLUMN_SUMS_BLOCK
    SHAPE = (GROUPS, COLUMNS)

    @cuda.jit(device=True)
    def zero_rows_past(a, n_rows, start, stride):
        """``a[n_rows:] = 0``, this thread's share of a grid-stride loop."""
        d = a.shape[1]
        for idx in range(n_rows * d + start, a.shape[0] * d, stride):
            i = idx // d
            a[i, idx - i * d] = zero

    @cuda.jit(cache=True)
    def bias_activation(out, b, code, plan, cursor):
        n_rows = int(plan[cursor[CURRENT], ROWS])
        d = out.shape[1]
        for idx in range(cuda.grid(1), n_rows * d, cuda.gridsize(1)):
            i = idx // d
            j = idx - i * d
            out[i, j] = activate(out[i, j] + b[j], code)

    @cuda.jit(cache=True)
    def column_sums(dZ, db, X, plan, cursor):
        step = cursor[CURRENT]
        n_rows = int(plan[step, ROWS])
        accumulate = plan[step, ACCUMULATE] != 0.0
        lane, group = cuda.threadIdx.x, cuda.threadIdx.y
        partial = cuda.shared.array(SHAPE, nbtype)
        d = dZ.shape[1]
        for first in range(cuda.blockIdx.x * COLUMNS, d, cuda.gridDim.x * COLUMNS):
            j = first + lane
            total = zero
            if j < d:
                for i in range(group, n_rows, GROUPS):
                    total += dZ[i, j]
            partial[group, lane] = total
            cuda.syncthreads()
            if group == 0 and j < d:
                for g in range(1, GROUPS):  # the groups' sums in a fixed order
                    total += partial[g, lane]
                if accumulate:
                    db[j] += total
                else:
                    db[j] = total
            cuda.syncthreads()
        threads = COLUMNS * GROUPS
        start = cuda.blockIdx.x * threads + group * COLUMNS + lane
        zero_rows_past(dZ, n_rows, start, cuda.gridDim.x * threads)  # read by the GEMMs next
        zero_rows_past(X, n_rows, start, cuda.gridDim.x * threads)

    @cuda.jit(cache=True)
    def derivative_times(dX, X, code, plan, cursor):
        n_rows = int(plan[cursor[CURRENT], ROWS])
        d = dX.shape[1]
        for idx in range(cuda.grid(1), n_rows * d, cuda.gridsize(1)):
            i = idx // d
            j = idx - i * d
            dX[i, j] = derivative(dX[i, j], X[i, j], code)

    return bias_activation, column_sums, derivative_times
