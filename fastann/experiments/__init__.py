"""``fastann experiments``: re-run published MNIST MLP results and write a report.

Five from-scratch MLP projects (and the Fashion-MNIST README) published
accuracies for small fully-connected networks. This command re-runs each of
their configurations with :class:`fastann.MLPClassifier` on full MNIST with
fixed seeds, adds the fastest and the most accurate configurations we found,
and writes ``REPORT.md`` and its figures into an output directory.

The package is split by concern:

* ``plan.json`` -- the configurations and the published values, each with
  its source (data, shipped with the package); :mod:`.plan` reads it;
* :mod:`.runner` -- trains each configuration in a worker process (``--jobs``
  of them, default: one per available core) whose model uses
  ``n_threads=1``, or as a task on the dask.distributed cluster of
  ``--scheduler`` (the engine of ``fastann sweep``); :mod:`.augment` -- the
  random-shift run;
* :mod:`.figures` and :mod:`.report` -- the figures and ``REPORT.md``
  (tables built by :mod:`.markdown`).

Usage::

    fastann experiments --out docs/experiments          # full table, about 4 min on 2 cores
    fastann experiments --quick --dataset tests/data     # < 1 min
    fastann experiments --only 001,003 --jobs 2
    fastann experiments --scheduler tcp://127.0.0.1:8786  # on a dask cluster
    python -m fastann.experiments ...                    # the same

``add_arguments(parser)`` and ``run(args)`` plug the options into the
``fastann`` command line.
"""
from __future__ import annotations

import argparse
import sys

from ..argtypes import positive_int
from .augment import random_shifts
from .plan import BEST_TARGET, FAST_TARGET, SOURCES, Experiment, Published, build_plan

__all__ = ["BEST_TARGET", "DESCRIPTION", "Experiment", "FAST_TARGET", "HELP", "Published",
           "SOURCES", "add_arguments", "build_plan", "main", "random_shifts", "run"]

HELP = "re-run the classic from-scratch MNIST configurations; write REPORT.md"
DESCRIPTION = ("Re-run the configurations of five classic from-scratch MNIST MLP projects and "
               "fastann's best, on full MNIST with fixed seeds, in parallel processes (one "
               "thread each), and write REPORT.md with figures.")


def _sources(text):
    chosen = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [s for s in chosen if s not in SOURCES]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown source(s) {', '.join(unknown) or repr(text)}; choose from "
            f"{', '.join(SOURCES)}")
    return tuple(dict.fromkeys(chosen))


def add_arguments(parser):
    """Add the ``experiments`` options to ``parser`` (an argparse (sub)parser)."""
    parser.add_argument("--out", default="experiments-report", metavar="DIR",
                        help="output directory for REPORT.md and the figures")
    parser.add_argument("--quick", action="store_true",
                        help="reduced run (fewer configurations and epochs, a data subset), "
                             "under a minute")
    parser.add_argument("--only", type=_sources, default=SOURCES, metavar="SOURCE[,SOURCE]",
                        help=f"run only these sources: {', '.join(SOURCES)}")
    parser.add_argument("--seed", type=int, default=0, help="random seed of every run")
    parser.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                        help="worker processes (default: available cores); each model uses "
                             "one BLAS thread")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run the configurations on the dask.distributed cluster of this "
                             "scheduler (e.g. tcp://127.0.0.1:8786; needs fastann[sweep]) "
                             "instead of --jobs local processes; a --dataset PATH must exist "
                             "on the workers")
    parser.add_argument("--dataset", default="mnist",
                        help="'mnist' or a PATH (directory of IDX files, CSV, Nielsen pickle)")
    parser.add_argument("--fashion-dataset", default="fashion-mnist",
                        help="data of the Fashion-MNIST row: 'fashion-mnist' or a PATH")
    return parser


