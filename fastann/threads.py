"""Who runs on which cores: one thread pool at a time.

fastann's epoch loop interleaves BLAS matrix products with element-wise Numba
kernels. If both BLAS (OpenBLAS, which busy-waits between calls) and Numba's
own parallel pool ran threads, they would spin against each other: on a
2-core machine a ``parallel=True`` Numba kernel placed between OpenBLAS calls
made an epoch 7x slower (3.96 s vs 0.58 s). So the matrix products, which hold
almost all the FLOPs, run on BLAS threads, and the element-wise kernels run
serially on the calling thread while the BLAS workers are idle.
"""
import contextlib
import os
import platform

# Numba's np.dot calls SciPy's bundled OpenBLAS, which is loaded lazily; load it
# now so that threadpoolctl can see (and limit) it before the first fit.
import scipy.linalg.cython_blas  # noqa: F401
from threadpoolctl import threadpool_limits


def available_cores():
    """CPU cores this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo on Linux), for reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def thread_budget(n_threads=None):
    """Limit BLAS to ``n_threads`` (default: all available cores) inside the block.

    Parameters
    ----------
    n_threads : int or None
        Number of BLAS threads; ``None`` uses :func:`available_cores`.

    Raises
    ------
    ValueError
        ``n_threads`` is not a positive integer.
    """
    if n_threads is None:
        n_threads = available_cores()
    if int(n_threads) != n_threads or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    with threadpool_limits(limits=int(n_threads), user_api="blas"):
        yield int(n_threads)
