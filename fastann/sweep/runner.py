"""A sweep from start to end: trials, data, the cluster, the rows, the best model.

:func:`run_sweep` is the programmatic form of ``fastann sweep``. The client
(this process) loads the data once and scatters it to every worker once; the
workers train (:func:`fastann.sweep.trial.run_trial`); the client writes a row
of ``results.csv`` as each trial finishes, keeps the best model seen so far in
``DIR/best-<trial>.npz`` and names it in ``best.json``. At the end the best
model, and only it, is scored on the test set.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..hyperparameters import check_parameters
from .results import BEST_FILE, ResultsFile, best_row, write_best
from .space import SpaceError, Trial, trial_key

__all__ = ["SweepData", "SweepSummary", "make_trials", "run_sweep"]


@dataclass
class SweepData:
    """The arrays of a sweep and what they are (for the trial keys and best.json).

    Attributes
    ----------
    X_train, y_train, X_val, y_val, X_test, y_test : ndarray
    description : dict
        JSON-serializable: dataset name or path, row counts.
    """

    X_train: object
    y_train: object
    X_val: object
    y_val: object
    X_test: object
    y_test: object
    description: dict = field(default_factory=dict)


@dataclass
class SweepSummary:
    """What :func:`run_sweep` did: trial counts, the best row, the test accuracy."""

    n_trials: int
    n_skipped: int
    n_run: int
    n_failed: int
    best: dict | None
    test_accuracy: float | None
    seconds: float
    best_path: Path


def make_trials(space, fixed, n_trials=None, seed=0, data=None):
    """The sweep's trials: each configuration of ``space`` over the ``fixed`` parameters.

    Parameters
    ----------
    space : fastann.sweep.space.Space
    fixed : dict
        ``MLPClassifier`` parameters shared by every trial; the space's win.
    n_trials : int or None
        None: the whole grid; else draw this many (:meth:`Space.configurations`).
    seed : int
    data : dict, optional
        Description of the data, part of every trial's key.

    Returns
    -------
    list of Trial
        Without duplicates (two configurations that are the same trial count once).

    Raises
    ------
    SpaceError
        As :meth:`Space.configurations`, or a configuration ``MLPClassifier``
        would reject (the message names the parameter and the trial's values).
    """
    trials, seen = [], set()
    for varied in space.configurations(n_trials, seed):
        params = dict(fixed, **varied)
        try:
            check_parameters(params)
        except (TypeError, ValueError) as exc:
            raise SpaceError(f"search space: the configuration {_short(varied)} is invalid: "
                             f"{exc}") from None
        key = trial_key(params, data)
        if key not in seen:
            seen.add(key)
            trials.append(Trial(key=key, params=params, varied=varied))
    return trials


def _short(params):
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def run_sweep(trials, data, out, *, scheduler=None, n_workers=None, progress=True,
              param_names=None, log=print):
    """Run the trials not yet in ``out/results.csv``; score the best on the test set.

    Parameters
    ----------
    trials : list of Trial
        From :func:`make_trials`.
    data : SweepData
    out : str or path-like
        Output directory (created): ``results.csv``, ``best.json``, ``best-<trial>.npz``.
    scheduler : str or None
        Address of a dask scheduler; None starts a LocalCluster.
    n_workers : int or None
        LocalCluster workers (default: available cores).
    progress : bool
        Show a progress bar counting trials (on stderr).
    param_names : list of str, optional
        Parameters that get a column of their own (default: the varied ones).
    log : callable
        Prints a line.

    Returns
    -------
    SweepSummary

    Raises
    ------
    ImportError
        dask.distributed is not installed (the message says how to install it).
    fastann.sweep.engine.SchedulerError
        The scheduler cannot be reached.
    fastann.sweep.results.SweepLockedError
        Another sweep is writing ``out``.
    KeyboardInterrupt
        Finished trials stay in ``results.csv``; running the sweep again
        resumes with the others.
    """
    from .engine import open_client, run_tasks  # the only import of dask
    from .trial import run_trial

    start = time.perf_counter()
    out = Path(out)
    names = param_names or list(dict.fromkeys(k for t in trials for k in t.varied))
    keys = {t.key for t in trials}
    with ResultsFile(out, names) as results:
        finished = {row["trial"] for row in results.rows()} & keys
        pending = [t for t in trials if t.key not in finished]
        state = _BestState(out, best_row(results.rows(), keys), data)
        where = scheduler or (f"a LocalCluster of {n_workers} workers" if n_workers
                              else "a LocalCluster (one worker per core)")
        log(f"sweep: {len(trials)} trials, {len(finished)} already in {results.path}, "
            f"{len(pending)} to run on {where}")
        n_failed = 0
        if pending:
            bar = _progress_bar(len(trials), len(finished), progress)

            def done(item, result):
                nonlocal n_failed
                trial = item["trial"]
                row = {name: result.get(name) for name in ("status", "val_accuracy", "val_loss",
                                                           "train_accuracy", "train_loss",
                                                           "epochs", "seconds", "worker",
                                                           "threads", "error")}
                row.update(trial=trial.key, params=trial.params, varied=trial.varied)
                results.append(row)
                n_failed += row["status"] == "failed"
                state.offer(row, result.get("model"))
                bar.update(1)
                if state.row is not None:
                    bar.set_postfix_str(f"best val {100 * state.row['val_accuracy']:.2f}%")

            items = [{"key": t.key, "params": t.params, "trial": t} for t in pending]
            try:
                with open_client(scheduler, n_workers) as client:
                    [shared] = client.scatter([(data.X_train, data.y_train, data.X_val,
                                                data.y_val)], broadcast=True)
                    run_tasks(client, _run_item, items, done, shared,
                              keys=[f"trial-{t.key}" for t in pending])
            finally:
                bar.close()
        rows = results.rows()
    best = best_row(rows, keys)
    test_accuracy = None
    if best is not None:
        state.row = best
        model = state.model_for(best, data, run_trial)
        test_accuracy = float(model.score(data.X_test, data.y_test))
        state.write(best, test_accuracy=test_accuracy,
                    n_trials=len(trials), n_finished=sum(r["trial"] in keys for r in rows))
        state.prune()
    return SweepSummary(n_trials=len(trials), n_skipped=len(finished), n_run=len(pending),
                        n_failed=n_failed, best=best, test_accuracy=test_accuracy,
                        seconds=time.perf_counter() - start, best_path=out / BEST_FILE)


def _run_item(item, data):
    """The task the workers run: the trial, without the client-side ``Trial`` object."""
    from .trial import run_trial
    return run_trial({"key": item["key"], "params": item["params"]}, data)


def _progress_bar(total, initial, enabled):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc="sweep", unit="trial", file=sys.stderr,
                disable=not enabled)


class _BestState:
    """The best row so far, its model file and ``best.json``, kept current as rows arrive."""

    def __init__(self, out, row, data):
        self.out = out
        self.row = row
        self.data = data

    def model_path(self, key):
        return self.out / f"best-{key}.npz"

    def offer(self, row, model):
        if row["val_accuracy"] is None or model is None:
            return
        if self.row is not None and best_row([self.row, row]) is self.row:
            return
        model.save(self.model_path(row["trial"]))
        self.row = row
        self.write(row)

    def model_for(self, row, data, run_trial):
        """The fitted model of ``row``: from its file, else trained again here."""
        from ..model import load
        path = self.model_path(row["trial"])
        if path.exists():
            with contextlib.suppress(Exception):
                return load(path)
        result = run_trial({"key": row["trial"], "params": _params(row["params"])},
                           (data.X_train, data.y_train, data.X_val, data.y_val))
        if result["model"] is None:
            raise RuntimeError(f"could not train the best trial {row['trial']} again: "
                               f"{result['error']}")
        result["model"].save(path)
        return result["model"]

    def write(self, row, **extra):
        best = {"trial": row["trial"], "params": row["params"],
                "val_accuracy": row["val_accuracy"], "val_loss": row["val_loss"],
                "train_accuracy": row["train_accuracy"], "train_loss": row["train_loss"],
                "epochs": row["epochs"], "seconds": row["seconds"], "worker": row["worker"],
                "model": self.model_path(row["trial"]).name, "test_accuracy": None,
                "data": self.data.description, "n_test": int(len(self.data.y_test))}
        best.update(extra)
        write_best(self.out / BEST_FILE, best)

    def prune(self):
        """Remove model files of trials that are no longer the best."""
        keep = self.model_path(self.row["trial"]) if self.row is not None else None
        for path in self.out.glob("best-*.npz"):
            if path != keep:
                with contextlib.suppress(OSError):
                    path.unlink()


def _params(params):
    params = dict(params)
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return params
