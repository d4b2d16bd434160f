"""``MLPClassifier``: a multi-layer perceptron trained by compiled Numba epochs."""
import contextlib
import math
import signal
import threading
import time
import warnings

import numpy as np

import kernels
from kernels.epoch import BETA1, BETA2, EPSILON, L1, L2, LEARNING_RATE, MOMENTUM_COEF

from .estimator import ParamsMixin
from .exceptions import not_fitted_error
from .initializers import INITIALIZERS, default_init
from .parallel import available_cores, thread_budget
from .schedules import SCHEDULES, scheduled_learning_rate
from .validation import (check_choice, check_features, check_labels, check_positive,
                         encode_labels)

ACTIVATIONS = tuple(kernels.ACTIVATIONS)
SOLVERS = ("gd",) + tuple(kernels.OPTIMIZERS)
INITS = ("auto",) + tuple(INITIALIZERS)
NORMALIZATIONS = ("auto", "simple", "standard", "none")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")

# Rows processed at once by the compiled loops. Larger mini-batches (full-batch
# gradient descent) are split into micro-batches of this size whose gradients
# are summed, so memory does not grow with the batch size.
MAX_BUFFER_ROWS = 1024
# With one thread, inputs at most this dense take the sparse first layer.
# Measured on MNIST, 2-core AMD EPYC, one thread, epoch seconds dense -> sparse:
# 784-128-10 batch 32: 0.45 -> 0.39; 784-64-64-10 sigmoid: 0.37 -> 0.30;
# with 2 BLAS threads dense was faster (0.32 vs 0.40, 0.20 vs 0.30).
SPARSE_INPUT_MAX_DENSITY = 0.5
# Calls into the compiled epoch per epoch when a progress bar is shown.
PROGRESS_CHUNKS = 20
# Training rows run through the network after every epoch to check that the
# updated weights still give finite outputs (huge but finite float32 weights
# can overflow the logits, making predict_proba NaN).
DIVERGENCE_CHECK_ROWS = 256


