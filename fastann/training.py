"""The training loop: epochs over a backend, with rollback, Ctrl-C and callbacks.

:func:`train_epochs` knows no device: it shuffles, asks the backend
(:mod:`fastann.backends`) to run the mini-batches, evaluates on the
validation set, records the epoch in the history and calls the callbacks
(:mod:`fastann.callbacks`). Two things stay in the loop because they must undo
an epoch: a diverged epoch (non-finite loss, weights or outputs) is rolled
back and ends training with a ``RuntimeWarning``; Ctrl-C (SIGINT, in the main
thread) stops after the current chunk of mini-batches, rolls the epoch back
and raises ``KeyboardInterrupt``.
"""
import contextlib
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import kernels

# Calls into the backend per epoch, so that progress can be shown and Ctrl-C
# honoured without returning to Python after every mini-batch.
CHUNKS_PER_EPOCH = 20
# Training rows run through the network after every epoch to check that the
# updated weights still give finite outputs (huge but finite float32 weights
# can overflow the logits, making predict_proba NaN).
DIVERGENCE_CHECK_ROWS = 256


@dataclass
class TrainingRun:
    """Everything one call of :func:`train_epochs` trains with and updates.

    Attributes
    ----------
    backend : CpuBackend or CudaBackend
        With the parameters and optimizer state; data not yet loaded.
    X : ndarray, shape (n_samples, n_features), uint8 or float
    y : ndarray, shape (n_samples,), int32 class codes
    batch_size : int
    hyper : fastann.kernels.Hyperparameters
        The optimizer's constants; ``learning_rate`` is replaced every epoch
        by ``learning_rate_at(epoch, n_epochs_total, history)``.
    learning_rate_at : callable ``(epoch, n_epochs_total, history) -> float``
        ``history`` is :attr:`history` (the completed epochs' records), from
        which a schedule such as ``plateau`` derives its state (so a resumed
        run repeats the rates of an uninterrupted one).
    rng : numpy.random.Generator
        Draws each epoch's shuffle seed.
    n_epochs : int
        Epochs to run in this call.
    validation : tuple (X_val, y_val_codes) or None
    history : list of dict
        Appended to, one record per completed epoch.
    n_iter, t : int
        Epochs completed and optimizer updates made so far.
    sample_weight : ndarray, shape (n_samples,), float64, optional
        Per-row weights of the loss (None: unweighted); ``train_loss`` in the
        history is then the weighted mean ``sum w_i loss_i / sum w_i``.
    noise : bool
        Whether the backend draws random numbers while training (dropout,
        augmentation): then a second seed is drawn from ``rng`` every epoch,
        after the shuffle seed, and passed to ``backend.train``.
    """

    backend: object
    X: np.ndarray
    y: np.ndarray
    batch_size: int
    hyper: kernels.Hyperparameters
    learning_rate_at: object
    rng: np.random.Generator
    n_epochs: int
    validation: tuple = None
    history: list = field(default_factory=list)
    n_iter: int = 0
    t: int = 0
    sample_weight: np.ndarray = None
    noise: bool = False

    @property
    def n_epochs_total(self):
        """Epochs of the whole run this call belongs to (for schedules and printouts)."""
        return self._first_epoch + self.n_epochs

    def __post_init__(self):
        self._first_epoch = self.n_iter


