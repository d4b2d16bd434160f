"""CUDA twins of :mod:`fastann.kernels`, written with ``numba.cuda`` (package ``numba-cuda``).

Every CPU kernel ``name`` in :mod:`kernels` has a GPU twin ``gpu_name`` here
that shares its integer codes (activations, optimizers), its formulas and its
parameter layout, and works on device arrays (``numba.cuda`` device arrays, or
anything with ``__cuda_array_interface__``) written in place:

======================================  ===================================================
GPU twin                                CPU kernel
======================================  ===================================================
:func:`gpu_dense_forward`               :func:`kernels.dense_forward`
:func:`gpu_dense_backward`              :func:`kernels.dense_backward` (+ ``column_sums``)
:func:`gpu_softmax_cross_entropy`       :func:`kernels.softmax_cross_entropy`
:func:`gpu_log_softmax`                 :func:`kernels.log_softmax_inplace`
:func:`gpu_sgd_update` ...              :func:`kernels.sgd_update` ...
:func:`gpu_apply_update`                :func:`kernels.apply_update`
:func:`gpu_gather_batch`                :func:`kernels.gather_batch`
:func:`gpu_train_epoch`                 :func:`kernels.train_epoch`
:func:`gpu_predict_log_proba`           :func:`kernels.predict_log_proba`
:func:`gpu_evaluate`                    loss and accuracy of ``predict_log_proba``'s output
:func:`gpu_all_finite`                  ``numpy.isfinite(a).all()``
======================================  ===================================================

This subpackage is imported only on demand: ``import fastann.kernels`` never imports
``numba.cuda``. Importing it needs ``numba-cuda`` (``pip install
"fastann[cuda]"``, enough for the simulator); running real kernels also needs
an NVIDIA driver, a GPU and the compiler libraries NVVM and NVRTC (``pip
install "fastann[cuda13]"`` or ``"fastann[cuda12]"``, or a CUDA toolkit). Under the Numba CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before ``numba.cuda`` is first imported) the
same code runs on the CPU, one Python thread per CUDA thread: correct but
very slow, which is how the tests in ``tests/cuda`` run without a GPU.
Launch-shape defaults shrink under the simulator (see :data:`SIMULATOR`).
"""
import importlib.util

if importlib.util.find_spec("numba_cuda") is None:  # pragma: no cover - depends on the env
    raise ImportError('fastann.kernels.cuda needs the numba-cuda package: pip install '
                      '"fastann[cuda13]" (NVIDIA driver >= 580) or "fastann[cuda12]" (>= 525); '
                      '"fastann[cuda]" for the CUDA simulator only')

from ._launch import (DEFAULT_DEPTH, DEFAULT_LANES, DEFAULT_PER_THREAD, DEFAULT_ROWS_PER_BLOCK,
                      DEFAULT_THREADS, DEFAULT_TILE, PLAN_FIELDS, SIMULATOR, WARP,
                      simulator_pacing)
from .batching import gpu_gather_batch, gpu_gather_rows
from .dense import gpu_dense_backward, gpu_dense_forward
from .epoch import (GpuTrainingBuffers, InferenceProgram, TrainingProgram, gpu_all_finite,
                    gpu_apply_update, gpu_evaluate, gpu_predict_log_proba, gpu_train_epoch,
                    inference_plan, launches_per_step, training_plan)
from .loss import gpu_log_softmax, gpu_softmax_cross_entropy
from .optimizers import (gpu_adam_update, gpu_momentum_update, gpu_nesterov_update,
                         gpu_sgd_update)

__all__ = [
    "SIMULATOR", "DEFAULT_TILE", "DEFAULT_PER_THREAD", "DEFAULT_DEPTH", "DEFAULT_THREADS", "DEFAULT_ROWS_PER_BLOCK", "DEFAULT_LANES",
    "WARP", "PLAN_FIELDS", "simulator_pacing",
    "gpu_gather_batch", "gpu_gather_rows", "gpu_dense_forward", "gpu_dense_backward",
    "gpu_softmax_cross_entropy", "gpu_log_softmax", "gpu_sgd_update", "gpu_momentum_update",
    "gpu_nesterov_update", "gpu_adam_update", "gpu_apply_update", "gpu_train_epoch",
    "gpu_predict_log_proba", "gpu_evaluate", "gpu_all_finite", "launches_per_step",
    "GpuTrainingBuffers", "TrainingProgram", "InferenceProgram", "training_plan",
    "inference_plan",
]


def _drop_stale_cuda_cache():
    """Numba-cuda's ``cache=True`` checks only the defining file's time stamp, like Numba's:
    after any change below ``kernels/`` the cached CUDA kernels are dropped once
    (:func:`fastann.kernels._drop_stale_numba_cache`; nothing under the simulator)."""
    from .. import _drop_stale_numba_cache
    from . import batching, epoch
    return _drop_stale_numba_cache([batching._gather, batching._gather_rows, epoch._reset,
                                    epoch._any_nonfinite])


_drop_stale_cuda_cache()

if SIMULATOR:
    from ._simulator import guard_shared_arrays
    guard_shared_arrays()
