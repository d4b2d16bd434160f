"""fastann's compiled kernels: pure numeric Numba functions, no I/O, no Python objects.

Every kernel works on NumPy arrays and writes into buffers its caller owns;
the Python package :mod:`fastann` validates input, allocates once and
dispatches. Integer codes select activations and optimizers inside compiled
code.
"""
from .activations import (IDENTITY, LEAKY_RELU, RELU, SIGMOID, TANH,
                          activation_backward_inplace, bias_activation_inplace)
from .batching import gather_batch, shuffle_inplace
from .dense import column_sums, dense_backward, dense_forward
from .epoch import N_HYPER, apply_update, predict_log_proba, train_epoch
from .sparse import gather_sparse_batch, sparse_dense_backward, sparse_dense_forward
from .loss import log_softmax_inplace, softmax_cross_entropy
from .network import (activation_offsets, backward_network, forward_network,
                      parameter_offsets)
from .optimizers import (ADAM, ADAMW, MOMENTUM, NESTEROV, SGD, adam_update,
                         momentum_update, nesterov_update, sgd_update)

ACTIVATIONS = {"identity": IDENTITY, "sigmoid": SIGMOID, "tanh": TANH,
               "relu": RELU, "leaky_relu": LEAKY_RELU}
OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV,
              "adam": ADAM, "adamw": ADAMW}