def chunk_bounds(n, batch_size, n_chunks=CHUNKS_PER_EPOCH):
    """Split an epoch of ``n`` rows at batch boundaries into at most ``n_chunks`` pieces."""
    n_batches = -(-n // batch_size)
    per_chunk = -(-n_batches // n_chunks)
    step = per_chunk * batch_size
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def train_epochs(model, run, callbacks):
    """Run ``run.n_epochs`` epochs; callbacks see ``model`` and may set ``model.stop_training``.

    Parameters
    ----------
    model : MLPClassifier
        Only ``model.stop_training`` is read (and reset to False at the start).
    run : TrainingRun
    callbacks : fastann.callbacks.CallbackList

    Raises
    ------
    KeyboardInterrupt
        On SIGINT: the interrupted epoch is rolled back (parameters, optimizer
        state, update count and random generator), ``on_train_end`` is called
        with ``logs["interrupted"] = True``, then this is raised.
    """
    backend, n = run.backend, run.X.shape[0]
    with deferred_interrupt():      # may load or compile kernels
        if run.sample_weight is None:
            backend.load_data(run.X, run.y, run.batch_size)
            total_weight = n
        else:
            backend.load_data(run.X, run.y, run.batch_size, sample_weight=run.sample_weight)
            total_weight = float(np.sum(run.sample_weight))
    total = run.n_epochs_total
    order = np.arange(n, dtype=np.int64)
    chunks = chunk_bounds(n, run.batch_size)
    model.stop_training = False
    callbacks.on_train_begin({"epochs": total, "steps": len(chunks)})
    with interrupt_guard() as stop, backend.running():
        for _ in range(run.n_epochs):
            epoch = run.n_iter
            rate = run.learning_rate_at(epoch, total, run.history)
            hyper = run.hyper._replace(learning_rate=float(rate))
            rng_state = run.rng.bit_generator.state
            order[:] = np.arange(n)
            kernels.shuffle_inplace(order, int(run.rng.integers(0, 2**63 - 1)))
            noise_seed = int(run.rng.integers(0, 2**63 - 1)) if run.noise else None
            # A non-finite step also poisons the momentum / Adam moments, so
            # rolling back restores the optimizer state too.
            last_good, last_t = backend.snapshot(), run.t
            callbacks.on_epoch_begin(epoch, {"steps": len(chunks)})
            start_time = time.perf_counter()
            loss_sum, n_correct = 0.0, 0
            for step, (lo, hi) in enumerate(chunks):
                if noise_seed is None:
                    chunk_loss, chunk_correct, run.t = backend.train(order[lo:hi], hyper, run.t)
                else:
                    chunk_loss, chunk_correct, run.t = backend.train(order[lo:hi], hyper, run.t,
                                                                     noise=(noise_seed, lo))
                loss_sum += chunk_loss
                n_correct += chunk_correct
                callbacks.on_train_batch_end(step, {"rows": hi})
                if stop.requested:
                    break
            seconds = time.perf_counter() - start_time
            if stop.requested:
                # Back to the end of the last completed epoch, so that a
                # resume replays this one.
                backend.restore(last_good)
                run.t = last_t
                run.rng.bit_generator.state = rng_state
                callbacks.on_train_end({"interrupted": True})
                raise KeyboardInterrupt(f"training interrupted in epoch {epoch + 1}; "
                                        f"kept the state after epoch {epoch}")
            if _diverged(backend, loss_sum, run.X[:DIVERGENCE_CHECK_ROWS]):
                backend.restore(last_good)
                run.t = last_t
                warnings.warn(f"training diverged in epoch {epoch + 1} (loss, weights or "
                              f"outputs not finite); stopped and kept the weights and "
                              f"optimizer state from before that epoch. "
                              f"Try a smaller learning_rate (now {run.hyper.learning_rate}).",
                              RuntimeWarning, stacklevel=4)
                break
            run.n_iter += 1
            record = {"epoch": run.n_iter, "learning_rate": rate,
                      "train_loss": loss_sum / total_weight, "train_accuracy": n_correct / n,
                      "val_loss": None, "val_accuracy": None,
                      "n_validation": 0 if run.validation is None else int(run.validation[1].size),
                      "seconds": seconds, "eval_seconds": 0.0}
            if run.validation is not None:
                eval_start = time.perf_counter()
                X_val, y_val = run.validation
                record["val_loss"], record["val_accuracy"] = backend.evaluate(X_val, y_val)
                record["eval_seconds"] = time.perf_counter() - eval_start
            run.history.append(record)
            callbacks.on_epoch_end(epoch, dict(record))
            if model.stop_training:
                break
    callbacks.on_train_end({"interrupted": False})


def _diverged(backend, loss_sum, X_sample):
    """Whether an epoch's loss, its updated weights, or their outputs on ``X_sample`` overflowed."""
    if not np.isfinite(loss_sum) or not backend.parameters_finite():
        return True
    return not backend.outputs_finite(X_sample)


class _StopRequest:
    requested = False


@contextlib.contextmanager
def _sigint_handler(handler):
    """Handle SIGINT with ``handler`` inside the block; the previous handler is restored after.

    Only in the main thread (elsewhere signal handlers cannot be set), and
    nothing changes where setting one fails.
    """
    installed = False
    if threading.current_thread() is threading.main_thread():
        try:
            previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, handler)
            installed = True
        except (ValueError, OSError):  # pragma: no cover
            pass
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred_interrupt():
    """Hold a SIGINT that arrives inside the block and raise ``KeyboardInterrupt`` after it.

    For code that may load or compile kernels: Numba's compiler calls back into
    Python from LLVM through ctypes, and a ``KeyboardInterrupt`` raised inside
    such a callback is printed as a traceback and then lost (the program goes
    on as if Ctrl-C had not been pressed). Only in the main thread; the
    previous handler is restored afterwards.
    """
    received = []
    with _sigint_handler(lambda signum, frame: received.append(signum)):
        yield
    if received:
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_guard():
    """While training, turn SIGINT into a request to stop after the current chunk.

    Only in the main thread (elsewhere signal handlers cannot be set). A second
    SIGINT before training has stopped raises ``KeyboardInterrupt`` at once.
    The previous handler is restored afterwards.
    """
    stop = _StopRequest()

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    with _sigint_handler(handler):
        yield stop
