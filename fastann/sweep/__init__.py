"""``fastann sweep``: hyper-parameter sweeps of ``MLPClassifier`` on dask.distributed.

A sweep trains every configuration of a search space (:mod:`.space`) on the
training split, scores it on the validation split, and writes one row per
finished trial to ``DIR/results.csv`` as trials finish (:mod:`.results`);
``DIR/best.json`` names the best trial, whose model alone is scored on the
test set. Trials run on dask.distributed (:mod:`.engine`, the only module
that imports dask; ``pip install "fastann[sweep]"``): a ``LocalCluster`` of
single-threaded worker processes, or the cluster of ``--scheduler ADDRESS``.
Running the same command again skips the trials already in ``results.csv``.

Usage::

    fastann sweep --space space.json --out sweep-dir --epochs 3
    fastann sweep --space space.json --out sweep-dir --scheduler tcp://127.0.0.1:8786

``add_arguments(parser)`` and ``run(args, fixed)`` plug it into the ``fastann``
command line, whose shared data and training options give ``fixed``.
"""
from __future__ import annotations

import sys

from ..argtypes import positive_int
from .space import Space, SpaceError, Trial, load_space, parse_space, trial_key

__all__ = ["DESCRIPTION", "HELP", "Space", "SpaceError", "Trial", "add_arguments",
           "load_data", "load_space", "parse_space", "run", "trial_key"]

HELP = "train many configurations on a dask cluster; write results.csv and best.json"
DESCRIPTION = (
    "Train every configuration of a search space (SPACE.json maps MLPClassifier parameter "
    "names to a list of values, {\"choice\": [...]} or {\"low\": A, \"high\": B, \"log\": true}) "
    "on the training split, score each on the validation split, and score the best on the "
    "test set. Runs on dask.distributed (pip install \"fastann[sweep]\"): a LocalCluster of "
    "one single-threaded worker process per core, or the cluster at --scheduler. Rows stream "
    "into DIR/results.csv; the same command again resumes. The data and training options "
    "below are fixed for every trial; the space's values override them.")


def add_arguments(parser):
    """Add the sweep's own options to ``parser`` (the data and training ones come from the CLI)."""
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--space", required=True, metavar="SPACE.json",
                       help="search space: a JSON object of MLPClassifier parameters")
    sweep.add_argument("--out", required=True, metavar="DIR",
                       help="output directory: results.csv, best.json, best-<trial>.npz")
    sweep.add_argument("--trials", type=positive_int, default=None, metavar="N",
                       help="draw N configurations (needed when the space has a "
                            "distribution; default: the whole grid)")
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="dask scheduler to use, e.g. tcp://127.0.0.1:8786 (default: start "
                            "a LocalCluster here)")
    sweep.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="LocalCluster worker processes (default: available cores)")
    sweep.add_argument("--seed", type=int, default=0,
                       help="random_state of every trial, and the seed that draws --trials")
    sweep.add_argument("--threads", type=positive_int, default=None,
                       help="BLAS threads per trial (default: the worker's limit, one)")
    sweep.add_argument("--cpu-kernel", choices=("auto", "blas", "parallel"), default="auto",
                       help="CPU epoch of every trial (as in fastann train)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def load_data(dataset, data_dir=None, validation="auto"):
    """The sweep's data: training, validation (the LAST rows) and test splits.

    Parameters
    ----------
    dataset : str
        ``mnist``, ``fashion-mnist`` or a path (:func:`fastann.datasets.load_dataset`).
    data_dir : str, optional
        Cache directory for the named datasets.
    validation : "auto", int or float
        Held-out rows (``auto``: 10,000 of 60,000, else one sixth).

    Returns
    -------
    fastann.sweep.runner.SweepData

    Raises
    ------
    fastann.datasets.DatasetError
        The data cannot be read.
    SpaceError
        ``validation`` is 0: a sweep is scored on the validation split.
    """
    from ..datasets import (load_dataset, load_fashion_mnist, load_mnist,
                            train_validation_split)
    from .runner import SweepData

    def load(split):
        if dataset == "mnist":
            return load_mnist(split, data_dir=data_dir)
        if dataset == "fashion-mnist":
            return load_fashion_mnist(split, data_dir=data_dir)
        return load_dataset(dataset, split)

    if not validation:
        raise SpaceError("a sweep scores every trial on the validation split: "
                         "--validation must not be 0")
    X, y = load("train")
    X_test, y_test = load("test")
    if validation == "auto":
        validation = 10000 if X.shape[0] == 60000 else 1 / 6
    X, y, X_val, y_val = train_validation_split(X, y, validation)
    description = {"dataset": str(dataset), "n_train": int(len(y)), "n_validation": int(len(y_val))}
    return SweepData(X, y, X_val, y_val, X_test, y_test, description)


def run(args, fixed):
    """``fastann sweep``: run the sweep ``args`` describe; returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        This module's options and the CLI's data options (``dataset``,
        ``data_dir``, ``validation``).
    fixed : dict
        ``MLPClassifier`` parameters for every trial (the space's values win).

    Returns
    -------
    int
        0 when at least one trial succeeded, 1 when all failed, 130 on Ctrl-C.
    """
    from ..model import MLPClassifier
    from .runner import make_trials, run_sweep

    if args.scheduler is not None and args.workers is not None:
        raise SpaceError("--workers sets the size of a LocalCluster; with --scheduler the "
                         "cluster has the workers its own operator started")
    space = load_space(args.space, known=MLPClassifier().get_params())
    data = load_data(args.dataset, args.data_dir, args.validation)
    trials = make_trials(space, fixed, args.trials, args.seed, data.description)
    print(f"data: {args.dataset}: {len(data.y_train)} training, {len(data.y_val)} validation, "
          f"{len(data.y_test)} test samples", flush=True)
    try:
        summary = run_sweep(trials, data, args.out, scheduler=args.scheduler,
                            n_workers=args.workers, progress=not args.quiet,
                            param_names=space.names, log=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"fastann sweep: interrupted; finished trials are in {args.out}/results.csv: "
              f"run the same command again to resume", file=sys.stderr)
        return 130
    if summary.best is None:
        print(f"no trial succeeded ({summary.n_failed} failed); see {args.out}/results.csv")
        return 1
    best = summary.best
    varied = ", ".join(f"{name}={best['params'].get(name)!r}" for name in space.names)
    print(f"best: trial {best['trial']} ({varied}): validation accuracy "
          f"{100 * best['val_accuracy']:.2f}%, test accuracy {100 * summary.test_accuracy:.2f}% "
          f"({len(data.y_test)} samples)")
    print(f"ran {summary.n_run} trials ({summary.n_failed} failed, {summary.n_skipped} done "
          f"before) in {summary.seconds:.1f} s; wrote {args.out}/results.csv and "
          f"{summary.best_path}")
    return 0
