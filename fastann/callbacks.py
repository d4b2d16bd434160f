"""Keras-style callbacks: code that runs at the start and end of training and of each epoch.

Pass instances to ``MLPClassifier.fit(X, y, callbacks=[...])``. Before
training each gets ``self.model`` (the estimator being trained); setting
``self.model.stop_training = True`` ends training after the current epoch.
Methods receive ``logs`` dicts:

- ``on_train_begin(logs)``: ``{"epochs": total epochs of the run, "steps": chunks per epoch}``;
- ``on_epoch_begin(epoch, logs)``: 0-based ``epoch``, ``{"steps": ...}``;
- ``on_train_batch_end(batch, logs)``: after each chunk of mini-batches
  (``batch`` is the chunk's 0-based index; at most 20 per epoch);
- ``on_epoch_end(epoch, logs)``: the epoch's ``history_`` record (``train_loss``,
  ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``learning_rate``, ``seconds``, ...);
- ``on_train_end(logs)``: ``{"interrupted": bool}`` (True after Ctrl-C).

fastann's own behaviour is built from the same pieces: :class:`EarlyStopping`
(``early_stopping=True``), :class:`ModelCheckpoint` (``fit(..., checkpoint=PATH)``),
:class:`ProgressBar` (``verbose=2``) and :class:`EpochLogger` (``verbose>=1``);
:class:`CSVLogger` streams the history to a CSV file (``fastann train --log-dir``).
The hook names and ``stop_training`` follow Keras (``keras.callbacks.Callback``).
"""
import csv
import math
import os
import sys

from ._version import __version__
from .checkpoint import CheckpointState, generator_state, write_checkpoint
from .hyperparameters import jsonable_params


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class CallbackList(Callback):
    """Several callbacks called in order.

    Raises
    ------
    TypeError
        An item is not a :class:`Callback`.
    """

    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be fastann.callbacks.Callback instances, got "
                                f"{type(callback).__name__}")

    def set_model(self, model):
        for callback in self.callbacks:
            callback.set_model(model)

    def on_train_begin(self, logs=None):
        for callback in self.callbacks:
            callback.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for callback in self.callbacks:
            callback.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        for callback in self.callbacks:
            callback.on_train_end(logs)


