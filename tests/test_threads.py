"""n_threads=None keeps a BLAS limit already in force (threadpoolctl, env vars, joblib, Dask)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from fastann import MLPClassifier
from fastann.callbacks import Callback
from fastann.datasets import load_dataset
from fastann.threads import BLAS_THREAD_VARIABLES, available_cores, blas_limit_in_force

DATA = str(Path(__file__).parent / "data")
REPO = str(Path(__file__).parent.parent)


class BlasThreads(Callback):
    """Records the BLAS (``seen``) and Numba (``numba_seen``) thread counts in force
    while the model trains."""

    def __init__(self):
        self.seen = set()
        self.numba_seen = set()

    def on_train_batch_end(self, batch, logs=None):
        self.seen |= {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
        self.numba_seen.add(numba.get_num_threads())
        self.model.blas_threads_seen_ = max(self.seen)


@pytest.fixture(scope="module")
def small():
    X, y = load_dataset(DATA, "train")
    return X[:400], y[:400]


def fit_and_watch(X, y, cpu_kernel="blas", **params):
    """BLAS threads seen by a fit; with ``cpu_kernel="parallel"``, ``(BLAS, Numba)`` threads."""
    watch = BlasThreads()
    MLPClassifier(hidden_layer_sizes=(8,), epochs=1, random_state=0, cpu_kernel=cpu_kernel,
                  **params).fit(X, y, callbacks=[watch])
    return watch.seen if cpu_kernel == "blas" else (watch.seen, watch.numba_seen)


def test_fit_keeps_a_threadpool_limit_in_force(small):
    with threadpool_limits(limits=1, user_api="blas"):
        assert blas_limit_in_force() == 1
        assert fit_and_watch(*small, n_threads=None) == {1}
        # An explicit n_threads still wins.
        assert fit_and_watch(*small, n_threads=2) == {2}


@pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores to tell 1 thread from 2")
def test_the_parallel_epoch_runs_the_thread_budget_on_numba_with_one_blas_thread(small):
    """One pool works at a time: Numba gets the budget, BLAS is held to one thread."""
    assert fit_and_watch(*small, cpu_kernel="parallel", n_threads=2) == ({1}, {2})
    with threadpool_limits(limits=1, user_api="blas"):
        assert fit_and_watch(*small, cpu_kernel="parallel") == ({1}, {1})
    previous = numba.get_num_threads()
    fit_and_watch(*small, cpu_kernel="parallel", n_threads=1)
    assert numba.get_num_threads() == previous         # restored after the fit


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    env.update(extra)
    return env


CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
from test_threads import BlasThreads, fit_and_watch
from fastann.datasets import load_dataset
from fastann.threads import blas_limit_in_force
X, y = load_dataset({data!r}, "train")
print(json.dumps({{"limit": blas_limit_in_force(),
                  "seen": sorted(fit_and_watch(X[:400], y[:400]))}}))
"""


def run_child(env):
    code = CHILD.format(tests=str(Path(__file__).parent), data=DATA)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(available_cores() < 2, reason="needs 2 cores to tell a limit from the default")
def test_an_environment_limit_is_kept_and_no_limit_means_all_cores():
    assert run_child(_clean_env(OPENBLAS_NUM_THREADS="1")) == {"limit": 1, "seen": [1]}
    assert run_child(_clean_env(OMP_NUM_THREADS="1")) == {"limit": 1, "seen": [1]}
    assert run_child(_clean_env()) == {"limit": None, "seen": [available_cores()]}


def blas_threads_scorer(estimator, X, y):
    """A GridSearchCV 'score': the most BLAS threads the fit ran with (in its worker)."""
    return estimator.blas_threads_seen_


def test_grid_search_with_two_jobs_keeps_one_blas_thread_per_worker(small):
    import joblib
    from sklearn.model_selection import GridSearchCV
    X, y = small
    search = GridSearchCV(MLPClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0),
                          {"learning_rate": [1e-3, 3e-3]}, cv=2, n_jobs=2,
                          scoring={"accuracy": "accuracy", "threads": blas_threads_scorer},
                          refit="accuracy")
    search.fit(X, y, callbacks=[BlasThreads()])
    # loky gives each of its 2 workers cpu_count // 2 BLAS threads (1 on 2 cores).
    expected = max(joblib.cpu_count() // 2, 1)
    for split in range(2):
        assert list(search.cv_results_[f"split{split}_test_threads"]) == [expected, expected]
    assert search.best_score_ > 0.15  # better than chance (10 classes)


def test_grid_search_on_dask_through_joblib_parallel_config(small):
    distributed = pytest.importorskip("distributed")
    import joblib
    from sklearn.model_selection import GridSearchCV
    X, y = small
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client, joblib.parallel_config(backend="dask"):
        search = GridSearchCV(MLPClassifier(hidden_layer_sizes=(8,), epochs=2, random_state=0),
                              {"hidden_layer_sizes": [(8,), (16,)]}, cv=2,
                              scoring={"accuracy": "accuracy", "threads": blas_threads_scorer},
                              refit="accuracy")
        search.fit(X, y, callbacks=[BlasThreads()])
        workers = set(client.scheduler_info()["workers"])
    assert len(workers) == 2
    # Dask's nannies start workers with OMP/OPENBLAS/MKL_NUM_THREADS=1.
    seen = [search.cv_results_[f"split{split}_test_threads"] for split in range(2)]
    assert set(np.concatenate(seen).tolist()) == {1}
    assert np.isfinite(search.best_score_)
