"""argparse ``type=`` converters shared by the ``fastann`` commands.

A module of its own so that :mod:`fastann.cli` and :mod:`fastann.experiments`
can both use them without importing each other.
"""
import argparse

__all__ = ["positive_int"]


def positive_int(text):
    """Parse a positive integer (``--epochs 10``); anything else is a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
