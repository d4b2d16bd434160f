"""Whole-epoch GPU training, batched inference and evaluation: host loops over device-only data.

:func:`gpu_train_epoch` mirrors :func:`fastann.kernels.train_epoch` argument for
argument and returns the same ``(loss_sum, n_correct, step)``, but every
array it touches lives on the device: the dataset (uint8 stays uint8), the
labels, the shuffled order, the flat parameters, gradients, optimizer state
and the activation/scratch buffers. Per call, the host builds the *plan*
(one float64 row per micro-batch: row range, gradient scale, whether to
accumulate and to update, and the step's learning rate or Adam factors,
computed in float64 by the same code as on the CPU) and uploads it with the
order; the loss/correct counters are read back once at the end. Nothing else
crosses the bus.

Every kernel reads its step's row range and scalars from the plan at a device
cursor (:mod:`fastann.kernels.cuda._launch`), so the launches of a micro-step
have the same grids and arguments every step: :class:`TrainingProgram` builds
them once, and can capture a call's micro-steps as a CUDA graph and replay it
every epoch (``graphs=True``; off by default until it has passed the hardware
tests).

Launches per micro-step, for ``L`` dense layers (``L = len(hidden) + 1``):

=====================================  ==========  ==========================================
kernel                                 launches    fused work
=====================================  ==========  ==========================================
first dense forward (``forward_        1           gather through ``order`` and normalize
gather``)                                          inside the tile loads, keep the inputs
                                                   and labels; ``X @ W`` + bias + activation;
                                                   cursor
other dense forward                    L - 2       ``X @ W`` tiles + bias + activation
last dense forward (``forward_         1           ``X @ W + b``, then per row: loss,
softmax``)                                         correct count (atomics), gradient
dense backward                         L           ``dW``, ``db`` (column sums) and ``dX *
                                                   f'(X)`` of one layer in one grid
optimizer                              1           ``m``, ``v``, weight (Adam), penalty
                                                   (when the plan says so); cursor
=====================================  ==========  ==========================================

so ``2 L + 1`` launches per micro-step (5 for one hidden layer), plus one per
call to reset the counters and the cursor; ``2 L`` with ``fuse_update``, where
the first layer's backward launch also runs the optimizer
(:func:`~fastann.kernels.cuda.dense.backward_update_kernel`). Without a hidden layer, or with
more classes than a block's tile is wide, the softmax cross-entropy is a
launch of its own (``2 L + 2``). A mini-batch larger than ``capacity`` runs
as micro-batches whose backward kernels add into the gradient (no
``grad_sum`` buffer); the update kernel of the earlier micro-batches only
advances the cursor: see :func:`launches_per_step`. All launches go to one
stream in order, so no synchronization is needed between them. (The separate
gather and softmax kernels remain as twins of the CPU's.)
"""
from collections import namedtuple

import numpy as np
from numba import cuda, njit

from ..activations import IDENTITY
from ..epoch import micro_batches
from ..network import activation_offsets, parameter_offsets
from ..optimizers import ADAM, ADAMW, MOMENTUM, NESTEROV, SGD, adam_step_factors
from . import blas as _blas
from . import optimizers as _opt
from ._launch import (ACCUMULATE, DECAY, DEFAULT_DEPTH, DEFAULT_LANES, DEFAULT_PER_THREAD,
                      DEFAULT_ROWS_PER_BLOCK, DEFAULT_THREADS, DEFAULT_TILE, EPS_HAT, GRAD_SCALE, LR, PLAN_FIELDS, ROWS,
                      SIMULATOR, START, UPDATE, float_dtype, multiprocessors, n_blocks,
                      simulator_pacing)
from .batching import _gather, gather_grid
from .dense import (backward_grid, backward_update_grid, backward_update_kernel, check_depth,
                    check_split_k, dense_kernels, forward_grid, forward_splits, split_buffers)
from .loss import EVAL_COUNTERS, loss_kernels, softmax_grid

_OPTIMIZER_NAMES = {SGD: "sgd", MOMENTUM: "momentum", NESTEROV: "nesterov", ADAM: "adam",
                    ADAMW: "adamw"}


#: CUDA graphs a :class:`TrainingProgram` keeps (one per distinct number of micro-steps a call
#: runs; with ``gemm="cublas"``, per pattern of accumulating micro-batches too).
MAX_GRAPHS = 8


def launches_per_step(n_layers, micro_batches=1, n_classes=10, tile=None, per_thread=None,
                      fuse_update=False):
    """Kernel launches for one optimizer step of :func:`gpu_train_epoch`.

    ``2 L + 1`` per micro-batch when the softmax is fused into the last layer
    (``L >= 2`` and ``n_classes <= tile * per_thread``), else ``2 L + 2``;
    one fewer with ``fuse_update`` (the optimizer in the first layer's
    backward launch).
    """
    edge = (tile or DEFAULT_TILE) * (per_thread or DEFAULT_PER_THREAD)
    fused = n_layers >= 2 and n_classes <= edge
    return micro_batches * (2 * n_layers + 2 - fused - bool(fuse_update))


@cuda.jit(cache=True)
def _reset(counters, cursor):
    i = cuda.grid(1)
    if i < counters.size:
        counters[i] = 0
    if i < cursor.size:
        cursor[i] = 0


