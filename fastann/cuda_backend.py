"""Train and predict on an NVIDIA GPU through the ``numba.cuda`` kernels of :mod:`kernels.cuda`.

Host NumPy arrays in, host NumPy results out: the functions here take exactly
the arrays :class:`fastann.MLPClassifier` builds for its CPU path (flat
``params``, ``layer_sizes``, activation/optimizer codes, the ``hyper``
vector, ``state1``/``state2``), copy them to the device once, run whole
epochs there and copy results back.

* :func:`cuda_available` / :func:`require_cuda` -- can this process use a GPU,
  and if not, why (message says what to install or what is missing).
* :class:`CudaTrainer` -- device-resident state for one ``fit``: the dataset
  (uint8 stays uint8), labels, parameters, gradients, optimizer state and all
  buffers are allocated once; :meth:`CudaTrainer.train_epoch` runs one epoch
  (one host-to-device copy of the shuffled order; the loss/correct counters
  and, by default, the parameters and optimizer state copied back, so the
  caller's host arrays are current after every epoch).
* :func:`train_epochs_cuda` -- several epochs in one call (a thin loop over a
  :class:`CudaTrainer`).
* :func:`predict_log_proba_cuda` -- batched inference.

Nothing here imports ``numba.cuda`` at import time: importing this module is
free, and the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) still works because
``numba.cuda`` is first imported when a function needs it.
"""
import importlib.util
import os

import numpy as np

INSTALL_HINT = 'pip install "fastann[cuda]"'
NVVM_HINT = ('the CUDA compiler (NVVM) was not found; install a CUDA toolkit or '
             'pip install "numba-cuda[cu12]" (driver >= 525) / "numba-cuda[cu13]" (driver >= 580)')
# Rows processed at once on the device when the caller does not say.
DEFAULT_CAPACITY = 4096


def _driver_present():
    """Cheap check for an NVIDIA driver, so that no-GPU machines skip importing numba.cuda."""
    if any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/dxg", "/proc/driver/nvidia")):
        return True
    import ctypes.util
    return ctypes.util.find_library("cuda") is not None


def cuda_available():
    """Whether kernels can run on a CUDA device in this process, and why (not).

    Returns
    -------
    ok : bool
    reason : str
        The device's name and compute capability when ``ok``, (or a note that
        this is the Numba CUDA simulator), otherwise what is missing: the
        ``numba-cuda`` package, the NVIDIA driver / GPU, or the NVVM compiler.
    """
    if importlib.util.find_spec("numba_cuda") is None:
        return False, f"numba-cuda is not installed: {INSTALL_HINT}"
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
    if not simulator and not _driver_present():
        return False, "no NVIDIA driver or GPU found (numba-cuda is installed)"
    try:
        from numba import cuda
    except Exception as exc:  # pragma: no cover - broken installs
        return False, f"numba.cuda failed to import ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
    from kernels.cuda._launch import SIMULATOR
    if SIMULATOR:
        return True, "Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1): correct but very slow"
    try:
        from numba.cuda.cudadrv import driver
        if not driver.driver.is_available:
            return False, f"no usable NVIDIA driver or GPU: {cuda.cuda_error()}"
        if not cuda.is_available():
            return False, NVVM_HINT
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        major, minor = device.compute_capability
        return True, f"{name} (compute capability {major}.{minor})"
    except Exception as exc:
        return False, f"CUDA initialization failed: {type(exc).__name__}: {exc}"


def require_cuda():
    """Raise :class:`RuntimeError` saying what is missing unless a CUDA device is usable.

    Returns the description of the device (see :func:`cuda_available`).
    """
    ok, reason = cuda_available()
    if not ok:
        raise RuntimeError(f"device='cuda' is not available: {reason}")
    return reason


def _cuda():
    require_cuda()
    from numba import cuda
    return cuda


