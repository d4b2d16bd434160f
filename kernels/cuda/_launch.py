"""Launch-shape defaults, the per-step plan table and small host-side helpers of the CUDA kernels.

Shared-memory tiles must have compile-time shapes in ``numba.cuda``, so the
tiled kernels are built by factories keyed on ``(tile, dtype)`` (cached, one
compilation each). On a real GPU the defaults are 16x16 tiles (256 threads
per block), 256 threads for element-wise kernels and 8 rows (warps of 32
lanes) per softmax block.

Under the CUDA simulator every CUDA thread is a Python thread and every block
a fresh set of them; the simulator's block manager polls its threads in a
loop that holds the GIL for the interpreter's switch interval (5 ms) each
time it gets it, so a launch costs about 5 ms per ``syncthreads`` phase per
block, whatever the work, and starting a thread about 1 ms (profiled:
14,880 threads and 35 M ``is_alive`` calls for one 32-row step of the model
test). Launches are therefore sized by the work there: dense blocks of 4x4
threads computing 4x4 outputs each (16x16 tiles, register blocking), one
block of 16 threads for element-wise kernels, softmax blocks of 8 rows of 4
lanes, and :func:`simulator_pacing` shortens the switch interval while the
drivers in :mod:`fastann.kernels.cuda.epoch` run. Every launcher
also takes explicit overrides.

The plan
--------
Every step of the training and inference drivers reads its row range and
scalars from a device table, ``plan`` (float64, one row per step, columns
below), at a device cursor, ``cursor`` (int64, 2 entries), instead of from
launch arguments, so that the launches of a step are the same every step
(and can be captured once as a CUDA graph). The first kernel of a step (the
first layer's forward, which gathers the rows) copies ``cursor[NEXT]`` to
``cursor[CURRENT]``; the others read ``cursor[CURRENT]``;
the last one writes ``cursor[NEXT] = cursor[CURRENT] + 1``. Each write stores
the same value from every thread and no kernel reads the slot it writes, so
there is no race and no extra launch.
"""
import contextlib
import sys

import numpy as np

try:  # numba-cuda keeps its own config module
    from numba.cuda.core import config as _config
except ImportError:  # pragma: no cover - older numba-cuda / built-in numba.cuda
    from numba.core import config as _config

#: True when ``numba.cuda`` is the CPU simulator (``NUMBA_ENABLE_CUDASIM=1``).
SIMULATOR = bool(getattr(_config, "ENABLE_CUDASIM", 0))

WARP = 32
#: Threads per block edge of the dense kernels.
DEFAULT_TILE = 4 if SIMULATOR else 16
#: Outputs per thread along each edge of a dense tile (register blocking).
DEFAULT_PER_THREAD = 4 if SIMULATOR else 1
#: Slab depth of the forward dense kernels, in tile edges (:func:`~.dense.dense_kernels`).
DEFAULT_DEPTH = 1
DEFAULT_THREADS = 16 if SIMULATOR else 256
DEFAULT_ROWS_PER_BLOCK = 8
#: Threads that share one row in the softmax kernels (a warp on a GPU).
DEFAULT_LANES = 4 if SIMULATOR else WARP
# Element-wise kernels use grid-stride loops; more blocks than this add nothing.
MAX_BLOCKS = 1 if SIMULATOR else 65535
#: GIL switch interval (seconds) while simulated kernels run (CPython's default: 0.005).
SIMULATOR_SWITCH_INTERVAL = 1e-4

# Columns of the plan table (float64; row offsets and counts are exact below 2**53).
START = 0        # first position of the step's rows (in ``order``, or in X for inference)
ROWS = 1         # live rows of the step, <= capacity
GRAD_SCALE = 2   # 1 / mini-batch size: the mean loss's gradient factor
ACCUMULATE = 3   # 1: add into the gradient (a later micro-batch of the same mini-batch)
UPDATE = 4       # 1: apply the optimizer after this micro-batch
LR = 5           # learning rate (SGD, momentum, Nesterov) or Adam's lr_t
EPS_HAT = 6      # Adam's eps_hat
DECAY = 7        # AdamW's decoupled decay factor (0 for Adam)
PLAN_FIELDS = 8
# Slots of the cursor.
CURRENT = 0
NEXT = 1


def n_blocks(n_items, threads):
    """Blocks for a 1-D grid-stride launch over ``n_items`` (at least 1)."""
    return max(1, min(MAX_BLOCKS, -(-int(n_items) // threads)))


def cdiv(a, b):
    return -(-int(a) // int(b))


def float_dtype(array):
    """The NumPy float dtype of a device (or host) array, checked."""
    dtype = np.dtype(array.dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"expected a float32 or float64 array, got {dtype}")
    return dtype


def numba_type(dtype):
    """The Numba scalar type (``float32`` or ``float64``) of a NumPy float dtype."""
    from numba import float32, float64
    return float32 if np.dtype(dtype) == np.float32 else float64


@contextlib.contextmanager
def simulator_pacing():
    """Under the simulator, let simulated threads take turns every 100 µs instead of 5 ms.

    The simulator's block manager busy-polls its threads while holding the
    GIL, so each of a block's ``syncthreads`` phases costs about one switch
    interval; a shorter interval makes the same launches 5-10x faster. Does
    nothing on a real GPU. The previous interval is restored on exit.
    """
    if not SIMULATOR:
        yield
        return
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SIMULATOR_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


#: Multiprocessors the simulator reports (an H100 SXM's 132), so that launches split as there.
SIMULATED_MULTIPROCESSORS = 132


def multiprocessors():
    """Streaming multiprocessors of the current GPU (:data:`SIMULATED_MULTIPROCESSORS` under
    the simulator)."""
    if SIMULATOR:
        return SIMULATED_MULTIPROCESSORS
    from numba import cuda  # pragma: no cover - needs a GPU
    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)  # pragma: no cover


def single_step_plan(start=0, n_rows=0, grad_scale=0.0, accumulate=False, update=True,
                     lr=0.0, eps_hat=0.0, decay=0.0):
    """A one-row host plan, for the launchers that run one kernel outside an epoch.

    Returns
    -------
    plan : ndarray, shape (1, PLAN_FIELDS), float64
    cursor : ndarray, shape (2,), int64, zeros
    """
    plan = np.zeros((1, PLAN_FIELDS), np.float64)
    plan[0, [START, ROWS, GRAD_SCALE, ACCUMULATE, UPDATE, LR, EPS_HAT, DECAY]] = (
        start, n_rows, grad_scale, float(accumulate), float(update), lr, eps_hat, decay)
    return plan, np.zeros(2, np.int64)
