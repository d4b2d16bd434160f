"""fastann's compiled kernels (``fastann.kernels``): pure numeric Numba functions, no I/O.

The source lives in the repository's top-level ``kernels/`` folder and is
installed as the subpackage ``fastann.kernels`` (no top-level ``kernels``
package is installed).

Every kernel works on NumPy arrays and writes into buffers its caller owns;
the Python package :mod:`fastann` validates input, allocates once and
dispatches. Integer codes select activations and optimizers inside compiled
code.
"""
from .activations import (IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH,
                          activation_backward_inplace, bias_activation_inplace)
from .augment import (AFFINE, AUGMENTATIONS, ELASTIC, NO_AUGMENT, SHIFT, blur_matrix,
                      gather_augmented_batch, gaussian_kernel)
from .batching import gather_batch, shuffle_inplace
from .dense import column_sums, dense_backward, dense_forward
from .epoch import apply_update, micro_batches, predict_log_proba, train_epoch
from .epoch_options import train_epoch_with_options
from .dropout import dropout_mask
from .fused import compressed_rows, train_epoch_parallel
from .sparse import gather_sparse_batch, sparse_dense_backward, sparse_dense_forward
from .loss import log_softmax_inplace, softmax_cross_entropy
from .network import (activation_offsets, backward_network, forward_network,
                      parameter_offsets)
from .optimizers import (ADAM, ADAMW, MOMENTUM, NESTEROV, SGD, adam_step_factors,
                         adam_update, momentum_update, nesterov_update, sgd_update)
from .structs import (Augmentation, Dropout, EpochOptions, Hyperparameters, Network,
                      Normalization, OptimizerState, ParallelBuffers, PredictionBuffers, SampleWeights,
                      TrainingBuffers, activation_buffer_length, epoch_options,
                      hyperparameters, optimizer_state_sizes, parallel_buffer_shapes,
                      training_buffer_shapes)

ACTIVATIONS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH,
               "relu": RELU, "leaky_relu": LEAKY_RELU}
OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV,
              "adam": ADAM, "adamw": ADAMW}


def _yield_idle_cores():
    """Let Numba's OpenMP workers sleep soon after a parallel region instead of spinning.

    GNU OpenMP spins about 300,000 times (milliseconds) before sleeping, which
    is fast on an idle machine and disastrous on a shared one: on 2 busy cores a
    2-thread epoch of workload S took 12.3 s spinning and 0.46 s with
    ``OMP_WAIT_POLICY=PASSIVE`` (one run, same load). 10,000 spins
    keeps wake-ups fast between the back-to-back regions of a training step.
    The user's own ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` always wins; read
    by libgomp when it loads, i.e. before the first parallel kernel runs.
    """
    import os
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")


_yield_idle_cores()


def _drop_stale_numba_cache(dispatchers=None):
    """Recompile every kernel once after any kernel source file changed (see ``_cache``).

    Parameters
    ----------
    dispatchers : iterable of compiled functions, optional
        Kernels compiled with ``cache=True`` whose on-disk cache directories
        are checked (each folder once): by default the CPU epoch kernel's
        (``kernels/__pycache__``); :mod:`fastann.kernels.cuda` passes its own
        kernels (``kernels/cuda/__pycache__``) when it is imported. The hash
        covers every source file below ``kernels/``, CUDA files included.

    Returns
    -------
    int
        Cache files deleted.
    """
    import os

    import numba

    from . import _cache

    if dispatchers is None:
        from .epoch import train_epoch
        dispatchers = [train_epoch]
    # Where Numba keeps each dispatcher's files (None: no on-disk caching, e.g. the simulator).
    cache_dirs = {getattr(getattr(d, "_cache", None), "_cache_path", None) for d in dispatchers}
    cache_dirs.discard(None)
    if not cache_dirs:
        return 0
    here = os.path.dirname(os.path.abspath(__file__))
    return _cache.clear_stale_cache(_cache.source_digest(here, numba.__version__), cache_dirs)


_drop_stale_numba_cache()