@cuda.jit(cache=True)
def _any_nonfinite(a, flag):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        v = a[i]
        if v != v or v - v != 0:  # NaN, or +-inf (inf - inf is NaN)
            flag[0] = 1  # the same value from every thread that finds one


def _reset_launch(counters, cursor):
    return _reset, 1, max(4, counters.size, cursor.size), (counters, cursor)


def _matrix(flat, offset, rows, cols):
    offset, rows, cols = int(offset), int(rows), int(cols)
    return flat[offset:offset + rows * cols].reshape(rows, cols)


def _run(calls, stream=None):
    """Launch ``(kernel, grid, block, args)`` calls in order (``stream``: a stream or graph
    builder); a host step (grid None, a :class:`_HostGemm`) is called with the stream."""
    for kernel, grid, block, args in calls:
        if grid is None:
            kernel(stream)
        elif stream is None:
            kernel[grid, block](*args)
        else:
            kernel[grid, block, stream](*args)


def _configured(calls, prepared=False):
    """``[(launcher, args)]``: on a GPU each kernel configured once (``kernel[grid, block]``
    makes a launch configuration, a ``cuda.core`` stream object included, on every call);
    the simulator keeps the grid on the kernel object itself, so it is configured per launch.
    ``prepared``: :class:`_PreparedLaunch` launchers (GPU only). A call whose grid is None is
    a host step (a :class:`_HostGemm`), called as it is."""
    def configured(kernel, grid, block, args):
        if grid is None:  # a host step
            return kernel, args
        if SIMULATOR:
            return (lambda *a, k=kernel, g=grid, b=block: k[g, b](*a)), args
        if prepared:  # pragma: no cover - needs a GPU
            return _PreparedLaunch(kernel, grid, block, args), args
        return kernel[grid, block], args

    return [configured(*call) for call in calls]


class _PreparedLaunch:  # pragma: no cover - needs a GPU
    """A launch whose arguments are converted once: the launch arguments never change.

    The first call launches through numba-cuda's dispatcher (which compiles
    and loads the kernel); it then keeps what numba-cuda's ``_Kernel.launch``
    builds on every call -- the arguments as ctypes values (device pointers,
    shapes, strides, scalars), the ``cuda.core`` launch configuration and the
    kernel handle -- and later calls only call ``cuda.core.launch``. Uses
    numba-cuda internals (0.30: ``_Kernel._prepare_args``,
    ``_codelibrary.get_cufunc``); any failure to prepare keeps the dispatcher
    path. Off by default (``prepared=False``) until measured on hardware.
    """

    def __init__(self, kernel, grid, block, args):
        self.kernel, self.grid, self.block, self.args = kernel, grid, block, args
        self._ready = None
        self._configured = kernel[grid, block]

    def __call__(self, *args):
        ready = self._ready
        if ready is None:
            self._configured(*self.args)  # compiles and loads on the first call
            self._ready = self._prepare()
            return
        if ready is False:
            self._configured(*self.args)
            return
        launch, stream, config, handle, kernel_args = ready
        launch(stream, config, handle, *kernel_args)

    def _prepare(self):
        try:
            from numba.cuda import dispatcher as nbd
            from numba.cuda.cudadrv import driver
            from numba.cuda.errors import normalize_kernel_dimensions
            types = tuple(self.kernel.typeof_pyval(a) for a in self.args)
            compiled = self.kernel.overloads[types]
            stream = driver._to_core_stream(0)
            kernel_args, write_back = [], []
            for t, v in zip(compiled.argument_types, self.args):
                compiled._prepare_args(t, v, stream, write_back, kernel_args)
            if write_back or compiled.debug:
                return False
            grid, block = normalize_kernel_dimensions(self.grid, self.block)
            cooperative = ({"is_cooperative": compiled.cooperative} if nbd.CUDA_CORE_GE_1_0
                           else {"cooperative_launch": compiled.cooperative})
            config = nbd.LaunchConfig(grid=grid, block=block, shmem_size=0, **cooperative)
            handle = compiled._codelibrary.get_cufunc().kernel
            return nbd.launch, stream, config, handle, kernel_args
        except Exception:  # another numba-cuda: the dispatcher path
            return False


def _launch(launchers):
    for launcher, args in launchers:
        launcher(*args)


class _HostGemm:
    """A GEMM step of the ``gemm="cublas"`` path: ``c = op(a) @ op(b)`` over all the
    program's ``capacity`` rows (:mod:`~fastann.kernels.cuda.blas`: the rows past the live
    ones are zero where they count); with ``accumulates``, added to ``c`` when the running
    micro-step (its program's host plan row) is a later micro-batch of a mini-batch."""

    def __init__(self, program, a, b, c, trans_a=False, trans_b=False, accumulates=False):
        self.program, self.a, self.b, self.c = program, a, b, c
        self.trans_a, self.trans_b, self.accumulates = trans_a, trans_b, accumulates

    def __call__(self, stream=None):
        accumulate = self.accumulates and self.program.host_row[ACCUMULATE] != 0.0
        _blas.gemm(self.a, self.b, self.c, trans_a=self.trans_a,
                   beta=1.0 if accumulate else 0.0, trans_b=self.trans_b, stream=stream)


