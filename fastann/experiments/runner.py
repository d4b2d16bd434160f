"""Train the plan's configurations, each in a worker process with one BLAS thread.

The workers are a local process pool, or those of a dask.distributed cluster
(``--scheduler``; :mod:`fastann.sweep.engine`, the engine of ``fastann sweep``).

Only fastann's public API is used: :class:`~fastann.MLPClassifier`
(``fit``, ``partial_fit``, ``predict_proba``, ``score``, ``set_params``) and
the loaders of :mod:`fastann.datasets`.
"""
from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing
import os
import signal
import time
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

from ..datasets import load_dataset, train_validation_split
from ..model import MLPClassifier
from .augment import fit_with_shifts
from .plan import QUICK, effective_params

__all__ = ["Row", "job_data", "make_jobs", "rows_of", "run_job", "run_jobs"]


@dataclass
class Row:
    """One line of the report: the experiment, the parameters it ran with, its result."""

    exp: object  # plan.Experiment
    params: dict
    result: dict
    same_as: int | None = None  # number of an earlier row with the very same configuration


def rows_of(plan, jobs, results):
    """The report's rows, in plan order, noting rows that repeat an earlier configuration."""
    rows, seen = [], {}
    for number, (exp, job) in enumerate(zip(plan, jobs), 1):
        row = Row(exp, job["params"], results[exp.key])
        signature = repr((effective_params(job["params"]), job["data"], job["augment"]))
        row.same_as = seen.setdefault(signature, number)
        if row.same_as == number:
            row.same_as = None
        rows.append(row)
    return rows


def make_jobs(plan, *, quick, seed, dataset, fashion_dataset):
    """One picklable job per :class:`~.plan.Experiment` (``--quick`` caps the epochs)."""
    jobs = []
    for exp in plan:
        params = dict(exp.params)
        if quick:
            cap = QUICK["gd_epochs"] if params.get("solver") == "gd" else QUICK["epochs"]
            params["epochs"] = min(params["epochs"], cap)
        data = fashion_dataset if exp.dataset == "fashion" else dataset
        jobs.append({"key": exp.key, "params": params, "seed": seed, "augment": exp.augment,
                     "data": {"dataset": data, "split": exp.split, "quick": quick}})
    return jobs


# Several jobs of one worker read the same files: keep the last few in memory.
_load = functools.lru_cache(maxsize=4)(load_dataset)


def job_data(data):
    """``(X_train, y_train, X_eval, y_eval, X_test, y_test)`` for a job's ``data`` spec.

    ``X_eval`` is the monitoring set recorded per epoch: the held-out
    validation rows for a ``50k/10k`` split, else the test set (monitoring
    only: nothing is selected or stopped on it).
    """
    X, y = _load(data["dataset"], "train")
    X_test, y_test = _load(data["dataset"], "test")
    if data["quick"]:
        X, y = X[:QUICK["train_rows"]], y[:QUICK["train_rows"]]
        X_test, y_test = X_test[:QUICK["test_rows"]], y_test[:QUICK["test_rows"]]
    if data["split"] == "50k/10k":
        X, y, X_val, y_val = train_validation_split(X, y, 10000 if len(X) == 60000 else 1 / 6)
        return X, y, X_val, y_val, X_test, y_test
    return X, y, X_test, y_test, X_test, y_test


