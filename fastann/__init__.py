"""fastann: fast fully-connected neural networks (MLPs) for MNIST-style data.

The hot loops are Numba kernels (:mod:`fastann.kernels`, the repository's
``kernels/`` folder); this package validates input, dispatches to a backend
(:mod:`fastann.backends`) and records. Dependencies point one way:
``cli -> model -> training -> backends -> kernels`` and
``model -> persistence/checkpoint -> container -> files``.

>>> from fastann import MLPClassifier
>>> from fastann.datasets import load_mnist
>>> X, y = load_mnist("train")                               # doctest: +SKIP
>>> model = MLPClassifier(hidden_layer_sizes=(256,)).fit(X, y)  # doctest: +SKIP
"""
from ._version import __version__
from .exceptions import DataConversionWarning, ModelFileError, NotFittedError
from .model import MLPClassifier, load

__all__ = ["MLPClassifier", "load", "NotFittedError", "ModelFileError",
           "DataConversionWarning", "__version__"]
