"""CSV files in the ``label,pixel0,...,pixel783`` layout (as on Kaggle)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._common import read_bytes
from .errors import DatasetError

__all__ = ["read_csv"]


def _is_header(row: str) -> bool:
    try:
        [float(cell) for cell in row.split(",")]
    except ValueError:
        return True
    return False


def _first_bad_cell(rows: list[str], line_numbers: list[int]) -> tuple[int, str] | None:
    """Find the first cell that is not a number (only used to report an error)."""
    for number, row in zip(line_numbers, rows):
        cells = row.split(",")
        try:
            np.array(cells, dtype=np.float64)
        except ValueError:
            for cell in cells:
                try:
                    float(cell)
                except ValueError:
                    return number, cell
    return None


def _parse_csv_rows(path: Path, rows: list[str], line_numbers: list[int]) -> np.ndarray:
    # Integers parse ~4x faster than floats, so try them first.
    for dtype in (np.int32, np.float64):
        try:
            return np.loadtxt(rows, delimiter=",", dtype=dtype, comments=None, ndmin=2)
        except ValueError as exc:
            error = exc
    bad = _first_bad_cell(rows, line_numbers)
    if bad is None:
        raise DatasetError(f"{path}: cannot parse as numbers ({error})") from error
    number, cell = bad
    raise DatasetError(f"{path}, line {number}: {cell.strip()!r} is not a number") from error


def read_csv(path: str | os.PathLike, *,
             n_features: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``label,pixel0,...,pixel783`` CSV file (as on Kaggle).

    A first row that is not all numbers is taken as a header and skipped.
    Blank lines are ignored. The file may be gzip-compressed.

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    n_features : int, optional
        Required number of feature columns (e.g. 784).

    Returns
    -------
    X : numpy.ndarray
        Shape ``(n, n_columns - 1)``, C-contiguous; uint8 if every value is an
        integer in 0..255, else float32.
    y : numpy.ndarray
        Shape ``(n,)``; uint8 if the labels are in 0..255, else int64.

    Raises
    ------
    DatasetError
        Naming the file (and line): not UTF-8 text, no data rows, fewer than
        two columns, a row with a different number of columns, a cell that
        is not a number, non-integer labels, a feature count other than
        `n_features`.
    """
    path = Path(path)
    try:
        text = read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file ({exc})") from exc
    lines = text.splitlines()
    line_numbers = [number for number, line in enumerate(lines, 1) if line.strip()]
    rows = [lines[number - 1] for number in line_numbers]
    if not rows:
        raise DatasetError(f"{path}: empty CSV file")
    n_columns = rows[0].count(",") + 1
    for number, row in zip(line_numbers, rows):
        if row.count(",") + 1 != n_columns:
            raise DatasetError(f"{path}, line {number}: {row.count(',') + 1} columns, expected "
                               f"{n_columns} (as on line {line_numbers[0]})")
    if _is_header(rows[0]):
        rows, line_numbers = rows[1:], line_numbers[1:]
    if not rows:
        raise DatasetError(f"{path}: no data rows after the header")
    if n_columns < 2:
        raise DatasetError(f"{path}: need a label column and at least one feature column")
    if n_features is not None and n_columns - 1 != n_features:
        raise DatasetError(f"{path}: {n_columns - 1} feature columns, expected {n_features}")

    values = _parse_csv_rows(path, rows, line_numbers)
    labels, features = values[:, 0], values[:, 1:]
    if not np.array_equal(labels, np.rint(labels)):
        raise DatasetError(f"{path}: labels (first column) must be integers")
    in_byte_range = labels.min() >= 0 and labels.max() <= 255
    y = labels.astype(np.uint8 if in_byte_range else np.int64)
    is_bytes = (features.min() >= 0 and features.max() <= 255
                and (features.dtype.kind == "i" or np.array_equal(features, np.rint(features))))
    X = features.astype(np.uint8 if is_bytes else np.float32, order="C")
    return X, y