def run_job(job):
    """Train one configuration; returns a picklable result dict (errors included)."""
    result = {"key": job["key"], "status": "ok", "message": ""}
    try:
        data = job_data(job["data"])
    except Exception as exc:  # a missing dataset skips the row, it does not end the table
        result.update(status="skipped", message=f"data not available: {exc}")
        return result
    X, y, X_eval, y_eval, X_test, y_test = data
    try:
        model = MLPClassifier(**job["params"], random_state=job["seed"], n_threads=1, verbose=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            if job["augment"]:
                seconds, history = fit_with_shifts(model, X, y, X_eval, y_eval,
                                                   max_shift=job["augment"], seed=job["seed"])
            else:
                start = time.perf_counter()
                model.fit(X, y, validation_data=(X_eval, y_eval))
                history = model.history_
                seconds = time.perf_counter() - start - sum(r["eval_seconds"] for r in history)
        diverged = [str(w.message) for w in caught if "diverged" in str(w.message)]
        proba = model.predict_proba(X_test).astype(np.float32)
        y_pred = model.classes_[proba.argmax(axis=1)]
        result.update(
            seconds=seconds,
            epochs_run=model.n_iter_,
            train_accuracy=100.0 * model.score(X, y),
            test_accuracy=100.0 * float(np.mean(y_pred == y_test)),
            eval_accuracy=100.0 * history[-1]["val_accuracy"] if history else None,
            n_train=int(len(y)), n_eval=int(len(y_eval)), n_test=int(len(y_test)),
            monitor="validation" if job["data"]["split"] == "50k/10k" else "test",
            history=list(history), classes=model.classes_, y_pred=y_pred, proba=proba,
            coefs0=np.asarray(model.coefs_[0], np.float32) if model.coefs_ else None)
        if diverged:
            result.update(status="diverged", message=diverged[0])
    except Exception as exc:
        result.update(status="failed", message=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
    return result


def estimated_cost(job):
    """Rough relative training cost (for scheduling the longest runs first)."""
    sizes = (784, *job["params"]["hidden_layer_sizes"], 10)
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    rows = QUICK["train_rows"] if job["data"]["quick"] else 60000
    small_batch = 4.0 if job["params"].get("batch_size", 128) < 32 else 1.0
    # + 20000: the per-row cost of gathering and normalizing the uint8 pixels
    return job["params"]["epochs"] * (weights + 20000) * rows * small_batch


def warm_up():
    """Load the compiled kernels once per process, so no run pays for it."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (32, 784), dtype=np.uint8)
    y = np.arange(32) % 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for solver in ("gd", "adam"):
            MLPClassifier(hidden_layer_sizes=(4,), solver=solver, epochs=1, batch_size=8,
                          n_threads=1, random_state=0).fit(X, y, validation_data=(X, y))


def _worker_init(pids):
    pids.put(os.getpid())  # so that the parent can stop this worker on Ctrl-C
    warnings.simplefilter("ignore", DeprecationWarning)
    warm_up()


def _stop_workers(pids):
    """Terminate the workers that announced themselves in ``pids`` (those still alive)."""
    while not pids.empty():
        try:
            os.kill(pids.get(), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def run_jobs(jobs, n_workers, on_result, scheduler=None):
    """Run ``jobs``, longest first, in ``n_workers`` processes (in this one if 1).

    With ``scheduler`` (a dask scheduler's address), on that cluster instead:
    a worker that dies has its job run again elsewhere, and a job whose
    workers keep dying is reported as failed. ``on_result(result)`` is called
    as each finishes; returns ``{key: result}``.
    """
    results = {}

    def done(result):
        results[result["key"]] = result
        on_result(result)

    ordered = sorted(jobs, key=estimated_cost, reverse=True)
    if scheduler is not None:
        from ..sweep.engine import open_client, run_tasks  # needs fastann[sweep]

        def finished(job, result):
            done(dict(result, key=job["key"], message=result.get("error", ""))
                 if result.get("status") == "failed" and "message" not in result else result)

        with open_client(scheduler) as client:
            run_tasks(client, run_job, ordered, finished,
                      keys=[f"experiment-{i}" for i in range(len(ordered))],
                      priorities=list(range(len(ordered), 0, -1)))
        return results
    if n_workers <= 1:
        warm_up()
        for job in ordered:
            done(run_job(job))
        return results
    context = multiprocessing.get_context("spawn")
    pids = context.SimpleQueue()
    pool = cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=context,
                                  initializer=_worker_init, initargs=(pids,))
    try:
        futures = {pool.submit(run_job, job): job for job in ordered}
        for future in cf.as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # the worker process died
                result = {"key": futures[future]["key"], "status": "failed",
                          "message": f"{type(exc).__name__}: {exc}"}
            done(result)
    except BaseException:  # Ctrl-C: stop the workers now instead of finishing their runs
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_workers(pids)
        raise
    pool.shutdown()
    return results