class CudaTrainer:
    """Device-resident training state for one ``fit``.

    Parameters
    ----------
    X : ndarray, shape (n_samples, d_0), uint8 or float
        Training features, uploaded once as they are (uint8 stays uint8).
    y : ndarray, shape (n_samples,), int
        Encoded labels in ``[0, d_L)``.
    scale, shift : ndarray, shape (d_0,), dtype of ``params``
        Normalization map (as for :func:`kernels.train_epoch`).
    params : ndarray, shape (n_params,), float32 or float64
        Flat parameters (layout of :mod:`kernels.network`), uploaded once;
        this host array is refreshed after every epoch (unless ``sync=False``).
    layer_sizes : ndarray, shape (n_layers + 1,), int64
    activation, optimizer : int
        Codes from ``kernels.ACTIVATIONS`` / ``kernels.OPTIMIZERS``.
    batch_size : int
    state1, state2 : ndarray, shape (n_params,)
        Optimizer state, uploaded once; these host arrays are refreshed after
        every epoch too (unless ``sync=False``).
    capacity : int, optional
        Rows the device buffers hold (default ``min(batch_size,
        DEFAULT_CAPACITY)``); larger batches run as micro-batches.
    tile, threads, rows_per_block : int, optional
        Launch-shape overrides for :mod:`kernels.cuda`.
    """

    def __init__(self, X, y, scale, shift, params, layer_sizes, activation, optimizer,
                 batch_size, state1, state2, capacity=None, tile=None, threads=None,
                 rows_per_block=None):
        cuda = _cuda()
        import kernels
        self._cuda = cuda
        self.params, self.state1, self.state2 = params, state1, state2
        dtype = params.dtype
        self.layer_sizes = np.asarray(layer_sizes, np.int64)
        self.activation = int(activation)
        self.optimizer = int(optimizer)
        self.batch_size = int(batch_size)
        self.launch = dict(tile=tile, threads=threads, rows_per_block=rows_per_block)
        n = X.shape[0]
        capacity = int(capacity or min(self.batch_size, DEFAULT_CAPACITY))
        capacity = max(1, min(capacity, self.batch_size, n))
        sizes = self.layer_sizes
        widest_hidden = int(sizes[1:-1].max()) if sizes.size > 2 else 1
        to = cuda.to_device
        self.d_X = to(np.ascontiguousarray(X))
        self.d_y = to(np.ascontiguousarray(y, np.int32))
        self.d_scale = to(np.ascontiguousarray(scale, dtype))
        self.d_shift = to(np.ascontiguousarray(shift, dtype))
        self.d_params = to(params)
        self.d_state1 = to(np.ascontiguousarray(state1, dtype))
        self.d_state2 = to(np.ascontiguousarray(state2, dtype))
        self.d_grads = cuda.device_array(params.size, dtype)
        self.d_inputs = cuda.device_array((capacity, int(sizes[0])), dtype)
        self.d_labels = cuda.device_array(capacity, np.int32)
        self.d_acts = cuda.device_array(int(kernels.activation_offsets(sizes, capacity)[-1]),
                                        dtype)
        self.d_scratch = cuda.device_array(2 * capacity * widest_hidden, dtype)
        self.d_order = cuda.device_array(n, np.int64)
        self.d_counters = cuda.device_array(2, np.float64)
        self.capacity = capacity
        self._predict_cache = None

    def train_epoch(self, order, hyper, step, sync=True):
        """One epoch over ``order``; mirrors :func:`kernels.train_epoch`'s return value.

        Parameters
        ----------
        order : ndarray, shape (n_used,), int64
            Shuffled row indices (host); uploaded in one copy.
        hyper : ndarray, shape (7,), float64
            Learning rate (this epoch's), momentum, beta1, beta2, epsilon, l1, l2.
        step : int
            Updates made before this epoch.
        sync : bool
            Copy the parameters and optimizer state back into the host arrays
            given to the constructor afterwards (about ``3 * n_params`` values:
            1.2 MB for 784-128-10 in float32). Without it only the two
            counters come back; call :meth:`download` when needed.

        Returns
        -------
        loss_sum : float
        n_correct : int
        step : int
        """
        from kernels.cuda import gpu_train_epoch
        order = np.ascontiguousarray(order, np.int64)
        d_order = self.d_order[:order.size]
        d_order.copy_to_device(order)
        result = gpu_train_epoch(
            self.d_X, self.d_y, d_order, self.d_scale, self.d_shift, self.d_params,
            self.layer_sizes, self.activation, self.optimizer, np.asarray(hyper, np.float64),
            int(step), self.batch_size, self.d_grads, None, self.d_state1, self.d_state2,
            self.d_inputs, self.d_labels, self.d_acts, self.d_scratch,
            counters=self.d_counters, **self.launch)
        if sync:
            self.download()
        return result

    def download(self):
        """Copy parameters and optimizer state into the constructor's host arrays."""
        self.d_params.copy_to_host(self.params)
        self.d_state1.copy_to_host(self.state1)
        self.d_state2.copy_to_host(self.state2)

    def upload(self):
        """Copy the constructor's host arrays (parameters, optimizer state) to the device.

        Needed only to continue training after the caller changed them (e.g.
        rolled a diverged epoch back and wants to go on).
        """
        self.d_params.copy_to_device(self.params)
        self.d_state1.copy_to_device(self.state1)
        self.d_state2.copy_to_device(self.state2)

    def predict_log_proba(self, X, scale=None, shift=None):
        """Log-probabilities with the current *device* parameters (host ndarray out).

        The last ``X`` is kept on the device, so evaluating the same validation
        set after every epoch uploads it only once.
        """
        cuda = self._cuda
        cache = self._predict_cache
        if cache is None or cache[0] is not X:
            cache = self._predict_cache = (X, cuda.to_device(np.ascontiguousarray(X)))
        d_X = cache[1]
        d_scale = self.d_scale if scale is None else cuda.to_device(scale)
        d_shift = self.d_shift if shift is None else cuda.to_device(shift)
        return _predict(cuda, d_X, d_scale, d_shift, self.d_params, self.layer_sizes,
                        self.activation, self.params.dtype, self.capacity, self.launch)


