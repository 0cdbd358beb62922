"""Turning command-line inputs into a list of audio files: files, folders, and lists of paths.

The finder lives in beats-core (:mod:`beats_core.audio_files`), where every package that
looks for audio files shares its rules (links followed once, only regular files, each file
once); it is re-exported here, where ``beats extract`` uses it.
"""

from __future__ import annotations

from beats_core.audio_files import LIST_SUFFIXES, find_audio_files

__all__ = ["LIST_SUFFIXES", "find_audio_files"]
