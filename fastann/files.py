"""Atomic file writes: a file appears under its final name only once complete.

The temporary file of a write to ``DIR/NAME`` is ``DIR/.NAME.PID-XXXXXXXX.part``
(PID of the writing process, 8 random hex digits). A process killed while
writing (``kill -9``, power loss) leaves its ``.part`` file behind; the next
write to the same ``NAME`` removes such leftovers (:func:`remove_stale_parts`).
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import IO, Iterator

#: A leftover whose writer still seems to run (same PID, maybe reused) is
#: removed once it has not been modified for this many seconds.
STALE_PART_SECONDS = 24 * 3600

# Temporary files this process is writing right now (never removed as stale).
_writing: set[str] = set()
_writing_lock = threading.Lock()


def part_name(path: str | os.PathLike) -> Path:
    """A fresh temporary name for a write to ``path``: ``.NAME.PID-XXXXXXXX.part`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (True when that cannot be told)."""
    if pid <= 0:
        return False
    if os.name != "posix":  # pragma: no cover - no cheap, safe probe elsewhere
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_stale_parts(path: str | os.PathLike, *,
                       max_age: float = STALE_PART_SECONDS) -> list[Path]:
    """Remove temporary files that killed writes to ``path`` left behind.

    A ``.NAME.PID-XXXXXXXX.part`` file next to ``path`` is stale when its
    process no longer exists, when it has this process's PID but is not being
    written by it (a PID reused after a crash), or when it has not been
    modified for ``max_age`` seconds. Files in progress in this process are
    never removed; nothing but exact ``.part`` names of ``path`` is touched.

    Parameters
    ----------
    path : str or os.PathLike
        The target whose leftovers to remove.
    max_age : float
        Seconds after which a leftover of a live PID counts as stale.

    Returns
    -------
    list of pathlib.Path
        The files removed. Errors (a missing directory, a file removed
        meanwhile, no permission) are ignored: cleaning is best effort.
    """
    path = Path(path)
    pattern = re.compile(r"\." + re.escape(path.name) + r"\.(\d{1,10})-[0-9a-f]{8}\.part")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        with _writing_lock:
            if os.path.abspath(entry.path) in _writing:
                continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        pid = int(match.group(1))
        stale = (not _pid_alive(pid) or pid == os.getpid()
                 or now - info.st_mtime > max_age)
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Open a temporary file next to ``path`` for binary writing; on success move it onto ``path``.

    The temporary file lives in the same directory (so :func:`os.replace` is
    atomic), is flushed and fsync'ed before the rename, and is deleted if the
    ``with`` body raises; ``path`` then keeps its previous content, if any.
    Missing parent directories are created. The file gets the usual mode
    (``0o666`` minus the umask), unlike :func:`tempfile.mkstemp`'s ``0o600``.
    Leftover temporary files of earlier writes to ``path`` that were killed
    are removed first (:func:`remove_stale_parts`).

    Parameters
    ----------
    path : str or os.PathLike

    Yields
    ------
    file object opened for binary writing

    Raises
    ------
    OSError
        The directory cannot be created or written, ``path`` is a directory,
        or the disk is full.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(path)
    tmp_name = part_name(path)
    key = os.path.abspath(tmp_name)
    with _writing_lock:  # before the file exists, so no other thread takes it for stale
        _writing.add(key)
    try:
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except BaseException:
        with _writing_lock:
            _writing.discard(key)
        raise
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
    finally:
        with _writing_lock:
            _writing.discard(key)
