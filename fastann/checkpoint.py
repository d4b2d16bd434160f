"""Training checkpoints: everything needed to continue a ``fit`` bit-identically.

Written after every epoch by ``MLPClassifier.fit(..., checkpoint=PATH)``
(:class:`fastann.callbacks.ModelCheckpoint`) and read by
:meth:`fastann.MLPClassifier.resume`. One ``.npz`` archive
(:mod:`fastann.container`):

- ``header``: JSON with ``format`` ("fastann-checkpoint"), ``format_version``
  (2), ``fastann_version``, ``layer_sizes``, ``params`` (hyper-parameters),
  ``n_iter``, ``t``, ``history``, ``finished``, ``rng_state`` (the random
  Generator's ``bit_generator.state`` at the start of the next epoch),
  ``initial_rng_state`` (before the validation split, to redo it), early
  stopping's ``best_loss`` and ``stale`` and a fingerprint of the training data;
- ``parameters``: the flat parameter vector (kernel layout);
- ``velocity``, ``m``, ``v``: the optimizer's state (empty when unused);
- ``best_parameters``: early stopping's best weights (empty if none);
- ``classes``, ``normalization_scale``, ``normalization_shift``.

Version 1 files (``flat_params``, ``optimizer_state1``/``optimizer_state2``,
``best_params``) are still read: state 1 is the velocity for momentum and
Nesterov and Adam's ``m`` otherwise, state 2 Adam's ``v``.
"""
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import kernels
from .container import classes_array, read_archive, write_archive
from .exceptions import ModelFileError

FORMAT = "fastann-checkpoint"
FORMAT_VERSION = 2
OPTIMIZER_STATE = ("velocity", "m", "v")


class CheckpointError(ModelFileError):
    """A checkpoint file is corrupt, of another format, or does not fit the data given."""


@dataclass
class CheckpointState:
    """What a checkpoint holds (arrays are host copies).

    ``best_weights`` is early stopping's best ``get_weights()`` list (Keras
    order) when writing, and the flat best parameter vector (or None) when read.
    """

    hyperparameters: dict
    layer_sizes: list
    classes: np.ndarray
    normalization_scale: np.ndarray
    normalization_shift: np.ndarray
    parameters: np.ndarray
    optimizer_state: dict
    n_iter: int
    t: int
    history: list
    finished: bool
    rng_state: dict
    initial_rng_state: dict
    data: dict
    best_loss: float = None
    best_weights: object = None
    stale: int = 0
    fastann_version: str = field(default="")


def generator_state(rng):
    """JSON-able copy of a numpy Generator's ``bit_generator.state``."""
    return _encode(rng.bit_generator.state)


def restore_generator(state):
    """A new ``numpy.random.Generator`` in the state returned by :func:`generator_state`."""
    state = _decode(state)
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _encode(value):
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"])
        return {k: _decode(v) for k, v in value.items()}
    return value


def data_fingerprint(X, y_idx):
    """Shape and CRC-32 of the training data, to refuse resuming on other data."""
    X = np.ascontiguousarray(X)
    y_idx = np.ascontiguousarray(y_idx, dtype=np.int64)
    return {"shape": list(X.shape), "dtype": X.dtype.str,
            "crc32_X": zlib.crc32(X.view(np.uint8).ravel()) if X.size else 0,
            "crc32_y": zlib.crc32(y_idx.view(np.uint8)) if y_idx.size else 0}


def write_checkpoint(path, state, version=""):
    """Write a :class:`CheckpointState` atomically to ``path`` (see the module docstring)."""
    params = state.parameters
    best = state.best_weights
    if best is None:
        best_flat = params[:0]
    elif isinstance(best, np.ndarray):
        best_flat = best
    else:  # Keras order [W_0, b_0, W_1, b_1, ...] -> kernel layout
        best_flat = np.concatenate([w.ravel() for w in best[0::2]]
                                   + [b.ravel() for b in best[1::2]])
    best_loss = state.best_loss
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "fastann_version": version or state.fastann_version,
        "layer_sizes": [int(s) for s in state.layer_sizes],
        "params": state.hyperparameters, "n_iter": int(state.n_iter), "t": int(state.t),
        "history": state.history, "finished": bool(state.finished),
        "rng_state": state.rng_state, "initial_rng_state": state.initial_rng_state,
        "best_loss": None if best_loss is None or not math.isfinite(best_loss)
        else float(best_loss),
        "stale": int(state.stale), "data": state.data,
    }
    arrays = {"parameters": params, "best_parameters": best_flat,
              "classes": classes_array(state.classes),
              "normalization_scale": state.normalization_scale,
              "normalization_shift": state.normalization_shift}
    for name in OPTIMIZER_STATE:
        arrays[name] = state.optimizer_state.get(name, params[:0])
    write_archive(path, header, arrays)


def read_checkpoint(path):
    """Read a checkpoint written by :func:`write_checkpoint` (or a version 1 file).

    Returns
    -------
    CheckpointState
        ``best_weights`` is the flat best parameter vector, or None.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        Not a readable fastann checkpoint of a supported version, or entries missing.
    """
    header, arrays = read_archive(path, FORMAT, {1, FORMAT_VERSION}, kind="checkpoint",
                                   error=CheckpointError)
    try:
        if header["format_version"] == 1:
            solver = header["params"]["solver"]
            first, second = arrays["optimizer_state1"], arrays["optimizer_state2"]
            momentum = solver in ("momentum", "nesterov")
            empty = first[:0]
            arrays["parameters"] = arrays["flat_params"]
            arrays["best_parameters"] = arrays["best_params"]
            arrays["velocity"] = first if momentum else empty
            arrays["m"] = first if solver in ("adam", "adamw") else empty
            arrays["v"] = second if solver in ("adam", "adamw") else empty
        best = arrays["best_parameters"]
        return CheckpointState(
            hyperparameters=dict(header["params"]),
            layer_sizes=[int(s) for s in header["layer_sizes"]],
            classes=arrays["classes"], normalization_scale=arrays["normalization_scale"],
            normalization_shift=arrays["normalization_shift"],
            parameters=arrays["parameters"],
            optimizer_state={name: arrays[name] for name in OPTIMIZER_STATE},
            n_iter=int(header["n_iter"]), t=int(header["t"]),
            history=list(header["history"]), finished=bool(header["finished"]),
            rng_state=header["rng_state"], initial_rng_state=header["initial_rng_state"],
            data=header["data"],
            best_loss=math.inf if header["best_loss"] is None else float(header["best_loss"]),
            best_weights=best if best.size else None, stale=int(header["stale"]),
            fastann_version=str(header.get("fastann_version", "")))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: malformed checkpoint ({exc})") from exc


def check_fits(state, path, hidden, n_features, n_classes, optimizer):
    """Raise :class:`CheckpointError` unless ``state``'s arrays fit this architecture.

    Parameters
    ----------
    state : CheckpointState
    path : str or path-like, for the message
    hidden : tuple of int
        Hidden widths of the model being resumed.
    n_features, n_classes : int
        Of the data given to resume.
    optimizer : int
        Optimizer code (which state arrays must be present).
    """
    sizes = np.array(state.layer_sizes, np.int64)
    n_params = int(kernels.parameter_offsets(sizes)[1][-1])
    expected = kernels.optimizer_state_sizes(optimizer, n_params)
    if (state.parameters.shape != (n_params,) or tuple(sizes[1:-1]) != tuple(hidden)
            or sizes[0] != n_features or sizes[-1] != n_classes
            or any(state.optimizer_state[k].shape != (n,) for k, n in expected.items())):
        raise CheckpointError(f"{path}: array shapes do not match its layer sizes")