class MLPClassifier(ParamsMixin):
    """Multi-layer perceptron classifier with softmax output and cross-entropy loss.

    Each epoch runs as one compiled Numba loop (shuffle, gather and normalize
    the mini-batch, forward, backward, update) over buffers allocated once per
    ``fit``; matrix products go to BLAS.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(256,)
        Width of each hidden layer; ``()`` gives softmax (multinomial logistic)
        regression.
    activation : {"relu", "sigmoid", "tanh", "leaky_relu", "identity"}, default="relu"
        Hidden-layer activation.
    solver : {"adam", "adamw", "sgd", "momentum", "nesterov", "gd"}, default="adam"
        ``gd`` is full-batch gradient descent (one update per epoch); the others
        use mini-batches of ``batch_size``.
    learning_rate : float, default=1e-3
        Initial step size (before the schedule).
    momentum : float, default=0.9
        Momentum coefficient for ``momentum`` and ``nesterov``.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's moment decay rates and stabilizer (Kingma & Ba 2015).
    batch_size : int, default=128
        Samples per update (ignored by ``gd``); capped at the training-set size.
    epochs : int, default=15
        Passes over the training data in ``fit``.
    init : {"auto", "gaussian", "xavier", "he"}, default="auto"
        Weight initialization; ``auto`` picks He for (leaky) ReLU, Xavier otherwise.
    normalization : {"auto", "simple", "standard", "none"}, default="auto"
        ``simple`` divides by 255 (pixels to [0, 1]); ``standard`` subtracts the
        per-feature training mean and divides by the standard deviation (1 for
        constant features); ``auto`` is ``simple`` for uint8 input, ``standard``
        otherwise. Applied on the fly: uint8 images stay uint8 in memory.
    l1, l2 : float, default=0.0
        Penalty ``l1 * sum|w| + l2 / 2 * sum w^2`` on weights (not biases),
        added to each mini-batch's mean loss. With ``adamw``, ``l2`` is the
        decoupled weight decay instead.
    lr_schedule : {"constant", "step", "exponential", "cosine"}, default="constant"
    lr_decay : float, default=0.5
        Factor for ``step`` (every ``lr_step_size`` epochs) and ``exponential``
        (every epoch) schedules.
    lr_step_size : int, default=10
    validation_fraction : float, default=0.0
        Fraction of the training data held out (at random) to report
        validation loss/accuracy per epoch when ``fit`` gets no
        ``validation_data``; 0.1 is used if ``early_stopping`` and this is 0.
    early_stopping : bool, default=False
        Stop when the validation loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and keep the best weights.
    n_iter_no_change : int, default=5
    tol : float, default=1e-4
    random_state : int, numpy Generator or None, default=None
        Seeds initialization, the validation split and the shuffling.
    dtype : {"float32", "float64"}, default="float32"
        Precision of parameters and arithmetic.
    n_threads : int or None, default=None
        BLAS threads (None: all available cores).
    device : {"cpu", "cuda"}, default="cpu"
        ``cuda`` trains and predicts with the numba.cuda twins of the kernels
        (:mod:`kernels.cuda`), keeping data and parameters on the GPU during
        each epoch; needs an NVIDIA GPU and ``pip install "fastann[cuda]"``.
        The CPU path never imports CUDA.
    verbose : int, default=0
        0 silent, 1 one line per epoch, 2 also a progress bar per epoch.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
    n_features_in_ : int
    coefs_ : list of ndarray
        ``coefs_[i]`` has shape ``(d_i, d_{i+1})``.
    intercepts_ : list of ndarray
        ``intercepts_[i]`` has shape ``(d_{i+1},)``.
    history_ : list of dict
        Per epoch: ``epoch``, ``learning_rate``, ``train_loss`` and
        ``train_accuracy`` (running values over the epoch's mini-batches),
        ``val_loss``, ``val_accuracy`` (None without validation data),
        ``n_validation`` (validation samples, 0 if none),
        ``seconds`` (training time of the epoch) and ``eval_seconds``.
    n_iter_ : int
        Epochs completed so far. An epoch whose loss, weights or outputs (on
        the first training rows) become non-finite is rolled back, with a
        ``RuntimeWarning`` that ends training, and not counted.
    t_ : int
        Optimizer updates made so far (those of a rolled-back epoch excluded).
    normalization_scale_, normalization_shift_ : ndarray, shape (n_features,)
        The per-feature affine map ``x * scale + shift`` applied to inputs.
    """

    def __init__(self, hidden_layer_sizes=(256,), activation="relu", solver="adam",
                 learning_rate=1e-3, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 batch_size=128, epochs=15, init="auto", normalization="auto",
                 l1=0.0, l2=0.0, lr_schedule="constant", lr_decay=0.5, lr_step_size=10,
                 validation_fraction=0.0, early_stopping=False, n_iter_no_change=5, tol=1e-4,
                 random_state=None, dtype="float32", n_threads=None, device="cpu", verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.batch_size = batch_size
        self.epochs = epochs
        self.init = init
        self.normalization = normalization
        self.l1 = l1
        self.l2 = l2
        self.lr_schedule = lr_schedule
        self.lr_decay = lr_decay
        self.lr_step_size = lr_step_size
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.dtype = dtype
        self.n_threads = n_threads
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _validate_hyperparameters(self):
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes must be a tuple of positive integers, "
                             f"got {self.hidden_layer_sizes!r}") from None
        for width in hidden:
            check_positive("each hidden layer size", width, integer=True)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("solver", self.solver, SOLVERS)
        check_choice("init", self.init, INITS)
        check_choice("normalization", self.normalization, NORMALIZATIONS)
        check_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        check_choice("device", self.device, DEVICES)
        check_choice("dtype", str(np.dtype(self.dtype)) if self.dtype in DTYPES or
                     isinstance(self.dtype, type) else self.dtype, DTYPES)
        check_positive("learning_rate", self.learning_rate)
        check_positive("batch_size", self.batch_size, integer=True)
        check_positive("epochs", self.epochs, integer=True)
        check_positive("lr_step_size", self.lr_step_size, integer=True)
        check_positive("n_iter_no_change", self.n_iter_no_change, integer=True)
        check_positive("epsilon", self.epsilon)
        for name in ("l1", "l2", "tol"):
            check_positive(name, getattr(self, name), allow_zero=True)
        for name in ("momentum", "beta_1", "beta_2"):
            value = getattr(self, name)
            check_positive(name, value, allow_zero=True)
            if value >= 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if self.n_threads is not None:
            check_positive("n_threads", self.n_threads, integer=True)
        return hidden

    def _check_fitted(self):
        if not hasattr(self, "coefs_"):
            raise not_fitted_error(f"This {type(self).__name__} instance is not fitted yet; "
                                   f"call fit before using this method")

    def _check_predict_input(self, X):
        self._check_fitted()
        X = check_features(X, dtype=self._float_dtype())
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        return X

    def _float_dtype(self):
        return np.dtype(self.dtype)

    # ----------------------------------------------------------------- training
    def fit(self, X, y, validation_data=None, checkpoint=None):
        """Train from scratch for ``epochs`` epochs.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            uint8 (kept as is, normalized per mini-batch) or any numeric dtype
            (converted to ``dtype``).
        y : array-like, shape (n_samples,)
            Class labels: integers or strings, at least two distinct values.
        validation_data : tuple (X_val, y_val), optional
            Evaluated after every epoch (loss and accuracy in ``history_``);
            overrides ``validation_fraction``.
        checkpoint : str or path-like, optional
            Checkpoint file (``.npz``, see :mod:`fastann.checkpoint`), written
            atomically after every epoch; continue an interrupted run with
            :meth:`resume`.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Invalid hyper-parameters, or invalid ``X``/``y`` (wrong shape,
            NaN/inf, mismatched lengths, a single class, continuous labels).
        TypeError
            Sparse input, or ``X`` holding objects that are neither numbers
            nor strings.
        KeyboardInterrupt
            On SIGINT (Ctrl-C, in the main thread): training stops after the
            current chunk of mini-batches, the model keeps the state of the
            last completed epoch, which is written to ``checkpoint`` if given.
        """
        hidden = self._validate_hyperparameters()
        X = check_features(X, dtype=self._float_dtype())
        y = check_labels(y, X.shape[0])
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes in the data, "
                             f"but the data contains only one class: {classes[0]!r}")
        self._reset()
        rng = np.random.default_rng(self.random_state)
        ckpt = None
        if checkpoint is not None:
            from .checkpoint import data_fingerprint, generator_state
            ckpt = {"path": checkpoint, "initial_rng_state": generator_state(rng),
                    "fingerprint": data_fingerprint(X, y_idx)}
        X, y_idx, val = self._split_validation(X, y_idx, classes, validation_data, rng)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self._initialize(X, hidden, rng)
        with _interrupt_guard() as stop:
            self._train(X, y_idx.astype(np.int32), self.epochs, val, rng, checkpoint=ckpt,
                        stop=stop)
        return self

    def _split_validation(self, X, y_idx, classes, validation_data, rng):
        val = None
        if validation_data is not None:
            val = self._prepare_validation(validation_data, X.shape[1], classes)
        else:
            fraction = self.validation_fraction or (0.1 if self.early_stopping else 0.0)
            if fraction > 0:
                X, y_idx, val = self._random_split(X, y_idx.astype(np.int32), fraction, rng)
        return X, y_idx, val

    @classmethod
    def resume(cls, checkpoint, X, y, validation_data=None):
        """Continue the ``fit`` that wrote ``checkpoint`` for its remaining epochs.

        With the same data (and ``validation_data``), the final model is
        bit-identical to that of an uninterrupted ``fit`` (same seed, same
        ``n_threads``). Hyper-parameters come from the checkpoint, which keeps
        being updated after every epoch.

        Parameters
        ----------
        checkpoint : str or path-like
            File written by ``fit(..., checkpoint=...)``.
        X, y, validation_data
            As given to that ``fit``.

        Returns
        -------
        MLPClassifier
            Fitted (returned at once if the checkpoint's run had finished).

        Raises
        ------
        FileNotFoundError
            No such checkpoint.
        fastann.checkpoint.CheckpointError
            The file is not a readable checkpoint, or ``X``/``y`` differ from
            the data it was trained on.
        KeyboardInterrupt
            As :meth:`fit`.
        """
        from .checkpoint import CheckpointError, data_fingerprint, load_checkpoint, \
            restore_generator
        from .persistence import _classes_array
        state = load_checkpoint(checkpoint)
        try:
            model = cls(**state["params"])
            if isinstance(model.hidden_layer_sizes, list):
                model.hidden_layer_sizes = tuple(model.hidden_layer_sizes)
            hidden = model._validate_hyperparameters()
            rng = restore_generator(state["initial_rng_state"])
            next_rng = restore_generator(state["rng_state"])
            sizes = np.array(state["layer_sizes"], np.int64)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{checkpoint}: malformed checkpoint ({exc})") from exc
        X = check_features(X, dtype=model._float_dtype())
        y = check_labels(y, X.shape[0])
        classes, y_idx = np.unique(y, return_inverse=True)
        if (data_fingerprint(X, y_idx) != state["data"]
                or not np.array_equal(_classes_array(classes), state["classes"])):
            raise CheckpointError(f"{checkpoint}: X and y are not the data this checkpoint "
                                  f"was trained on")
        X, y_idx, val = model._split_validation(X, y_idx, classes, validation_data, rng)
        params = np.array(state["flat_params"], dtype=model._float_dtype())
        expected = int(kernels.parameter_offsets(sizes)[1][-1])
        if (params.shape != (expected,) or tuple(sizes[1:-1]) != hidden
                or sizes[0] != X.shape[1] or sizes[-1] != classes.size
                or state["optimizer_state1"].shape != params.shape
                or state["optimizer_state2"].shape != params.shape):
            raise CheckpointError(f"{checkpoint}: array shapes do not match its layer sizes")
        model.classes_ = classes
        model.n_features_in_ = X.shape[1]
        model.normalization_scale_ = state["normalization_scale"]
        model.normalization_shift_ = state["normalization_shift"]
        model._set_parameters(params, sizes)
        model._optimizer_state = (state["optimizer_state1"].copy(),
                                  state["optimizer_state2"].copy())
        model.n_iter_, model.t_ = int(state["n_iter"]), int(state["t"])
        model.history_ = list(state["history"])
        model._rng = next_rng
        remaining = model.epochs - model.n_iter_
        if state["finished"] or remaining <= 0:
            return model
        best_loss = math.inf if state["best_loss"] is None else state["best_loss"]
        best_params = state["best_params"] if state["best_params"].size else None
        ckpt = {"path": checkpoint, "initial_rng_state": state["initial_rng_state"],
                "fingerprint": state["data"]}
        with _interrupt_guard() as stop:
            model._train(X, y_idx.astype(np.int32), remaining, val, next_rng, checkpoint=ckpt,
                         stop=stop, early_state=(best_loss, best_params, int(state["stale"])))
        return model

    def partial_fit(self, X, y, classes=None):
        """Train for one epoch over ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
        classes : array-like, optional
            All classes that will ever appear; needed on the first call unless
            ``y`` already contains every class. Ignored afterwards.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            As :meth:`fit`, and for labels not in ``classes_`` or a feature
            count that differs from the first call.
        """
        hidden = self._validate_hyperparameters()
        X = check_features(X, dtype=self._float_dtype())
        y = check_labels(y, X.shape[0])
        first_call = not hasattr(self, "coefs_")
        if first_call:
            all_classes = np.unique(np.asarray(classes) if classes is not None else y)
            if all_classes.size < 2:
                raise ValueError("MLPClassifier needs at least 2 classes, but only one class "
                                 "was given; pass classes= on the first partial_fit call")
            # Encode before initializing, so a bad first call leaves the model unfitted.
            y_idx = encode_labels(y, all_classes)
            self._reset()
            self.classes_ = all_classes
            self.n_features_in_ = X.shape[1]
            self._rng = np.random.default_rng(self.random_state)
            self._initialize(X, hidden, self._rng)
        else:
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} features as input.")
            y_idx = encode_labels(y, self.classes_)
        self._train(X, y_idx, 1, None, self._rng)
        return self

    def _reset(self):
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)

    def _prepare_validation(self, validation_data, n_features, classes):
        try:
            X_val, y_val = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a tuple (X_val, y_val)") from None
        X_val = check_features(X_val, dtype=self._float_dtype(), name="X_val")
        if X_val.shape[1] != n_features:
            raise ValueError(f"X_val has {X_val.shape[1]} features but X has {n_features}")
        y_val = check_labels(y_val, X_val.shape[0])
        return X_val, encode_labels(y_val, classes)

    @staticmethod
    def _random_split(X, y_idx, fraction, rng):
        n_val = max(1, int(round(fraction * X.shape[0])))
        if n_val >= X.shape[0]:
            raise ValueError(f"validation_fraction={fraction} leaves no training samples "
                             f"out of {X.shape[0]}")
        perm = rng.permutation(X.shape[0])
        val_rows, train_rows = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        return X[train_rows], y_idx[train_rows], (X[val_rows], y_idx[val_rows])

    def _normalization_map(self, X):
        dtype = self._float_dtype()
        mode = self.normalization
        if mode == "auto":
            mode = "simple" if X.dtype == np.uint8 else "standard"
        d = X.shape[1]
        if mode == "simple":
            return np.full(d, 1.0 / 255.0, dtype), np.zeros(d, dtype)
        if mode == "none":
            return np.ones(d, dtype), np.zeros(d, dtype)
        mean = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        return (1.0 / std).astype(dtype), (-mean / std).astype(dtype)

    def _layer_sizes(self, hidden):
        return np.array([self.n_features_in_, *hidden, len(self.classes_)], dtype=np.int64)

    def _initialize(self, X, hidden, rng):
        dtype = self._float_dtype()
        sizes = self._layer_sizes(hidden)
        init = INITIALIZERS[default_init(self.activation) if self.init == "auto" else self.init]
        self.normalization_scale_, self.normalization_shift_ = self._normalization_map(X)
        w_off, b_off = kernels.parameter_offsets(sizes)
        params = np.zeros(b_off[-1], dtype)
        for layer in range(sizes.size - 1):
            params[w_off[layer]:w_off[layer + 1]] = init(
                int(sizes[layer]), int(sizes[layer + 1]), rng, dtype).ravel()
        self._set_parameters(params, sizes)
        self._optimizer_state = (np.zeros_like(params), np.zeros_like(params))
        self.n_iter_ = 0
        self.t_ = 0
        self.history_ = []
        self._rng = rng

    def _set_parameters(self, params, sizes):
        """Expose the flat vector as ``coefs_``/``intercepts_`` (views, no copy)."""
        w_off, b_off = kernels.parameter_offsets(sizes)
        self.coefs_, self.intercepts_ = [], []
        for layer in range(sizes.size - 1):
            shape = (int(sizes[layer]), int(sizes[layer + 1]))
            self.coefs_.append(params[w_off[layer]:w_off[layer + 1]].reshape(shape))
            self.intercepts_.append(params[b_off[layer]:b_off[layer + 1]])

    def _flat_parameters(self):
        """``coefs_`` and ``intercepts_`` packed into one flat vector (kernel layout)."""
        dtype = self._float_dtype()
        parts = [np.asarray(c, dtype).ravel() for c in self.coefs_]
        parts += [np.asarray(b, dtype).ravel() for b in self.intercepts_]
        return np.concatenate(parts)

    def _sizes_from_coefs(self):
        return np.array([self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_], np.int64)

    def _hyper_vector(self):
        hyper = np.zeros(kernels.N_HYPER, np.float64)
        hyper[MOMENTUM_COEF] = self.momentum
        hyper[BETA1], hyper[BETA2], hyper[EPSILON] = self.beta_1, self.beta_2, self.epsilon
        hyper[L1], hyper[L2] = self.l1, self.l2
        return hyper

    def _train(self, X, y_idx, n_epochs, val, rng, checkpoint=None, stop=None, early_state=None):
        dtype = self._float_dtype()
        sizes = self._sizes_from_coefs()
        params = self._flat_parameters()
        self._set_parameters(params, sizes)
        state1, state2 = self._optimizer_state
        n = X.shape[0]
        batch = n if self.solver == "gd" else min(self.batch_size, n)
        optimizer = kernels.OPTIMIZERS["sgd" if self.solver == "gd" else self.solver]
        capacity = min(batch, MAX_BUFFER_ROWS)
        widest_hidden = int(sizes[1:-1].max()) if sizes.size > 2 else 1
        grads = np.zeros_like(params)
        grad_sum = np.zeros_like(params) if batch > capacity else np.zeros(0, dtype)
        inputs = np.zeros((capacity, sizes[0]), dtype)
        labels = np.zeros(capacity, np.int32)
        acts = np.zeros(kernels.activation_offsets(sizes, capacity)[-1], dtype)
        scratch = np.zeros(2 * capacity * widest_hidden, dtype)
        sparse_input = self._use_sparse_input(X)
        csr_size = capacity * int(sizes[0]) if sparse_input else 0
        row_ptr = np.zeros(capacity + 1, np.int64)
        nz_index, nz_value = np.zeros(csr_size, np.int32), np.zeros(csr_size, dtype)
        hyper = self._hyper_vector()
        activation = kernels.ACTIVATIONS[self.activation]
        scale, shift = self.normalization_scale_, self.normalization_shift_
        order = np.arange(n, dtype=np.int64)
        best_loss, best_params, stale = early_state or (np.inf, None, 0)

        def save_checkpoint(finished):
            if checkpoint is None:
                return
            from .checkpoint import save_checkpoint as save
            save(checkpoint["path"], self, params, state1, state2, rng,
                 initial_rng_state=checkpoint["initial_rng_state"],
                 fingerprint=checkpoint["fingerprint"], best_loss=best_loss,
                 best_params=best_params, stale=stale, finished=finished)
        first_epoch = self.n_iter_
        gpu = None
        if self.device == "cuda":
            from . import cuda_backend
            cuda_backend.require_cuda()
            gpu = cuda_backend.CudaTrainer(X, y_idx, scale, shift, params, sizes, activation,
                                           optimizer, batch, state1, state2, capacity=capacity)
        with thread_budget(self.n_threads):
            for _ in range(n_epochs):
                epoch = self.n_iter_
                rate = scheduled_learning_rate(self.lr_schedule, self.learning_rate,
                                               epoch, first_epoch + n_epochs,
                                               self.lr_decay, self.lr_step_size)
                hyper[LEARNING_RATE] = rate
                rng_state = rng.bit_generator.state
                order[:] = np.arange(n)
                kernels.shuffle_inplace(order, int(rng.integers(0, 2**63 - 1)))
                # Snapshot to roll a diverged epoch back: a non-finite step also
                # poisons the momentum / Adam moments, which later calls would reuse.
                last_good = (params.copy(), state1.copy(), state2.copy(), self.t_)
                chunks = self._chunk_bounds(n, batch)
                progress = self._progress_bar(epoch, len(chunks))
                start_time = time.perf_counter()
                loss_sum, n_correct = 0.0, 0
                if gpu is not None:
                    # Whole epoch on the device; params and optimizer state are
                    # copied back to the host arrays afterwards.
                    loss_sum, n_correct, self.t_ = gpu.train_epoch(order, hyper, self.t_)
                    chunks = []
                    if progress is not None:
                        progress.update(progress.total)
                for lo, hi in chunks:
                    chunk_loss, chunk_correct, self.t_ = kernels.train_epoch(
                        X, y_idx, order[lo:hi], scale, shift, params, sizes, activation,
                        optimizer, hyper, self.t_, batch, grads, grad_sum, state1, state2,
                        inputs, labels, acts, scratch, sparse_input, row_ptr, nz_index, nz_value)
                    loss_sum += chunk_loss
                    n_correct += chunk_correct
                    if progress is not None:
                        progress.update(1)
                    if stop is not None and stop.requested:
                        break
                seconds = time.perf_counter() - start_time
                if progress is not None:
                    progress.close()
                if stop is not None and stop.requested:
                    # Back to the end of the last completed epoch (weights,
                    # optimizer, random state), so a resume replays this epoch.
                    params[:], state1[:], state2[:] = last_good[:3]
                    self.t_ = last_good[3]
                    rng.bit_generator.state = rng_state
                    if gpu is not None:
                        gpu.upload()
                    self._optimizer_state = (state1, state2)
                    save_checkpoint(False)
                    raise KeyboardInterrupt(f"training interrupted in epoch {epoch + 1}; "
                                            f"kept the state after epoch {epoch}")
                if self._diverged(loss_sum, params, X[:DIVERGENCE_CHECK_ROWS], sizes):
                    params[:], state1[:], state2[:] = last_good[:3]
                    self.t_ = last_good[3]
                    if gpu is not None:
                        gpu.upload()
                    warnings.warn(f"training diverged in epoch {epoch + 1} (loss, weights or "
                                  f"outputs not finite); "
                                  f"stopped and kept the weights and optimizer state from "
                                  f"before that epoch. "
                                  f"Try a smaller learning_rate (now {self.learning_rate}).",
                                  RuntimeWarning, stacklevel=3)
                    break
                self.n_iter_ += 1
                record = {"epoch": self.n_iter_, "learning_rate": rate,
                          "train_loss": loss_sum / n, "train_accuracy": n_correct / n,
                          "val_loss": None, "val_accuracy": None,
                          "n_validation": 0 if val is None else int(val[1].size),
                          "seconds": seconds, "eval_seconds": 0.0}
                if val is not None:
                    eval_start = time.perf_counter()
                    log_proba = self._log_proba(val[0], params, sizes)
                    record["val_loss"] = float(-log_proba[np.arange(val[1].size), val[1]].mean())
                    record["val_accuracy"] = float((log_proba.argmax(axis=1) == val[1]).mean())
                    record["eval_seconds"] = time.perf_counter() - eval_start
                self.history_.append(record)
                if self.verbose:
                    print(format_epoch(record, first_epoch + n_epochs), flush=True)
                early_stop = False
                if self.early_stopping and val is not None:
                    if record["val_loss"] < best_loss - self.tol:
                        best_loss, best_params, stale = record["val_loss"], params.copy(), 0
                    else:
                        stale += 1
                        if stale >= self.n_iter_no_change:
                            if self.verbose:
                                print(f"early stopping: validation loss has not improved for "
                                      f"{stale} epochs", flush=True)
                            early_stop = True
                if early_stop:
                    break
                if self.n_iter_ < first_epoch + n_epochs:
                    save_checkpoint(False)
        if best_params is not None:
            params[:] = best_params
        self._optimizer_state = (state1, state2)
        save_checkpoint(True)

    def _diverged(self, loss_sum, params, X_sample, sizes):
        """Whether an epoch's loss, its updated weights, or their outputs on ``X_sample`` overflowed."""
        if not np.isfinite(loss_sum) or not np.all(np.isfinite(params)):
            return True
        return not np.all(np.isfinite(self._log_proba(X_sample, params, sizes)))

    def _use_sparse_input(self, X):
        """Whether the first layer should run on nonzero inputs only (kernels.sparse).

        Only with a single BLAS thread (where the sparse kernels beat
        single-threaded sgemm on MNIST; with more threads BLAS wins, see
        ``benchmarks/dense_vs_sparse.py``), when normalization keeps zeros at
        zero, and when at most ``SPARSE_INPUT_MAX_DENSITY`` of the inputs
        (estimated on up to 2,000 rows) are nonzero; MNIST's density is 0.19.
        """
        threads = self.n_threads if self.n_threads is not None else available_cores()
        if threads != 1 or np.any(self.normalization_shift_ != 0):
            return False
        sample = X[:2000]
        return np.count_nonzero(sample) <= SPARSE_INPUT_MAX_DENSITY * sample.size

    @staticmethod
    def _chunk_bounds(n, batch):
        """Split an epoch at batch boundaries into at most PROGRESS_CHUNKS pieces."""
        n_batches = -(-n // batch)
        per_chunk = -(-n_batches // PROGRESS_CHUNKS)
        step = per_chunk * batch
        return [(lo, min(lo + step, n)) for lo in range(0, n, step)]

    def _progress_bar(self, epoch, total):
        if self.verbose < 2:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=f"epoch {epoch + 1}", unit="chunk", leave=False,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    # ---------------------------------------------------------------- inference
    def _log_proba(self, X, params, sizes):
        dtype = self._float_dtype()
        capacity = max(1, min(X.shape[0], MAX_BUFFER_ROWS))
        inputs = np.zeros((capacity, sizes[0]), dtype)
        acts = np.zeros(kernels.activation_offsets(sizes, capacity)[-1], dtype)
        if getattr(self, "device", "cpu") == "cuda":
            from . import cuda_backend
            cuda_backend.require_cuda()
            return cuda_backend.predict_log_proba_cuda(
                X, self.normalization_scale_, self.normalization_shift_, params, sizes,
                kernels.ACTIVATIONS[self.activation])
        out = np.empty((X.shape[0], sizes[-1]), dtype)
        with thread_budget(self.n_threads):
            kernels.predict_log_proba(X, self.normalization_scale_, self.normalization_shift_,
                                      params, sizes, kernels.ACTIVATIONS[self.activation],
                                      inputs, acts, out)
        return out

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably (log-softmax).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples, n_classes), float64
        """
        X = self._check_predict_input(X)
        return self._log_proba(X, self._flat_parameters(), self._sizes_from_coefs()).astype(np.float64)

    def predict_proba(self, X):
        """Class probabilities (softmax of the output layer).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples, n_classes), float64
            Rows sum to 1; columns follow ``classes_``.

        Raises
        ------
        NotFittedError
            Called before ``fit``.
        ValueError
            Invalid ``X`` or a feature count different from training.
        """
        proba = np.exp(self.predict_log_proba(X))
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict(self, X):
        """Most probable class of each row.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples,), dtype of ``classes_``
        """
        best = self.predict_log_proba(X).argmax(axis=1)  # checks fitted before classes_ is read
        return self.classes_[best]

    def score(self, X, y):
        """Accuracy (fraction of rows whose prediction equals ``y``), in [0, 1]."""
        y = check_labels(y, np.asarray(X).shape[0] if hasattr(X, "__len__") else -1)
        return float(np.mean(self.predict(X) == y))

    # ------------------------------------------------------------- persistence
    def save(self, path):
        """Write the fitted model to ``path`` (``.npz`` with a JSON header; no pickle).

        See :func:`fastann.persistence.save_model`.
        """
        from .persistence import save_model
        save_model(self, path)

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so scikit-learn is importable here.
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags())


class _StopRequest:
    requested = False


@contextlib.contextmanager
def _interrupt_guard():
    """While training, turn SIGINT into a request to stop after the current chunk.

    Only in the main thread (elsewhere signal handlers cannot be set). A second
    SIGINT before training has stopped raises ``KeyboardInterrupt`` at once.
    The previous handler is restored afterwards.
    """
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    try:
        previous = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):  # pragma: no cover
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    try:
        signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):  # pragma: no cover
        yield stop
        return
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def format_epoch(record, n_epochs):
    """One line summarizing an epoch's ``history_`` record."""
    line = (f"epoch {record['epoch']:>3}/{n_epochs}  "
            f"train loss {record['train_loss']:.4f}  acc {100 * record['train_accuracy']:6.2f}%")
    if record["val_loss"] is not None:
        line += (f"  |  val loss {record['val_loss']:.4f}  "
                 f"acc {100 * record['val_accuracy']:6.2f}%")
    line += f"  |  lr {record['learning_rate']:.3g}  {record['seconds']:.2f} s"
    return line