class _Network:
    """Per-layer device views of the flat buffers, and the layers' launches for ``capacity`` rows."""

    def __init__(self, params, layer_sizes, activation, acts, capacity, tile, per_thread,
                 grads=None, scratch=None, split_k=1, depth=1):
        sizes = [int(s) for s in layer_sizes]
        self.sizes = sizes
        self.capacity = int(capacity)
        self.n_layers = len(sizes) - 1
        self.tile = tile
        self.per_thread = per_thread
        self.depth = depth
        self.dtype = float_dtype(params)
        w_off, b_off = parameter_offsets(np.asarray(layer_sizes, np.int64))
        a_off = activation_offsets(np.asarray(layer_sizes, np.int64), capacity)
        self.n_weights = int(w_off[-1])
        L = self.n_layers
        self.W = [_matrix(params, w_off[l], sizes[l], sizes[l + 1]) for l in range(L)]
        self.b = [params[int(b_off[l]):int(b_off[l + 1])] for l in range(L)]
        self.out = [_matrix(acts, a_off[l], capacity, sizes[l + 1]) for l in range(L)]
        self.codes = [int(activation) if l < L - 1 else IDENTITY for l in range(L)]
        self.activation = int(activation)
        if grads is not None:
            self.dW = [_matrix(grads, w_off[l], sizes[l], sizes[l + 1]) for l in range(L)]
            self.db = [grads[int(b_off[l]):int(b_off[l + 1])] for l in range(L)]
            half = scratch.size // 2
            # dX of layer l (l >= 1) goes to the scratch half that the CPU
            # twin uses, so the gradient being written never aliases the one
            # being read.
            self.dX = [None] + [_matrix(scratch, ((L - 1 - l) % 2) * half, capacity, sizes[l])
                                for l in range(1, L)]
        self.kernels = dense_kernels(tile, self.dtype, per_thread, depth)
        self.split_k = split_k
        self.split_arrays = {}  # layer -> (partials, arrivals) of its split-K forward launch

    def splits(self, l):
        """Split-K of layer ``l``'s training forward launch (:func:`forward_splits`)."""
        if self.split_k == 1:
            return 1
        return forward_splits(self.capacity, self.sizes[l], self.sizes[l + 1], self.tile,
                              self.per_thread, self.split_k, multiprocessors(), self.depth)

    def _split_arrays(self, l, splits):
        if l not in self.split_arrays:
            self.split_arrays[l] = split_buffers(self.capacity, self.sizes[l + 1], splits,
                                                 self.tile, self.per_thread, self.dtype)
        return self.split_arrays[l]

    @property
    def logits(self):
        return self.out[-1]

    def fuses_softmax(self):
        """Whether the last layer's forward can take the softmax cross-entropy in (training):
        every class of a row in one block, and a layer before it (the first layer gathers)."""
        return self.n_layers >= 2 and self.sizes[-1] <= self.tile * self.per_thread

    def forward_calls(self, first, plan, cursor, softmax=None):
        """``L`` forward launches (grids for ``capacity`` rows; live rows from the plan).

        ``first`` says how the first layer reads its rows, gathered and
        normalized inside its tile loads: ``("gather", X, y, order, scale,
        shift, inputs, labels)`` for training (``forward_gather``, which also
        keeps the inputs and labels) or ``("rows", X, scale, shift)`` for
        inference (``forward_rows``). Either starts the step (moves the cursor).
        ``softmax = (labels, counters)``: the last layer is ``forward_softmax``
        (see :meth:`fuses_softmax`), which leaves the loss gradient in the logits.
        """
        calls = []
        kind, *source = first
        k = self.kernels
        for l in range(self.n_layers):
            splits = self.splits(l) if kind == "gather" else 1  # split-K: training only
            grid, block = forward_grid(self.capacity, self.sizes[l + 1], self.tile,
                                       self.per_thread, splits)
            split = self._split_arrays(l, splits) if splits > 1 else ()
            tail = (self.W[l], self.b[l], self.codes[l], self.out[l]) + split + (plan, cursor)
            if l > 0 and l == self.n_layers - 1 and softmax is not None:
                labels, counters = softmax
                calls.append((k.forward_softmax_split if split else k.forward_softmax, grid,
                              block, (self.out[l - 1], self.W[l], self.b[l], labels, counters,
                                      self.out[l]) + split + (plan, cursor)))
            elif l > 0:
                calls.append((k.forward_split if split else k.forward, grid, block,
                              (self.out[l - 1],) + tail))
            elif kind == "gather":
                calls.append((k.forward_gather_split if split else k.forward_gather, grid,
                              block, tuple(source) + tail))
            else:
                calls.append((k.forward_rows, grid, block, tuple(source) + tail))
        return calls

    def output_gradient(self, l):
        """Where the backward pass finds layer ``l``'s output gradient ``dZ``: over the logits
        for the last layer, else in the ``dX`` that layer ``l + 1`` writes."""
        return self.dX[l + 1] if l + 1 < self.n_layers else self.logits

    def backward_calls(self, inputs, plan, cursor, first_layer=True):
        """``L`` backward launches (``L - 1`` without ``first_layer``): back-propagate the
        gradient stored over the logits."""
        calls = []
        for l in range(self.n_layers - 1, -1 if first_layer else 0, -1):
            dZ = self.output_gradient(l)
            grid, block, per_row, n_dw = backward_grid(self.capacity, self.sizes[l],
                                                       self.sizes[l + 1], self.tile, l > 0,
                                                       self.per_thread)
            if l == 0:
                X, dX = inputs, dZ  # dX unused (no dX tiles): pass a same-typed array
            else:
                X, dX = self.out[l - 1], self.dX[l]
            calls.append((self.kernels.backward, grid, block,
                          (X, self.W[l], dZ, self.dW[l], self.db[l], dX, self.activation, plan,
                           cursor, per_row, n_dw)))
        return calls


