"""Training checkpoints: everything needed to continue a ``fit`` bit-identically.

A checkpoint is one ``.npz`` archive (no pickle; readable with
``np.load(path, allow_pickle=False)``), written atomically after every epoch
by ``MLPClassifier.fit(..., checkpoint=PATH)`` and read by
:meth:`fastann.MLPClassifier.resume`:

- ``header``: 0-d unicode array holding JSON with ``format``
  ("fastann-checkpoint"), ``format_version``, ``fastann_version``,
  ``layer_sizes``, ``params`` (hyper-parameters), ``n_iter``, ``t``,
  ``history``, ``finished``, ``rng_state`` (the random Generator's
  ``bit_generator.state`` at the start of the next epoch), ``initial_rng_state``
  (before the validation split, to redo it), the early-stopping state
  (``best_loss``, ``stale``) and a fingerprint of the training data;
- ``flat_params``: the flat parameter vector (kernel layout);
- ``optimizer_state1``, ``optimizer_state2``: momentum / Adam moments;
- ``best_params``: early stopping's best weights (empty if none);
- ``classes``, ``normalization_scale``, ``normalization_shift``.
"""
import json
import math
import os
import zipfile
import zlib

import numpy as np

from .exceptions import ModelFileError
from .files import atomic_write
from .persistence import _classes_array, _jsonable, _version

FORMAT = "fastann-checkpoint"
FORMAT_VERSION = 1
ARRAYS = ("flat_params", "optimizer_state1", "optimizer_state2", "best_params", "classes",
          "normalization_scale", "normalization_shift")


class CheckpointError(ModelFileError):
    """A checkpoint file is corrupt, of another format, or does not fit the data given."""


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


def save_checkpoint(path, model, params, state1, state2, rng, *, initial_rng_state, fingerprint,
                    best_loss=math.inf, best_params=None, stale=0, finished=False):
    """Write the training state atomically to ``path`` (see the module docstring)."""
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastann_version": _version(),
        "layer_sizes": [int(s) for s in model._sizes_from_coefs()],
        "params": _jsonable(model.get_params()),
        "n_iter": int(model.n_iter_),
        "t": int(model.t_),
        "history": _jsonable(model.history_),
        "finished": bool(finished),
        "rng_state": generator_state(rng),
        "initial_rng_state": initial_rng_state,
        "best_loss": None if not math.isfinite(best_loss) else float(best_loss),
        "stale": int(stale),
        "data": fingerprint,
    }
    arrays = {"header": np.array(json.dumps(header)),
              "flat_params": params, "optimizer_state1": state1, "optimizer_state2": state2,
              "best_params": params[:0] if best_params is None else best_params,
              "classes": _classes_array(model.classes_),
              "normalization_scale": model.normalization_scale_,
              "normalization_shift": model.normalization_shift_}
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load_checkpoint(path):
    """Read a checkpoint; returns its header dict with the arrays added under their names.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        Not a readable fastann checkpoint of a supported version.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(str(arrays["header"]))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, AttributeError,
            TypeError) as exc:
        raise CheckpointError(f"{path}: not a readable fastann checkpoint ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fastann checkpoint")
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {header.get('format_version')!r} "
                              f"is not supported (this fastann reads version {FORMAT_VERSION})")
    missing = [name for name in ARRAYS if name not in arrays]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks entries {missing}")
    for name in ARRAYS:
        header[name] = arrays[name]
    return header
