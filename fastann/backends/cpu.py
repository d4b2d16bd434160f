"""Training on the CPU: the compiled epoch of :mod:`fastann.kernels` over host buffers."""
import contextlib

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from .. import kernels
from ..threads import effective_threads, thread_budget

# Rows processed at once by the compiled loops. Larger mini-batches (full-batch
# gradient descent) are split into micro-batches of this size whose gradients
# are summed, so memory does not grow with the batch size.
MAX_BUFFER_ROWS = 1024
# With one thread, inputs at most this dense take the sparse first layer.
# Measured on MNIST, 2-core AMD EPYC, one thread, epoch seconds dense -> sparse:
# 784-128-10 batch 32: 0.45 -> 0.39; 784-64-64-10 sigmoid: 0.37 -> 0.30;
# with 2 BLAS threads dense was faster (0.32 vs 0.40, 0.20 vs 0.30).
SPARSE_INPUT_MAX_DENSITY = 0.5
# kernel="auto" takes the parallel epoch for inputs at most this dense. Measured
# (2-core Xeon, 2 threads, 784-128-10 Adam batch 128, s/epoch parallel vs BLAS):
# MNIST (0.19 nonzero) 0.16 vs 0.23; Fashion-MNIST (0.49) 0.30 vs 0.22 (fastann train
# --dataset fashion-mnist --hidden 128 --epochs 5 --validation 0 --cpu-kernel X).
PARALLEL_MAX_DENSITY = 0.3
# Layers after the first with at most this many weights are "small": their
# weights stay in cache, so the parallel BLAS-free epoch
# (fastann.kernels.fused) runs them row by row (784-128-10: 1,280; 784-64-64-10:
# 4,096). Wider layers (784-1024-1024-10) go to BLAS.
SMALL_LAYER_WEIGHTS = 16384

#: The ``kernel`` choices of :class:`CpuBackend`.
KERNELS = ("auto", "blas", "parallel")


def allocate(shapes, dtype, zeros=np.zeros):
    """Arrays for ``{name: (shape, kind)}`` (see :func:`fastann.kernels.training_buffer_shapes`).

    ``kind`` "float" takes ``dtype``; ``zeros(shape, dtype)`` allocates (a
    device allocator for the CUDA backend).
    """
    return {name: zeros(shape, dtype if kind == "float" else np.dtype(kind))
            for name, (shape, kind) in shapes.items()}