#: Device work buffers of :func:`gpu_train_epoch`: the fields of
#: :data:`fastann.kernels.TrainingBuffers` that the GPU uses (micro-batches
#: accumulate in the backward kernels, so no ``grad_sum``; the first layer is
#: always dense, so no CSR buffers), plus the loss/correct ``counters``
#: (float64, shape (2,)).
GpuTrainingBuffers = namedtuple("GpuTrainingBuffers",
                                ["grads", "inputs", "labels", "acts", "scratch", "counters"])


def training_plan(n_used, batch_size, capacity, optimizer, hyper, step):
    """The host plan of one call of :func:`gpu_train_epoch`: a row per micro-batch.

    Mini-batch and micro-batch bounds come from
    :func:`fastann.kernels.micro_batches`, as on the CPU; the learning rate, or
    Adam's ``lr_t``/``eps_hat``/decay for the 1-based update count, from
    :func:`fastann.kernels.adam_step_factors` (float64, the CPU's function),
    in one compiled loop (an epoch of S has 469 rows; a Python loop took
    about 1 ms of host time per call).

    Returns
    -------
    plan : ndarray, shape (n_micro_batches, PLAN_FIELDS), float64
    step : int
        Updates made after this call.
    """
    bounds = micro_batches(int(n_used), int(batch_size), int(capacity))
    plan = np.zeros((bounds.shape[0], PLAN_FIELDS), np.float64)
    step = _fill_plan(bounds, plan, int(step), optimizer in (ADAM, ADAMW),
                      float(hyper.learning_rate), float(hyper.beta_1), float(hyper.beta_2),
                      float(hyper.epsilon), float(hyper.l2), optimizer == ADAMW)
    return plan, int(step)


@njit(cache=True, error_model="numpy")
def _fill_plan(bounds, plan, step, adam, learning_rate, beta1, beta2, epsilon, l2, decoupled):
    """The rows of :func:`training_plan` for ``bounds`` (from ``micro_batches``); the updates
    made after them."""
    for i in range(bounds.shape[0]):
        start, stop, micro_start, micro_stop = bounds[i, 0], bounds[i, 1], bounds[i, 2], \
            bounds[i, 3]
        plan[i, START] = micro_start
        plan[i, ROWS] = micro_stop - micro_start
        plan[i, GRAD_SCALE] = 1.0 / (stop - start)
        plan[i, ACCUMULATE] = 1.0 if micro_start != start else 0.0
        if micro_stop == stop:
            step += 1
            plan[i, UPDATE] = 1.0
            if adam:
                lr, eps_hat, decay = adam_step_factors(step, learning_rate, beta1, beta2,
                                                       epsilon, l2, decoupled)
            else:
                lr, eps_hat, decay = learning_rate, 0.0, 0.0
            plan[i, LR] = lr
            plan[i, EPS_HAT] = eps_hat
            plan[i, DECAY] = decay
    return step


def inference_plan(n_rows, capacity):
    """One plan row per chunk of ``capacity`` rows of an inference set (``START``, ``ROWS``)."""
    starts = np.arange(0, int(n_rows), int(capacity), dtype=np.int64)
    plan = np.zeros((starts.size, PLAN_FIELDS), np.float64)
    plan[:, START] = starts
    plan[:, ROWS] = np.minimum(starts + capacity, n_rows) - starts
    return plan


def _upload_plan(plan, device_plan):
    """``plan`` into the front of ``device_plan`` when it fits (a graph keeps its address), else new."""
    if device_plan is not None and device_plan.shape[0] >= plan.shape[0]:
        if plan.shape[0]:
            device_plan[:plan.shape[0]].copy_to_device(plan)
        return device_plan
    return cuda.to_device(plan)


