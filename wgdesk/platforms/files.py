"""Files the helper must not lose or be tricked into: written atomically and durably, never opened
through a symbolic link.

Portable: ``O_NOFOLLOW`` and directory fsync exist on Linux and macOS; on Windows, whose state
directory is protected by its ACL rather than by refusing links, the flag is 0 and a rename is made
durable by NTFS's own journal. (Python opens files close-on-exec already, PEP 446.)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY: int | None = getattr(os, "O_DIRECTORY", None)
_FCHMOD = getattr(os, "fchmod", None)
"""POSIX: the mode set on the file descriptor just created, not through its name."""


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (nothing where a directory cannot be opened)."""
    if _DIRECTORY is None:
        return
    fd = os.open(directory, os.O_RDONLY | _DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: a temporary file beside it (created exclusively, mode ``mode``),
    fsynced, renamed over ``path``, the directory fsynced. The directory is created (0755) if missing."""
    directory = path.parent
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
    try:
        if _FCHMOD is not None:
            _FCHMOD(fd, mode)  # not narrowed by the umask
        else:
            os.chmod(tmp, mode)
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_directory(directory)


def append_durably(path: Path, data: bytes) -> None:
    """Append ``data`` to the existing file ``path`` and fsync it (not through a link)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | NOFOLLOW)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path, limit: int) -> tuple[os.stat_result, bytes]:
    """The status and the first ``limit`` bytes of ``path``, opened without following a link (so the
    status is the file's that was read). Raises `OSError` (`FileNotFoundError` when there is none)."""
    fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    try:
        return os.fstat(fd), os.read(fd, limit)
    finally:
        os.close(fd)


def read_root_owned(path: Path, limit: int) -> bytes | None:
    """`read_file`'s bytes when root owns the file, else None (a file anyone else could have put
    there is not trusted)."""
    status, data = read_file(path, limit)
    return data if status.st_uid == 0 else None
