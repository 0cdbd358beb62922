"""Finding audio files: folders walked safely, lists of paths, and single files.

Every program that turns a user's folder into clips (``beats validate``, ``beats extract``,
``beats train``, the dataset loaders) finds them here, with the same rules, so that no
folder layout can hang it or multiply its rows:

* symbolic links are followed, but each folder is walked once: a link back to a folder
  already walked (a loop such as ``x/up -> ..``) or a second way into one is not followed;
* each file is taken once: the same file reached by a second path (a symbolic or hard link)
  is skipped;
* only regular files are clips: a FIFO (opening it waits for a writer, for ever), a socket
  or a device is skipped, and so are broken links and folders that cannot be read;
* hidden files and folders (names starting with ``.``, such as macOS ``._x.wav``) are
  left out silently;
* names need not be valid UTF-8: undecodable bytes come surrogate-escaped, as Python's
  :mod:`os` functions give them, and such paths open like any other.

What is skipped (other than hidden entries) is reported in one :class:`SkippedPathWarning`
naming each path and why; :func:`walk_audio_files` also returns it.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from beats_core.audio import AUDIO_EXTENSIONS
from beats_core.errors import ConfigError

__all__ = [
    "LIST_SUFFIXES",
    "AudioFileWalk",
    "SkippedPath",
    "SkippedPathWarning",
    "display_path",
    "find_audio_files",
    "has_undecodable_name",
    "normalize_extensions",
    "walk_audio_files",
]

#: Extensions of text files that list audio paths, one per line.
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})

# How many skipped paths a warning names before it only counts the rest.
_WARNING_LIMIT = 10

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class SkippedPathWarning(UserWarning):
    """Paths were left out while finding audio files (not regular files, duplicates, link loops)."""


@dataclass(frozen=True)
class SkippedPath:
    """A path left out while finding audio files.

    Attributes:
        path: the path as it was reached (through the links followed to get there).
        reason: why, in words, e.g. ``"a FIFO (named pipe), not a regular file"`` or
            ``"the same file as '/data/a/x.wav'"``.
    """

    path: Path
    reason: str


@dataclass
class AudioFileWalk:
    """What :func:`walk_audio_files` found under a folder.

    Attributes:
        files: the audio files, each real file once, as paths under the folder walked
            (not resolved: a file reached through a linked folder keeps the link's path),
            in a stable order: depth first, names sorted.
        skipped: the paths left out and why (hidden entries are not listed).
    """

    files: list[Path] = field(default_factory=list)
    skipped: list[SkippedPath] = field(default_factory=list)


def display_path(path: str | os.PathLike[str]) -> str:
    r"""A path as printable text: bytes that are not valid UTF-8 are shown as ``\xNN``.

    Python gives such bytes in file names as lone surrogates, which cannot be printed
    or written to a UTF-8 file; this is the form to show people. It is not a path to open.

    Args:
        path: any path.

    Returns:
        The path with each undecodable byte written as a backslash escape.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def has_undecodable_name(path: str | os.PathLike[str]) -> bool:
    """Whether a path holds bytes that are not valid UTF-8 (lone surrogates in Python).

    Such a path opens normally, but cannot be printed, written to a UTF-8 file, or stored
    in an Arrow string (pandas' default string type); :func:`display_path` shows it.

    Args:
        path: any path.

    Returns:
        ``True`` when its text cannot be encoded as UTF-8.
    """
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def normalize_extensions(extensions: Iterable[str]) -> frozenset[str]:
    """File extensions as lower case with a leading dot, the form ``Path.suffix.lower()`` gives.

    Args:
        extensions: extensions in any case, with or without the dot (``"WAV"``, ``".flac"``).

    Returns:
        The set of normalised extensions.
    """
    return frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)