class TrainingProgram:
    """The ``2 L + 1`` launches of one training micro-step, built once, with constant arguments.

    Parameters are those of :func:`gpu_train_epoch` (device arrays) except:

    order : device array, shape (>= n_used,), int64
        Positions are read through the plan, so the whole buffer is passed.
    plan : device array, shape (>= n_micro_batches, PLAN_FIELDS), float64, optional
        Where each call's plan is uploaded (kept, so that a captured graph
        stays valid); grown when a call needs more rows.
    graphs : bool
        Run each call's micro-steps as one CUDA graph (numba-cuda >= 0.29
        launching into a ``cuda.core`` graph builder), captured once per
        number of micro-steps (with ``gemm="cublas"``, and pattern of
        accumulating micro-batches) and replayed on a stream of its own; the launch
        arguments being constant, the same graph serves every epoch. Off by
        default: not yet run on hardware. Ignored under the simulator.
    prepared : bool
        Launch eagerly with the arguments converted once (:class:`_PreparedLaunch`):
        the host cost of a launch without the dispatcher. Off by default: not
        yet run on hardware. Ignored under the simulator.
    fuse_update : bool
        Apply the optimizer inside the first layer's backward launch
        (:func:`~fastann.kernels.cuda.dense.backward_update_kernel`) instead
        of a launch of its own: ``2 L`` launches per micro-step, and the first
        layer's gradient never goes through memory. Same results (tested
        under the simulator); off by default until it has run on hardware.
    gemm : {"tiles", "cublas"}
        ``"cublas"``: hidden layers at least :data:`~fastann.kernels.cuda.blas.WIDE`
        wide on both sides run their products as cuBLAS GEMMs on the same
        device arrays (:mod:`fastann.kernels.cuda.blas`, needs CuPy on a GPU),
        each over all ``capacity`` rows, so that they can be captured with
        ``graphs`` too. Off by default: not yet run on hardware.
    split_k : int or "auto"
        Forward launches with fewer blocks than the GPU has multiprocessors
        (at batch 128: S's first layer, every last layer) split each output
        tile's reduction over this many blocks (``"auto"``: enough to give
        every multiprocessor a block), summed in a fixed order by the last
        block to finish (:func:`~fastann.kernels.cuda.dense.forward_splits`).
        Same launches; sums rounded differently from ``1``, the same every
        run. Default 1 (off): not yet run on hardware.
    depth : int, optional
        Slab depth of the forward kernels in tile edges
        (:func:`~fastann.kernels.cuda.dense.dense_kernels`): fewer rounds of
        loads, each with more in flight. Same sums, in the same order.
        Default :data:`~fastann.kernels.cuda.DEFAULT_DEPTH` (1) until measured
        on hardware.

    Raises
    ------
    ValueError
        An unknown ``gemm``, a ``split_k`` that is neither a positive int
        nor ``"auto"``, or a ``depth`` that is not a positive int.
    """

    def __init__(self, X, y, order, normalization, net, optimizer, hyper, state, buffers, *,
                 plan=None, tile=None, per_thread=None, threads=None, rows_per_block=None,
                 lanes=None, graphs=False, prepared=False, fuse_update=False, gemm="tiles",
                 split_k=1, depth=None):
        tile = tile or DEFAULT_TILE
        per_thread = per_thread or DEFAULT_PER_THREAD
        depth = check_depth(DEFAULT_DEPTH if depth is None else depth)
        threads = threads or DEFAULT_THREADS
        rows_per_block = rows_per_block or DEFAULT_ROWS_PER_BLOCK
        lanes = lanes or DEFAULT_LANES
        params, layer_sizes, activation = net
        self.optimizer = int(optimizer)
        self.hyper = hyper
        self.buffers = buffers
        self.capacity = capacity = buffers.inputs.shape[0]
        self.cursor = cuda.device_array(2, np.int64)
        self.plan = plan if plan is not None else cuda.device_array((1, PLAN_FIELDS), np.float64)
        self.graphs = bool(graphs) and not SIMULATOR
        self.prepared = bool(prepared) and not SIMULATOR
        self.fuse_update = bool(fuse_update)
        if gemm not in _blas.GEMMS:
            raise ValueError(f'gemm must be "tiles" or "cublas", got {gemm!r}')
        if gemm == "cublas" and not SIMULATOR:  # pragma: no cover - needs a GPU
            _blas.require_cupy()
        self.gemm = gemm
        self.split_k = check_split_k(split_k)
        self.host_row = None  # the host plan's row of the micro-step being launched (GEMMs)
        self._graphs = None
        self._order, self._args = order, (X, y, normalization, net, state, tile, threads,
                                          rows_per_block, lanes)
        self.network = _Network(params, layer_sizes, activation, buffers.acts, capacity, tile,
                                per_thread, grads=buffers.grads, scratch=buffers.scratch,
                                split_k=self.split_k, depth=depth)
        self.calls = self._calls(self.plan)
        self._launchers = _configured(self.calls, self.prepared)

    def _calls(self, plan):
        X, y, normalization, net, state, tile, threads, rows_per_block, lanes = self._args
        b, network, cursor = self.buffers, self.network, self.cursor
        fused = network.fuses_softmax()
        calls = network.forward_calls(("gather", X, y, self._order, normalization.scale,
                                       normalization.shift, b.inputs, b.labels), plan, cursor,
                                      softmax=(b.labels, b.counters) if fused else None)
        if self.gemm == "cublas":
            calls = self._gemm_forward(calls, plan, threads)
        if not fused:
            softmax = loss_kernels(rows_per_block, network.dtype, lanes)[0]
            grid, block = softmax_grid(self.capacity, rows_per_block, lanes)
            calls.append((softmax, grid, block,
                          (network.logits, b.labels, network.logits, b.counters, plan, cursor)))
        backward = network.backward_calls(b.inputs, plan, cursor,
                                          first_layer=not self.fuse_update)
        if self.gemm == "cublas":
            backward = self._gemm_backward(backward, plan, threads)
        calls += backward
        name = _OPTIMIZER_NAMES.get(self.optimizer)
        if name is None:
            raise ValueError("unknown optimizer code")
        params = net.params
        kernel_name = "adam" if name == "adamw" else name
        optimizer_state = {"sgd": (), "momentum": (state.velocity,),
                           "nesterov": (state.velocity,), "adam": (state.m, state.v)}[kernel_name]
        if self.fuse_update:
            s1, s2 = (optimizer_state + (b.grads, b.grads))[:2]  # unused slots: any array
            kernel = backward_update_kernel(network.tile, network.dtype, network.per_thread,
                                            kernel_name)
            grid, block, per_row, n_dw = backward_update_grid(
                params.size, network.sizes[0], network.sizes[1], network.tile,
                network.per_thread)
            calls.append((kernel, grid, block,
                          (b.inputs, network.output_gradient(0), params, b.grads, s1, s2, plan,
                           cursor, *_opt.padded_constants(name, network.dtype, self.hyper),
                           network.n_weights, per_row, n_dw)))
            return calls
        kernel = _opt.optimizer_kernels(network.dtype)[kernel_name]
        calls.append((kernel, n_blocks(params.size, threads), threads,
                      (params, b.grads, *optimizer_state, plan, cursor,
                       *_opt.constant_arguments(name, network.dtype, self.hyper),
                       network.n_weights)))
        return calls

    def _gemm_layers(self):
        """Hidden layers (never the last one, which ends in the softmax) that take the GEMM path."""
        sizes = self.network.sizes
        return [l for l in range(self.network.n_layers - 1) if _blas.is_wide(sizes[l],
                                                                            sizes[l + 1])]

    def _gemm_forward(self, calls, plan, threads):
        """The forward launches with each wide layer's tiles replaced by a GEMM and its epilogue
        (the first layer gathering its rows first)."""
        X, y, normalization = self._args[:3]
        b, network, cursor = self.buffers, self.network, self.cursor
        bias_activation = _blas.epilogue_kernels(network.dtype)[0]
        out = list(calls)
        for l in reversed(self._gemm_layers()):
            steps = []
            if l == 0:
                grid, block = gather_grid(self.capacity, network.sizes[0], threads)
                steps.append((_gather, grid, block,
                              (X, y, self._order, plan, cursor, normalization.scale,
                               normalization.shift, b.inputs, b.labels)))
            source = b.inputs if l == 0 else network.out[l - 1]
            steps.append((_HostGemm(self, source, network.W[l], network.out[l]), None, None, ()))
            steps.append((bias_activation, n_blocks(self.capacity * network.sizes[l + 1], threads),
                          threads, (network.out[l], network.b[l], network.codes[l], plan, cursor)))
            out[l:l + 1] = steps
        return out

    def _gemm_backward(self, calls, plan, threads):
        """The backward launches (layer ``L - 1`` first) with each wide layer's tiles replaced by
        the column sums for ``db`` (which also zero the dead rows of ``dZ`` and ``X``), GEMMs
        for ``dW`` and ``dX``, and ``f'`` for ``dX``."""
        b, network, cursor = self.buffers, self.network, self.cursor
        _, column_sums, derivative_times = _blas.epilogue_kernels(network.dtype)
        L = network.n_layers
        out = list(calls)
        for l in self._gemm_layers():
            i = L - 1 - l  # position of layer l's launch
            if i >= len(out):
                continue  # the first layer's backward is the fused update (fuse_update)
            dZ = network.output_gradient(l)
            source = b.inputs if l == 0 else network.out[l - 1]
            d_out = network.sizes[l + 1]
            steps = [(column_sums, *_blas.column_sums_grid(d_out),  # zeroes dead rows too
                      (dZ, network.db[l], source, plan, cursor)),
                     (_HostGemm(self, source, dZ, network.dW[l], trans_a=True,
                                accumulates=True), None, None, ())]
            if l > 0:
                steps.append((_HostGemm(self, dZ, network.W[l], network.dX[l], trans_b=True),
                              None, None, ()))
                steps.append((derivative_times,
                              n_blocks(self.capacity * network.sizes[l], threads), threads,
                              (network.dX[l], network.out[l - 1], network.activation, plan,
                               cursor)))
            out[i:i + 1] = steps
        return out

    def run(self, n_used, batch_size, hyper, step):
        """Train on positions ``[0, n_used)`` of the order; returns ``(loss_sum, n_correct, step)``.

        ``hyper`` must equal the program's except for ``learning_rate``
        (which goes into the plan).
        """
        if hyper._replace(learning_rate=0.0) != self.hyper._replace(learning_rate=0.0):
            raise ValueError("a TrainingProgram's hyper-parameters other than the learning "
                             "rate are fixed: make a new one")
        host_plan, step = training_plan(n_used, batch_size, self.capacity, self.optimizer,
                                        hyper, step)
        plan = _upload_plan(host_plan, self.plan)
        if plan is not self.plan:  # grown: new addresses in the arguments
            self.plan, self._graphs = plan, None
            self.calls = self._calls(plan)
            self._launchers = _configured(self.calls, self.prepared)
        counters = self.buffers.counters
        with simulator_pacing():
            kernel, grid, block, args = _reset_launch(counters, self.cursor)
            kernel[grid, block](*args)
            if self.graphs and host_plan.shape[0]:
                self._run_graph(host_plan)
            else:
                launchers = self._launchers
                for row in host_plan:
                    self.host_row = row  # read by the host GEMMs, if any
                    _launch(launchers)
            loss_sum, n_correct = counters.copy_to_host()[:2]
        return float(loss_sum), int(round(n_correct)), step

    def _graph_key(self, rows):
        """Which captured graph replays these plan rows: one per number of micro-steps; with
        GEMMs also per pattern of accumulating micro-batches (a GEMM's ``beta`` is captured)."""
        if self.gemm == "cublas":
            return len(rows), (rows[:, ACCUMULATE] != 0.0).tobytes()
        return len(rows)

    def _run_graph(self, host_plan):  # pragma: no cover - needs a GPU
        """The call's micro-steps as one CUDA graph launch.

        A graph of ``k`` consecutive micro-steps is captured the first time a
        call has ``k`` of them (the training loop's chunks give one or two
        counts per epoch; at most :data:`MAX_GRAPHS` are kept) and replayed
        afterwards: one launch per call instead of ``k * (2 L + 1)``. The
        first micro-step of the first call runs eagerly, so that every kernel
        is compiled and loaded (and cuBLAS initialized) outside the capture.
        """
        from cuda.core import Device  # cuda-core, a numba-cuda dependency
        rows = host_plan
        if self._graphs is None:
            self.host_row = rows[0]
            _launch(self._launchers)
            rows = rows[1:]
            self._device = Device()
            self._device.set_current()
            self._stream = self._device.create_stream()
            self._graphs = {}
        if not len(rows):
            return
        key = self._graph_key(rows)
        graph = self._graphs.get(key)
        if graph is None:
            if len(self._graphs) >= MAX_GRAPHS:
                self._graphs.clear()
            builder = self._device.create_graph_builder()
            builder.begin_building()
            for row in rows:
                self.host_row = row
                _run(self.calls, builder)
            graph = self._graphs[key] = builder.end_building().complete()
        cuda.synchronize()  # the reset (and an eager step) ran on the default stream
        graph.launch(self._stream)
        self._stream.sync()


