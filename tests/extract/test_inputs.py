from __future__ import annotations

from pathlib import Path

import pytest

from beats_core import ConfigError
from beats_extract import find_audio_files


def test_folders_lists_and_files(tmp_path):
    for name in [
        "b/2.wav",
        "b/1.FLAC",
        "a/x.mp3",
        "a/.hidden.wav",
        ".cache/y.wav",
        "a/notes.txt",
        "a/raw.dat",
        "c.ogg",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    listed = tmp_path / "lists" / "more.txt"
    listed.parent.mkdir()
    listed.write_text("# clips\n../c.ogg\n\n/abs/elsewhere.wav\n")
    found = find_audio_files([tmp_path / "a", tmp_path / "b", listed, tmp_path / "a" / "raw.dat"])
    assert found == [
        tmp_path / "a" / "x.mp3",
        tmp_path / "b" / "1.FLAC",
        tmp_path / "b" / "2.wav",
        listed.parent / "../c.ogg",
        Path("/abs/elsewhere.wav"),
        tmp_path / "a" / "raw.dat",  # named explicitly: the decoder will judge it
    ]


def test_missing_inputs_and_empty_folders(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        find_audio_files([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no audio files found"):
        find_audio_files([tmp_path / "empty"])
