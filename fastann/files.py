"""Atomic file writes: a file appears under its final name only once complete."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a temporary file next to ``path`` for binary writing; on success move it onto ``path``.

    The temporary file lives in the same directory (so :func:`os.replace` is
    atomic), is flushed and fsync'ed before the rename, and is deleted if the
    ``with`` body raises; ``path`` then keeps its previous content, if any.
    Missing parent directories are created. The file gets the usual mode
    (``0o666`` minus the umask), unlike :func:`tempfile.mkstemp`'s ``0o600``.

    Parameters
    ----------
    path : str or os.PathLike

    Yields
    ------
    file object opened for binary writing

    Raises
    ------
    OSError
        The directory cannot be created or written, or the disk is full.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