def gpu_apply_update(optimizer, params, grads, state, step, hyper, n_weights, threads=None):
    """GPU twin of :func:`fastann.kernels.apply_update` (``hyper`` and ``step`` on the host)."""
    name = _OPTIMIZER_NAMES.get(int(optimizer))
    if name is None:
        raise ValueError("unknown optimizer code")
    arrays = {"sgd": (grads,), "momentum": (grads, state.velocity),
              "nesterov": (grads, state.velocity), "adam": (grads, state.m, state.v),
              "adamw": (grads, state.m, state.v)}[name]
    _opt._launch(name, params, arrays, hyper, n_weights, step, threads)


def gpu_train_epoch(X, y, order, normalization, net, optimizer, hyper, step, batch_size,
                    state, buffers, *, tile=None, per_thread=None, threads=None,
                    rows_per_block=None, lanes=None, graphs=False, fuse_update=False,
                    gemm="tiles", split_k=1, depth=None):
    """GPU twin of :func:`fastann.kernels.train_epoch`: one pass over ``order``.

    Arguments are those of the CPU kernel, with device arrays inside the
    named structures, except that ``net.layer_sizes`` is a small host array
    read by the launching loop, ``hyper`` holds host floats, and ``buffers``
    is a :data:`GpuTrainingBuffers`. The mini-batch / micro-batch bounds come
    from the same :func:`fastann.kernels.micro_batches` as on the CPU. Builds
    a :class:`TrainingProgram` for this one call (the backend keeps one per
    ``fit`` instead).

    Parameters
    ----------
    X : device array, shape (n_samples, d_0), uint8 or float
    y : device array, shape (n_samples,), int32
    order : device array, shape (n_used,), int64
        Rows to visit; a host ndarray is accepted and uploaded once.
    normalization : Normalization of device arrays, shape (d_0,), dtype of ``params``
    net : Network
        ``params`` (device, float32 or float64, updated in place),
        ``layer_sizes`` (host int64) and the activation code.
    optimizer : int
    hyper : Hyperparameters
    step : int
        Updates made before this epoch (Adam's ``t - 1``).
    batch_size : int
    state : OptimizerState of device arrays (unused ones may have size 0)
    buffers : GpuTrainingBuffers
        Sized from :func:`fastann.kernels.training_buffer_shapes`;
        ``inputs.shape[0]`` is the capacity in rows.
    tile, per_thread, threads, rows_per_block, lanes : int, optional
        Launch-shape overrides (defaults in :mod:`fastann.kernels.cuda._launch`).
    graphs, fuse_update : bool
    gemm : {"tiles", "cublas"}
    split_k : int or "auto"
    depth : int, optional
        See :class:`TrainingProgram`.

    Returns
    -------
    loss_sum : float
    n_correct : int
    step : int
    """
    if isinstance(order, np.ndarray):
        order = cuda.to_device(np.ascontiguousarray(order, np.int64))
    program = TrainingProgram(X, y, order, normalization, net, optimizer, hyper, state, buffers,
                              tile=tile, per_thread=per_thread, threads=threads,
                              rows_per_block=rows_per_block, lanes=lanes, graphs=graphs,
                              fuse_update=fuse_update, gemm=gemm, split_k=split_k, depth=depth)
    return program.run(order.shape[0], batch_size, hyper, step)


