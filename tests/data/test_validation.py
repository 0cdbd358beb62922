from __future__ import annotations

import json
import re
import time
from pathlib import Path

import hostile
import numpy as np
import pandas as pd
import pytest
import soundfile
import testkit

from beats_core import DatasetError
from beats_core.audio_files import SkippedPathWarning
from beats_core.cli import main
from beats_data import format_report, load_esc50, load_urbansound8k, scan_directory_dataset, validate_dataset
from beats_data.validation import DatasetStats, Issue, ValidationReport


def _codes(issues):
    return {issue.code: issue for issue in issues}


def _write(tmp_path, name, signal, rate=16000, **kwargs):
    return str(testkit.write_audio(tmp_path / name, signal, rate, **kwargs))


def test_a_clean_dataset_passes_with_stats(esc50_root):
    frame = load_esc50(esc50_root).set_index("filename", drop=False)

    report = validate_dataset(frame, progress=False)

    assert report.ok and report.errors == []
    assert set(_codes(report.warnings)) == {"few_clips", "resampled"}
    stats = report.stats
    assert stats.num_clips == stats.num_decoded == 25
    assert stats.clips_per_class == {"dog": 5, "engine": 5, "pig": 5, "rain": 5, "rooster": 5}
    assert stats.duration_seconds == {"min": 0.5, "median": 0.5, "max": 0.5, "total": 12.5}
    assert stats.sample_rates == {44100: 25} and stats.channels == {1: 25}
    assert stats.formats == {"wav/pcm_16": 25}
    assert stats.folds == {"1": 5, "2": 5, "3": 5, "4": 5, "5": 5}
    clips = report.clips
    assert clips.index.equals(frame.index) and clips["error"].isna().all()
    assert clips["peak_dbfs"].between(-10, 0).all() and clips["content_hash"].nunique() == 25
    machine_readable = json.loads(json.dumps(report.to_dict()))
    assert machine_readable["stats"]["folds"] == stats.folds and machine_readable["ok"]


def test_errors_missing_undecodable_unlabeled_and_too_small_class(tmp_path):
    rows = [(_write(tmp_path, f"dog{i}.wav", testkit.class_sound(0, 0.2, seed=i)), "dog") for i in range(3)]
    rows.append((_write(tmp_path, "cat0.wav", testkit.class_sound(1, 0.2)), "cat"))
    (tmp_path / "broken.wav").write_text("not audio")
    rows += [(str(tmp_path / "gone.wav"), "dog"), (str(tmp_path / "broken.wav"), "dog")]
    rows.append((_write(tmp_path, "nolabel.wav", testkit.class_sound(2, 0.2)), None))
    frame = pd.DataFrame(rows, columns=["filename", "category"])

    report = validate_dataset(frame, num_workers=0, progress=False)

    errors = _codes(report.errors)
    assert not report.ok
    assert set(errors) == {"missing_file", "undecodable_file", "empty_label", "class_too_small"}
    assert errors["missing_file"].files == [str(tmp_path / "gone.wav")]
    broken = str(tmp_path / "broken.wav")
    assert errors["undecodable_file"].files == [broken]
    assert "not audio" in errors["undecodable_file"].details["reasons"][broken]
    assert errors["empty_label"].files == [str(tmp_path / "nolabel.wav")]
    assert errors["class_too_small"].details["classes"] == {"cat": 1}
    assert report.clips["error"].notna().sum() == 2
    text = format_report(report)
    assert "ERRORS (4)" in text and "[undecodable_file]" in text and "FAILED" in text


def test_a_single_class_is_an_error(tmp_path):
    frame = pd.DataFrame(
        {
            "filename": [_write(tmp_path, f"{i}.wav", testkit.class_sound(0, 0.2, seed=i)) for i in range(2)],
            "category": "dog",
        }
    )

    report = validate_dataset(frame, num_workers=0, progress=False)

    assert _codes(report.errors)["too_few_classes"].message.startswith("the dataset has 1 class (dog)")


