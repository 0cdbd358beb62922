"""Atomic file writes: a file is either the old one or the complete new one.

Everything is written to a temporary file in the same folder, flushed to disk and renamed
into place, so an interrupted run (a crash, a killed job, a full disk) never leaves a
truncated checkpoint, table, store part or plot behind. Every package writes its files
through these helpers. A full disk (or quota) ends in a :class:`~beats_core.errors.DiskFullError`
that names the file, whichever library was writing it: write through Python file objects
(``torch.save(obj, file)``, not a path), so that the disk's error reaches these helpers.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from beats_core.errors import DiskFullError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``.

    Write the file at the yielded path (any library that takes a file name will do). If
    the block raises, the temporary file is removed and ``path`` is left untouched.

    Args:
        path: the file to write; its folder is created if needed.

    Yields:
        The temporary path to write.

    Raises:
        DiskFullError: the disk or the quota is full (the message names ``path``); the
            temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        _raise_if_disk_full(e, path)
        raise
    os.close(handle)
    try:
        yield Path(temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates the file private to its owner
        os.replace(temporary, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        _raise_if_disk_full(e, path)
        raise


def _raise_if_disk_full(error: BaseException, path: Path) -> None:
    """Raise a DiskFullError naming ``path`` if ``error`` comes from a full disk or quota.

    Libraries that write through a Python file object report the disk's ``OSError`` as the
    cause or context of their own error (``torch.save`` raises a ``RuntimeError`` while
    handling it), so the whole chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"disk full: cannot write {str(path)!r} ({os.strerror(current.errno)}); free space on the "
                "disk of that folder (or write to another disk) and try again"
            ) from error
        current = current.__cause__ or current.__context__


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically and return the path.

    File names that are not valid UTF-8 (which Python holds as surrogate escapes) are
    written as their original bytes, so a table of paths names the files that exist.
    """
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8", errors="surrogateescape")
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)
