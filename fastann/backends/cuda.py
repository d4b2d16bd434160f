"""Training on an NVIDIA GPU: the ``numba.cuda`` twins in :mod:`fastann.kernels.cuda`.

The dataset (uint8 stays uint8), labels, parameters, optimizer state and all
work buffers are allocated on the device once; parameters stay there between
epochs and across ``partial_fit`` calls and come back to the host only when
asked (:meth:`CudaBackend.get_parameters`, which the model calls at the end of
each ``fit``/``partial_fit`` and when saving or checkpointing). Validation
(:meth:`CudaBackend.evaluate`: three numbers come back, not the
log-probabilities), the divergence check (:meth:`~CudaBackend.parameters_finite`,
a reduction, and :meth:`~CudaBackend.outputs_finite` on training rows already
on the device) and prediction run on the device with the parameters already
there.

Nothing here imports ``numba.cuda`` at import time of :mod:`fastann`: this
module is imported only for ``device="cuda"``, and the CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``) still works because ``numba.cuda`` is first
imported when a backend is made.
"""
import importlib.util
import os

import numpy as np

from .. import kernels
from .cpu import allocate

#: What to install for real GPUs: numba-cuda with the NVRTC and NVVM compiler wheels
#: of one CUDA major version (numba-cuda's own extras; see docs/cuda.md).
INSTALL_HINT = ('pip install "fastann[cuda13]" (NVIDIA driver >= 580) or '
                '"fastann[cuda12]" (driver >= 525)')
#: The CUDA compiler libraries numba-cuda loads before a first launch: NVVM
#: compiles the kernels' LLVM IR to PTX, NVRTC is asked for the supported
#: architectures (numba-cuda 0.30 loads it even for pure-Python kernels).
#: Values: what the library is, and the wheel that brings it for CUDA 13 / 12.
COMPILER_LIBRARIES = {
    "nvrtc": ("NVRTC (libnvrtc)", "nvidia-cuda-nvrtc", "nvidia-cuda-nvrtc-cu12"),
    "nvvm": ("NVVM (libnvvm)", "nvidia-nvvm", "nvidia-cuda-nvcc-cu12"),
}
NVVM_HINT = ('the CUDA compiler (NVVM) was not found; install a CUDA toolkit or '
             'pip install "numba-cuda[cu12]" (driver >= 525) / "numba-cuda[cu13]" (driver >= 580)')
#: Environment variable that turns CUDA graphs on when ``graphs`` is not given.
GRAPHS_ENV = "FASTANN_CUDA_GRAPHS"
#: Environment variable that fuses the optimizer into the backward pass when ``fuse_update``
#: is not given.
FUSE_UPDATE_ENV = "FASTANN_CUDA_FUSE_UPDATE"
#: Environment variable that picks the GEMM of wide hidden layers when ``gemm`` is not given.
GEMM_ENV = "FASTANN_CUDA_GEMM"
#: Environment variable that sets split-K (an int, or ``auto``) when ``split_k`` is not given.
SPLIT_K_ENV = "FASTANN_CUDA_SPLIT_K"
#: Environment variable that sets the dense forward kernels' slab depth when ``depth`` is not given.
DEPTH_ENV = "FASTANN_CUDA_DEPTH"
# Rows processed at once on the device.
DEFAULT_CAPACITY = 4096
# Inference inputs kept on the device, most recently used first: the training
# loop alternates between the validation set and a divergence-check sample of
# the training rows after every epoch, so one entry would evict the other.
EVAL_CACHE_SIZE = 2


def _driver_present():
    """Cheap check for an NVIDIA driver, so that no-GPU machines skip importing numba.cuda."""
    if any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/dxg", "/proc/driver/nvidia")):
        return True
    import ctypes.util
    return ctypes.util.find_library("cuda") is not None


