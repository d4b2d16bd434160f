"""The hyper-parameters of ``MLPClassifier``: allowed values, as scikit-learn constraints.

Checked in ``fit`` (scikit-learn's ``_validate_params``), named in every
message; the command line offers the same choices.
"""
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from . import kernels
from .backends import DEVICES
from .initializers import INITIALIZERS
from .schedules import SCHEDULES

ACTIVATIONS = tuple(kernels.ACTIVATIONS)
SOLVERS = ("gd",) + tuple(kernels.OPTIMIZERS)
INITS = ("auto",) + tuple(INITIALIZERS)
NORMALIZATIONS = ("auto", "simple", "standard", "none")
DTYPES = ("float32", "float64")

_AT_LEAST_0 = Interval(Real, 0, None, closed="left")
_ABOVE_0 = Interval(Real, 0, None, closed="neither")
_COUNT = Interval(Integral, 1, None, closed="left")
_UNIT = Interval(Real, 0, 1, closed="left")

CONSTRAINTS = {
    "hidden_layer_sizes": ["array-like", _COUNT],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "solver": [StrOptions(set(SOLVERS))],
    "learning_rate": [_ABOVE_0],
    "momentum": [_UNIT],
    "beta_1": [_UNIT],
    "beta_2": [_UNIT],
    "epsilon": [_ABOVE_0],
    "batch_size": [_COUNT],
    "epochs": [_COUNT],
    "init": [StrOptions(set(INITS))],
    "normalization": [StrOptions(set(NORMALIZATIONS))],
    "l1": [_AT_LEAST_0],
    "l2": [_AT_LEAST_0],
    "lr_schedule": [StrOptions(set(SCHEDULES))],
    "lr_decay": [Interval(Real, 0, 1, closed="right")],
    "lr_step_size": [_COUNT],
    "lr_patience": [_COUNT],
    "min_lr": [_AT_LEAST_0],
    "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
    "validation_fraction": [_UNIT],
    "early_stopping": ["boolean"],
    "n_iter_no_change": [_COUNT],
    "tol": [_AT_LEAST_0],
    "random_state": [Interval(Integral, 0, None, closed="left"), np.random.Generator, None],
    "dtype": [StrOptions(set(DTYPES)), type, np.dtype],
    "n_threads": [_COUNT, None],
    "device": [StrOptions(set(DEVICES))],
    "verbose": ["verbose"],
}


def hidden_widths(hidden_layer_sizes):
    """``hidden_layer_sizes`` as a tuple of positive ints (an int is one layer).

    Raises
    ------
    ValueError
        A width that is not a positive integer.
    """
    hidden = hidden_layer_sizes
    hidden = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
    if not all(isinstance(w, Integral) and not isinstance(w, bool) and w > 0 for w in hidden):
        raise ValueError(f"hidden_layer_sizes must be a tuple of positive integers, "
                         f"got {hidden_layer_sizes!r}")
    return hidden


def float_dtype(dtype):
    """``dtype`` as a NumPy float32/float64 dtype; ValueError for anything else."""
    if np.dtype(dtype).name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return np.dtype(dtype)


def check_parameters(params):
    """Check ``MLPClassifier`` keyword arguments as ``fit`` would, without an estimator.

    Parameters
    ----------
    params : dict
        Any subset of the constructor's parameters.

    Raises
    ------
    ValueError
        An unknown name, or a value outside its constraint (scikit-learn's
        ``InvalidParameterError``, also a ``TypeError``, names the parameter).
    """
    unknown = sorted(set(params) - set(CONSTRAINTS))
    if unknown:
        raise ValueError(f"unknown MLPClassifier parameter(s): {', '.join(unknown)}")
    validate_parameter_constraints({name: CONSTRAINTS[name] for name in params}, params,
                                   caller_name="MLPClassifier")
    if "hidden_layer_sizes" in params:
        hidden_widths(params["hidden_layer_sizes"])
    if "dtype" in params:
        float_dtype(params["dtype"])
