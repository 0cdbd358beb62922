from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile
import testkit

from beats_core import DatasetError
from beats_core.cli import main
from beats_data import format_report, load_esc50, load_urbansound8k, validate_dataset


def _codes(issues):
    return {issue["code"]: issue for issue in issues}


def _write(tmp_path, name, signal, rate=16000, **kwargs):
    return str(testkit.write_audio(tmp_path / name, signal, rate, **kwargs))


def test_a_clean_dataset_passes_with_stats(esc50_root):
    frame = load_esc50(esc50_root).set_index("filename", drop=False)

    report = validate_dataset(frame, progress=False)

    assert report["ok"] and report["errors"] == []
    assert set(_codes(report["warnings"])) == {"few_clips", "resampled"}
    stats = report["stats"]
    assert stats["num_clips"] == stats["num_decoded"] == 25
    assert stats["clips_per_class"] == {"dog": 5, "engine": 5, "pig": 5, "rain": 5, "rooster": 5}
    assert stats["duration_seconds"] == {"min": 0.5, "median": 0.5, "max": 0.5, "total": 12.5}
    assert stats["sample_rates"] == {44100: 25} and stats["channels"] == {1: 25}
    assert stats["formats"] == {"wav/pcm_16": 25}
    assert stats["folds"] == {"1": 5, "2": 5, "3": 5, "4": 5, "5": 5}
    clips = report["clips"]
    assert clips.index.equals(frame.index) and clips["error"].isna().all()
    assert clips["peak_dbfs"].between(-10, 0).all() and clips["content_hash"].nunique() == 25
    json.dumps({k: v for k, v in report.items() if k != "clips"}, default=str)  # machine-readable


def test_errors_missing_undecodable_unlabeled_and_too_small_class(tmp_path):
    rows = [(_write(tmp_path, f"dog{i}.wav", testkit.class_sound(0, 0.2, seed=i)), "dog") for i in range(3)]
    rows.append((_write(tmp_path, "cat0.wav", testkit.class_sound(1, 0.2)), "cat"))
    (tmp_path / "broken.wav").write_text("not audio")
    rows += [(str(tmp_path / "gone.wav"), "dog"), (str(tmp_path / "broken.wav"), "dog")]
    rows.append((_write(tmp_path, "nolabel.wav", testkit.class_sound(2, 0.2)), None))
    frame = pd.DataFrame(rows, columns=["filename", "category"])

    report = validate_dataset(frame, num_workers=0, progress=False)

    errors = _codes(report["errors"])
    assert not report["ok"]
    assert set(errors) == {"missing_file", "undecodable_file", "empty_label", "class_too_small"}
    assert errors["missing_file"]["files"] == [str(tmp_path / "gone.wav")]
    broken = str(tmp_path / "broken.wav")
    assert errors["undecodable_file"]["files"] == [broken]
    assert "not audio" in errors["undecodable_file"]["details"]["reasons"][broken]
    assert errors["empty_label"]["files"] == [str(tmp_path / "nolabel.wav")]
    assert errors["class_too_small"]["details"]["classes"] == {"cat": 1}
    assert report["clips"]["error"].notna().sum() == 2
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

    assert _codes(report["errors"])["too_few_classes"]["message"].startswith("the dataset has 1 class (dog)")


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

    assert report["ok"]
    warnings = _codes(report["warnings"])
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
    assert warnings["too_short"]["files"] == [str(tmp_path / "short.wav")]
    assert warnings["silent"]["files"] == [str(tmp_path / "silent.wav")]
    assert warnings["few_clips"]["details"]["classes"] == {"a": 16, "b": 4}
    assert warnings["imbalance"]["details"]["largest"] == "a"
    assert warnings["resampled"]["files"] == warnings["mixed_down"]["files"] == [str(tmp_path / "stereo.wav")]
    assert warnings["resampled"]["details"]["sample_rates"] == {44100: 1}
    assert warnings["leakage_across_classes"]["details"]["groups"] == [
        [str(tmp_path / n) for n in ["twin.wav", "twin.flac", "twin_test.wav"]]
    ]
    assert (
        "twin.wav (train) = twin.flac (train) = twin_test.wav (test)"
        in warnings["leakage_across_splits"]["message"]
    )
    assert "OK: no errors" in format_report(report)


def test_decoding_in_worker_processes_gives_the_same_report(urbansound8k_root):
    frame = load_urbansound8k(urbansound8k_root)

    serial = validate_dataset(frame, num_workers=0, progress=False)
    parallel = validate_dataset(frame, num_workers=2, progress=False)

    pd.testing.assert_frame_equal(serial.pop("clips"), parallel.pop("clips"))
    assert serial == parallel
    assert parallel["stats"]["sample_rates"] == {44100: 12, 22050: 9, 48000: 9}
    assert parallel["stats"]["channels"] == {1: 15, 2: 15}


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

    assert [e["code"] for e in empty["errors"]] == ["no_clips"]
    assert report["stats"]["clips_per_class"] == {"bark": 2, "dog": 3, "rain": 1}
    assert _codes(report["errors"])["class_too_small"]["files"] == [paths[2]]
