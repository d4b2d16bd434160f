"""A training run's log directory (``fastann train --log-dir DIR``).

``DIR`` holds three files:

- ``metrics.csv``: one row per epoch (the ``history_`` record), written by a
  :class:`~fastann.callbacks.CSVLogger` as each epoch ends; a resumed run
  appends to it, after dropping rows of epochs the checkpoint does not have
  (an epoch that finished after the last checkpoint was written is trained,
  and logged, again);
- ``hparams.json``: the hyper-parameters and the data;
- ``summary.json``: written at the end: test accuracy, training seconds, seed,
  BLAS threads, epochs, the last epoch's record and the library versions.

The JSON files are written atomically (:func:`fastann.files.atomic_write`).
"""
from __future__ import annotations

import csv
import io
import json
import platform
from pathlib import Path

from ._version import __version__
from .callbacks import CSVLogger
from .files import atomic_write

__all__ = ["HPARAMS_FILE", "METRICS_FILE", "SUMMARY_FILE", "library_versions", "start_log",
           "write_json", "write_summary"]

METRICS_FILE = "metrics.csv"
HPARAMS_FILE = "hparams.json"
SUMMARY_FILE = "summary.json"


def _json_value(value):
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "name"):  # numpy dtypes
        return value.name
    return repr(value)


def write_json(path, content):
    """Write ``content`` as indented JSON, atomically (tuples as lists, NumPy scalars as numbers)."""
    text = json.dumps(content, indent=2, sort_keys=True, default=_json_value) + "\n"
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))


def library_versions():
    """Versions of fastann and the libraries its results depend on."""
    import numba
    import numpy
    import scipy
    import sklearn
    return {"fastann": __version__, "numpy": numpy.__version__, "numba": numba.__version__,
            "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}


def start_log(directory, hyperparameters, data, resume_after=None):
    """Write ``hparams.json`` and return the callback that writes ``metrics.csv``.

    Parameters
    ----------
    directory : str or path-like
        Created if missing.
    hyperparameters : dict
        ``MLPClassifier.get_params()``.
    data : dict
        What the model trains on (dataset, row counts).
    resume_after : int, optional
        Resuming after this many epochs: keep that many rows of an existing
        ``metrics.csv`` and append; otherwise the file starts anew.

    Returns
    -------
    fastann.callbacks.CSVLogger

    Raises
    ------
    OSError
        The directory or a file cannot be written.
    """
    directory = Path(directory)
    write_json(directory / HPARAMS_FILE, {"hyperparameters": hyperparameters, "data": data})
    path = directory / METRICS_FILE
    if resume_after is not None:
        _keep_epochs(path, resume_after)
    return CSVLogger(path, append=resume_after is not None)


def _keep_epochs(path, n_epochs):
    """Drop the rows of ``metrics.csv`` after epoch ``n_epochs`` (and a row cut short)."""
    try:
        original = text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    column = header.index("epoch") if "epoch" in header else None
    kept = [row for row in body if column is None or (row[column].isdigit()
                                                      and int(row[column]) <= n_epochs)]
    if len(kept) == len(body) and text == original:
        return
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *kept])
    with atomic_write(path) as f:
        f.write(out.getvalue().encode("utf-8"))


def write_summary(directory, model, *, test_accuracy, n_test, seconds, seed, threads):
    """Write ``summary.json`` for a finished run.

    Parameters
    ----------
    directory : str or path-like
    model : MLPClassifier
        Fitted; its ``history_`` gives the epochs and the last record.
    test_accuracy : float
        In [0, 1].
    n_test : int
    seconds : float
        Training wall time of this invocation.
    seed : int or None
    threads : int
        BLAS threads the run used.
    """
    history = model.history_
    write_json(Path(directory) / SUMMARY_FILE, {
        "test_accuracy": float(test_accuracy), "n_test": int(n_test),
        "seconds": float(seconds), "seed": seed, "threads": int(threads),
        "epochs": len(history), "final_epoch": history[-1] if history else None,
        "versions": library_versions()})
