"""asv benchmarks: whole training epochs of fastann.MLPClassifier.

Workloads are those of ``benchmarks/common.py`` (S: 784-128-10 ReLU Adam
batch 128; T: same, batch 32; W: 784-1024-1024-10 ReLU Adam batch 256;
seed: 784-64-64-10 sigmoid, momentum 0.9, batch 128), with the default
``cpu_kernel="auto"`` (the parallel epoch for S, T and seed, BLAS for W) and,
as ``*_blas``, the BLAS epoch.
To keep ``asv run --quick`` short the training set is the first 10,000 MNIST
images; set ``FASTANN_BENCH_N=60000`` (or ``0`` for all) to time full epochs.
Each ``setup`` trains one warm-up epoch, so JIT compilation is never timed.
``FASTANN_BENCH_THREADS=k`` passes ``n_threads=k`` (default: all cores); on a
small shared machine ``1`` gives far steadier timings.
"""
import os
import time

from .common import WORKLOADS, load_data

DEFAULT_N = 10000


def _n_samples():
    n = int(os.environ.get("FASTANN_BENCH_N", DEFAULT_N))
    return n or None


_STATE = {}


def _threads():
    return int(os.environ.get("FASTANN_BENCH_THREADS", 0)) or None


def _model(workload, epochs=1, cpu_kernel="auto"):
    from fastann import MLPClassifier
    w = workload
    return MLPClassifier(hidden_layer_sizes=w.hidden, activation=w.activation,
                         solver=w.optimizer, learning_rate=w.lr, momentum=w.momentum,
                         batch_size=w.batch_size, epochs=epochs, random_state=0,
                         n_threads=_threads(), cpu_kernel=cpu_kernel)


def _warm(name):
    """Load data and train one (untimed) epoch so the next one is steady-state.

    Done once per process: asv_runner re-runs ``setup`` before every sample.
    """
    if _STATE.get("name") == name:
        return
    X, y, _ = load_data("train", _n_samples())
    workload, _, cpu_kernel = name.partition(":")
    model = _model(WORKLOADS[workload], cpu_kernel=cpu_kernel or "auto").fit(X, y)
    _STATE.update(name=name, X=X, y=y, model=model, workload=WORKLOADS[workload])


def _epoch():
    _STATE["model"].partial_fit(_STATE["X"], _STATE["y"])


def _timed(func, name):
    func.setup = lambda: _warm(name)
    func.number = 1            # one call = one epoch
    func.repeat = (1, 5, 30.0)
    func.rounds = 1
    func.warmup_time = 0.0
    func.timeout = 300
    return func


def time_epoch_S():
    _epoch()


def time_epoch_T():
    _epoch()


def time_epoch_W():
    _epoch()


def time_epoch_seed():
    _epoch()


def time_epoch_S_blas():
    """S with ``cpu_kernel="blas"`` (the default picks the parallel epoch for S, T, seed)."""
    _epoch()


def time_epoch_T_blas():
    _epoch()


_timed(time_epoch_S, "S")
_timed(time_epoch_T, "T")
_timed(time_epoch_W, "W")
_timed(time_epoch_seed, "seed")
_timed(time_epoch_S_blas, "S:blas")
_timed(time_epoch_T_blas, "T:blas")


def peakmem_fit_S():
    """Peak RSS of a full 2-epoch fit (data loaded in setup)."""
    X, y, _ = load_data("train", _n_samples())
    _model(WORKLOADS["S"], epochs=2).fit(X, y)


peakmem_fit_S.setup = lambda: load_data("train", _n_samples())
peakmem_fit_S.timeout = 300


def track_gflops_S():
    """Steady-state training throughput, ``6 n sum(d_in d_out)`` flops per epoch."""
    start = time.perf_counter()
    _epoch()
    seconds = time.perf_counter() - start
    return _STATE["workload"].flops_per_epoch(len(_STATE["X"])) / seconds / 1e9


track_gflops_S.setup = lambda: _warm("S")
track_gflops_S.unit = "GFLOP/s"
track_gflops_S.timeout = 300


def track_test_accuracy_S():
    """Test-set accuracy after a 2-epoch fit (guards against fast-but-wrong)."""
    X, y, _ = load_data("train", _n_samples())
    Xt, yt, _ = load_data("test")
    return float(_model(WORKLOADS["S"], epochs=2).fit(X, y).score(Xt, yt))


track_test_accuracy_S.unit = "accuracy"
track_test_accuracy_S.timeout = 300