def test_warnings(tmp_path):
    rows = [
        (_write(tmp_path, f"a{i}.wav", testkit.class_sound(0, 0.2, seed=i)), "a", "train") for i in range(12)
    ]
    rows += [
        (_write(tmp_path, f"b{i}.wav", testkit.class_sound(1, 0.2, seed=i)), "b", "train") for i in range(2)
    ]
    rows.append((_write(tmp_path, "short.wav", testkit.class_sound(0, 0.01)), "a", "train"))
    rows.append((_write(tmp_path, "silent.wav", np.zeros(3200, np.float32)), "a", "train"))
    stereo = np.stack([testkit.class_sound(1, 0.2, 44100, seed=9)] * 2, axis=1)
    rows.append((_write(tmp_path, "stereo.wav", stereo, 44100), "b", "train"))
    # the same audio twice: as another class (WAV vs FLAC), and in the test split
    twin = testkit.class_sound(0, 0.2, seed=42)
    rows.append((_write(tmp_path, "twin.wav", twin), "a", "train"))
    samples, rate = soundfile.read(tmp_path / "twin.wav", dtype="int16")  # a lossless conversion
    soundfile.write(tmp_path / "twin.flac", samples, rate)
    rows.append((str(tmp_path / "twin.flac"), "b", "train"))
    rows.append((_write(tmp_path, "twin_test.wav", twin), "a", "test"))
    frame = pd.DataFrame(rows, columns=["filename", "category", "split"])

    report = validate_dataset(frame, num_workers=0, progress=False)

    assert report.ok
    warnings = _codes(report.warnings)
    assert set(warnings) == {
        "too_short",
        "silent",
        "few_clips",
        "imbalance",
        "leakage_across_classes",
        "leakage_across_splits",
        "resampled",
        "mixed_down",
    }
    assert warnings["too_short"].files == [str(tmp_path / "short.wav")]
    assert warnings["silent"].files == [str(tmp_path / "silent.wav")]
    assert warnings["few_clips"].details["classes"] == {"a": 16, "b": 4}
    assert warnings["imbalance"].details["largest"] == "a"
    assert warnings["resampled"].files == warnings["mixed_down"].files == [str(tmp_path / "stereo.wav")]
    assert warnings["resampled"].details["sample_rates"] == {44100: 1}
    assert warnings["leakage_across_classes"].details["groups"] == [
        [str(tmp_path / n) for n in ["twin.wav", "twin.flac", "twin_test.wav"]]
    ]
    assert (
        "twin.wav (train) = twin.flac (train) = twin_test.wav (test)"
        in warnings["leakage_across_splits"].message
    )
    assert "OK: no errors" in format_report(report)


def test_decoding_in_worker_processes_gives_the_same_report(urbansound8k_root):
    frame = load_urbansound8k(urbansound8k_root)

    serial = validate_dataset(frame, num_workers=0, progress=False)
    parallel = validate_dataset(frame, num_workers=2, progress=False)

    pd.testing.assert_frame_equal(serial.clips, parallel.clips)
    assert serial == parallel  # everything but the clips frame
    assert parallel.stats.sample_rates == {44100: 12, 22050: 9, 48000: 9}
    assert parallel.stats.channels == {1: 15, 2: 15}


def test_missing_columns_are_a_dataset_error():
    with pytest.raises(DatasetError, match=r"has no column 'path'.*Pass audio_column="):
        validate_dataset(pd.DataFrame({"filename": [], "category": []}), audio_column="path")


