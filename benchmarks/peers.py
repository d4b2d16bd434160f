"""Peer runners for the side-by-side training benchmark.

Every runner has the signature ``run_<peer>(workload, X, y, repeat=5, threads=None)``
and returns a dict::

    {"median": s, "epochs": [s, ...], "warmup": s, "version": "x.y", ...}

where ``median`` is the median wall time of ``repeat`` steady-state epochs,
measured after one warm-up epoch (JIT compilation, allocation, thread-pool
start-up). ``X`` is uint8 (n, 784), ``y`` uint8 (n,); peers that need floats get
``X / 255`` as float32, converted before timing. A runner whose package is not
installed raises :class:`PeerUnavailable`.

Run one peer in its own process (this is what ``compare.py`` does)::

    python -m benchmarks.peers --peer torch --workload S --repeat 5 [--subset N]

which prints one JSON object on the last line of stdout.

Import-safe for asv: no work at import time, and no function here is named
like an asv benchmark (``time_*``, ``track_*``, ``mem_*``, ``peakmem_*``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

if __package__ in (None, ""):  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from benchmarks.common import WORKLOADS, load_data, to_float32

PEERS = ("fastann", "fastann_blas", "numpy", "torch", "sklearn", "jax")
DEFAULT_REPEAT = 5


class PeerUnavailable(RuntimeError):
    """The peer's package is not installed (the peer is skipped)."""


def _timed_epochs(run_one_epoch, repeat):
    """One warm-up epoch, then ``repeat`` timed ones; returns the result dict."""
    start = time.perf_counter()
    run_one_epoch()
    warmup = time.perf_counter() - start
    epochs = []
    for _ in range(repeat):
        start = time.perf_counter()
        run_one_epoch()
        epochs.append(time.perf_counter() - start)
    return {"median": statistics.median(epochs), "epochs": epochs, "warmup": warmup}


def _threads(threads):
    return threads or os.cpu_count() or 1


# --------------------------------------------------------------------- peers
def run_fastann(workload, X, y, repeat=DEFAULT_REPEAT, threads=None, cpu_kernel="auto"):
    """fastann.MLPClassifier on the uint8 pixels (normalized per mini-batch).

    ``cpu_kernel="auto"`` (the default) picks the parallel BLAS-free epoch for
    S, T and seed and the BLAS epoch for W; the ``fastann_blas`` peer forces
    the BLAS epoch.
    """
    try:
        import fastann
        from fastann import MLPClassifier
    except ImportError as exc:
        raise PeerUnavailable(f"fastann not importable: {exc}") from None
    w = workload
    model = MLPClassifier(hidden_layer_sizes=w.hidden, activation=w.activation,
                          solver=w.optimizer, learning_rate=w.lr, momentum=w.momentum,
                          batch_size=w.batch_size, epochs=1, random_state=0,
                          n_threads=threads, cpu_kernel=cpu_kernel)
    internal = []

    def epoch():
        if not hasattr(model, "coefs_"):
            model.fit(X, y)                 # warm-up: compile + first epoch
        else:
            model.partial_fit(X, y)         # one more epoch
        internal.append(model.history_[-1]["seconds"])

    result = _timed_epochs(epoch, repeat)
    result["internal_epochs"] = internal[1:]     # fastann's own timer (training loop only)
    result["version"] = fastann.__version__
    result["train_accuracy"] = model.history_[-1]["train_accuracy"]
    return result


def run_numpy(workload, X, y, repeat=DEFAULT_REPEAT, threads=None):
    """The from-scratch NumPy MLP of :mod:`benchmarks.numpy_reference`."""
    from benchmarks.numpy_reference import NumpyMLP
    w = workload
    Xf, yi = to_float32(X), y.astype(np.intp)
    net = NumpyMLP(list(w.layer_sizes), w.activation, w.optimizer, w.lr,
                   momentum=w.momentum, seed=0)
    result = _timed_epochs(lambda: net.train_epoch(Xf, yi, w.batch_size), repeat)
    result["version"] = np.__version__
    return result


