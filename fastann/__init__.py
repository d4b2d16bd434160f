"""fastann: fast fully-connected neural networks (MLPs) for MNIST-style data.

The hot loops are Numba kernels (the top-level :mod:`kernels` package); this
package validates input, allocates buffers once, dispatches and records.

>>> from fastann import MLPClassifier
>>> from fastann.datasets import load_mnist
>>> X, y = load_mnist("train")                               # doctest: +SKIP
>>> model = MLPClassifier(hidden_layer_sizes=(256,)).fit(X, y)  # doctest: +SKIP
"""
__version__ = "0.1.0"

from .exceptions import DataConversionWarning, ModelFileError, NotFittedError
from .model import MLPClassifier
from .persistence import load

__all__ = ["MLPClassifier", "load", "NotFittedError", "ModelFileError",
           "DataConversionWarning", "__version__"]
