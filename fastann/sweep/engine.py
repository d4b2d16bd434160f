"""Run tasks on dask.distributed: a ``LocalCluster`` here, or the user's scheduler.

The only module of fastann that imports dask (``pip install "fastann[sweep]"``).
Workers are prepared once each by :class:`WorkerSetup`, a worker plugin that
the scheduler also runs on every worker that joins later (a restarted one
included): one BLAS thread, then one tiny fit that loads the compiled kernels.
As for Numba's threads: LocalCluster workers start with ``NUMBA_NUM_THREADS=1``,
and fastann's kernels are serial (no ``parallel=True``; see
:mod:`fastann.threads`), so Numba's thread pool never starts on any worker. :func:`run_tasks` hands each result to the caller as its
task finishes (``distributed.as_completed``), in this process: a task whose
worker died is run again by the scheduler, and its future still completes
once, so a caller that writes one row per completed future writes each row
exactly once.
"""
from __future__ import annotations

import contextlib
import logging
import os
import uuid
import warnings

INSTALL_HINT = 'fastann sweeps run on dask.distributed: pip install "fastann[sweep]"'

try:
    import distributed
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(f"{INSTALL_HINT} ({exc})") from exc

__all__ = ["INSTALL_HINT", "WorkerSetup", "SchedulerError", "open_client", "prepare_worker",
           "run_tasks", "worker_name"]

#: Environment of the worker processes a LocalCluster starts: BLAS and Numba
#: read these when they load, before any plugin runs.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1", "BLIS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


class SchedulerError(RuntimeError):
    """The scheduler cannot be reached, or the cluster cannot be started."""


def prepare_worker():
    """Limit this process to one BLAS thread, and load the kernels once.

    Safe to call again. Returns the BLAS thread count now in force.
    """
    from threadpoolctl import threadpool_limits

    for name, value in SINGLE_THREAD_ENV.items():
        os.environ[name] = value  # what fastann.threads reads as a limit in force
    threadpool_limits(limits=1, user_api="blas")  # not a context: stays in force
    _warm_up()
    from ..threads import effective_threads
    return effective_threads(None)


def _warm_up():
    import numpy as np

    from ..model import MLPClassifier
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (32, 784), dtype=np.uint8)
    y = np.arange(32) % 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPClassifier(hidden_layer_sizes=(4,), epochs=1, batch_size=8,
                      random_state=0).fit(X, y, validation_data=(X, y))


class WorkerSetup(WorkerPlugin):
    """Worker plugin: :func:`prepare_worker` on every worker, present and future."""

    name = "fastann-worker-setup"
    idempotent = True

    async def setup(self, worker):
        # In a thread: a cold Numba cache compiles for a while, and the worker's
        # event loop must keep answering the scheduler meanwhile.
        import asyncio
        await asyncio.get_running_loop().run_in_executor(None, prepare_worker)


def worker_name():
    """The address of the dask worker running the caller, or ``"local"`` outside one."""
    try:
        return distributed.get_worker().address
    except ValueError:
        return "local"


@contextlib.contextmanager
def open_client(scheduler=None, n_workers=None, timeout=30):
    """A ``distributed.Client`` with prepared workers, closed (with its cluster) on exit.

    Parameters
    ----------
    scheduler : str or None
        ``tcp://HOST:PORT`` of a running scheduler; None starts a
        ``LocalCluster`` on 127.0.0.1 with ``n_workers`` single-threaded
        worker processes.
    n_workers : int or None
        LocalCluster only; default: available cores.
    timeout : float
        Seconds to wait for the scheduler and, on a LocalCluster, the workers.

    Yields
    ------
    distributed.Client

    Raises
    ------
    SchedulerError
        The scheduler does not answer in time, or the cluster cannot start.
    """
    from ..threads import available_cores
    cluster = None
    # dask logs every worker start, loss and restart at INFO/WARNING on stderr;
    # a sweep reports what matters itself (a failed trial is a row).
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        if scheduler is None:
            cluster = distributed.LocalCluster(
                n_workers=n_workers or available_cores(), threads_per_worker=1,
                processes=True, host="127.0.0.1", dashboard_address=None,
                env=dict(SINGLE_THREAD_ENV), silence_logs=logging.ERROR)
            client = distributed.Client(cluster, timeout=timeout)
        else:
            client = distributed.Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        logger.setLevel(level)
        where = scheduler or "a LocalCluster"
        raise SchedulerError(f"cannot connect to {where}: {exc}") from None
    try:
        client.register_plugin(WorkerSetup())
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        logger.setLevel(level)


def run_tasks(client, function, items, on_done, *args, keys=None, priorities=None):
    """Submit ``function(item, *args)`` for each item; call ``on_done(item, result)`` as each ends.

    Parameters
    ----------
    client : distributed.Client
    function : callable
        Importable on the workers (a module-level function of an installed package).
    items : list
        One task each.
    on_done : callable ``(item, result) -> None``
        Called in this process, once per item, in completion order. A task
        that raised, or whose workers kept dying (``KilledWorker``), gives
        ``result = {"status": "failed", "error": "..."}``.
    *args
        Passed to every call (for example futures of scattered data).
    keys : list of str, optional
        Readable task names (made unique per call).
    priorities : list of int, optional
        Higher runs first.

    Raises
    ------
    KeyboardInterrupt
        After cancelling the tasks not yet finished.
    """
    token = uuid.uuid4().hex[:8]
    futures = {}
    for index, item in enumerate(items):
        name = keys[index] if keys else str(index)
        future = client.submit(function, item, *args, key=f"fastann-{name}-{token}",
                               pure=False, priority=priorities[index] if priorities else 0)
        futures[future] = item
    try:
        for future in distributed.as_completed(futures):
            item = futures.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # raised in the task, or KilledWorker
                result = {"status": "failed", "error": _one_line(f"{type(exc).__name__}: {exc}")}
            future.release()
            on_done(item, result)
    except BaseException:
        client.cancel(list(futures))
        raise


def _one_line(text):
    return " ".join(str(text).split())
