"""One trial, as a worker runs it: fit on the training split, score on the validation split.

Imports no dask: :func:`run_trial` is a plain function that the engine ships
to the workers (and that tests call directly).
"""
from __future__ import annotations

import time
import warnings

__all__ = ["run_trial"]


def run_trial(trial, data):
    """Train one configuration; never raises for a bad configuration.

    Parameters
    ----------
    trial : dict
        ``{"key": str, "params": dict}`` (``MLPClassifier`` keyword arguments).
    data : tuple
        ``(X_train, y_train, X_val, y_val)``.

    Returns
    -------
    dict
        ``status`` ("ok", "diverged" or "failed"), the final epoch's
        ``val_accuracy``, ``val_loss``, ``train_accuracy``, ``train_loss``,
        ``epochs`` (completed), ``seconds`` (wall time of ``fit``),
        ``worker`` (the dask worker's address), ``threads`` (BLAS threads of
        the fit), ``error`` (one line, or None)
        and ``model`` (the fitted :class:`~fastann.MLPClassifier`, or None).
    """
    from ..model import MLPClassifier
    from ..threads import effective_threads
    from .engine import worker_name
    result = {"key": trial["key"], "status": "failed", "val_accuracy": None, "val_loss": None,
              "train_accuracy": None, "train_loss": None, "epochs": 0, "seconds": None,
              "worker": worker_name(), "threads": None, "error": None, "model": None}
    start = time.perf_counter()
    try:
        X, y, X_val, y_val = data
        model = MLPClassifier(**dict(trial["params"], verbose=0))
        result["threads"] = effective_threads(model.n_threads)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            model.fit(X, y, validation_data=(X_val, y_val))
        result["seconds"] = time.perf_counter() - start
        diverged = [str(w.message) for w in caught if "diverged" in str(w.message)]
        if model.history_:
            last = model.history_[-1]
            result.update(val_accuracy=last["val_accuracy"], val_loss=last["val_loss"],
                          train_accuracy=last["train_accuracy"], train_loss=last["train_loss"],
                          epochs=len(model.history_), model=model, status="ok")
        if diverged:
            result.update(status="diverged", error=_one_line(diverged[0]))
    except Exception as exc:
        result.update(status="failed", seconds=time.perf_counter() - start,
                      error=_one_line(f"{type(exc).__name__}: {exc}"), model=None)
    return result


def _one_line(text):
    return " ".join(str(text).split())
