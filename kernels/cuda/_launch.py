"""Launch-shape defaults and small host-side helpers shared by the CUDA kernels.

Shared-memory tiles must have compile-time shapes in ``numba.cuda``, so the
tiled kernels are built by factories keyed on ``(tile, dtype)`` (cached, one
compilation each). On a real GPU the defaults are 16x16 tiles (256 threads
per block), 256 threads for element-wise kernels and 8 rows (warps) per
softmax block. Under the CUDA simulator, where every CUDA thread is a Python
thread, they shrink to 4x4 tiles, 32 threads and 1 row so that the tests stay
fast; every launcher also takes explicit overrides.
"""
import numpy as np

try:  # numba-cuda keeps its own config module
    from numba.cuda.core import config as _config
except ImportError:  # pragma: no cover - older numba-cuda / built-in numba.cuda
    from numba.core import config as _config

#: True when ``numba.cuda`` is the CPU simulator (``NUMBA_ENABLE_CUDASIM=1``).
SIMULATOR = bool(getattr(_config, "ENABLE_CUDASIM", 0))

WARP = 32
DEFAULT_TILE = 4 if SIMULATOR else 16
DEFAULT_THREADS = 32 if SIMULATOR else 256
DEFAULT_ROWS_PER_BLOCK = 1 if SIMULATOR else 8
# Element-wise kernels use grid-stride loops; more blocks than this add nothing.
MAX_BLOCKS = 64 if SIMULATOR else 65535


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