def run_torch(workload, X, y, repeat=DEFAULT_REPEAT, threads=None):
    """PyTorch CPU eager: nn.Sequential, torch.optim, manual mini-batching."""
    try:
        import torch
        from torch import nn
    except ImportError as exc:
        raise PeerUnavailable(f"torch not installed: {exc}") from None
    w = workload
    torch.set_num_threads(_threads(threads))
    torch.manual_seed(0)
    act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
           "identity": nn.Identity, "leaky_relu": nn.LeakyReLU}[w.activation]
    sizes = w.layer_sizes
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    model = nn.Sequential(*layers)
    if w.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=w.lr)
    elif w.optimizer == "momentum":
        opt = torch.optim.SGD(model.parameters(), lr=w.lr, momentum=w.momentum)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=w.lr)
    loss_fn = nn.CrossEntropyLoss()
    Xt = torch.from_numpy(to_float32(X))
    yt = torch.from_numpy(y.astype(np.int64))
    n, bs = len(Xt), w.batch_size

    def epoch():
        model.train()
        perm = torch.randperm(n)
        for lo in range(0, n, bs):
            idx = perm[lo:lo + bs]
            xb, yb = Xt[idx], yt[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()

    result = _timed_epochs(epoch, repeat)
    result["version"] = torch.__version__
    result["threads"] = torch.get_num_threads()
    return result


def run_sklearn(workload, X, y, repeat=DEFAULT_REPEAT, threads=None):
    """scikit-learn MLPClassifier, one ``partial_fit`` (= one epoch) per timing."""
    try:
        import sklearn
        from sklearn.neural_network import MLPClassifier
    except ImportError as exc:
        raise PeerUnavailable(f"scikit-learn not installed: {exc}") from None
    import warnings
    w = workload
    solver = "adam" if w.optimizer == "adam" else "sgd"
    activation = {"sigmoid": "logistic"}.get(w.activation, w.activation)
    model = MLPClassifier(hidden_layer_sizes=w.hidden, activation=activation, solver=solver,
                          learning_rate_init=w.lr, momentum=w.momentum if
                          w.optimizer == "momentum" else 0.0,
                          nesterovs_momentum=False, batch_size=w.batch_size, alpha=0.0,
                          max_iter=1, tol=0.0, n_iter_no_change=10**9, shuffle=True,
                          early_stopping=False, random_state=0)
    Xf, yi = to_float32(X), y.astype(np.int64)
    classes = np.arange(10)

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.partial_fit(Xf, yi, classes=classes)

    result = _timed_epochs(epoch, repeat)
    result["version"] = sklearn.__version__
    result["dtype"] = str(model.coefs_[0].dtype)
    return result


class JaxTrainer:
    """The same MLP in JAX, written the way JAX is fastest on a CPU.

    * The uint8 images and int32 labels go to the device once (``device_put``);
      nothing crosses between Python and XLA inside an epoch.
    * One whole epoch is one ``jax.jit`` call: a ``lax.scan`` over the
      mini-batches of a permutation drawn inside with ``jax.random`` (the
      last, shorter batch of ``n % batch_size`` rows is one more step after the
      scan, so every peer trains on every image). The parameters and optimizer
      state are donated, so XLA updates them in place.
    * The per-step gather and the ``/ 255`` normalization happen inside the
      scanned step (``X_u8[idx].astype(float32) / 255``), as fastann does.
    * optax: ``adam(lr)`` (default betas and eps, as the other peers), or
      ``sgd(lr, momentum=0.9)`` for the ``seed`` workload.
    * Initialization as fastann's default: He normal for ReLU, Glorot uniform
      otherwise; zero biases. Parameters are a pytree (list of ``(W, b)``).

    ``epoch()`` trains one epoch and blocks until it is done.
    """

    def __init__(self, workload, X, y, seed=0):
        import jax
        import jax.numpy as jnp
        import optax

        w = workload
        self.jax, self.jnp = jax, jnp
        sizes = w.layer_sizes
        key = jax.random.PRNGKey(seed)
        params = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            key, sub = jax.random.split(key)
            if w.activation in ("relu", "leaky_relu"):
                W = jax.random.normal(sub, (a, b), jnp.float32) * np.float32(np.sqrt(2.0 / a))
            else:
                r = np.float32(np.sqrt(6.0 / (a + b)))
                W = jax.random.uniform(sub, (a, b), jnp.float32, -r, r)
            params.append((W, jnp.zeros((b,), jnp.float32)))
        self.key = key
        act = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
               "identity": lambda z: z,
               "leaky_relu": lambda z: jax.nn.leaky_relu(z, 0.01)}[w.activation]
        if w.optimizer == "adam":
            opt = optax.adam(w.lr)
        elif w.optimizer == "momentum":
            opt = optax.sgd(w.lr, momentum=w.momentum)
        else:
            opt = optax.sgd(w.lr)

        def logits_of(params, xb):
            h = xb
            for W, b in params[:-1]:
                h = act(h @ W + b)
            W, b = params[-1]
            return h @ W + b

        def loss_fn(params, xb, yb):
            logits = logits_of(params, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        grad_fn = jax.grad(loss_fn)
        n, bs = len(X), w.batch_size
        n_full, rest = divmod(n, bs)

        def step(X_u8, y_i, carry, idx):
            params, opt_state = carry
            xb = X_u8[idx].astype(jnp.float32) / jnp.float32(255.0)
            grads = grad_fn(params, xb, y_i[idx])
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        def train_epoch(params, opt_state, key, X_u8, y_i):
            perm = jax.random.permutation(key, n)
            carry = (params, opt_state)
            if n_full:
                batches = perm[:n_full * bs].reshape(n_full, bs)
                carry, _ = jax.lax.scan(lambda c, idx: (step(X_u8, y_i, c, idx), None),
                                        carry, batches)
            if rest:
                carry = step(X_u8, y_i, carry, perm[n_full * bs:])
            return carry

        def predict(params, X_u8):
            return jnp.argmax(logits_of(params, X_u8.astype(jnp.float32) / 255.0), axis=1)

        self._epoch = jax.jit(train_epoch, donate_argnums=(0, 1))
        self._predict = jax.jit(predict)
        self.X = jax.device_put(np.ascontiguousarray(X, dtype=np.uint8))
        self.y = jax.device_put(np.asarray(y, dtype=np.int32))
        self.params = params
        self.opt_state = opt.init(params)

    def epoch(self):
        self.key, sub = self.jax.random.split(self.key)
        self.params, self.opt_state = self._epoch(self.params, self.opt_state, sub,
                                                  self.X, self.y)
        self.jax.block_until_ready((self.params, self.opt_state))

    def score(self, X, y):
        pred = self._predict(self.params, self.jax.device_put(np.asarray(X, np.uint8)))
        return float((np.asarray(pred) == np.asarray(y)).mean())


def run_jax(workload, X, y, repeat=DEFAULT_REPEAT, threads=None):
    """JAX at its best on the CPU: see :class:`JaxTrainer`.

    ``threads`` is recorded but not applied: JAX documents no setting for the
    number of XLA CPU threads (the ``XLA_FLAGS`` folklore of jax issues
    #743/#1539 is not documented and does not reliably limit them), so XLA
    keeps its default, a pool over all the cores this process may use.
    """
    try:
        import jax
        import optax
    except ImportError as exc:
        raise PeerUnavailable(f"jax/optax not installed: {exc}") from None
    import warnings
    with warnings.catch_warnings():
        # Donation is a no-op on backends that do not support it.
        warnings.filterwarnings("ignore", message=".*donated.*")
        trainer = JaxTrainer(workload, X, y)
        result = _timed_epochs(trainer.epoch, repeat)
    result["version"] = f"jax {jax.__version__}, optax {optax.__version__}"
    result["threads"] = (f"XLA default ({len(os.sched_getaffinity(0))} cores)"
                         if hasattr(os, "sched_getaffinity") else "XLA default")
    result["threads_requested"] = threads
    result["xla_flags"] = os.environ.get("XLA_FLAGS")
    result["device"] = str(jax.devices()[0])
    result["train_accuracy"] = trainer.score(X, y)
    return result


def run_fastann_blas(workload, X, y, repeat=DEFAULT_REPEAT, threads=None):
    """fastann with ``cpu_kernel="blas"``: the epoch whose matrix products call BLAS."""
    return run_fastann(workload, X, y, repeat, threads, cpu_kernel="blas")


RUNNERS = {"fastann": run_fastann, "fastann_blas": run_fastann_blas, "numpy": run_numpy, "torch": run_torch,
           "sklearn": run_sklearn, "jax": run_jax}


def blas_info():
    """The BLAS libraries loaded in this process: library, kernel set, threads.

    ``architecture`` is the OpenBLAS core type actually in use (it follows
    ``OPENBLAS_CORETYPE`` when that is set). SciPy's OpenBLAS, which Numba's
    ``np.dot`` and so fastann call, is loaded first so that it is listed too.
    """
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"library": os.path.basename(d.get("filepath", "")),
             "internal_api": d.get("internal_api"), "architecture": d.get("architecture"),
             "num_threads": d.get("num_threads")}
            for d in threadpool_info() if d.get("user_api") == "blas"]