class EarlyStopping(Callback):
    """Stop when the validation loss has stopped improving, and keep the best weights.

    An epoch improves when ``val_loss < best - min_delta``; after ``patience``
    epochs in a row without improvement, training stops. At the end of
    training (not after Ctrl-C) the weights of the best epoch are restored
    with ``model.set_weights`` when ``restore_best_weights``. Epochs without
    a validation loss are ignored.

    Parameters
    ----------
    min_delta : float, default=1e-4
    patience : int, default=5
    restore_best_weights : bool, default=True
    verbose : int, default=0
        Print a line when stopping.

    Attributes
    ----------
    best : float
        Best validation loss so far (``inf`` before the first).
    best_weights : list of ndarray or None
        ``model.get_weights()`` at the best epoch.
    wait : int
        Epochs since the last improvement.
    """

    def __init__(self, min_delta=1e-4, patience=5, restore_best_weights=True, verbose=0):
        self.min_delta = min_delta
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.verbose = verbose
        self.best, self.best_weights, self.wait = math.inf, None, 0

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        if loss is None:
            return
        if loss < self.best - self.min_delta:
            self.best, self.best_weights, self.wait = loss, self.model.get_weights(), 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            if self.verbose:
                print(f"early stopping: validation loss has not improved for "
                      f"{self.wait} epochs", flush=True)
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if (self.restore_best_weights and self.best_weights is not None
                and not (logs or {}).get("interrupted")):
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Write a resumable checkpoint (:mod:`fastann.checkpoint`) after every epoch.

    Made by ``MLPClassifier.fit(..., checkpoint=PATH)``, which continues from
    it with :meth:`MLPClassifier.resume`.

    Parameters
    ----------
    path : str or path-like
    run : fastann.training.TrainingRun
        The run whose backend, random generator and counters are saved.
    initial_rng_state : dict
        The generator's state before the validation split (to redo it).
    fingerprint : dict
        :func:`fastann.checkpoint.data_fingerprint` of the training data.
    early_stopping : EarlyStopping, optional
        Whose state is saved too.
    """

    def __init__(self, path, run, initial_rng_state, fingerprint, early_stopping=None):
        self.path = path
        self.run = run
        self.initial_rng_state = initial_rng_state
        self.fingerprint = fingerprint
        self.early_stopping = early_stopping

    def on_epoch_end(self, epoch, logs=None):
        self.write(finished=False)

    def on_train_end(self, logs=None):
        self.write(finished=not (logs or {}).get("interrupted"))

    def write(self, finished):
        model, run, early = self.model, self.run, self.early_stopping
        best_weights = None if early is None else early.best_weights
        write_checkpoint(self.path, CheckpointState(
            hyperparameters=jsonable_params(model.get_params()),
            layer_sizes=[int(s) for s in run.backend.layer_sizes],
            classes=model.classes_,
            normalization_scale=model.normalization_scale_,
            normalization_shift=model.normalization_shift_,
            parameters=run.backend.get_parameters(),
            optimizer_state=run.backend.get_optimizer_state(),
            n_iter=run.n_iter, t=run.t, history=run.history, finished=finished,
            rng_state=generator_state(run.rng), initial_rng_state=self.initial_rng_state,
            data=self.fingerprint,
            best_loss=None if early is None else early.best,
            best_weights=best_weights,
            stale=0 if early is None else early.wait), version=__version__)


class ProgressBar(Callback):
    """A tqdm progress bar per epoch (chunks of mini-batches), removed when the epoch ends.

    Shown only when ``file`` (default: stderr) is a terminal: in a log file or
    a pipe, the bar's carriage returns would only be noise.
    """

    def __init__(self, file=None):
        self.file = file
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        file = self.file or sys.stderr
        if not _is_terminal(file):
            return
        from tqdm.auto import tqdm
        self._bar = tqdm(total=(logs or {}).get("steps"), desc=f"epoch {epoch + 1}",
                         unit="chunk", leave=False, file=file,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        self._close()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_terminal(file):
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed file
        return False


class EpochLogger(Callback):
    """Print one line per epoch (:func:`format_epoch`)."""

    def __init__(self, file=None):
        self.file = file
        self.epochs = None

    def on_train_begin(self, logs=None):
        self.epochs = (logs or {}).get("epochs")

    def on_epoch_end(self, epoch, logs=None):
        print(format_epoch(logs, self.epochs), file=self.file or sys.stdout, flush=True)


def format_epoch(record, n_epochs):
    """One line summarizing an epoch's ``history_`` record."""
    line = (f"epoch {record['epoch']:>3}/{n_epochs}  "
            f"train loss {record['train_loss']:.4f}  acc {100 * record['train_accuracy']:6.2f}%")
    if record["val_loss"] is not None:
        line += (f"  |  val loss {record['val_loss']:.4f}  "
                 f"acc {100 * record['val_accuracy']:6.2f}%")
    line += f"  |  lr {record['learning_rate']:.3g}  {record['seconds']:.2f} s"
    return line


class CSVLogger(Callback):
    """Write each epoch's ``history_`` record as a row of a CSV file (Keras's ``CSVLogger``).

    The columns are the record's keys in order (``epoch`` is 1-based, as in
    ``history_``; a missing validation value is an empty cell). Each row is
    flushed as soon as its epoch ends, so the file follows a running fit.

    Parameters
    ----------
    filename : str or path-like
    separator : str, default=","
    append : bool, default=False
        Add rows to an existing file (keeping its header and column order)
        instead of overwriting it; a new or empty file gets a header either way.

    Raises
    ------
    OSError
        At the start of training, when the file cannot be opened.
    """

    def __init__(self, filename, separator=",", append=False):
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self._file = None
        self._writer = None
        self._fields = None

    def on_train_begin(self, logs=None):
        self._fields = None
        if self.append and os.path.exists(self.filename) and os.path.getsize(self.filename):
            with open(self.filename, newline="", encoding="utf-8") as f:
                self._fields = next(csv.reader(f, delimiter=self.separator), None)
        directory = os.path.dirname(self.filename)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._file = open(self.filename, "a" if self.append else "w", newline="",
                          encoding="utf-8")
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self._writer is None:
            new_file = self._fields is None
            self._writer = csv.DictWriter(self._file, fieldnames=self._fields or list(logs),
                                          delimiter=self.separator, extrasaction="ignore",
                                          lineterminator="\n")
            if new_file:
                self._writer.writeheader()
        self._writer.writerow({k: "" if v is None else v for k, v in logs.items()})
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
        self._file = self._writer = None
