"""fastann: fast fully-connected neural networks (MLPs) for MNIST-style data.

The hot loops are Numba kernels (:mod:`fastann.kernels`, the repository's
``kernels/`` folder); this package validates input, dispatches to a backend
(:mod:`fastann.backends`) and records. Dependencies point one way:
``cli -> model -> training -> backends -> kernels`` and
``model -> persistence/checkpoint -> container -> files``.

The names below are imported on first use (PEP 562), so that ``import
fastann`` is instant and the ``fastann`` command can answer Ctrl-C during its
start-up (NumPy, scikit-learn and Numba take a second or two to import) with
one line rather than a traceback.

>>> from fastann import MLPClassifier
>>> from fastann.datasets import load_mnist
>>> X, y = load_mnist("train")                               # doctest: +SKIP
>>> model = MLPClassifier(hidden_layer_sizes=(256,)).fit(X, y)  # doctest: +SKIP
"""
import importlib

from ._version import __version__

__all__ = ["MLPClassifier", "load", "NotFittedError", "ModelFileError",
           "DataConversionWarning", "__version__"]

# Public name -> the submodule that defines it.
_EXPORTS = {"MLPClassifier": "model", "load": "model", "NotFittedError": "exceptions",
            "ModelFileError": "exceptions", "DataConversionWarning": "exceptions"}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