def sgemm_gflops(n=2048, repeat=7, threads=None):
    """float32 ``np.matmul`` of two n x n matrices: median GFLOP/s (2 n^3 flops).

    ``threads``: limit BLAS to that many threads (default: BLAS's own, all cores).
    """
    if threads:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(threads, user_api="blas"):
            return sgemm_gflops(n, repeat)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    C = np.empty((n, n), np.float32)
    np.matmul(A, B, out=C)                   # warm-up (thread pool start)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        np.matmul(A, B, out=C)
        times.append(time.perf_counter() - start)
    return 2.0 * n ** 3 / statistics.median(times) / 1e9


def fastann_cold_start(workload, X, y, launch_time):
    """Seconds from process launch to one trained mini-batch, data loading excluded.

    Returns ``(total, import_seconds, first_batch_seconds)``; ``total`` counts
    from ``launch_time`` (the parent's ``time.time()`` just before it started
    this process), so it includes interpreter start-up and imports.
    """
    t0 = time.perf_counter()
    from fastann import MLPClassifier
    t1 = time.perf_counter()
    bs = workload.batch_size
    MLPClassifier(hidden_layer_sizes=workload.hidden, activation=workload.activation,
                  solver=workload.optimizer, learning_rate=workload.lr,
                  batch_size=bs, epochs=1, random_state=0).fit(X[:bs], y[:bs])
    t2 = time.perf_counter()
    return time.time() - launch_time, t1 - t0, t2 - t1