def _argv_of(args):
    argv = ["--out", str(args.out)]
    if args.quick:
        argv.append("--quick")
    if tuple(args.only) != SOURCES:
        argv += ["--only", ",".join(args.only)]
    if args.seed != 0:
        argv += ["--seed", str(args.seed)]
    if args.jobs:
        argv += ["--jobs", str(args.jobs)]
    if getattr(args, "scheduler", None):
        argv += ["--scheduler", str(args.scheduler)]
    if args.dataset != "mnist":
        argv += ["--dataset", str(args.dataset)]
    if args.fashion_dataset != "fashion-mnist":
        argv += ["--fashion-dataset", str(args.fashion_dataset)]
    return argv


def _require_report_dependencies():
    """matplotlib draws the figures, scikit-learn counts the confusion matrix."""
    missing = []
    for module, package in (("matplotlib", "matplotlib"), ("sklearn", "scikit-learn")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise ImportError(f"fastann experiments needs {' and '.join(missing)}; install with: "
                          f"pip install {' '.join(missing)}")


def _software():
    import platform

    import matplotlib
    import numba
    import numpy as np
    import sklearn

    from .. import __version__
    return (f"fastann {__version__}, numpy {np.__version__}, numba {numba.__version__}, "
            f"matplotlib {matplotlib.__version__}, scikit-learn {sklearn.__version__}, "
            f"Python {platform.python_version()}")


def _print_result(progress, result):
    progress.update(1)
    progress.set_postfix_str(result["key"])
    if result["status"] == "ok":
        progress.write(f"  {result['key']:<34} test {result['test_accuracy']:6.2f}%  "
                       f"train {result['train_accuracy']:6.2f}%  {result['seconds']:7.1f} s")
    else:
        progress.write(f"  {result['key']:<34} {result['status']}: {result['message']}")


def run(args):
    """Run the table described by ``args``; returns the exit status (0, or 1 if a run failed)."""
    import datetime
    import functools
    import os
    import time
    from pathlib import Path

    from tqdm.auto import tqdm

    from ..threads import available_cores, cpu_model
    from . import figures, report, runner

    _require_report_dependencies()
    t0 = time.perf_counter()
    load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    plan = [e for e in build_plan(args.quick) if e.source in args.only]
    jobs = runner.make_jobs(plan, quick=args.quick, seed=args.seed, dataset=args.dataset,
                            fashion_dataset=args.fashion_dataset)
    workers = min(args.jobs or available_cores(), len(jobs)) or 1
    # Fails here (DatasetError), before any training, if the --dataset data cannot be read.
    X_test, y_test = runner.job_data({"dataset": args.dataset, "split": "full",
                                      "quick": args.quick})[4:]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(jobs), desc="experiments", unit="run", file=sys.stderr) as progress:
        results = runner.run_jobs(jobs, workers, functools.partial(_print_result, progress),
                                  scheduler=args.scheduler)
    rows = runner.rows_of(plan, jobs, results)
    _, best, _ = report.fastest_and_best(rows)
    row_002 = next((r for r in rows if r.exp.published_value("validation_correct")), None)
    paths = (figures.write_figures(out, rows, best, row_002, X_test, y_test, FAST_TARGET)
             if rows else [])
    fashion = any(r.exp.dataset == "fashion" for r in rows)
    meta = {
        "quick": args.quick, "seed": args.seed,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(), "cores": os.cpu_count(), "available": available_cores(),
        "load_start": load_start,
        "load_end": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "software": _software(),
        "data": f"`{args.dataset}`" + (f"; Fashion-MNIST row: `{args.fashion_dataset}`"
                                       if fashion else ""),
        "command": "fastann experiments " + " ".join(_argv_of(args)),
        "total_seconds": time.perf_counter() - t0, "workers": workers,
        "scheduler": args.scheduler,
        "n_test": len(y_test),
    }
    path = report.write_report(out, rows, meta, paths)
    print(f"wrote {path} and {len(paths)} figures in {meta['total_seconds']:.0f} s")
    return 1 if any(r.result["status"] == "failed" for r in rows) else 0


def main(argv=None):
    """``python -m fastann.experiments [options]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="fastann experiments", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    from ..datasets import DatasetError
    try:
        return run(args)
    except (DatasetError, OSError, ImportError, RuntimeError) as exc:
        print(f"fastann experiments: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastann experiments: interrupted", file=sys.stderr)
        return 130
