"""The exception raised by every dataset reader and loader."""

__all__ = ["DatasetError"]


class DatasetError(ValueError):
    """A data file is missing, malformed, or could not be obtained.

    A subclass of ``ValueError``; the message names the offending file (and
    line, for CSV files) where there is one.
    """