def _locate_library(name):
    """Where the NVIDIA library ``name`` ("nvrtc", "nvvm") is, as numba-cuda will find it.

    Asks ``cuda.pathfinder`` (a numba-cuda dependency, and what
    ``cuda-bindings`` and numba-cuda load these libraries through): NVIDIA
    wheels in site-packages first, then conda, ``CUDA_HOME``/``CUDA_PATH`` and
    the system loader. The library is loaded (dlopen) as a side effect, which
    numba-cuda would do anyway before its first compilation.

    Returns
    -------
    str or None
        The library's absolute path (or its name when the system loader found
        it without a path), None when it cannot be found or loaded.
    """
    from cuda import pathfinder
    try:
        return pathfinder.load_nvidia_dynamic_lib(name).abs_path or name
    except pathfinder.DynamicLibNotFoundError:
        return None


def missing_compiler_libraries():
    """The CUDA compiler libraries of :data:`COMPILER_LIBRARIES` that cannot be loaded.

    Returns
    -------
    list of str
        Keys of :data:`COMPILER_LIBRARIES` ("nvrtc", "nvvm"), in that order;
        empty when both are found.
    """
    return [name for name in COMPILER_LIBRARIES if _locate_library(name) is None]


def compiler_hint(missing):
    """What :func:`cuda_available` says when compiler libraries are ``missing``.

    Parameters
    ----------
    missing : list of str
        Keys of :data:`COMPILER_LIBRARIES`, not empty.

    Returns
    -------
    str
        Names the missing libraries and how to install them: the ``fastann``
        extras, the bare NVIDIA wheels for CUDA 13 and 12, or a CUDA toolkit.
    """
    what = " and ".join(COMPILER_LIBRARIES[name][0] for name in missing)
    cu13 = " ".join(COMPILER_LIBRARIES[name][1] for name in missing)
    cu12 = " ".join(COMPILER_LIBRARIES[name][2] for name in missing)
    verb = "was" if len(missing) == 1 else "were"
    return (f"the CUDA compiler {what} {verb} not found (numba-cuda needs NVRTC and NVVM to "
            f"compile kernels): {INSTALL_HINT}; or only the libraries: pip install {cu13} "
            f"(CUDA 13) / pip install {cu12} (CUDA 12); or install a CUDA toolkit and set "
            f"CUDA_HOME")


def cuda_available():
    """Whether kernels can run on a CUDA device in this process, and why (not).

    Returns
    -------
    ok : bool
    reason : str
        The device's name and compute capability when ``ok`` (or a note that
        this is the Numba CUDA simulator), otherwise what is missing: the
        ``numba-cuda`` package, the NVIDIA driver / GPU, or the compiler
        libraries NVRTC and NVVM (:func:`compiler_hint`), each with the
        command that installs it. Checked in that order; nothing here
        compiles or launches a kernel.
    """
    if importlib.util.find_spec("numba_cuda") is None:
        return False, f"numba-cuda is not installed: {INSTALL_HINT}"
    simulator = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
    if not simulator and not _driver_present():
        return False, "no NVIDIA driver or GPU found (numba-cuda is installed)"
    if not simulator:
        missing = missing_compiler_libraries()
        if missing:
            return False, compiler_hint(missing)
    try:
        from numba import cuda
    except Exception as exc:  # pragma: no cover - broken installs
        return False, f"numba.cuda failed to import ({type(exc).__name__}: {exc}); {INSTALL_HINT}"
    from ..kernels.cuda._launch import SIMULATOR
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


def _env_flag(name):
    """Whether the environment variable ``name`` turns an option on (set, and not ``0``)."""
    return os.environ.get(name, "0") not in ("", "0")


def _int_option(value, env, check, default, auto=False):
    """``check(value)``, else ``check`` of the integer in the environment variable ``env``
    (or ``"auto"`` where allowed), else ``default``; a bad value in ``env`` raises a
    ValueError that names the variable."""
    if value is not None:
        return check(value)
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    try:
        return check(text if auto and text == "auto" else int(text))
    except ValueError:
        what = 'a positive int or "auto"' if auto else "a positive int"
        raise ValueError(f"{env} must be {what}, got {text!r}") from None