class InferenceProgram:
    """The launches of one inference step (a chunk of ``capacity`` rows), built once.

    ``L`` dense forward launches (the first one reads the chunk's rows and
    normalizes them in its tile loads), then either
    ``log_softmax`` into ``out`` (``labels`` None) or ``evaluate`` into
    ``counters`` against ``labels``. Arguments as in :func:`gpu_predict_log_proba`.
    """

    def __init__(self, X, normalization, net, buffers, *, out=None, labels=None, counters=None,
                 plan=None, tile=None, per_thread=None, threads=None, rows_per_block=None,
                 lanes=None, depth=None):
        tile = tile or DEFAULT_TILE
        per_thread = per_thread or DEFAULT_PER_THREAD
        depth = check_depth(DEFAULT_DEPTH if depth is None else depth)
        threads = threads or DEFAULT_THREADS
        rows_per_block = rows_per_block or DEFAULT_ROWS_PER_BLOCK
        lanes = lanes or DEFAULT_LANES
        params, layer_sizes, activation = net
        inputs, acts = buffers
        self.capacity = capacity = inputs.shape[0]
        self.n = X.shape[0]
        network = _Network(params, layer_sizes, activation, acts, capacity, tile, per_thread,
                           depth=depth)
        self.cursor = cuda.device_array(2, np.int64)
        self.counters = counters
        host_plan = inference_plan(self.n, capacity)
        self.n_steps = host_plan.shape[0]
        self.plan = plan = _upload_plan(host_plan, plan)
        calls = network.forward_calls(("rows", X, normalization.scale, normalization.shift),
                                      plan, self.cursor)
        _, log_softmax, evaluate = loss_kernels(rows_per_block, network.dtype, lanes)
        grid, block = softmax_grid(capacity, rows_per_block, lanes)
        if labels is None:
            calls.append((log_softmax, grid, block, (network.logits, out, plan, self.cursor)))
        else:
            calls.append((evaluate, grid, block,
                          (network.logits, labels, counters, plan, self.cursor)))
        self.calls = calls
        self._launchers = _configured(calls)

    def run(self):
        with simulator_pacing():
            counters = self.counters if self.counters is not None else self.cursor
            kernel, grid, block, args = _reset_launch(counters, self.cursor)
            kernel[grid, block](*args)
            for _ in range(self.n_steps):
                _launch(self._launchers)


