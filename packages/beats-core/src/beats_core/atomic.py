"""Atomic file writes: a file is either the old one or the complete new one.

Everything is written to a temporary file in the same folder, flushed to disk and renamed
into place, so an interrupted run (a crash, a killed job, a full disk) never leaves a
truncated checkpoint, table, store part or plot behind. Every package writes its files
through these helpers.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(temporary, 0o644)  # mkstemp creates the file private to its owner
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


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
