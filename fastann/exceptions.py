"""Exceptions and warnings raised by fastann."""
import functools
import sys


class NotFittedError(ValueError, AttributeError):
    """A model method that needs a fitted model was called before ``fit``.

    Inherits from ``ValueError`` and ``AttributeError`` like scikit-learn's
    exception of the same name, so code written for either catches it; when
    scikit-learn is loaded, the instances raised (see :func:`not_fitted_error`)
    are also instances of ``sklearn.exceptions.NotFittedError``.
    """


def not_fitted_error(message):
    """The :class:`NotFittedError` to raise, also scikit-learn's when scikit-learn is loaded.

    fastann never imports scikit-learn; but if the caller already has
    (pipelines, meta-estimators, scikit-learn's estimator checks), the error is
    an instance of a subclass of both ``fastann.NotFittedError`` and
    ``sklearn.exceptions.NotFittedError``, so ``except`` clauses for either catch it.

    Parameters
    ----------
    message : str

    Returns
    -------
    NotFittedError
    """
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    sklearn_error = getattr(sklearn_exceptions, "NotFittedError", None)
    if sklearn_error is None or not isinstance(sklearn_error, type):
        return NotFittedError(message)
    return _sklearn_compatible_not_fitted_error(sklearn_error)(message)


@functools.lru_cache(maxsize=None)
def _sklearn_compatible_not_fitted_error(sklearn_error):
    return type("NotFittedError", (NotFittedError, sklearn_error),
                {"__module__": __name__, "__qualname__": "NotFittedError",
                 "__doc__": NotFittedError.__doc__})


class DataConversionWarning(UserWarning):
    """Input data was converted to the form fastann needs (e.g. a column-vector ``y``)."""


class ModelFileError(ValueError):
    """A model file is truncated, corrupted, of an unknown version or not a fastann file."""
