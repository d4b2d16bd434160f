"""Keep Numba's on-disk cache of a package's kernels consistent with their source.

Numba (``cache=True``) checks only the modification time and size of the file
that *defines* a function before reusing its cached machine code; a kernel
that inlines or calls a function from another file keeps the old callee's code
after that file changes (a documented limitation, numba issue #1833). :func:`clear_stale_cache` closes
that gap for a whole package: it hashes every source file of the package and,
when the hash differs from the one recorded beside the cache, deletes the
package's cached index and data files, so that every kernel is recompiled once.
"""
import hashlib
import os
from pathlib import Path

STAMP = "fastann-kernels.sha256"


def source_digest(package_dir, numba_version):
    """SHA-256 of every ``*.py`` file below ``package_dir`` and the Numba version.

    Parameters
    ----------
    package_dir : str or path-like
    numba_version : str

    Returns
    -------
    str
        Hex digest; changes when any source file's path or bytes change.
    """
    root = Path(package_dir)
    digest = hashlib.sha256(numba_version.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def clear_stale_cache(digest, cache_dirs):
    """Delete Numba cache files in ``cache_dirs`` unless they were built from ``digest``.

    Parameters
    ----------
    digest : str
        From :func:`source_digest`.
    cache_dirs : iterable of str or path-like
        Directories holding the package's ``*.nbi``/``*.nbc`` files (Numba's
        own choice: ``__pycache__`` beside the source, ``NUMBA_CACHE_DIR``,
        or the user cache directory).

    Returns
    -------
    int
        Number of files deleted. Directories that cannot be written are
        skipped (Numba then cannot write there either).
    """
    removed = 0
    for directory in {Path(d) for d in cache_dirs}:
        stamp = directory / STAMP
        try:
            if stamp.read_text() == digest:
                continue
        except OSError:
            pass
        if not directory.is_dir():
            continue
        try:
            for entry in directory.iterdir():
                if entry.suffix in (".nbi", ".nbc"):
                    entry.unlink(missing_ok=True)
                    removed += 1
            partial = directory / f".{STAMP}.{os.getpid()}"
            partial.write_text(digest)
            os.replace(partial, stamp)
        except OSError:
            continue
    return removed