# ----------------------------------------------------------------------- CLI
def main(argv=None):
    wall_start = time.time()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peer", required=True, choices=[*PEERS, "sgemm"])
    parser.add_argument("--workload", default="S", choices=sorted(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--launch-time", type=float, default=None,
                        help="parent's time.time() at launch (for fastann's cold start)")
    args = parser.parse_args(argv)

    out = {"peer": args.peer, "workload": args.workload}
    try:
        if args.peer == "sgemm":
            out["gflops"] = sgemm_gflops(threads=args.threads)
            out["numpy"] = np.__version__
            out["blas"] = blas_info()
        else:
            workload = WORKLOADS[args.workload]
            t = time.perf_counter()
            X, y, source = load_data("train", args.subset)
            data_seconds = time.perf_counter() - t
            out.update(n_samples=len(X), data=source,
                       flops=workload.flops_per_epoch(len(X)))
            if args.peer == "fastann" and args.launch_time is not None:
                try:
                    total, imp, first = fastann_cold_start(workload, X, y, args.launch_time)
                    out["cold_start"] = {"total": total - data_seconds, "import": imp,
                                         "first_batch": first}
                except ImportError:
                    pass
            out.update(RUNNERS[args.peer](workload, X, y, args.repeat, args.threads))
            out["gflops"] = out["flops"] / out["median"] / 1e9
    except PeerUnavailable as exc:
        out["skipped"] = str(exc)
    out["process_seconds"] = time.time() - wall_start
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
