from __future__ import annotations

import pytest
import testkit

from beats_core.cli import main
from beats_extract import load_features
from beats_extract.cli import parse_layer


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "audio"
    for k in range(3):
        testkit.write_audio(
            root / f"class{k}" / f"clip{k}.flac", testkit.class_sound(k, 0.8, 44100, seed=k), 44100
        )
    (root / "class0" / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return root


def test_extract_writes_features_and_paths_and_lists_bad_files(tiny_checkpoint, folder, tmp_path, capsys):
    out = tmp_path / "features.npz"
    status = main(
        ["extract", str(folder), "--model", str(tiny_checkpoint), "--out", str(out), "--layer", "0,-1"]
    )
    captured = capsys.readouterr()
    assert status == 0
    assert "1 of 4 files could not be decoded" in captured.err and "broken.wav" in captured.err
    assert f"wrote 3 embeddings (128) to {out}" in captured.out
    saved = load_features(out)
    assert saved.features.shape == (3, 128)
    assert saved.paths == [str(folder / f"class{k}" / f"clip{k}.flac") for k in range(3)]
    assert saved.metadata["pooling"] == "mean" and saved.metadata["layer"] == [0, 2]


def test_extract_to_parquet_from_a_list_file_then_search(tiny_checkpoint, folder, tmp_path, capsys):
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(str(p) for p in sorted(folder.rglob("*.flac"))))
    out = tmp_path / "index.parquet"
    status = main(
        ["extract", str(listing), "--model", str(tiny_checkpoint), "-o", str(out), "--pooling", "meanstd"]
    )
    assert status == 0
    assert load_features(out).features.shape == (3, 128)
    capsys.readouterr()
    query = folder / "class1" / "clip1.flac"
    assert main(["search", str(out), str(query), "-k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(query)
    assert (
        lines[1].split()[0] == "1"
        and lines[1].split()[-1] == str(query)
        and float(lines[1].split()[1]) > 0.9999
    )
    assert len(lines) == 3


def test_extract_fails_only_when_nothing_decodes(tiny_checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nothing")
    out = tmp_path / "f.npz"
    assert main(["extract", str(bad), "--model", str(tiny_checkpoint), "-o", str(out)]) == 1
    assert "no embeddings extracted" in capsys.readouterr().err
    assert not out.exists()


def test_user_errors_are_one_line(tiny_checkpoint, tmp_path, capsys):
    assert main(["extract", str(tmp_path / "missing"), "--model", str(tiny_checkpoint), "-o", "x.npz"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["extract", str(tmp_path), "--model", str(tiny_checkpoint), "-o", "x.csv"]) == 1
    assert ".npz or .parquet" in capsys.readouterr().err


def test_parse_layer():
    assert parse_layer("-1") == -1 and parse_layer("4,8") == [4, 8] and parse_layer("all") == "all"
    with pytest.raises(Exception, match="comma-separated"):
        parse_layer("last")
