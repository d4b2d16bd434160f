"""A sweep's files: ``results.csv`` (one row per finished trial) and ``best.json``.

``results.csv`` is appended to, one row at a time, by the client only (never
by a worker), each row flushed and fsync'ed as soon as its trial finishes: a
crash or ``kill -9`` loses at most the row being written. A row cut short that
way (no final newline) is dropped when the file is opened again, before
anything is appended. ``best.json`` is replaced atomically
(:func:`fastann.files.atomic_write`). One sweep at a time may write a
directory: :class:`ResultsFile` holds a :class:`filelock.FileLock` on
``DIR/.sweep.lock``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from filelock import FileLock, Timeout

from ..files import atomic_write

__all__ = ["BEST_FILE", "METRICS", "RESULTS_FILE", "ResultsFile", "SweepLockedError",
           "best_row", "read_rows", "write_best"]

RESULTS_FILE = "results.csv"
BEST_FILE = "best.json"
LOCK_FILE = ".sweep.lock"
#: Columns before the parameters: the trial's key, outcome and final-epoch metrics.
METRICS = ("trial", "status", "val_accuracy", "val_loss", "train_accuracy", "train_loss",
           "epochs", "seconds", "worker", "threads", "error")


class SweepLockedError(RuntimeError):
    """Another sweep is writing the same output directory."""


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return json.dumps(list(value))
    return str(value)


def read_rows(path):
    """The complete rows of a ``results.csv`` as dicts (numbers parsed), in file order.

    A last line without its newline (a write cut short) is ignored.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    list of dict
        Empty when the file does not exist.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        if not row.get("trial"):
            continue
        for name in ("val_accuracy", "val_loss", "train_accuracy", "train_loss", "seconds"):
            row[name] = float(row[name]) if row.get(name) not in (None, "") else None
        for name in ("epochs", "threads"):
            row[name] = int(row[name]) if row.get(name) not in (None, "") else None
        row["params"] = json.loads(row["params"]) if row.get("params") else {}
        rows.append(row)
    return rows


def best_row(rows, keys=None):
    """The row with the highest validation accuracy (then lowest validation loss), or None.

    Parameters
    ----------
    rows : iterable of dict
        As :func:`read_rows` returns them.
    keys : set of str, optional
        Consider only these trials.
    """
    def rank(row):
        loss = row["val_loss"] if row["val_loss"] is not None else math.inf
        return (row["val_accuracy"], -loss)
    scored = [r for r in rows if r["val_accuracy"] is not None
              and (keys is None or r["trial"] in keys)]
    return max(scored, key=rank) if scored else None


class ResultsFile:
    """``DIR/results.csv``, opened for appending while the sweep runs.

    Use as a context manager; it locks the directory for its duration.

    Parameters
    ----------
    directory : str or path-like
        Created if missing.
    param_names : sequence of str
        The parameters that get a column each (the space's); every row also
        has a ``params`` column with all of its parameters as JSON. An
        existing file keeps its own header.

    Raises
    ------
    SweepLockedError
        Another process is writing this directory.
    """

    def __init__(self, directory, param_names):
        self.directory = Path(directory)
        self.path = self.directory / RESULTS_FILE
        self.param_names = list(param_names)
        self._lock = FileLock(str(self.directory / LOCK_FILE))
        self._file = None
        self._writer = None

    def __enter__(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise SweepLockedError(f"another sweep is writing {self.directory} "
                                   f"(it holds {self.directory / LOCK_FILE})") from None
        try:
            self._open()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _open(self):
        header = None
        if self.path.exists():
            with open(self.path, "rb+") as f:
                data = f.read()
                if data and not data.endswith(b"\n"):  # a row cut short by a crash
                    f.truncate(data.rfind(b"\n") + 1)
                    data = data[:data.rfind(b"\n") + 1]
            first = data.split(b"\n", 1)[0].decode("utf-8")
            header = next(csv.reader([first]), None) if first else None
        self._file = open(self.path, "a", encoding="utf-8", newline="")
        fields = header or [*METRICS, *self.param_names, "params"]
        self._writer = csv.DictWriter(self._file, fieldnames=fields, extrasaction="ignore",
                                      lineterminator="\n")
        if header is None:
            self._writer.writeheader()
            self._sync()

    def rows(self):
        """The rows written so far (:func:`read_rows`)."""
        return read_rows(self.path)

    def append(self, row):
        """Write one trial's row and force it to disk.

        Parameters
        ----------
        row : dict
            ``METRICS`` keys, ``params`` (all parameters) and ``varied`` (the
            space's parameters, one column each).
        """
        cells = {name: _cell(row.get(name)) for name in METRICS}
        for name, value in (row.get("varied") or {}).items():
            cells[name] = _cell(value)
        cells["params"] = json.dumps(row.get("params") or {}, sort_keys=True, default=_listify)
        self._writer.writerow(cells)
        self._sync()

    def _sync(self):
        self._file.flush()
        os.fsync(self._file.fileno())

    def __exit__(self, *exc):
        try:
            if self._file is not None:
                self._file.close()
        finally:
            self._lock.release()
        return False


def _listify(value):
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not a JSON value: {value!r}")


def write_best(path, best):
    """Write ``best`` (a JSON-serializable dict) to ``path`` atomically."""
    text = json.dumps(best, indent=2, sort_keys=True, default=_listify) + "\n"
    with atomic_write(path) as f:
        f.write(text.encode("utf-8"))