def test_beats_validate_command(esc50_root, tmp_path, capsys):
    assert main(["validate", f"esc50:{esc50_root}"]) == 0
    out = capsys.readouterr().out
    assert "Dataset: 25 clips, 5 classes, 25 decoded" in out and "OK: no errors" in out

    testkit.make_directory_dataset(tmp_path / "data", {"dog": 2, "cat": 1})
    (tmp_path / "data" / "dog" / "bad.wav").write_bytes(b"\x00" * 10)
    assert main(["validate", str(tmp_path / "data"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {e["code"] for e in report["errors"]} == {"undecodable_file", "class_too_small"}

    assert main(["validate", str(tmp_path / "nope")]) == 1
    assert "beats: error: dataset" in capsys.readouterr().err


def test_empty_frame_and_multi_label_class_counts(tmp_path):
    empty = validate_dataset(pd.DataFrame({"filename": [], "category": []}), progress=False)
    paths = [_write(tmp_path, f"{i}.wav", testkit.class_sound(i % 3, 0.2, seed=i)) for i in range(4)]
    frame = pd.DataFrame({"filename": paths, "category": ["dog;bark", "dog", "bark; rain", "dog"]})

    report = validate_dataset(frame, label_delimiter=";", num_workers=0, progress=False)

    assert [e.code for e in empty.errors] == ["no_clips"]
    assert report.stats.clips_per_class == {"bark": 2, "dog": 3, "rain": 1}
    assert _codes(report.errors)["class_too_small"].files == [paths[2]]


# ---------------------------------------------------------------------------
# Hostile files, bandwidth, integer stats, the typed report, CSV columns
# ---------------------------------------------------------------------------


def _hostile_dataset(root):
    """Two good classes, then in them every hostile file validation must report and survive."""
    testkit.make_directory_dataset(root, {"a": 3, "b": 3}, sample_rate=44100)
    bad = {
        "zero_bits": hostile.wav_with_zero_bits(root / "a" / "zero_bits.wav"),
        "rate": hostile.wav_with_rate(root / "a" / "rate1.wav", 1),
        "huge": hostile.float_wav(root / "b" / "huge.wav", 1e30),
        "aiff": hostile.truncated(
            testkit.write_audio(root / "b" / "cut.aiff", testkit.noise(2.0, 44100), 44100), 0.27
        ),
        "ogg": hostile.truncated(
            testkit.write_audio(root / "b" / "cut.ogg", testkit.noise(2.0, 44100), 44100), 0.66
        ),
    }
    pipe_flac = hostile.flac_without_length(root / "a" / "pipe.flac", testkit.noise(1.5, 44100), 44100)
    loud = hostile.float_wav(root / "b" / "loud.wav", 1.5, rate=44100)
    hostile.fifo(root / "b" / "stream.wav")
    (root / "a" / "up").symlink_to("..")
    latin1 = hostile.non_utf8_path(root / "b", b"caf\xe9.wav")
    testkit.write_audio(root / "tmp.wav", testkit.class_sound(1, 0.5, 44100, seed=9), 44100).rename(latin1)
    return bad, pipe_flac, loud, latin1


def test_a_dataset_of_hostile_files_is_validated_file_by_file(tmp_path):
    bad, pipe_flac, loud, latin1 = _hostile_dataset(tmp_path)

    start = time.perf_counter()
    with pytest.warns(SkippedPathWarning, match=r"a/up': a link to .*stream\.wav': a FIFO"):
        frame = scan_directory_dataset(tmp_path)
    report = validate_dataset(frame, num_workers=0, progress=False)

    assert time.perf_counter() - start < 30
    assert len(frame) == 3 + 3 + len(bad) + 3  # the FIFO skipped, the loop walked once
    errors = _codes(report.errors)
    assert set(errors) == {"undecodable_file"}
    reasons = errors["undecodable_file"].details["reasons"]
    assert sorted(reasons) == sorted(str(p) for p in bad.values())
    for key, pattern in {
        "zero_bits": "no decoder reads its audio stream",
        "rate": "sample rate of 1 Hz",
        "huge": r"samples reach 1e\+30",
        "aiff": "truncated",
        "ogg": "truncated",
    }.items():
        assert re.search(pattern, reasons[str(bad[key])]), (key, reasons[str(bad[key])])
    clips = report.clips.set_index("path")
    assert clips.loc[str(pipe_flac), "duration"] == 1.5  # counted, not refused as truncated
    full_scale = _codes(report.warnings)["beyond_full_scale"]
    assert (
        full_scale.files == [str(loud)] and full_scale.details["notes"][str(loud)] == "peak 1.5 (+3.5 dBFS)"
    )
    assert clips.loc[str(latin1), "error"] is None or pd.isna(clips.loc[str(latin1), "error"])

    text = format_report(report, max_files=10)
    text.encode("utf-8")  # printable: the Latin-1 name is escaped
    assert "caf\\xe9.wav" in text and "44100 Hz (" in text and ".0 Hz" not in text and "Channels: 1 (" in text


def test_a_fifo_named_by_a_frame_is_an_error_not_a_hang(tmp_path):
    good = [
        _write(tmp_path, f"{label}{i}.wav", testkit.class_sound(k, 0.2, seed=i))
        for k, label in enumerate("ab")
        for i in range(2)
    ]
    pipe = hostile.fifo(tmp_path / "pipe.wav")
    frame = pd.DataFrame({"filename": [*good, str(pipe)], "category": ["a", "a", "b", "b", "b"]})

    report = validate_dataset(frame, num_workers=0, progress=False)

    reasons = _codes(report.errors)["undecodable_file"].details["reasons"]
    assert list(reasons) == [str(pipe)] and "a FIFO (named pipe), not a regular file" in reasons[str(pipe)]


def test_resampling_warns_what_bandwidth_each_file_loses_or_never_had(tmp_path):
    rate = 44100
    bird = testkit.sine(1000.0, 1.0, rate, amplitude=0.3) + testkit.sine(12000.0, 1.0, rate, amplitude=0.3)
    rows = [
        (_write(tmp_path, "bird.wav", bird, rate), "a"),  # half its energy at 12 kHz
        (_write(tmp_path, "hum.wav", testkit.sine(1000.0, 1.0, rate), rate), "a"),
        (_write(tmp_path, "phone.wav", testkit.sine(1000.0, 1.0, 8000), 8000), "b"),
        (_write(tmp_path, "native.wav", testkit.sine(1000.0, 1.0, 16000), 16000), "b"),
    ]
    frame = pd.DataFrame(rows, columns=["filename", "category"])

    report = validate_dataset(frame, num_workers=0, progress=False)

    resampled = _codes(report.warnings)["resampled"]
    paths = {Path(p).stem: p for p, _ in rows}
    assert resampled.files == [paths["bird"], paths["hum"], paths["phone"]]  # most affected first
    notes = resampled.details["notes"]
    share = report.clips.set_index("path")["energy_above_8khz"]
    assert share[paths["bird"]] == pytest.approx(0.5, abs=0.01) and share[paths["hum"]] < 1e-4
    assert np.isnan(share[paths["phone"]]) and np.isnan(share[paths["native"]])
    assert re.fullmatch(
        r"44100 Hz: 50\.\d% of its energy lies above 8 kHz and is discarded", notes[paths["bird"]]
    )
    assert notes[paths["hum"]].startswith("44100 Hz: almost nothing lies above 8 kHz")
    assert notes[paths["phone"]] == "8000 Hz: recorded without anything above 4 kHz (BEATs hears up to 8 kHz)"
    assert "1 lose 0.1% of their energy or more, up to 50." in resampled.message
    assert "at 8000 Hz, nothing above 4 kHz" in resampled.message
    text = format_report(report)
    assert f"      {paths['phone']}\n        8000 Hz: recorded without anything above 4 kHz" in text


def test_sample_rates_and_channels_stay_integers_when_files_fail(tmp_path):
    rows = [
        (_write(tmp_path, f"{i}.wav", testkit.class_sound(i % 2, 0.2, 44100, seed=i), 44100), "ab"[i % 2])
        for i in range(4)
    ]
    (tmp_path / "broken.wav").write_bytes(b"RIFF")
    rows.append((str(tmp_path / "broken.wav"), "a"))
    frame = pd.DataFrame(rows, columns=["filename", "category"])

    report = validate_dataset(frame, num_workers=0, progress=False)

    assert (
        str(report.clips["sample_rate"].dtype) == "Int64" and str(report.clips["channels"].dtype) == "Int64"
    )
    assert report.stats.sample_rates == {44100: 4} and all(type(k) is int for k in report.stats.sample_rates)
    text = format_report(report)
    assert "Sample rates: 44100 Hz (4)" in text and "Channels: 1 (4)" in text


def test_the_report_is_typed(esc50_root):
    report = validate_dataset(load_esc50(esc50_root), num_workers=0, progress=False)

    assert isinstance(report, ValidationReport) and isinstance(report.stats, DatasetStats)
    assert isinstance(report.warnings[0], Issue)
    assert report.stats.num_clips == 25 and report.to_dict()["warnings"][0]["code"] == report.warnings[0].code


def test_beats_validate_guesses_csv_columns_and_names_its_flags(tmp_path, capsys):
    paths = [_write(tmp_path, f"{i}.wav", testkit.class_sound(i % 2, 0.2, seed=i)) for i in range(4)]
    pd.DataFrame({"File_Path": paths, "label": ["a", "b"] * 2}).to_csv(tmp_path / "data.csv", index=False)
    pd.DataFrame({"audio": paths, "tag": ["a", "b"] * 2}).to_csv(tmp_path / "odd.csv", index=False)

    assert main(["validate", str(tmp_path / "data.csv"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stats"]["num_decoded"] == 4
    assert "using column 'File_Path' for the audio paths and 'label' for the labels" in captured.err

    assert main(["validate", str(tmp_path / "odd.csv")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("beats: error: ")
    assert "none of the usual columns for the audio paths" in error and "--audio-column" in error
    assert "audio_col" not in error

    assert (
        main(["validate", str(tmp_path / "odd.csv"), "--audio-column", "audio", "--label-column", "label"])
        == 1
    )
    error = capsys.readouterr().err
    assert "has no column 'label' (--label-column); its columns are ['audio', 'tag']" in error

    assert (
        main(["validate", str(tmp_path / "odd.csv"), "--audio-column", "audio", "--label-column", "tag"]) == 0
    )
    assert "using column" not in capsys.readouterr().err
