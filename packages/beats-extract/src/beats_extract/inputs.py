"""Turning command-line inputs into a list of audio files: files, folders, and lists of paths."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from beats_core.audio import AUDIO_EXTENSIONS
from beats_core.errors import ConfigError

__all__ = ["LIST_SUFFIXES", "find_audio_files"]

#: Extensions of text files that list audio paths, one per line.
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})


def find_audio_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand inputs into audio files, in a stable order.

    * a folder: every file under it (recursively) whose extension is in
      :data:`beats_core.audio.AUDIO_EXTENSIONS`, sorted; hidden files and folders are skipped;
    * a ``.txt``, ``.lst`` or ``.list`` file: the paths it lists, one per line, absolute or
      relative to the list's folder (blank lines and lines starting with ``#`` are ignored);
    * any other file: itself, whatever its extension (the decoder decides whether it is audio).

    Files listed in a list file are not checked here: one that is missing is reported when
    it is decoded, like any other file that cannot be read.

    Args:
        inputs: files, folders and list files.

    Returns:
        The audio files, in the order of the inputs.

    Raises:
        ConfigError: an input does not exist, or no audio file was found at all.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(_scan(path))
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            files.extend(_read_list(path))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(
                f"input {str(path)!r} does not exist; give audio files, folders or a .txt list of paths"
            )
    if not files:
        raise ConfigError(
            f"no audio files found in {', '.join(repr(os.fspath(i)) for i in inputs)} "
            f"(looked for {', '.join(sorted(AUDIO_EXTENSIONS))})"
        )
    return files


def _scan(folder: Path) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(root) / name
            for name in sorted(names)
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS
        )
    return found


def _read_list(list_file: Path) -> list[Path]:
    paths = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        paths.append(path if path.is_absolute() else list_file.parent / path)
    return paths
