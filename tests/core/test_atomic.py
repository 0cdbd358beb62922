"""Atomic writes: the old file or the complete new one, and a full disk named as such."""

from __future__ import annotations

import pytest
import testkit
import torch

from beats_core.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from beats_core.errors import BeatsError, DiskFullError


def test_a_full_disk_under_torch_save_is_a_disk_full_error_naming_the_file(tmp_path):
    target = tmp_path / "model.pt"
    atomic_write_bytes(target, b"the previous file")
    with (
        pytest.raises(DiskFullError, match=r"disk full: cannot write '.*model\.pt'") as caught,
        atomic_path(target) as temporary,
        temporary.open("wb") as f,
    ):
        torch.save({"weights": torch.zeros(10_000)}, testkit.FullDisk(f, 2_000))  # torch raises RuntimeError
    assert isinstance(caught.value, BeatsError) and isinstance(caught.value, OSError)
    assert target.read_bytes() == b"the previous file"  # left untouched
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_other_write_errors_pass_unchanged(tmp_path):
    with pytest.raises(ValueError, match="not a disk problem"), atomic_path(tmp_path / "table.csv"):
        raise ValueError("not a disk problem")
    assert list(tmp_path.iterdir()) == []


def test_file_names_that_are_not_utf8_are_written_as_their_bytes(tmp_path):
    name = "caf\udce9.wav"  # the surrogate escape of the byte 0xE9
    path = atomic_write_text(tmp_path / "list.txt", f"{name}\n")
    assert path.read_bytes() == b"caf\xe9.wav\n"