def gpu_predict_log_proba(X, normalization, net, buffers, out, tile=None, threads=None,
                          rows_per_block=None, lanes=None, per_thread=None, depth=None):
    """GPU twin of :func:`fastann.kernels.predict_log_proba` (device arrays in, ``out`` written).

    ``buffers`` is a :data:`fastann.kernels.PredictionBuffers` of device
    arrays. Per chunk of ``capacity = buffers.inputs.shape[0]`` rows: 1
    gather, ``L`` dense forward launches and 1 log-softmax launch that writes
    straight into ``out``; nothing is copied back (the caller copies ``out``).
    """
    if X.shape[0] == 0:
        return
    InferenceProgram(X, normalization, net, buffers, out=out, tile=tile, threads=threads,
                     rows_per_block=rows_per_block, lanes=lanes, per_thread=per_thread,
                     depth=depth).run()


def gpu_evaluate(X, labels, normalization, net, buffers, counters=None, tile=None, threads=None,
                 rows_per_block=None, lanes=None, per_thread=None, depth=None):
    """Loss, correct count and non-finite rows of the network on ``(X, labels)``, on the device.

    The log-probabilities never leave the device: per chunk, the ``evaluate``
    kernel of :mod:`fastann.kernels.cuda.loss` adds into three float64
    counters, and only those are copied back.

    Parameters
    ----------
    X : device array, shape (n, d_0), uint8 or float
    labels : device array, shape (n,), int32 class codes
    normalization, net, buffers
        As in :func:`gpu_predict_log_proba`.
    counters : device array, shape (3,), float64, optional

    Returns
    -------
    loss_sum : float
        Sum over rows of ``-log p(label)`` (nats), as
        ``-log_proba[arange(n), labels].sum()`` on the CPU.
    n_correct : int
        Rows whose first arg-max is the label.
    n_nonfinite : int
        Rows with a log-probability that is not finite.
    """
    if X.shape[0] == 0:
        return 0.0, 0, 0
    if counters is None:
        counters = cuda.device_array(EVAL_COUNTERS, np.float64)
    InferenceProgram(X, normalization, net, buffers, labels=labels, counters=counters, tile=tile,
                     threads=threads, rows_per_block=rows_per_block, lanes=lanes,
                     per_thread=per_thread, depth=depth).run()
    loss_sum, n_correct, n_bad = counters.copy_to_host()
    return float(loss_sum), int(round(n_correct)), int(round(n_bad))


def gpu_all_finite(a, flag=None, threads=None):
    """Whether every entry of the float device array ``a`` is finite: one reduction, one int back.

    Parameters
    ----------
    a : device array, float32 or float64, C-contiguous
    flag : device array, shape (1,), int32, optional
        Work space (zeroed here).
    """
    threads = threads or DEFAULT_THREADS
    if flag is None:
        flag = cuda.device_array(1, np.int32)
    with simulator_pacing():
        flag.copy_to_device(np.zeros(1, np.int32))
        if a.size:
            _any_nonfinite[n_blocks(a.size, threads), threads](a.reshape(a.size), flag)
        return int(flag.copy_to_host()[0]) == 0