def walk_audio_files(
    folder: str | os.PathLike[str], extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> AudioFileWalk:
    """Find the audio files under a folder, safely (see the module docstring for the rules).

    Files lying directly in ``folder`` are included; callers that expect sub-folders
    (one per class) tell them apart by their path relative to ``folder``.

    Args:
        folder: the folder to walk.
        extensions: the file extensions to take (case-insensitive, with or without the dot).

    Returns:
        The :class:`AudioFileWalk`: the files, and what was skipped. A
        :class:`SkippedPathWarning` names what was skipped, if anything.

    Raises:
        ConfigError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{_quote(folder)} is not a folder")
    collector = _Collector(extensions)
    collector.add_folder(folder)
    collector.warn()
    return AudioFileWalk(collector.files, collector.skipped)


def find_audio_files(
    inputs: Iterable[str | os.PathLike[str]], extensions: Iterable[str] = AUDIO_EXTENSIONS
) -> list[Path]:
    """Expand inputs into audio files, in a stable order, each real file once.

    * a folder: every audio file under it, found by :func:`walk_audio_files`'s rules
      (links followed once, only regular files, hidden entries left out), sorted;
    * a ``.txt``, ``.lst`` or ``.list`` file: the paths it lists, one per line, absolute or
      relative to the list's folder (blank lines and lines starting with ``#`` are
      ignored; names that are not valid UTF-8 are read as the file system gives them);
    * any other file: itself, whatever its extension (the decoder decides whether it is audio).

    A file reached twice (named twice, listed and found in a folder, linked) is kept the
    first time; paths that are not regular files (a FIFO, a socket, a device) are left
    out. Both are named in a :class:`SkippedPathWarning`. Files listed in a list file that
    do not exist are kept: one that is missing is reported when it is decoded, like any
    other file that cannot be read.

    Args:
        inputs: files, folders and list files.
        extensions: the extensions taken from folders (case-insensitive, with or without
            the dot); files named directly or in a list are taken whatever their extension.

    Returns:
        The audio files, in the order of the inputs.

    Raises:
        ConfigError: an input does not exist, or no audio file was found at all.
    """
    inputs = list(inputs)
    collector = _Collector(extensions)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            collector.add_folder(path)
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for listed in _read_list(path):
                collector.add_file(listed, missing_ok=True)
        elif path.exists():
            collector.add_file(path, missing_ok=False)
        else:
            raise ConfigError(
                f"input {_quote(path)} does not exist; give audio files, folders or a .txt list of paths"
            )
    collector.warn()
    if not collector.files:
        raise ConfigError(
            f"no audio files found in {', '.join(_quote(i) for i in inputs)} "
            f"(looked for {', '.join(sorted(collector.extensions))})"
        )
    return collector.files


class _Collector:
    """Gathers files from folders and single paths, each real file and folder once."""

    def __init__(self, extensions: Iterable[str]) -> None:
        self.extensions = normalize_extensions(extensions)
        self.files: list[Path] = []
        self.skipped: list[SkippedPath] = []
        self._files_seen: dict[tuple[int, int], Path] = {}
        self._folders_seen: dict[tuple[int, int], Path] = {}

    def add_folder(self, folder: Path) -> None:
        """Walk ``folder`` depth first, in sorted order, without recursion (no depth limit)."""
        pending = [folder]
        while pending:
            current = pending.pop()
            try:
                identity = _identity(current.stat())
                if identity in self._folders_seen:
                    first = self._folders_seen[identity]
                    self._skip(current, f"a link to {_quote(first)}, a folder already walked")
                    continue
                self._folders_seen[identity] = current
                with os.scandir(current) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except OSError as e:
                self._skip(current, f"a folder that cannot be read ({e.strerror or e})")
                continue
            subfolders = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if _is_folder(entry):
                    subfolders.append(Path(entry.path))
                elif os.path.splitext(entry.name)[1].lower() in self.extensions:  # as Path.suffix, 3x faster
                    self.add_file(Path(entry.path), missing_ok=False)
            pending.extend(reversed(subfolders))

    def add_file(self, path: Path, *, missing_ok: bool) -> None:
        """Take ``path`` if it is a regular file not taken yet (or, with ``missing_ok``, does not exist)."""
        try:
            status = path.stat()
        except FileNotFoundError:
            if missing_ok and not path.is_symlink():
                self.files.append(path)
            else:
                self._skip(path, "a link to nothing" if path.is_symlink() else "it does not exist")
            return
        except OSError as e:
            self._skip(path, f"it cannot be read ({e.strerror or e})")
            return
        if not stat.S_ISREG(status.st_mode):
            kind = _KINDS.get(stat.S_IFMT(status.st_mode), "an unknown kind of entry")
            self._skip(path, f"{kind}, not a regular file")
            return
        identity = _identity(status)
        if identity in self._files_seen:
            self._skip(path, f"the same file as {_quote(self._files_seen[identity])}")
            return
        self._files_seen[identity] = path
        self.files.append(path)

    def warn(self) -> None:
        """One :class:`SkippedPathWarning` naming what was skipped, if anything."""
        if not self.skipped:
            return
        named = "; ".join(f"{_quote(s.path)}: {s.reason}" for s in self.skipped[:_WARNING_LIMIT])
        more = len(self.skipped) - _WARNING_LIMIT
        warnings.warn(
            f"skipped {len(self.skipped)} paths while looking for audio files: {named}"
            + (f"; and {more} more" if more > 0 else ""),
            SkippedPathWarning,
            stacklevel=3,
        )

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append(SkippedPath(path, reason))


def _quote(path: str | os.PathLike[str]) -> str:
    """A path in quotes for a message, printable whatever its bytes."""
    return f"'{display_path(path)}'"


def _identity(status: os.stat_result) -> tuple[int, int]:
    """What makes a file or folder itself, whatever path reaches it: its device and inode."""
    return status.st_dev, status.st_ino


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows links
    except OSError:
        return False


def _read_list(list_file: Path) -> list[Path]:
    paths = []
    for line in list_file.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        paths.append(path if path.is_absolute() else list_file.parent / path)
    return paths
