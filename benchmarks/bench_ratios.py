"""asv: fastann's epoch time as a *ratio* to a reference timed in the same process.

On a small shared machine absolute times move with whatever else runs (the
same commit can be 1.5x slower an hour later); a ratio of two timings taken
alternately, in one process, a fraction of a second apart, mostly cancels that:
both sides are slowed by the same neighbours, the same CPU frequency and the
same cache. Each ``track_ratio_*`` benchmark returns

    median(fastann epoch seconds) / median(reference seconds)

over ``ROUNDS`` alternations (fastann, reference, fastann, reference, ...),
after one untimed warm-up of each. Larger is worse, as asv assumes for every
benchmark, so ``asv compare`` / ``benchmarks/asv_compare.sh`` flag a ratio
that grows by more than the factor.

References (public API only, so these do not depend on kernel names):

* ``numpy_reference``: one epoch of the from-scratch NumPy MLP of
  :mod:`benchmarks.numpy_reference` on the same workload and data
  (float32 ``X / 255``, as in ``compare.py``).
* ``sgemm``: float32 ``np.matmul`` doing as many flops as the epoch counts
  (``6 n sum(d_in d_out)``), timed on 1024 x 1024 matrices and scaled, i.e.
  the ratio is sgemm GFLOP/s / epoch GFLOP/s: how many times longer the epoch
  takes than the BLAS peak this process sees would need.

Data and threads as in ``bench_training.py``: the first ``FASTANN_BENCH_N``
(default 10,000) MNIST training images; ``FASTANN_BENCH_THREADS=k`` gives
fastann ``n_threads=k`` and limits every BLAS library (NumPy's too) to ``k``
threads for both sides.
"""
import os
import statistics
import time

import numpy as np

from .common import WORKLOADS, load_data, to_float32

DEFAULT_N = 10000
ROUNDS = 7            # alternations per measurement (medians of 7 each side)
SGEMM_N = 1024

_STATE = {}


def _n_samples():
    return int(os.environ.get("FASTANN_BENCH_N", DEFAULT_N)) or None


def _threads():
    return int(os.environ.get("FASTANN_BENCH_THREADS", 0)) or None


def _blas_limit():
    """A context that limits every loaded BLAS to FASTANN_BENCH_THREADS (or does nothing)."""
    import contextlib
    threads = _threads()
    if not threads:
        return contextlib.nullcontext()
    import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's OpenBLAS so it is limited too)
    from threadpoolctl import threadpool_limits
    return threadpool_limits(threads, user_api="blas")


def alternating_ratio(func, reference, rounds=ROUNDS, warmup=True):
    """``median(t(func)) / median(t(reference))``, timing the two alternately.

    Both are called once untimed first (``warmup``); then ``rounds`` times
    each, interleaved, so that slow spells on a shared machine hit both sides.
    """
    if warmup:
        func()
        reference()
    t_func, t_ref = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        t_func.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference()
        t_ref.append(time.perf_counter() - start)
    return statistics.median(t_func) / statistics.median(t_ref)


def _fastann_epoch(name):
    """One steady-state fastann epoch of workload ``name`` (model built, warmed, cached)."""
    key = ("fastann", name)
    if key not in _STATE:
        from fastann import MLPClassifier
        w = WORKLOADS[name]
        X, y, _ = load_data("train", _n_samples())
        model = MLPClassifier(hidden_layer_sizes=w.hidden, activation=w.activation,
                              solver=w.optimizer, learning_rate=w.lr, momentum=w.momentum,
                              batch_size=w.batch_size, epochs=1, random_state=0,
                              n_threads=_threads())
        model.fit(X, y)                                  # compile + first epoch
        _STATE[key] = lambda: model.partial_fit(X, y)
    return _STATE[key]


def _numpy_epoch(name):
    """One epoch of the NumPy reference MLP on the same workload and data."""
    key = ("numpy", name)
    if key not in _STATE:
        from .numpy_reference import NumpyMLP
        w = WORKLOADS[name]
        X, y, _ = load_data("train", _n_samples())
        Xf, yi = to_float32(X), y.astype(np.intp)
        net = NumpyMLP(list(w.layer_sizes), w.activation, w.optimizer, w.lr,
                       momentum=w.momentum, seed=0)
        _STATE[key] = lambda: net.train_epoch(Xf, yi, w.batch_size)
    return _STATE[key]


def _sgemm_same_flops(name):
    """float32 matmuls doing (about) the flops of one epoch of ``name``."""
    key = ("sgemm", name)
    if key not in _STATE:
        w = WORKLOADS[name]
        X, _, _ = load_data("train", _n_samples())
        rng = np.random.default_rng(0)
        A = rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32)
        B = rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32)
        C = np.empty_like(A)
        calls = max(1, round(w.flops_per_epoch(len(X)) / (2.0 * SGEMM_N ** 3)))

        def sgemm():
            for _ in range(calls):
                np.matmul(A, B, out=C)
        _STATE[key] = sgemm
    return _STATE[key]


def _ratio(name, reference):
    with _blas_limit():
        return alternating_ratio(_fastann_epoch(name), reference(name))


def _setup(name, reference):
    def setup():
        # Build, compile and warm outside the measurement (cached per process).
        with _blas_limit():
            _fastann_epoch(name)
            reference(name)
    return setup


def _tracked(func, name, reference):
    func.setup = _setup(name, reference)
    func.unit = "ratio"
    func.rounds = 1
    func.repeat = 1
    func.number = 1
    func.timeout = 600
    return func


def track_ratio_epoch_S_to_numpy_reference():
    return _ratio("S", _numpy_epoch)


def track_ratio_epoch_T_to_numpy_reference():
    return _ratio("T", _numpy_epoch)


def track_ratio_epoch_W_to_numpy_reference():
    return _ratio("W", _numpy_epoch)


def track_ratio_epoch_seed_to_numpy_reference():
    return _ratio("seed", _numpy_epoch)


def track_ratio_epoch_S_to_sgemm():
    return _ratio("S", _sgemm_same_flops)


def track_ratio_epoch_W_to_sgemm():
    return _ratio("W", _sgemm_same_flops)


for _name in ("S", "T", "W", "seed"):
    _tracked(globals()[f"track_ratio_epoch_{_name}_to_numpy_reference"], _name, _numpy_epoch)
for _name in ("S", "W"):
    _tracked(globals()[f"track_ratio_epoch_{_name}_to_sgemm"], _name, _sgemm_same_flops)
del _name
