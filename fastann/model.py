"""``MLPClassifier``: a multi-layer perceptron trained by compiled Numba epochs."""
import zlib

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from . import kernels, weights
from ._version import __version__
from .backends import backend_class
from .backends.cpu import CpuBackend
from .callbacks import CallbackList, EarlyStopping, EpochLogger, ModelCheckpoint, ProgressBar
from .checkpoint import CheckpointError, check_fits, data_fingerprint, generator_state, \
    read_checkpoint, restore_generator
from .container import classes_array
from .exceptions import ModelFileError
from .hyperparameters import (CONSTRAINTS, check_image_shape, check_training_memory,
                              dropout_rates, float_dtype, hidden_widths, image_shape_of,
                              jsonable_params, params_from_json)
from .initializers import INITIALIZERS, default_init
from .persistence import SavedModel, read_model, write_model
from .schedules import learning_rate_schedule
from .training import TrainingRun, deferred_interrupt, train_epochs
from .validation import (check_features, check_labels, encode_labels, normalization_map,
                         split_validation)
from .weighting import check_sample_weight, row_weights


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier with softmax output and cross-entropy loss.

    Each epoch runs as one compiled Numba loop (shuffle, gather and normalize
    the mini-batch, forward, backward, update) over buffers allocated once per
    ``fit`` by a backend (:mod:`fastann.backends`: CPU, or CUDA); matrix
    products go to BLAS on the CPU.

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
    lr_schedule : {"constant", "step", "exponential", "cosine", "plateau"}, default="constant"
        How the rate changes from epoch to epoch (:mod:`fastann.schedules`).
        ``plateau`` multiplies it by ``lr_decay`` when the validation loss (the
        training loss without validation) has not improved by ``tol`` for
        ``lr_patience`` epochs (Keras's ``ReduceLROnPlateau``); the rates are
        recomputed from ``history_``, so :meth:`resume` repeats them exactly.
    lr_decay : float, default=0.5
        Factor for ``step`` (every ``lr_step_size`` epochs), ``exponential``
        (every epoch) and ``plateau`` schedules.
    lr_step_size : int, default=10
    lr_patience : int, default=3
        Epochs without improvement before ``plateau`` reduces the rate.
    min_lr : float, default=0.0
        ``plateau`` never reduces the rate below this.
    warmup_epochs : int, default=0
        Linear warm-up composed with any schedule: epoch ``e < warmup_epochs``
        uses the scheduled rate times ``(e + 1) / (warmup_epochs + 1)``.
    validation_fraction : float, default=0.0
        Fraction of the training data held out (at random) to report
        validation loss/accuracy per epoch when ``fit`` gets no
        ``validation_data``; 0.1 is used if ``early_stopping`` and this is 0.
    early_stopping : bool, default=False
        Stop when the validation loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and keep the best weights
        (:class:`fastann.callbacks.EarlyStopping`).
    n_iter_no_change : int, default=5
    tol : float, default=1e-4
    class_weight : None, "balanced" or dict {label: weight}, default=None
        Multiplies the loss of every sample of a class (scikit-learn's
        definition): ``"balanced"`` gives class ``c`` the weight
        ``n_samples / (n_classes * n_c)`` (``sklearn.utils.class_weight.compute_class_weight``,
        on the ``y`` given to ``fit``); classes missing from a dict weigh 1.
        Combined with ``fit``'s ``sample_weight`` by multiplication; see
        :meth:`fit` for the loss. ``"balanced"`` is refused by
        :meth:`partial_fit`, which sees one part of the data at a time.
    dropout : float or tuple of float, default=0.0
        Inverted dropout (Srivastava et al. 2014, JMLR 15) on the hidden
        activations during training: one drop rate in ``[0, 1)`` for every
        hidden layer, or one per hidden layer. Each kept activation is divided
        by ``1 - rate``; masks are drawn in the compiled epoch from a seed drawn
        each epoch from the model's random generator (same ``random_state``,
        same weights; the masks do not depend on the thread count). Never
        active in ``predict``, ``predict_proba`` or ``score``.
    augment : {None, "shift", "affine", "elastic"}, default=None
        Random geometric distortion of every training image, drawn afresh each
        epoch and computed while each mini-batch is gathered (the data is
        never copied; :mod:`fastann.kernels.augment`): ``shift`` moves by up to
        ±2 pixels per axis; ``affine`` rotates by up to ±15°, scales by up to
        ±10% and slants by up to ±0.2 (bilinear sampling); ``elastic`` is
        Simard, Steinkraus & Platt (2003)'s elastic distortion (Gaussian-
        smoothed random displacement fields, sigma 4, alpha 34, bilinear
        sampling). Validation and prediction see the images as they are.
    image_shape : tuple (height, width) or None, default=None
        Shape of the images in the rows of ``X`` (row-major), for ``augment``;
        None means square images of ``sqrt(n_features)`` pixels a side.
    random_state : int, numpy Generator or None, default=None
        Seeds initialization, the validation split and the shuffling.
    dtype : {"float32", "float64"}, default="float32"
        Precision of parameters and arithmetic.
    n_threads : int or None, default=None
        BLAS threads. None keeps a BLAS limit already in force (set by
        ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, a
        ``threadpoolctl.threadpool_limits`` block, or joblib's and Dask's
        workers, see :func:`fastann.threads.thread_budget`), else uses all
        available cores.
    device : {"cpu", "cuda"}, default="cpu"
        ``cuda`` trains with the numba.cuda twins of the kernels
        (:mod:`fastann.kernels.cuda`), keeping data and parameters on the GPU;
        needs an NVIDIA GPU and ``pip install "fastann[cuda]"``; it does not
        support sample or class weights, dropout or augmentation yet
        (``ValueError``). A model
        without a live GPU backend (loaded from a file, unpickled) predicts on
        the CPU. The CPU path never imports CUDA.
    cpu_kernel : {"auto", "blas", "parallel"}, default="auto"
        The CPU epoch. ``parallel`` (:func:`fastann.kernels.train_epoch_parallel`)
        runs the whole step on Numba's threads without BLAS, multiplying only
        the nonzero inputs in the first layer; its results do not depend on
        the thread count. It applies to input at most half nonzero with small
        later layers (at most 16,384 weights each), without sample weights,
        dropout or augmentation; elsewhere ``blas`` trains, the epoch whose
        matrix products call BLAS. ``auto`` takes ``parallel`` where it
        applies and the input is at most 30% nonzero (MNIST: 19%;
        Fashion-MNIST, 49%, was faster with ``blas``); README, "Threads".
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
        ``train_accuracy`` (running values over the epoch's mini-batches, with
        dropout and augmentation active; with sample or class weights
        ``train_loss`` is the weighted mean ``sum w_i loss_i / sum w_i`` and
        ``train_accuracy`` stays the unweighted fraction),
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

    Notes
    -----
    Save with :meth:`save`, load with :func:`fastann.load`; continue an
    interrupted ``fit(..., checkpoint=PATH)`` with :meth:`resume`.
    """

    _parameter_constraints = CONSTRAINTS

    def __init__(self, hidden_layer_sizes=(256,), activation="relu", solver="adam",
                 learning_rate=1e-3, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 batch_size=128, epochs=15, init="auto", normalization="auto",
                 l1=0.0, l2=0.0, lr_schedule="constant", lr_decay=0.5, lr_step_size=10,
                 lr_patience=3, min_lr=0.0, warmup_epochs=0, validation_fraction=0.0,
                 early_stopping=False, n_iter_no_change=5, tol=1e-4,
                 class_weight=None, dropout=0.0, augment=None, image_shape=None,
                 random_state=None, dtype="float32", n_threads=None, device="cpu", cpu_kernel="auto",
                 verbose=0):
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
        self.lr_patience = lr_patience
        self.min_lr = min_lr
        self.warmup_epochs = warmup_epochs
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.dropout = dropout
        self.augment = augment
        self.image_shape = image_shape
        self.random_state = random_state
        self.dtype = dtype
        self.n_threads = n_threads
        self.device = device
        self.cpu_kernel = cpu_kernel
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_hyperparameters(self):
        """Validate the constructor's arguments; return the hidden widths as a tuple."""
        self._validate_params()
        float_dtype(self.dtype)
        hidden = hidden_widths(self.hidden_layer_sizes)
        dropout_rates(self.dropout, len(hidden))
        check_image_shape(self.image_shape)
        return hidden

    @property
    def stop_training(self):
        """Set to True by a callback to end training after the current epoch (Keras's flag)."""
        return getattr(self, "_stop_training", False)

    @stop_training.setter
    def stop_training(self, value):
        self._stop_training = bool(value)

    def _float_dtype(self):
        return float_dtype(self.dtype)

    # ----------------------------------------------------------------- training
    def fit(self, X, y, sample_weight=None, validation_data=None, checkpoint=None,
            callbacks=None):
        """Train from scratch for ``epochs`` epochs.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            uint8 (kept as is, normalized per mini-batch) or any numeric dtype
            (converted to ``dtype``).
        y : array-like, shape (n_samples,)
            Class labels: integers or strings, at least two distinct values.
        sample_weight : float or array-like, shape (n_samples,), optional
            Non-negative weight of each sample's loss (times ``class_weight``).
            Every mini-batch ``B`` then minimizes the weighted mean
            ``sum_{i in B} w_i loss_i / sum_{i in B} w_i`` (plus the
            penalties), as scikit-learn's ``MLPClassifier`` does since 1.7:
            scaling all weights by a constant changes nothing, a weight of 0
            removes the sample's gradient, and an integer weight ``k`` acts
            like ``k`` copies of the sample in expectation over the shuffling
            (exactly with ``solver="gd"``). ``standard`` normalization uses
            weighted statistics. Validation metrics stay unweighted (held-out
            rows' weights are dropped).
        validation_data : tuple (X_val, y_val), optional
            Evaluated after every epoch (loss and accuracy in ``history_``);
            overrides ``validation_fraction``.
        checkpoint : str or path-like, optional
            Checkpoint file (:mod:`fastann.checkpoint`), written atomically
            after every epoch; continue an interrupted run with :meth:`resume`.
        callbacks : list of fastann.callbacks.Callback, optional
            Called at the start and end of training and of every epoch; one
            may stop training with ``self.model.stop_training = True``.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Invalid hyper-parameters, or invalid ``X``/``y`` (wrong shape,
            NaN/inf, mismatched lengths, a single class, continuous labels),
            invalid ``sample_weight`` (wrong length, negative, NaN/inf, all
            zero), an ``image_shape`` that does not fit ``n_features``, or
            weights, dropout or augmentation with ``device="cuda"``.
        TypeError
            Sparse input, ``X`` holding objects that are neither numbers nor
            strings, or a callback that is not a ``Callback``.
        KeyboardInterrupt
            On SIGINT (Ctrl-C, in the main thread): training stops after the
            current chunk of mini-batches, the model keeps the state of the
            last completed epoch, which is written to ``checkpoint`` if given.
        """
        hidden = self._check_hyperparameters()
        X = check_features(X, dtype=self._float_dtype())
        y = check_labels(y, X.shape[0])
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        self._check_training_options(X.shape[1], sample_weight)
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes in the data, "
                             f"but the data contains only one class: {classes[0]!r}")
        row_weight = row_weights(y, y_idx, classes, self.class_weight, sample_weight)
        user_callbacks = CallbackList(callbacks or ())
        self._reset()
        rng = np.random.default_rng(self.random_state)
        initial_rng_state = generator_state(rng)
        fingerprint = _fingerprint(X, y_idx, row_weight) if checkpoint is not None else None
        X, y_idx, val, row_weight = self._split_validation(X, y_idx, classes, validation_data,
                                                           rng, row_weight)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        with deferred_interrupt():      # the first kernel call loads or compiles
            self._initialize(X, hidden, rng, row_weight)
        run = self._new_run(X, y_idx, self.epochs, val, rng, row_weight)
        early = self._early_stopping(val)
        self._train(run, user_callbacks, early, checkpoint and (checkpoint, initial_rng_state,
                                                                fingerprint))
        return self

    @classmethod
    def resume(cls, checkpoint, X, y, validation_data=None, callbacks=None, sample_weight=None):
        """Continue the ``fit`` that wrote ``checkpoint`` for its remaining epochs.

        With the same data (and ``validation_data``), the final model is
        bit-identical to that of an uninterrupted ``fit`` (same seed, same
        ``n_threads``). Hyper-parameters come from the checkpoint, which keeps
        being updated after every epoch.

        Parameters
        ----------
        checkpoint : str or path-like
            File written by ``fit(..., checkpoint=...)``.
        X, y, validation_data, callbacks, sample_weight
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
            The file is not a readable checkpoint, or ``X``/``y`` (or the
            sample weights) differ from the data it was trained on.
        KeyboardInterrupt
            As :meth:`fit`.
        """
        state = read_checkpoint(checkpoint)
        try:
            model = cls(**params_from_json(state.hyperparameters))
            if isinstance(model.hidden_layer_sizes, list):
                model.hidden_layer_sizes = tuple(model.hidden_layer_sizes)
            hidden = model._check_hyperparameters()
            rng = restore_generator(state.initial_rng_state)
            next_rng = restore_generator(state.rng_state)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{checkpoint}: malformed checkpoint ({exc})") from exc
        X = check_features(X, dtype=model._float_dtype())
        y = check_labels(y, X.shape[0])
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        model._check_training_options(X.shape[1], sample_weight)
        classes, y_idx = np.unique(y, return_inverse=True)
        row_weight = None
        if np.array_equal(classes_array(classes), state.classes):
            row_weight = row_weights(y, y_idx, classes, model.class_weight, sample_weight)
        if (_fingerprint(X, y_idx, row_weight) != state.data
                or not np.array_equal(classes_array(classes), state.classes)):
            raise CheckpointError(f"{checkpoint}: X and y are not the data this checkpoint "
                                  f"was trained on")
        X, y_idx, val, row_weight = model._split_validation(X, y_idx, classes, validation_data,
                                                            rng, row_weight)
        sizes = np.array(state.layer_sizes, np.int64)
        params = np.array(state.parameters, dtype=model._float_dtype())
        check_fits(state, checkpoint, hidden, X.shape[1], classes.size,
                   kernels.OPTIMIZERS["sgd" if model.solver == "gd" else model.solver])
        model.classes_ = classes
        model.n_features_in_ = X.shape[1]
        model.normalization_scale_ = state.normalization_scale
        model.normalization_shift_ = state.normalization_shift
        model._set_parameters(params, sizes)
        model.n_iter_, model.t_, model.history_ = state.n_iter, state.t, list(state.history)
        model._rng = next_rng
        model._backend = model._make_backend(state.optimizer_state)
        remaining = model.epochs - model.n_iter_
        if state.finished or remaining <= 0:
            return model
        run = model._new_run(X, y_idx, remaining, val, next_rng, row_weight)
        early = model._early_stopping(val)
        if early is not None:
            early.best, early.wait = state.best_loss, state.stale
            if state.best_weights is not None:
                early.best_weights = weights.keras_order(state.best_weights, sizes)
        model._train(run, CallbackList(callbacks or ()), early,
                     (checkpoint, state.initial_rng_state, state.data))
        return model

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch over ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,)
        classes : array-like, optional
            All classes that will ever appear; needed on the first call unless
            ``y`` already contains every class. Ignored afterwards.
        sample_weight : float or array-like, shape (n_samples,), optional
            As for :meth:`fit` (a dict ``class_weight`` applies too).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            As :meth:`fit`, for labels not in ``classes_`` or a feature count
            that differs from the first call, and for
            ``class_weight="balanced"`` (class frequencies are unknown from
            one part of the data: pass the weights of
            ``sklearn.utils.class_weight.compute_class_weight`` as a dict).
        """
        hidden = self._check_hyperparameters()
        X = check_features(X, dtype=self._float_dtype())
        y = check_labels(y, X.shape[0])
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        self._check_training_options(X.shape[1], sample_weight)
        if isinstance(self.class_weight, str):
            raise ValueError("class_weight='balanced' is not supported by partial_fit; pass "
                             "class_weight=dict(zip(classes, compute_class_weight('balanced', "
                             "classes=classes, y=y_sample))) computed on enough of the data")
        if not hasattr(self, "coefs_"):
            all_classes = np.unique(np.asarray(classes) if classes is not None else y)
            if all_classes.size < 2:
                raise ValueError("MLPClassifier needs at least 2 classes, but only one class "
                                 "was given; pass classes= on the first partial_fit call")
            # Encode before initializing, so a bad first call leaves the model unfitted.
            y_idx = encode_labels(y, all_classes)
            row_weight = row_weights(y, y_idx, all_classes, self.class_weight, sample_weight)
            self._reset()
            self.classes_ = all_classes
            self.n_features_in_ = X.shape[1]
            with deferred_interrupt():
                self._initialize(X, hidden, np.random.default_rng(self.random_state),
                                 row_weight)
        else:
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                                 f"expecting {self.n_features_in_} features as input.")
            y_idx = encode_labels(y, self.classes_)
            row_weight = row_weights(y, y_idx, self.classes_, self.class_weight, sample_weight)
        self._train(self._new_run(X, y_idx, 1, None, self._rng, row_weight), CallbackList(), None,
                    None, keep_data=True)
        return self

    def _reset(self):
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("__")]:
            delattr(self, name)
        self._backend = None

    def _split_validation(self, X, y_idx, classes, validation_data, rng, row_weight=None):
        """``X, y_idx, validation, row_weight`` of the training rows (None if unweighted)."""
        fraction = self.validation_fraction or (0.1 if self.early_stopping else 0.0)
        if row_weight is None:
            return split_validation(X, y_idx, classes, validation_data, fraction, rng,
                                    self._float_dtype()) + (None,)
        return split_validation(X, y_idx, classes, validation_data, fraction, rng,
                                self._float_dtype(), sample_weight=row_weight)

    def _check_training_options(self, n_features, sample_weight):
        """The options' checks that need the data: image shape, and what CUDA supports."""
        if self.augment is not None:
            image_shape_of(self.image_shape, n_features)
        if self.device == "cuda":
            rates = dropout_rates(self.dropout, len(hidden_widths(self.hidden_layer_sizes)))
            wanted = [name for name, on in (
                ("sample_weight", sample_weight is not None),
                ("class_weight", self.class_weight is not None),
                ("dropout", any(rates)), ("augment", self.augment is not None)) if on]
            if wanted:
                raise ValueError(f"{wanted[0]} is not supported with device='cuda' yet; "
                                 f"train with device='cpu'")

    def _backend_options(self):
        """Dropout and augmentation settings for :class:`CpuBackend` (empty when off)."""
        options = {}
        rates = dropout_rates(self.dropout, len(self.coefs_) - 1)
        if any(rates):
            options["dropout"] = rates
        if self.augment is not None:
            options["augment"] = kernels.AUGMENTATIONS[self.augment]
            options["image_shape"] = image_shape_of(self.image_shape, self.n_features_in_)
        return options

    def _initialize(self, X, hidden, rng, row_weight=None):
        dtype = self._float_dtype()
        if row_weight is None:
            self.normalization_scale_, self.normalization_shift_ = normalization_map(
                X, self.normalization, dtype)
        else:
            self.normalization_scale_, self.normalization_shift_ = normalization_map(
                X, self.normalization, dtype, sample_weight=row_weight)
        d = X.shape[1]
        check_training_memory([d, *hidden, len(self.classes_)], dtype, self.solver,
                              self.batch_size, X.shape[0], self.early_stopping)
        sizes = np.array([d, *hidden, len(self.classes_)], dtype=np.int64)
        init = INITIALIZERS[default_init(self.activation) if self.init == "auto" else self.init]
        w_off, b_off = kernels.parameter_offsets(sizes)
        params = np.zeros(b_off[-1], dtype)
        for layer in range(sizes.size - 1):
            params[w_off[layer]:w_off[layer + 1]] = init(
                int(sizes[layer]), int(sizes[layer + 1]), rng, dtype).ravel()
        self._set_parameters(params, sizes)
        self.n_iter_, self.t_, self.history_ = 0, 0, []
        self._rng = rng
        self._backend = self._make_backend()

    def _set_parameters(self, params, sizes):
        """Keep the flat vector and expose it as ``coefs_``/``intercepts_`` (views)."""
        self._params = params
        self.coefs_, self.intercepts_ = weights.layer_views(params, sizes)

    def _make_backend(self, optimizer_state=None, device=None):
        solver = "sgd" if self.solver == "gd" else self.solver
        cls = backend_class(device or self.device)
        options = self._backend_options()
        if cls is CpuBackend:
            options["kernel"] = self.cpu_kernel
        return cls(
            weights.layer_sizes_of(self.coefs_), kernels.ACTIVATIONS[self.activation],
            kernels.OPTIMIZERS[solver],
            kernels.Normalization(self.normalization_scale_, self.normalization_shift_),
            self._params, optimizer_state=optimizer_state, n_threads=self.n_threads,
            **options)

    def _new_run(self, X, y_idx, n_epochs, validation, rng, sample_weight=None):
        backend = getattr(self, "_backend", None)
        if backend is None:
            backend = self._backend = self._make_backend()
        options = self._backend_options()
        if isinstance(backend, CpuBackend):  # set_params may have changed them since
            backend.configure(**options, kernel=self.cpu_kernel)
        n = X.shape[0]
        return TrainingRun(
            backend=backend, X=X, y=y_idx.astype(np.int32),
            batch_size=n if self.solver == "gd" else min(self.batch_size, n),
            hyper=kernels.hyperparameters(self.learning_rate, self.momentum, self.beta_1,
                                          self.beta_2, self.epsilon, self.l1, self.l2),
            learning_rate_at=learning_rate_schedule(self.get_params()),
            rng=rng, n_epochs=n_epochs, validation=validation, history=self.history_,
            n_iter=self.n_iter_, t=self.t_, sample_weight=sample_weight,
            noise=bool(options.get("dropout") or options.get("augment")))

    def _early_stopping(self, validation):
        if not (self.early_stopping and validation is not None):
            return None
        return EarlyStopping(min_delta=self.tol, patience=self.n_iter_no_change,
                             verbose=self.verbose)

    def _train(self, run, user_callbacks, early, checkpoint, keep_data=False):
        """Run the loop with the callbacks the hyper-parameters ask for, then sync the state."""
        built = [ProgressBar()] if self.verbose >= 2 else []
        built += [EpochLogger()] if self.verbose else []
        built += [early] if early is not None else []
        built += user_callbacks.callbacks
        if checkpoint is not None:
            built.append(ModelCheckpoint(checkpoint[0], run, checkpoint[1], checkpoint[2],
                                         early_stopping=early))
        callbacks = CallbackList(built)
        callbacks.set_model(self)
        try:
            train_epochs(self, run, callbacks)
        finally:
            self.n_iter_, self.t_ = run.n_iter, run.t
            self._params[:] = run.backend.get_parameters()
            if not keep_data:
                run.backend.release()

    # ---------------------------------------------------------------- weights
    def get_weights(self):
        """Copies of the parameters, ``[W_0, b_0, W_1, b_1, ...]`` (Keras's order).

        Returns
        -------
        list of ndarray
            ``W_l`` of shape ``(d_l, d_{l+1})`` and ``b_l`` of shape ``(d_{l+1},)``.
        """
        check_is_fitted(self)
        backend = getattr(self, "_backend", None)
        flat = backend.get_parameters() if backend is not None else self._params
        return weights.keras_order(flat, weights.layer_sizes_of(self.coefs_))

    def set_weights(self, new_weights):
        """Replace the parameters with a list in :meth:`get_weights`'s order and shapes.

        Raises
        ------
        ValueError
            The arrays' number or shapes differ from the model's.
        """
        check_is_fitted(self)
        current = self.get_weights()
        if len(new_weights) != len(current) or any(
                np.shape(a) != b.shape for a, b in zip(new_weights, current)):
            raise ValueError("set_weights needs arrays of the shapes get_weights returns: "
                             f"{[b.shape for b in current]}")
        self._params[:] = weights.from_keras_order(new_weights, self._float_dtype())
        if getattr(self, "_backend", None) is not None:
            self._backend.set_parameters(self._params)

    # ---------------------------------------------------------------- inference
    def _predictor(self):
        backend = getattr(self, "_backend", None)
        if backend is not None:
            return backend
        return CpuBackend(weights.layer_sizes_of(self.coefs_),
                          kernels.ACTIVATIONS[self.activation], kernels.SGD,
                          kernels.Normalization(self.normalization_scale_,
                                                self.normalization_shift_),
                          self._params, n_threads=self.n_threads)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably (log-softmax).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples, n_classes), float64
        """
        check_is_fitted(self)
        X = check_features(X, dtype=self._float_dtype())
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input.")
        return self._predictor().predict_log_proba(X).astype(np.float64)

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
        """Most probable class of each row: ndarray, shape (n_samples,), dtype of ``classes_``."""
        best = self.predict_log_proba(X).argmax(axis=1)  # checks fitted before classes_ is read
        return self.classes_[best]

    # ------------------------------------------------------------- persistence
    def save(self, path):
        """Write the fitted model to ``path`` (``.npz`` with a JSON header; no pickle).

        Read it back with :func:`fastann.load`; the file layout is in
        :mod:`fastann.persistence`. Raises ``NotFittedError`` before ``fit``
        and ``OSError`` when the file cannot be written.
        """
        check_is_fitted(self)
        write_model(path, SavedModel(
            hyperparameters=jsonable_params(self.get_params()),
            layer_sizes=weights.layer_sizes_of(self.coefs_),
            classes=self.classes_, coefs=self.coefs_, intercepts=self.intercepts_,
            normalization_scale=self.normalization_scale_,
            normalization_shift=self.normalization_shift_,
            n_iter=self.n_iter_, t=self.t_, history=self.history_), __version__)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_backend"] = None  # device buffers do not travel; parameters do
        return state


def load(path):
    """Read a model written by :meth:`MLPClassifier.save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    MLPClassifier
        Fitted, predicting exactly as the saved model did (on the CPU).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ModelFileError
        The file is not a fastann model, is truncated or corrupted, has an
        unsupported format version, or invalid hyper-parameters. Loading never
        executes code from the file.
    """
    saved = read_model(path)
    try:
        model = MLPClassifier(**params_from_json(saved.hyperparameters))
        if isinstance(model.hidden_layer_sizes, list):
            model.hidden_layer_sizes = tuple(model.hidden_layer_sizes)
        model._check_hyperparameters()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: model file has malformed hyper-parameters ({exc})") from exc
    dtype = model._float_dtype()
    if saved.coefs[0].dtype != dtype:
        raise ModelFileError(f"{path}: parameter arrays are not {dtype}")
    model.classes_ = saved.classes
    model.n_features_in_ = int(saved.layer_sizes[0])
    model.normalization_scale_ = saved.normalization_scale
    model.normalization_shift_ = saved.normalization_shift
    model._set_parameters(weights.flatten(saved.coefs, saved.intercepts, dtype),
                          np.array(saved.layer_sizes, np.int64))
    model.n_iter_, model.t_, model.history_ = saved.n_iter, saved.t, saved.history
    model._rng = np.random.default_rng(model.random_state)
    model._backend = None
    return model


def _fingerprint(X, y_idx, row_weight):
    """:func:`fastann.checkpoint.data_fingerprint`, plus a CRC-32 of the row weights if any."""
    fingerprint = data_fingerprint(X, y_idx)
    if row_weight is not None:
        fingerprint["crc32_sample_weight"] = zlib.crc32(
            np.ascontiguousarray(row_weight).view(np.uint8))
    return fingerprint
