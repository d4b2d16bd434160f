"""Exceptions and warnings raised by fastann.

``NotFittedError`` and ``DataConversionWarning`` are scikit-learn's own
classes, so code written for either library catches them.
"""
from sklearn.exceptions import DataConversionWarning, NotFittedError

__all__ = ["DataConversionWarning", "ModelFileError", "NotFittedError"]


class ModelFileError(ValueError):
    """A model file is truncated, corrupted, of an unknown version or not a fastann file."""
