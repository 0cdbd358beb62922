from __future__ import annotations

import os
import time
from pathlib import Path

import hostile
import pytest

from beats_core import ConfigError
from beats_core.audio_files import SkippedPath, SkippedPathWarning, display_path, walk_audio_files
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


# ---------------------------------------------------------------------------
# Hostile layouts: each real file once, links followed once, only regular files, any name
# ---------------------------------------------------------------------------


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF")


def test_the_finder_is_one_function_exported_from_core_and_extract():
    import beats_core
    import beats_extract.inputs

    assert (
        beats_extract.find_audio_files is beats_core.find_audio_files is beats_extract.inputs.find_audio_files
    )


def test_a_link_loop_is_followed_once(tmp_path):
    _touch(*(tmp_path / folder / f"{i}.wav" for folder in "xy" for i in range(3)))
    (tmp_path / "x" / "up").symlink_to("..")  # x/up/x/up/x/... for ever

    start = time.perf_counter()
    with pytest.warns(SkippedPathWarning, match=r"'.*/x/up': a link to '.*', a folder already walked"):
        found = find_audio_files([tmp_path])

    assert found == [tmp_path / folder / f"{i}.wav" for folder in "xy" for i in range(3)]
    assert time.perf_counter() - start < 5


def test_a_linked_folder_is_walked_and_a_file_reached_twice_is_taken_once(tmp_path):
    _touch(tmp_path / "data" / "a" / "1.wav", tmp_path / "elsewhere" / "2.wav")
    (tmp_path / "data" / "b").symlink_to(tmp_path / "elsewhere")  # a folder kept elsewhere: walked
    (tmp_path / "data" / "a" / "again.wav").symlink_to(tmp_path / "elsewhere" / "2.wav")
    os.link(tmp_path / "data" / "a" / "1.wav", tmp_path / "data" / "a" / "hard.wav")

    with pytest.warns(SkippedPathWarning) as caught:
        found = find_audio_files([tmp_path / "data", tmp_path / "data" / "a" / "1.wav"])

    assert found == [tmp_path / "data" / "a" / "1.wav", tmp_path / "data" / "a" / "again.wav"]
    message = str(caught[0].message)
    assert "skipped 3 paths" in message
    assert f"{str(tmp_path / 'data' / 'a' / 'hard.wav')!r}: the same file as {str(found[0])!r}" in message
    assert f"{str(tmp_path / 'data' / 'b' / '2.wav')!r}: the same file as {str(found[1])!r}" in message
    assert f"{str(found[0])!r}: the same file as {str(found[0])!r}" in message  # named again as an input


def test_fifos_devices_and_broken_links_are_skipped_without_opening_them(tmp_path):
    _touch(tmp_path / "a" / "good.wav")
    hostile.fifo(tmp_path / "a" / "pipe.wav")
    (tmp_path / "a" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "a" / "zero.wav").symlink_to("/dev/zero")

    start = time.perf_counter()
    with pytest.warns(SkippedPathWarning) as caught:
        found = find_audio_files([tmp_path / "a"])
    with (
        pytest.warns(SkippedPathWarning, match=r"pipe\.wav': a FIFO \(named pipe\), not a regular file"),
        pytest.raises(ConfigError, match="no audio files found"),
    ):
        find_audio_files([tmp_path / "a" / "pipe.wav"])

    assert found == [tmp_path / "a" / "good.wav"]
    message = str(caught[0].message)
    assert "gone.wav': a link to nothing" in message
    assert "pipe.wav': a FIFO (named pipe), not a regular file" in message
    assert "zero.wav': a character device, not a regular file" in message
    assert time.perf_counter() - start < 5


def test_list_files_follow_the_same_rules_and_may_hold_names_that_are_not_utf8(tmp_path):
    latin1 = hostile.non_utf8_path(tmp_path, b"caf\xe9.wav")
    _touch(latin1, tmp_path / "b.wav")
    hostile.fifo(tmp_path / "pipe.wav")
    listing = tmp_path / "files.txt"
    listing.write_bytes(b"caf\xe9.wav\nb.wav\npipe.wav\nb.wav\nmissing.wav\n")

    with pytest.warns(SkippedPathWarning, match=r"pipe\.wav': a FIFO.*b\.wav': the same file as"):
        found = find_audio_files([listing])

    assert found == [latin1, tmp_path / "b.wav", tmp_path / "missing.wav"]


def test_names_that_are_not_utf8_are_found_and_warnings_show_them_escaped(tmp_path):
    folder = hostile.non_utf8_path(tmp_path, b"\xff")
    _touch(hostile.non_utf8_path(folder, b"\xfe.wav"))
    hostile.fifo(hostile.non_utf8_path(folder, b"\xfd.wav"))

    with pytest.warns(SkippedPathWarning) as caught:
        found = find_audio_files([tmp_path])

    assert found == [hostile.non_utf8_path(folder, b"\xfe.wav")] and found[0].is_file()
    assert "/\\xff/\\xfd.wav': a FIFO" in str(caught[0].message)
    assert display_path(found[0]) == str(tmp_path) + "/\\xff/\\xfe.wav"


def test_walk_audio_files_reports_what_it_skipped(tmp_path):
    _touch(tmp_path / "top.wav", tmp_path / "c" / "d.flac", tmp_path / "c" / "notes.txt")
    (tmp_path / "c" / "loop").symlink_to(tmp_path)

    with pytest.warns(SkippedPathWarning):
        walk = walk_audio_files(tmp_path, extensions=["FLAC", ".wav"])

    assert walk.files == [tmp_path / "top.wav", tmp_path / "c" / "d.flac"]
    assert walk.skipped == [
        SkippedPath(tmp_path / "c" / "loop", f"a link to {str(tmp_path)!r}, a folder already walked")
    ]
