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
from threadpoolctl import ThreadpoolController

#: Environment variables through which a BLAS thread limit is set before BLAS loads.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                         "BLIS_NUM_THREADS")


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
    """Run BLAS on ``n_threads`` threads inside the block.

    With ``n_threads=None``, a BLAS limit already in force is kept (see
    :func:`blas_limit_in_force`: an environment variable, a ``threadpoolctl``
    context, the limits joblib and Dask set in their workers); only without
    one are all available cores used. An explicit ``n_threads`` always wins.

    Parameters
    ----------
    n_threads : int or None

    Yields
    ------
    int
        The BLAS thread count in effect inside the block.

    Raises
    ------
    ValueError
        ``n_threads`` is not a positive integer.
    """
    controller = ThreadpoolController()
    if n_threads is None:
        kept = _limit_in_force(controller)
        if kept is not None:
            yield kept
            return
        n_threads = available_cores()
    if int(n_threads) != n_threads or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    with controller.limit(limits=int(n_threads), user_api="blas"):
        yield int(n_threads)


def blas_limit_in_force():
    """The BLAS thread limit someone else has set for this process, or None.

    A limit is in force when one of :data:`BLAS_THREAD_VARIABLES` is set (as
    joblib's loky and Dask's nannies do in their workers), or when the BLAS
    libraries currently run fewer threads than :func:`available_cores` (a
    ``threadpoolctl.threadpool_limits`` block, ``OpenBLAS``'s own setter).
    OpenBLAS starts with one thread per core, so an unlimited process reports
    None.

    Returns
    -------
    int or None
        The smallest thread count among the loaded BLAS libraries.
    """
    return _limit_in_force(ThreadpoolController())


def effective_threads(n_threads=None):
    """The BLAS thread count :func:`thread_budget` would run with (without changing it)."""
    if n_threads is not None:
        return int(n_threads)
    kept = blas_limit_in_force()
    return available_cores() if kept is None else kept


def _limit_in_force(controller):
    blas = [lib.num_threads for lib in controller.lib_controllers if lib.user_api == "blas"]
    if not blas:
        return None
    current = min(blas)
    if any(os.environ.get(name, "").strip() for name in BLAS_THREAD_VARIABLES):
        return max(current, 1)
    return current if current < available_cores() else None