class CpuBackend:
    """Host-resident training state of one model (see :mod:`fastann.backends`).

    Parameters
    ----------
    layer_sizes : ndarray, shape (n_layers + 1,), int64
    activation, optimizer : int
        Codes from ``fastann.kernels.ACTIVATIONS`` / ``OPTIMIZERS``.
    normalization : Normalization
        Per-feature ``scale`` and ``shift`` (dtype of the parameters).
    params : ndarray, shape (n_params,), float32 or float64
        Initial flat parameters; the backend trains this very array in place.
    optimizer_state : dict of ndarray, optional
        ``velocity``, ``m``, ``v`` to continue from (zeros otherwise).
    n_threads : int or None
        BLAS threads while training and predicting (None: a BLAS limit already
        in force, else all cores; see :func:`fastann.threads.thread_budget`).
    dropout : sequence of float, optional
        Drop rate of each hidden layer (:mod:`fastann.kernels.dropout`).
    augment : int, optional
        Augmentation code (:data:`fastann.kernels.AUGMENTATIONS`), applied
        while gathering each mini-batch.
    image_shape : tuple (height, width), optional
        The rows' image shape, needed with ``augment``.
    kernel : {"auto", "blas", "parallel"}, default="auto"
        ``"auto"`` and ``"parallel"`` take :func:`fastann.kernels.train_epoch_parallel`
        where it applies (:meth:`uses_parallel_epoch`: sparse input, small later
        layers, no sample weights, dropout or augmentation); everything else,
        and ``"blas"``, trains with :func:`fastann.kernels.train_epoch`.

    With sample weights (:meth:`load_data`), dropout or augmentation the epoch
    runs :func:`fastann.kernels.train_epoch_with_options`; otherwise
    :func:`fastann.kernels.train_epoch`.
    """

    def __init__(self, layer_sizes, activation, optimizer, normalization, params,
                 optimizer_state=None, n_threads=None, dropout=None, augment=None,
                 image_shape=None, kernel="auto"):
        self.layer_sizes = np.asarray(layer_sizes, np.int64)
        self.activation = int(activation)
        self.optimizer = int(optimizer)
        self.normalization = normalization
        self.params = params
        self.n_threads = n_threads
        self.configure(dropout, augment, image_shape, kernel)
        sizes = kernels.optimizer_state_sizes(self.optimizer, params.size)
        self.state = kernels.OptimizerState(**{name: np.zeros(size, params.dtype)
                                               for name, size in sizes.items()})
        if optimizer_state is not None:
            self.set_optimizer_state(optimizer_state)
        self._data = None
        self._options = None

    @property
    def network(self):
        return kernels.Network(self.params, self.layer_sizes, self.activation)

    def configure(self, dropout=None, augment=None, image_shape=None, kernel="auto"):
        """Set the dropout rates, augmentation and kernel (as in the constructor) for later
        :meth:`load_data`."""
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel = kernel
        self.dropout = None if dropout is None or not np.any(dropout) else tuple(dropout)
        self.augment = augment or kernels.NO_AUGMENT
        self.image_shape = image_shape

    # ------------------------------------------------------------ training
    def load_data(self, X, y, batch_size, sample_weight=None):
        """Keep ``X`` (uint8 or float) and ``y`` (int32 codes); allocate the epoch buffers.

        ``sample_weight`` (float64, one per row, optional) weights each row's
        loss (see :func:`fastann.kernels.train_epoch_with_options`).

        Chooses the epoch kernel (:meth:`uses_parallel_epoch`): with sparse
        input and small later layers the parallel BLAS-free epoch, with the
        dataset's nonzeros compressed once here; otherwise the BLAS epoch.
        """
        capacity = max(1, min(batch_size, MAX_BUFFER_ROWS))
        has_options = sample_weight is not None or self.dropout is not None or bool(self.augment)
        self._options = None
        max_density = PARALLEL_MAX_DENSITY if self.kernel == "auto" else SPARSE_INPUT_MAX_DENSITY
        if (not has_options and self.uses_parallel_epoch(batch_size)
                and self.input_is_sparse(X, max_density)):
            loaded = self._data
            csr = loaded[5] if loaded is not None and loaded[0] is X else \
                kernels.compressed_rows(np.ascontiguousarray(X))
            shapes = kernels.parallel_buffer_shapes(self.layer_sizes, capacity, True)
            buffers = kernels.ParallelBuffers(**allocate(shapes, self.params.dtype))
            self._data = (X, y, int(batch_size), buffers, True, csr)
            return
        sparse = self.wants_sparse_input(X)
        shapes = kernels.training_buffer_shapes(self.layer_sizes, capacity, batch_size, sparse)
        buffers = kernels.TrainingBuffers(**allocate(shapes, self.params.dtype))
        options = None
        if has_options:
            options = kernels.epoch_options(self.layer_sizes, capacity, self.params.dtype,
                                            sample_weight, self.dropout, self.augment,
                                            self.image_shape)
        self._data = (X, y, int(batch_size), buffers, sparse, None)
        self._options = options

    def uses_parallel_epoch(self, batch_size):
        """Whether sparse input trains with :func:`fastann.kernels.train_epoch_parallel`.

        Unless ``kernel="blas"``, when a batch fits the buffers (no
        micro-batches) and every layer after the first has at most
        ``SMALL_LAYER_WEIGHTS`` weights.
        """
        sizes = [int(s) for s in self.layer_sizes]
        return (self.kernel != "blas" and batch_size <= MAX_BUFFER_ROWS
                and all(a * b <= SMALL_LAYER_WEIGHTS for a, b in zip(sizes[1:-1], sizes[2:])))

    def input_is_sparse(self, X, max_density=SPARSE_INPUT_MAX_DENSITY):
        """Whether the first layer can run on nonzero inputs only (:mod:`fastann.kernels.sparse`).

        When normalization keeps zeros at zero and at most ``max_density`` of
        the inputs (estimated on up to 2,000 rows) are nonzero; MNIST's density
        is 0.19, Fashion-MNIST's 0.49.
        """
        if np.any(self.normalization.shift != 0):
            return False
        sample = X[:2000]
        return np.count_nonzero(sample) <= max_density * sample.size

    def wants_sparse_input(self, X):
        """Whether the BLAS epoch should take the sparse first layer: sparse input and one thread.

        With more threads BLAS beat the single-threaded sparse kernels
        (``benchmarks/dense_vs_sparse.py``); the parallel epoch
        (:meth:`uses_parallel_epoch`) takes sparse input at any thread count.
        """
        return effective_threads(self.n_threads) == 1 and self.input_is_sparse(X)

    @contextlib.contextmanager
    def running(self):
        """Hold the thread budget for a series of :meth:`train` calls.

        The BLAS epoch runs its matrix products on that many BLAS threads; the
        parallel epoch on that many Numba threads, while BLAS keeps one (one
        pool works at a time).
        """
        with thread_budget(self.n_threads) as n_threads:
            if self._data is not None and self._data[5] is not None:
                previous = numba.get_num_threads()
                numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
                try:
                    with threadpool_limits(limits=1, user_api="blas"):
                        yield self
                finally:
                    numba.set_num_threads(previous)
            else:
                yield self

    def train(self, order, hyper, step, noise=None):
        """Mini-batches over ``order``; returns ``(loss_sum, n_correct, step)``.

        ``noise``: ``(seed, offset)``, the epoch's seed for dropout masks and
        augmentation and the position of ``order[0]`` in the epoch
        (:mod:`fastann.kernels.streams`); ``loss_sum`` is weighted by the
        sample weights, if any.
        """
        X, y, batch_size, buffers, sparse, csr = self._data
        if csr is not None:
            return kernels.train_epoch_parallel(X, y, csr, order, self.normalization,
                                                self.network, self.optimizer, hyper, step,
                                                batch_size, self.state, buffers, sparse)
        if self._options is None:
            return kernels.train_epoch(X, y, order, self.normalization, self.network,
                                       self.optimizer, hyper, step, batch_size, self.state,
                                       buffers, sparse)
        options = self._options
        if noise is not None:
            options = options._replace(seed=int(noise[0]), offset=int(noise[1]))
        return kernels.train_epoch_with_options(X, y, order, self.normalization, self.network,
                                                self.optimizer, hyper, step, batch_size,
                                                self.state, buffers, sparse, options)

    def release(self):
        self._data = None
        self._options = None

    # ----------------------------------------------------------- inference
    def predict_log_proba(self, X):
        """Log-probabilities, shape ``(n_samples, n_classes)``, dtype of the parameters."""
        sizes, dtype = self.layer_sizes, self.params.dtype
        capacity = max(1, min(X.shape[0], MAX_BUFFER_ROWS))
        buffers = kernels.PredictionBuffers(
            np.zeros((capacity, sizes[0]), dtype),
            np.zeros(kernels.activation_buffer_length(sizes, capacity), dtype))
        out = np.empty((X.shape[0], sizes[-1]), dtype)
        with thread_budget(self.n_threads):
            kernels.predict_log_proba(X, self.normalization, self.network, buffers, out)
        return out

    def evaluate(self, X, y):
        """Mean log-loss and accuracy on ``(X, y)``: ``(float, float)``.

        ``y`` holds class codes (int); the loss is ``-mean(log p(y))`` and
        the accuracy the share of rows whose first arg-max is ``y``.
        """
        log_proba = self.predict_log_proba(X)
        return (float(-log_proba[np.arange(y.size), y].mean()),
                float((log_proba.argmax(axis=1) == y).mean()))

    def outputs_finite(self, X):
        """Whether every log-probability on ``X`` is finite."""
        return bool(np.all(np.isfinite(self.predict_log_proba(X))))

    # ------------------------------------------------------- state access
    def get_parameters(self):
        return self.params.copy()

    def set_parameters(self, params):
        self.params[:] = params

    def get_optimizer_state(self):
        return {name: array.copy() for name, array in self.state._asdict().items()}

    def set_optimizer_state(self, state):
        for name, array in self.state._asdict().items():
            if array.size:
                array[:] = state[name]

    def snapshot(self):
        return self.params.copy(), self.get_optimizer_state()

    def restore(self, snapshot):
        params, state = snapshot
        self.set_parameters(params)
        self.set_optimizer_state(state)

    def parameters_finite(self):
        return bool(np.all(np.isfinite(self.params)))
