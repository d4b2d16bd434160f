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
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import kernels
from .container import CLASS_KINDS, check_classes, check_finite, classes_array, open_archive, \
    write_archive
from .exceptions import ModelFileError

FORMAT = "fastann-checkpoint"
FORMAT_VERSION = 2
OPTIMIZER_STATE = ("velocity", "m", "v")
#: NumPy bit generators whose state a checkpoint may hold.
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
# Arrays inside a generator state: small unsigned/signed integers (MT19937's key).
_STATE_ARRAY_DTYPE = re.compile(r"[<>|=]?[ui][1248]")
_STATE_ARRAY_MAX = 4096


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
    """A new ``numpy.random.Generator`` in the state returned by :func:`generator_state`.

    Raises
    ------
    ValueError
        ``state`` is not the state of one of :data:`BIT_GENERATORS` (only
        those classes are ever instantiated; arrays in it must be short lists
        of integers).
    """
    if not isinstance(state, dict) or state.get("bit_generator") not in BIT_GENERATORS:
        name = state.get("bit_generator") if isinstance(state, dict) else state
        raise ValueError(f"not the state of a NumPy bit generator "
                         f"({', '.join(BIT_GENERATORS)}): bit_generator {name!r}")
    state = _decode(state)
    bit_generator = getattr(np.random, state["bit_generator"])()
    try:
        bit_generator.state = state
    except (TypeError, KeyError, OverflowError, IndexError, AttributeError) as exc:
        raise ValueError(f"invalid {state['bit_generator']} state ({exc})") from exc
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
            items, dtype = value["__ndarray__"], value.get("dtype")
            if (not isinstance(dtype, str) or not _STATE_ARRAY_DTYPE.fullmatch(dtype)
                    or not isinstance(items, list) or len(items) > _STATE_ARRAY_MAX
                    or not all(isinstance(i, int) and not isinstance(i, bool) for i in items)):
                raise ValueError("a generator state array must be a short list of integers "
                                 "with an integer dtype")
            try:
                return np.array(items, dtype=dtype)
            except OverflowError as exc:
                raise ValueError(f"generator state array out of range ({exc})") from exc
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

    The header is validated first (types, ranges, generator states that
    restore), then only the expected arrays are read, each after its declared
    shape and dtype have been compared with the header
    (:class:`fastann.container.Archive`); all must be finite.

    Returns
    -------
    CheckpointState
        ``best_weights`` is the flat best parameter vector, or None.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        Not a readable fastann checkpoint of a supported version, a header
        field of the wrong type or range, missing arrays or arrays that do not
        fit the header, or non-finite values; the message names the file and
        the field or array.
    """
    with open_archive(path, FORMAT, {1, FORMAT_VERSION}, kind="checkpoint",
                      error=CheckpointError) as archive:
        sizes = archive.layer_sizes_field()
        params = archive.params_field()
        header = dict(
            n_iter=archive.int_field("n_iter"), t=archive.int_field("t"),
            history=archive.history_field(), finished=archive.bool_field("finished"),
            rng_state=_generator_field(archive, "rng_state"),
            initial_rng_state=_generator_field(archive, "initial_rng_state"),
            data=archive.dict_field("data"),
            stale=archive.int_field("stale"),
            fastann_version=archive.str_field("fastann_version", default=""))
        best_loss = archive.number_field("best_loss", allow_none=True)
        dtype = np.dtype(params.get("dtype", "float32"))
        n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))

        def vector(name, optional=True):
            return archive.array(name, [(0,), (n_params,)] if optional else (n_params,), "f",
                                 dtype)

        if archive.version == 1:
            solver = params.get("solver", "adam")
            parameters, best = vector("flat_params", False), vector("best_params")
            first, second = vector("optimizer_state1"), vector("optimizer_state2")
            adam, empty = solver in ("adam", "adamw"), first[:0]
            optimizer_state = {"velocity": first if solver in ("momentum", "nesterov") else empty,
                               "m": first if adam else empty, "v": second if adam else empty}
        else:
            parameters, best = vector("parameters", False), vector("best_parameters")
            optimizer_state = {name: vector(name) for name in OPTIMIZER_STATE}
        if (best_loss is None) != (best.size == 0):
            raise archive.error("best_loss and the best parameters must be given together "
                                f"(best_loss {best_loss}, {best.size} best parameters)",
                                field="best_loss")
        solver = params.get("solver", "adam")
        if solver in kernels.OPTIMIZERS or solver == "gd":
            code = kernels.OPTIMIZERS["sgd" if solver == "gd" else solver]
            for name, size in kernels.optimizer_state_sizes(code, n_params).items():
                if optimizer_state[name].size != size:
                    found = optimizer_state[name].size
                    raise archive.error(f"optimizer state {name!r} has {found} values; solver "
                                        f"{solver!r} keeps {size}",
                                        field="params.solver")
        classes = archive.array("classes", (sizes[-1],), CLASS_KINDS)
        scale = archive.array("normalization_scale", (sizes[0],), "f", dtype)
        shift = archive.array("normalization_shift", (sizes[0],), "f", dtype)
        params = archive.check_hidden_layers(params, sizes)
        check_classes(archive, classes)
        for name, array in [("parameters", parameters), ("best_parameters", best),
                            ("normalization_scale", scale), ("normalization_shift", shift),
                            *optimizer_state.items()]:
            check_finite(archive, name, array)
    return CheckpointState(
        hyperparameters=params, layer_sizes=sizes, classes=classes,
        normalization_scale=scale, normalization_shift=shift, parameters=parameters,
        optimizer_state=optimizer_state,
        best_loss=math.inf if best_loss is None else best_loss,
        best_weights=best if best.size else None, **header)


def _generator_field(archive, name):
    """A header field holding a generator state that :func:`restore_generator` accepts."""
    value = archive.dict_field(name)
    try:
        restore_generator(value)
    except ValueError as exc:
        raise archive.error(str(exc), field=name) from None
    return value


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