def _predict(cuda, d_X, d_scale, d_shift, d_params, sizes, activation, dtype, capacity, launch):
    import kernels
    from kernels.cuda import gpu_predict_log_proba
    n = d_X.shape[0]
    out = np.empty((n, int(sizes[-1])), dtype)
    if n == 0:
        return out
    capacity = max(1, min(n, capacity))
    d_inputs = cuda.device_array((capacity, int(sizes[0])), dtype)
    d_acts = cuda.device_array(int(kernels.activation_offsets(sizes, capacity)[-1]), dtype)
    d_out = cuda.device_array(out.shape, dtype)
    gpu_predict_log_proba(d_X, d_scale, d_shift, d_params, sizes, activation, d_inputs, d_acts,
                          d_out, **launch)
    return d_out.copy_to_host(out)


def train_epochs_cuda(X, y, orders, scale, shift, params, layer_sizes, activation, optimizer,
                      hyper, step, batch_size, state1, state2, learning_rates=None,
                      capacity=None, on_epoch=None, **launch):
    """Train several epochs on the GPU; host arrays in, updated in place.

    Parameters
    ----------
    X, y, scale, shift, params, layer_sizes, activation, optimizer, batch_size, state1, state2
        As for :class:`CudaTrainer` (the same arrays the CPU path uses).
    orders : iterable of ndarray (int64)
        One shuffled order per epoch (a generator works: each is drawn only
        when its epoch starts).
    hyper : ndarray, shape (7,), float64
    step : int
        Updates made before the first epoch.
    learning_rates : sequence of float, optional
        ``hyper[LEARNING_RATE]`` for each epoch (a schedule); default: keep ``hyper``'s.
    capacity : int, optional
    on_epoch : callable ``(epoch_index, loss_sum, n_correct, step) -> bool``, optional
        Called after each epoch, with ``params``, ``state1`` and ``state2``
        already refreshed on the host; returning True stops training.

    Returns
    -------
    history : list of (loss_sum, n_correct)
    step : int
        ``params``, ``state1`` and ``state2`` hold the final values.
    """
    from kernels.epoch import LEARNING_RATE
    trainer = CudaTrainer(X, y, scale, shift, params, layer_sizes, activation, optimizer,
                          batch_size, state1, state2, capacity=capacity, **launch)
    hyper = np.array(hyper, np.float64)
    history = []
    for epoch, order in enumerate(orders):
        if learning_rates is not None:
            hyper[LEARNING_RATE] = learning_rates[epoch]
        loss_sum, n_correct, step = trainer.train_epoch(order, hyper, step)
        history.append((loss_sum, n_correct))
        if on_epoch is not None and on_epoch(epoch, loss_sum, n_correct, step):
            break
    return history, step


def predict_log_proba_cuda(X, scale, shift, params, layer_sizes, activation, capacity=None,
                           **launch):
    """Log-probabilities of every class on the GPU (host arrays in, host ndarray out).

    Same arguments as :func:`kernels.predict_log_proba` without the buffers:
    ``X`` (uint8 or float), ``scale``/``shift`` and ``params`` (host, dtype of
    ``params``), ``layer_sizes`` (int64), ``activation`` (code). Returns an
    array of shape ``(n_samples, layer_sizes[-1])`` in ``params.dtype``.
    """
    cuda = _cuda()
    dtype = params.dtype
    to = cuda.to_device
    return _predict(cuda, to(np.ascontiguousarray(X)), to(np.ascontiguousarray(scale, dtype)),
                    to(np.ascontiguousarray(shift, dtype)), to(params),
                    np.asarray(layer_sizes, np.int64), int(activation), dtype,
                    int(capacity or DEFAULT_CAPACITY), launch)