def _split_k(split_k):
    """The ``split_k`` argument, else :data:`SPLIT_K_ENV`'s value, else 1; checked."""
    from ..kernels.cuda.dense import check_split_k
    return _int_option(split_k, SPLIT_K_ENV, check_split_k, 1, auto=True)


def _depth(depth):
    """The ``depth`` argument, else :data:`DEPTH_ENV`'s value, else None (the kernels'
    default); checked."""
    from ..kernels.cuda.dense import check_depth
    return _int_option(depth, DEPTH_ENV, check_depth, None)


class CudaBackend:
    """Device-resident training state of one model (see :mod:`fastann.backends`).

    Parameters are those of :class:`fastann.backends.cpu.CpuBackend`; ``params``,
    ``normalization`` and ``optimizer_state`` are host arrays uploaded once.
    ``n_threads`` is accepted for the common interface and does not apply.

    Other Parameters
    ----------------
    capacity : int, optional
        Rows the device buffers hold (default ``DEFAULT_CAPACITY``, capped at
        the batch size); larger batches run as micro-batches.
    tile, per_thread, threads, rows_per_block, lanes : int, optional
        Launch-shape overrides for :mod:`fastann.kernels.cuda`.
    depth : int, optional
        Slab depth of the dense forward kernels, in tile edges
        (:func:`fastann.kernels.cuda.dense.dense_kernels`). Default: the
        environment variable ``FASTANN_CUDA_DEPTH``, else 1, until measured on
        hardware.
    graphs : bool, optional
        Run each ``train`` call's micro-steps as one CUDA graph, captured once
        per number of micro-steps and replayed every epoch
        (:class:`fastann.kernels.cuda.TrainingProgram`). Default: the
        environment variable ``FASTANN_CUDA_GRAPHS`` (``1`` turns it on, for
        models and ``fastann train`` too), else off, until it has passed the
        hardware tests; see docs/cuda.md.
    prepared : bool, default False
        Eager launches with their (constant) arguments converted once, without
        numba-cuda's dispatcher (:class:`fastann.kernels.cuda.TrainingProgram`).
        Off until measured on hardware.
    fuse_update : bool, optional
        Apply the optimizer inside the first layer's backward launch instead
        of a launch of its own (one launch fewer per step; same results,
        tested under the simulator). Default: the environment variable
        ``FASTANN_CUDA_FUSE_UPDATE`` (``1`` turns it on), else off, until it
        has passed the hardware tests.
    gemm : {"tiles", "cublas"}, optional
        ``"cublas"`` runs the products of hidden layers at least 64 wide on
        both sides as cuBLAS GEMMs through CuPy
        (:mod:`fastann.kernels.cuda.blas`; ``pip install "fastann[cublas13]"``),
        on the same device arrays. Default: the environment variable
        ``FASTANN_CUDA_GEMM``, else ``"tiles"`` (numba-cuda kernels only),
        until it has passed the hardware tests. Combines with ``graphs``
        (the GEMMs are captured with the kernels).
    split_k : int or "auto", optional
        Split the reduction of forward launches that have fewer blocks than
        the GPU has multiprocessors over this many blocks, summed in a fixed
        order (:class:`fastann.kernels.cuda.TrainingProgram`). Default: the
        environment variable ``FASTANN_CUDA_SPLIT_K``, else 1 (off), until it
        has passed the hardware tests.

    Raises
    ------
    RuntimeError
        No usable CUDA device (the message says what is missing).
    ValueError
        An unknown ``gemm``, ``split_k`` or ``depth`` (from the argument or the
        environment).
    """

    def __init__(self, layer_sizes, activation, optimizer, normalization, params,
                 optimizer_state=None, n_threads=None, capacity=None, tile=None, threads=None,
                 rows_per_block=None, lanes=None, per_thread=None, graphs=None,
                 prepared=False, fuse_update=None, gemm=None, split_k=None, depth=None):
        require_cuda()
        from numba import cuda
        self._cuda = cuda
        self.layer_sizes = np.asarray(layer_sizes, np.int64)
        self.activation = int(activation)
        self.optimizer = int(optimizer)
        self.dtype = params.dtype
        self.capacity = int(capacity or DEFAULT_CAPACITY)
        self.launch = dict(tile=tile, per_thread=per_thread, threads=threads,
                           rows_per_block=rows_per_block, lanes=lanes, depth=_depth(depth))
        self.graphs = bool(_env_flag(GRAPHS_ENV) if graphs is None else graphs)
        self.prepared = bool(prepared)
        self.fuse_update = bool(_env_flag(FUSE_UPDATE_ENV) if fuse_update is None
                                else fuse_update)
        self.gemm = gemm or os.environ.get(GEMM_ENV, "") or "tiles"
        from ..kernels.cuda.blas import GEMMS
        if self.gemm not in GEMMS:
            raise ValueError(f'gemm must be "tiles" or "cublas", got {self.gemm!r} (from '
                             f'{"the argument" if gemm else GEMM_ENV})')
        self.split_k = _split_k(split_k)
        to = cuda.to_device
        self.normalization = kernels.Normalization(
            to(np.ascontiguousarray(normalization.scale, self.dtype)),
            to(np.ascontiguousarray(normalization.shift, self.dtype)))
        self.params = to(np.ascontiguousarray(params))
        sizes = kernels.optimizer_state_sizes(self.optimizer, params.size)
        self.state = kernels.OptimizerState(**{name: cuda.device_array(max(size, 1), self.dtype)
                                               for name, size in sizes.items()})
        self.set_optimizer_state(optimizer_state or {
            name: np.zeros(size, self.dtype) for name, size in sizes.items()})
        self._data = None
        self._program = None
        self._eval_cache = []  # [(host X, device X, host y or None, device y)], most recent first
        self._prediction_buffers = {}  # capacity -> PredictionBuffers
        self._flag = cuda.device_array(1, np.int32)
        self._zero_labels = None  # labels for outputs_finite (not read for its answer)
        self._eval_counters = cuda.device_array(3, np.float64)

    @property
    def network(self):
        return kernels.Network(self.params, self.layer_sizes, self.activation)

    # ------------------------------------------------------------ training
    def load_data(self, X, y, batch_size):
        """Upload ``X`` and ``y``, each skipped when it is already loaded.

        ``X`` is reused when it is the very array loaded before; ``y`` also
        when its values are equal (the model encodes the labels anew on every
        ``partial_fit`` call, a cheap host comparison against an upload of ``X``).
        With the same batch size too, nothing changes: the work buffers and the
        :class:`~fastann.kernels.cuda.TrainingProgram` built on them are kept.
        """
        from ..kernels.cuda import GpuTrainingBuffers, PLAN_FIELDS
        cuda = self._cuda
        loaded = self._data
        same_X = loaded is not None and loaded[0] is X
        if same_X:
            d_X = loaded[2]
        else:
            d_X = cuda.to_device(np.ascontiguousarray(X))
        if same_X and (loaded[1] is y or np.array_equal(loaded[1], y)):
            if loaded[4] == int(batch_size):
                # partial_fit again: keep the buffers, and so the launches (and any CUDA
                # graph) built for them.
                return
            y, d_y = loaded[1], loaded[3]
        else:
            d_y = cuda.to_device(np.ascontiguousarray(y, np.int32))
        capacity = max(1, min(self.capacity, batch_size, X.shape[0]))
        shapes = kernels.training_buffer_shapes(self.layer_sizes, capacity, batch_size, False)
        fields = {name: shapes[name] for name in GpuTrainingBuffers._fields if name in shapes}
        fields["counters"] = ((2,), "float64")
        arrays = allocate(fields, self.dtype, zeros=lambda shape, dtype: cuda.device_array(
            shape, dtype))
        buffers = GpuTrainingBuffers(**arrays)
        d_order = cuda.device_array(X.shape[0], np.int64)
        # One plan row per micro-batch of a whole epoch; kept so that a graph stays valid.
        n_micro = max(1, kernels.micro_batches(X.shape[0], int(batch_size), capacity).shape[0])
        d_plan = cuda.device_array((n_micro, PLAN_FIELDS), np.float64)
        self._data = (X, y, d_X, d_y, int(batch_size), buffers, d_order, d_plan)
        self._program = None

    def running(self):
        import contextlib
        return contextlib.nullcontext(self)

    def train(self, order, hyper, step):
        """Mini-batches over ``order`` (host int64, uploaded in one copy).

        The launches are built once per loaded data set and set of
        hyper-parameters (a :class:`~fastann.kernels.cuda.TrainingProgram`);
        each call uploads the order and the plan, runs, and reads two counters.
        """
        from ..kernels.cuda import TrainingProgram
        _, _, d_X, d_y, batch_size, buffers, d_order, d_plan = self._data
        order = np.ascontiguousarray(order, np.int64)
        if order.size:
            d_order[:order.size].copy_to_device(order)
        fixed = hyper._replace(learning_rate=0.0)
        if self._program is None or self._program.hyper._replace(learning_rate=0.0) != fixed:
            self._program = TrainingProgram(
                d_X, d_y, d_order, self.normalization, self.network, self.optimizer, hyper,
                self.state, buffers, plan=d_plan, graphs=self.graphs, prepared=self.prepared,
                fuse_update=self.fuse_update, gemm=self.gemm, split_k=self.split_k,
                **self.launch)
        return self._program.run(order.size, batch_size, hyper, step)

    def release(self):
        self._data = None
        self._program = None
        self._eval_cache = []
        self._prediction_buffers = {}

    # ----------------------------------------------------------- inference
    def _device_rows(self, X):
        """``X`` on the device: the loaded training rows (or a leading slice of them), or an
        upload kept among the last ``EVAL_CACHE_SIZE`` arrays.

        The divergence check passes ``X_train[:256]``, a new view every
        epoch; it is recognized as the training rows already on the device.
        """
        loaded = self._data
        if loaded is not None:
            train = loaded[0]
            if X is train:
                return loaded[2]
            if (isinstance(X, np.ndarray) and X.base is not None and X.dtype == train.dtype
                    and X.shape[1:] == train.shape[1:] and X.strides == train.strides
                    and X.shape[0] <= train.shape[0]
                    and X.__array_interface__["data"][0] == train.__array_interface__["data"][0]
                    and train.flags.c_contiguous):
                return loaded[2][:X.shape[0]]
        return self._cached(X, None)[1]

    def _cached(self, X, y):
        """The cache entry of ``X`` (uploaded when new), with ``y`` uploaded when given and new."""
        cuda = self._cuda
        cache = self._eval_cache
        entry = next((e for e in cache if e[0] is X), None)
        if entry is None:
            entry = (X, cuda.to_device(np.ascontiguousarray(X)), None, None)
        if y is not None and not (entry[2] is y or (entry[2] is not None
                                                     and np.array_equal(entry[2], y))):
            entry = (entry[0], entry[1], y, cuda.to_device(np.ascontiguousarray(y, np.int32)))
        cache[:] = [entry] + [e for e in cache if e[0] is not X][:EVAL_CACHE_SIZE - 1]
        return entry

    def _buffers(self, n):
        """Prediction buffers for chunks of ``min(n, capacity)`` rows (kept per size)."""
        cuda = self._cuda
        capacity = max(1, min(n, self.capacity))
        buffers = self._prediction_buffers.get(capacity)
        if buffers is None:
            if len(self._prediction_buffers) >= 4:
                self._prediction_buffers.clear()
            buffers = self._prediction_buffers[capacity] = kernels.PredictionBuffers(
                cuda.device_array((capacity, int(self.layer_sizes[0])), self.dtype),
                cuda.device_array(kernels.activation_buffer_length(self.layer_sizes, capacity),
                                  self.dtype))
        return buffers

    def predict_log_proba(self, X):
        """Log-probabilities with the device parameters (host ndarray out).

        The last ``EVAL_CACHE_SIZE`` arrays ``X`` stay on the device, so
        predicting on the same array again uploads it once.
        """
        from ..kernels.cuda import gpu_predict_log_proba
        n = X.shape[0]
        out = np.empty((n, int(self.layer_sizes[-1])), self.dtype)
        if n == 0:
            return out
        d_out = self._cuda.device_array(out.shape, self.dtype)
        gpu_predict_log_proba(self._device_rows(X), self.normalization, self.network,
                              self._buffers(n), d_out, **self.launch)
        return d_out.copy_to_host(out)

    def evaluate(self, X, y):
        """``(mean log-loss, accuracy)`` on ``(X, y)``, computed on the device.

        Only three numbers come back (:func:`fastann.kernels.cuda.gpu_evaluate`);
        ``X`` and ``y`` stay on the device between calls (validation after
        every epoch uploads them once).
        """
        from ..kernels.cuda import gpu_evaluate
        n = X.shape[0]
        if n == 0:
            return float("nan"), float("nan")
        _, d_X, _, d_y = self._cached(X, y)
        loss_sum, n_correct, _ = gpu_evaluate(d_X, d_y, self.normalization, self.network,
                                              self._buffers(n), self._eval_counters,
                                              **self.launch)
        return loss_sum / n, n_correct / n

    def outputs_finite(self, X):
        """Whether every log-probability on ``X`` is finite, checked on the device.

        A leading slice of the training rows (the divergence check's sample)
        is not uploaded again; labels are not needed (zeros are passed).
        """
        from ..kernels.cuda import gpu_evaluate
        n = X.shape[0]
        if n == 0:
            return True
        d_X = self._device_rows(X)
        zeros = self._zero_labels
        if zeros is None or zeros.shape[0] < n:
            zeros = self._zero_labels = self._cuda.to_device(np.zeros(n, np.int32))
        _, _, n_bad = gpu_evaluate(d_X, zeros, self.normalization, self.network,
                                   self._buffers(n), self._eval_counters, **self.launch)
        return n_bad == 0

    # ------------------------------------------------------- state access
    def get_parameters(self):
        return self.params.copy_to_host()

    def set_parameters(self, params):
        self.params.copy_to_device(np.ascontiguousarray(params, self.dtype))

    def get_optimizer_state(self):
        sizes = kernels.optimizer_state_sizes(self.optimizer, self.params.size)
        return {name: (array.copy_to_host() if sizes[name] else np.zeros(0, self.dtype))
                for name, array in self.state._asdict().items()}

    def set_optimizer_state(self, state):
        sizes = kernels.optimizer_state_sizes(self.optimizer, self.params.size)
        for name, array in self.state._asdict().items():
            if sizes[name]:
                array.copy_to_device(np.ascontiguousarray(state[name], self.dtype))

    def snapshot(self):
        """Device-side copies of parameters and optimizer state (no host transfer)."""
        cuda = self._cuda

        def copy(array):
            twin = cuda.device_array_like(array)
            twin.copy_to_device(array)
            return twin
        return copy(self.params), [copy(a) for a in self.state]

    def restore(self, snapshot):
        params, state = snapshot
        self.params.copy_to_device(params)
        for array, saved in zip(self.state, state):
            array.copy_to_device(saved)

    def parameters_finite(self):
        """Whether every parameter is finite: a reduction on the device, one int copied back."""
        from ..kernels.cuda import gpu_all_finite
        return gpu_all_finite(self.params, self._flag)
