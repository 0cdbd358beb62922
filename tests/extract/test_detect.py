"""Detections over recordings: the tables in every format, filters, merged events, silence, broken files,
resuming, stored embeddings, plots, and ``beats detect`` / ``beats predict`` without the trainer.

The checkpoint is the tiny fine-tuned reference model (official layout, AudioSet ids as labels);
the recordings are generated and written as real files.
"""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import testkit

from beats_core import load_audio
from beats_core.cli import main
from beats_core.clips import ClipRule
from beats_core.errors import ConfigError, MissingDependencyError, StoreError
from beats_extract import BEATsFeatureExtractor, SkippedFileWarning, detect_events, merge_events
from beats_extract.detect import SilentRecordingWarning
from beats_extract.detect_cli import read_class_list
from beats_extract.tables import RAVEN_COLUMNS, read_detections

NAMES = ["Speech", "Music", "Dog", "Rain", "Engine"]
#: How these tests detect from audio: 2 s clips sharing 0.5 s, in float32, in this process.
FROM_AUDIO = {
    "clip_seconds": 2.0,
    "clip_overlap": 0.5,
    "dtype": "float32",
    "num_workers": 0,
    "progress": False,
}
#: What detecting in the whole archive warns of: its undecodable and its silent recordings.
ARCHIVE_WARNINGS = (SkippedFileWarning, SilentRecordingWarning)
CLI = ["--clip-seconds", "2", "--clip-overlap", "0.5", "--dtype", "float32", "--workers", "0"]


@pytest.fixture(scope="module")
def checkpoint(reference_dir: Path) -> str:
    return str(reference_dir / "tiny_finetuned.pt")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two ``a.wav`` in two folders (the second starts with 3 s of digital silence), a silent recording,
    one that is not audio and one without samples."""
    root = tmp_path_factory.mktemp("archive")
    sound = np.concatenate([testkit.class_sound(k % 4, 1.5, 16000, seed=k) for k in range(5)])[
        : 7 * 16000 + 4800
    ]
    testkit.write_audio(root / "siteA" / "a.wav", sound, 16000)
    later = np.concatenate([np.zeros(3 * 44100), testkit.class_sound(2, 4.5, 44100, seed=9)])
    testkit.write_audio(root / "siteB" / "a.wav", np.stack([later, later], axis=1), 44100)
    testkit.write_audio(root / "silent.flac", np.zeros(5 * 16000, dtype=np.float32), 16000)
    (root / "broken.wav").write_bytes(b"RIFF....WAVEfmt and then nothing that decodes")
    testkit.write_audio(root / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    return root


@pytest.fixture(scope="module")
def everything(checkpoint, archive) -> pd.DataFrame:
    """Every clip and class of the archive (no threshold), the table the filters are checked against."""
    with pytest.warns(ARCHIVE_WARNINGS):
        return detect_events(checkpoint, [archive], min_confidence=0.0, **FROM_AUDIO)


def recording_rows(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    return table[table["path"] == str(path)].reset_index(drop=True)


# ----------------------------------------------------------------------------- the tables


def test_beats_detect_writes_every_format_and_each_parses_back(checkpoint, archive, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(
        ["detect", checkpoint, str(archive), "-o", str(out), "--format", "csv,raven,audacity", *CLI]
    )
    assert status == 0
    captured = capsys.readouterr()
    assert "2 of 5 recording(s) could not be decoded" in captured.err
    assert (
        "broken.wav" in captured.err and "empty.wav" in captured.err and "zero audio samples" in captured.err
    )
    assert f"silent (no sample above -80 dBFS), no detections: {archive / 'silent.flac'}" in captured.out

    table = pd.read_csv(out / "detections.csv", dtype={"label": str, "label_id": str})
    assert list(table.columns) == ["path", "start", "end", "label", "confidence", "label_id"]
    assert len(table) and (table["confidence"] >= 0.1).all() and set(table["label"]) <= set(NAMES)
    assert table.equals(
        table.sort_values(
            ["path", "start", "confidence"], ascending=[True, True, False], kind="stable"
        ).reset_index(drop=True)
    )
    assert dict(zip(table["label"], table["label_id"], strict=True))["Dog"] == "/m/0bt9lr"
    assert set(table["path"]) == {str(archive / "siteA" / "a.wav"), str(archive / "siteB" / "a.wav")}

    for site in ("siteA", "siteB"):  # two a.wav, two sets of files: the folders are mirrored
        recording = archive / site / "a.wav"
        rows = recording_rows(table, recording)
        per_recording = read_detections(out / site / "a.wav.detections.csv")
        pd.testing.assert_frame_equal(per_recording, rows, check_dtype=False)

        raven = (out / site / "a.wav.selections.txt").read_text()
        assert raven.splitlines()[0] == (
            "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tLabel\tConfidence"
        )
        selections = list(csv.DictReader(raven.splitlines(), delimiter="\t"))
        assert list(selections[0]) == list(RAVEN_COLUMNS) and len(selections) == len(rows)
        assert [s["Selection"] for s in selections] == [str(k) for k in range(1, len(rows) + 1)]
        assert {(s["View"], s["Channel"], s["Low Freq (Hz)"], s["High Freq (Hz)"]) for s in selections} == {
            ("Spectrogram 1", "1", "0", "8000")
        }
        np.testing.assert_allclose([float(s["Begin Time (s)"]) for s in selections], rows["start"], atol=1e-6)
        np.testing.assert_allclose([float(s["End Time (s)"]) for s in selections], rows["end"], atol=1e-6)
        np.testing.assert_allclose(
            [float(s["Confidence"]) for s in selections], rows["confidence"], atol=1e-4
        )
        assert [s["Label"] for s in selections] == rows["label"].tolist()

        lines = (out / site / "a.wav.labels.txt").read_text().splitlines()
        labels = [line.split("\t") for line in lines]
        assert len(labels) == len(rows) and all(len(fields) == 3 for fields in labels)
        np.testing.assert_allclose([float(f[0]) for f in labels], rows["start"], atol=1e-6)
        np.testing.assert_allclose([float(f[1]) for f in labels], rows["end"], atol=1e-6)
        assert [f[2] for f in labels] == rows["label"].tolist()

    # the silent recording has its files, empty; the broken ones have none
    assert read_detections(out / "silent.flac.detections.csv").empty
    assert (out / "silent.flac.labels.txt").read_text() == ""
    assert (out / "silent.flac.selections.txt").read_text().splitlines() == ["\t".join(RAVEN_COLUMNS)]
    assert not list(out.glob("broken.wav.*")) and not list(out.glob("empty.wav.*"))
    settings = json.loads((out / "detect_settings.json").read_text())
    assert (
        settings["clip_seconds"] == 2.0
        and settings["min_confidence"] == 0.1
        and settings["labels"][2] == "/m/0bt9lr"
    )


def test_every_clip_is_in_the_table_with_the_rule_of_the_clips(everything, archive):
    for path in (archive / "siteA" / "a.wav", archive / "silent.flac"):
        clips = ClipRule(2.0, 0.5).clips(len(load_audio(path)))
        rows = recording_rows(everything, path)
        if path.name == "silent.flac":
            assert rows.empty  # silent clips get no detection, even without a threshold
            continue
        assert sorted(set(zip(rows["start"], rows["end"], strict=True))) == [
            (c.start_seconds, c.end_seconds) for c in clips
        ]
        assert len(rows) == 5 * len(clips)


def test_silent_clips_get_no_detections_and_a_silent_recording_says_so(checkpoint, archive):
    late = archive / "siteB" / "a.wav"
    waveform = load_audio(late).numpy()
    extractor = BEATsFeatureExtractor(
        checkpoint, clip_seconds=2.0, clip_overlap=0.5, window_seconds=None, num_workers=0
    )
    clips = extractor.extract_from_file(late)
    expected = [
        np.abs(waveform[round(s * 16000) : round(e * 16000)]).max()
        for s, e in zip(clips.starts, clips.ends, strict=True)
    ]
    np.testing.assert_allclose(clips.peaks, expected, atol=1e-6)
    assert clips.peaks[0] == 0.0 and clips.peaks[-1] > 0.1  # 0-2 s is digital silence

    with pytest.warns(SilentRecordingWarning, match="silent.flac"):
        table = detect_events(checkpoint, [late, archive / "silent.flac"], min_confidence=0.0, **FROM_AUDIO)
    assert set(table["path"]) == {str(late)}
    assert 0.0 not in set(table["start"])  # the silent first clip
    assert {1.5, 3.0, 4.5} <= set(table["start"])  # the clips that hear the sound


def test_a_broken_recording_is_listed_and_the_others_go_on(checkpoint, archive):
    done = []
    with pytest.warns(ARCHIVE_WARNINGS) as warned:
        table = detect_events(checkpoint, [archive], on_recording=done.append, **FROM_AUDIO)
    errors = {Path(r.path).name: r.error for r in done if r.error is not None}
    assert set(errors) == {"broken.wav", "empty.wav"}
    assert "broken.wav" in errors["broken.wav"] and "zero audio samples" in errors["empty.wav"]
    assert {str(w.message) for w in warned} >= {f"skipped: {errors['broken.wav']}"}
    assert [Path(r.path).name for r in done if r.error is None] == ["silent.flac", "a.wav", "a.wav"]
    assert table["path"].nunique() == 2


def test_a_long_recording_is_cut_by_the_clip_rule(checkpoint, tmp_path):
    seconds = 185.3
    signal = np.concatenate([testkit.class_sound(k % 5, 5.0, 16000, seed=k) for k in range(38)])[
        : round(seconds * 16000)
    ]
    path = testkit.write_audio(tmp_path / "long.flac", signal, 16000)
    done = []
    options = {"dtype": "float32", "num_workers": 0, "progress": False}  # 10 s clips: the checkpoint's
    table = detect_events(
        checkpoint, [path], min_confidence=0.0, top_k=1, batch_size=4, on_recording=done.append, **options
    )
    assert done[0].clips == 19 and done[0].seconds == pytest.approx(seconds)  # 10 s clips, the last 5.3 s
    assert len(table) == 19 and table["end"].max() == pytest.approx(seconds)


# ----------------------------------------------------------------------------- filters and events


def test_the_threshold_top_k_and_classes_filter_the_full_table(checkpoint, archive, everything):
    recording = archive / "siteA" / "a.wav"
    full = recording_rows(everything, recording)
    top = detect_events(checkpoint, [recording], min_confidence=0.0, top_k=2, **FROM_AUDIO)
    expected = full.sort_values("confidence", ascending=False, kind="stable").groupby("start").head(2)
    assert len(top) == 2 * full["start"].nunique()
    assert set(zip(top["start"], top["label"], strict=True)) == set(
        zip(expected["start"], expected["label"], strict=True)
    )

    threshold = float(np.median(full["confidence"]))
    passing = detect_events(checkpoint, [recording], min_confidence=threshold, **FROM_AUDIO)
    assert (
        len(passing) == (full["confidence"] >= threshold).sum() and (passing["confidence"] >= threshold).all()
    )

    chosen = detect_events(
        checkpoint, [recording], min_confidence=0.0, classes=["dog", "/m/09x0r"], **FROM_AUDIO
    )
    pd.testing.assert_frame_equal(chosen, full[full["label"].isin(["Dog", "Speech"])].reset_index(drop=True))

    with pytest.raises(ConfigError, match=r"'Dgo' is not a class of .* Did you mean 'Dog'"):
        detect_events(checkpoint, [recording], classes=["Dgo"], **FROM_AUDIO)
    with pytest.raises(ConfigError, match="min_confidence must be a number in"):
        detect_events(checkpoint, [recording], min_confidence=1.5, **FROM_AUDIO)
    with pytest.raises(ConfigError, match="top_k must be a positive int"):
        detect_events(checkpoint, [recording], top_k=0, **FROM_AUDIO)


def test_classes_come_from_a_list_or_a_file(tmp_path):
    assert read_class_list("Dog, /m/09x0r") == ["Dog", "/m/09x0r"]
    listed = tmp_path / "classes.txt"
    listed.write_text("# birds and speech\nMale speech, man speaking\n\n/m/0bt9lr\n")
    assert read_class_list(str(listed)) == ["Male speech, man speaking", "/m/0bt9lr"]


def test_merge_joins_touching_and_overlapping_clips_of_a_label():
    rows = [
        ("b.wav", 0.0, 2.0, "Dog", 0.4),
        ("a.wav", 0.0, 2.0, "Dog", 0.5),
        ("a.wav", 1.5, 3.5, "Dog", 0.9),  # overlaps the first
        ("a.wav", 3.5, 5.5, "Dog", 0.6),  # touches the second
        ("a.wav", 6.0, 8.0, "Dog", 0.7),  # after a gap: a new event
        ("a.wav", 1.5, 3.5, "Rain", 0.3),  # another label
    ]
    detections = pd.DataFrame(rows, columns=["path", "start", "end", "label", "confidence"])
    merged = merge_events(detections)
    assert merged.values.tolist() == [
        ["a.wav", 0.0, 5.5, "Dog", 0.9],
        ["a.wav", 1.5, 3.5, "Rain", 0.3],
        ["a.wav", 6.0, 8.0, "Dog", 0.7],
        ["b.wav", 0.0, 2.0, "Dog", 0.4],
    ]
    assert merge_events(detections.iloc[:0]).empty


def test_merged_events_cover_exactly_the_clips_that_detect_their_label(checkpoint, archive):
    recording = archive / "siteA" / "a.wav"
    clips = detect_events(checkpoint, [recording], min_confidence=0.5, **FROM_AUDIO)
    events = detect_events(checkpoint, [recording], min_confidence=0.5, merge=True, **FROM_AUDIO)
    assert len(events) < len(clips)
    for event in events.itertuples():
        inside = clips[
            (clips["label"] == event.label) & (clips["start"] >= event.start) & (clips["end"] <= event.end)
        ]
        assert inside["start"].min() == event.start and inside["end"].max() == event.end
        assert inside["confidence"].max() == event.confidence
    assert sum(
        ((clips["label"] == e.label) & clips["start"].between(e.start, e.end)).sum()
        for e in events.itertuples()
    ) == len(clips)


# ----------------------------------------------------------------------------- resuming


def test_a_stopped_run_continues_with_skip_existing(checkpoint, archive, tmp_path):
    out = tmp_path / "out"
    options = {"formats": ("csv", "raven"), **FROM_AUDIO}

    def stop_after_site_a(recording):  # the recordings come in order: broken, empty, silent, siteA, siteB
        if Path(recording.path).parent.name == "siteA":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), pytest.warns(ARCHIVE_WARNINGS):
        detect_events(checkpoint, [archive], out, on_recording=stop_after_site_a, **options)
    assert (out / "siteA" / "a.wav.detections.csv").is_file() and (
        out / "siteA" / "a.wav.selections.txt"
    ).is_file()
    assert not (out / "siteB").exists() and not (out / "detections.csv").exists()

    done = []
    with pytest.warns(ARCHIVE_WARNINGS):
        table = detect_events(
            checkpoint, [archive], out, skip_existing=True, on_recording=done.append, **options
        )
    assert [Path(r.path).name for r in done if r.existing] == ["silent.flac", "a.wav"]
    assert [Path(r.path).parent.name for r in done if r.error is None and not r.existing] == ["siteB"]
    with pytest.warns(ARCHIVE_WARNINGS):
        uninterrupted = detect_events(checkpoint, [archive], **options)
    pd.testing.assert_frame_equal(table, uninterrupted, check_dtype=False)
    pd.testing.assert_frame_equal(read_detections(out / "detections.csv"), uninterrupted, check_dtype=False)

    with pytest.raises(ConfigError, match=r"other settings: min_confidence=0.1 \(now 0.5\)"):
        detect_events(checkpoint, [archive], out, skip_existing=True, min_confidence=0.5, **options)


# ----------------------------------------------------------------------------- stored embeddings


def test_detections_from_a_store_are_those_from_the_audio(checkpoint, archive, tmp_path, capsys):
    recordings = [str(archive / "siteA" / "a.wav"), str(archive / "siteB" / "a.wav")]
    store = tmp_path / "store"
    extract = ["extract", *recordings, "-o", str(store), "--model", checkpoint, "--no-progress"]
    assert (
        main(
            [*extract, "--clip-seconds", "2", "--clip-overlap", "0.5", "--dtype", "float32", "--workers", "0"]
        )
        == 0
    )
    capsys.readouterr()

    assert main(["detect", checkpoint, "--embeddings", str(store), "-o", str(tmp_path / "from-store")]) == 0
    assert "2 recording(s) classified" in capsys.readouterr().out
    from_store = read_detections(tmp_path / "from-store" / "detections.csv")
    # from the audio, the silent clip of siteB is known to be silent; a store holds no audio
    from_audio = detect_events(checkpoint, recordings, **FROM_AUDIO)
    silent_clip = (from_store["path"] == recordings[1]) & (from_store["start"] == 0.0)
    assert silent_clip.any()
    pd.testing.assert_frame_equal(
        from_store[~silent_clip].reset_index(drop=True),
        from_audio,
        check_exact=False,
        atol=1e-4,
        check_dtype=False,
    )

    with pytest.raises(StoreError, match=r"clip_seconds 2 s \(asked 3 s\)"):
        detect_events(checkpoint, embeddings=store, clip_seconds=3.0)
    with pytest.raises(ConfigError, match="not both"):
        detect_events(checkpoint, recordings, embeddings=store)


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("tiny_pretrained.pt", ["--clip-seconds", "2"], "another encoder"),
        (
            "tiny_finetuned.pt",
            ["--clip-seconds", "2", "--pooling", "max"],
            "pooling is 'max', the head reads 'mean'",
        ),
        ("tiny_finetuned.pt", ["--clip-seconds", "12", "--window-seconds", "5"], "embedded window by window"),
        ("tiny_finetuned.pt", [], "one embedding per recording"),
    ],
)
def test_a_store_that_cannot_serve_the_checkpoint_says_what_differs(
    checkpoint, archive, reference_dir, tmp_path, capsys, model, options, message
):
    store = tmp_path / "store"
    extract = [
        "extract",
        str(archive / "siteA" / "a.wav"),
        "-o",
        str(store),
        "--model",
        str(reference_dir / model),
    ]
    assert main([*extract, *options, "--no-progress", "--workers", "0"]) == 0
    capsys.readouterr()
    assert main(["detect", checkpoint, "--embeddings", str(store), "-o", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("beats: error: ") and message in error and len(error.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- plots


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    return struct.unpack(">II", data[16:24])


def test_plot_draws_a_heat_map_per_recording(checkpoint, archive, tmp_path):
    pytest.importorskip(
        "matplotlib"
    )  # an optional dependency, absent from the environment of the core packages
    out = tmp_path / "out"
    recordings = [archive / "siteA" / "a.wav", archive / "silent.flac"]
    with pytest.warns(SilentRecordingWarning):
        detect_events(checkpoint, recordings, out, plot=True, **FROM_AUDIO)
    for picture in (out / "siteA" / "a.wav.png", out / "silent.flac.png"):
        width, height = png_size(picture)
        assert width >= 900 and height >= 150
    import matplotlib.image

    pixels = matplotlib.image.imread(out / "siteA" / "a.wav.png")
    assert pixels[..., :3].std() > 0.05


def test_plot_without_matplotlib_says_how_to_install_it(checkpoint, archive, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match="pip install matplotlib"):
        detect_events(checkpoint, [archive / "siteA" / "a.wav"], tmp_path / "out", plot=True, **FROM_AUDIO)
    assert not (tmp_path / "out").exists()  # it says so before any work


# ----------------------------------------------------------------------------- the command line


def test_a_pretrained_checkpoint_is_one_line_that_says_to_fine_tune(reference_dir, archive, tmp_path, capsys):
    pretrained = str(reference_dir / "tiny_pretrained.pt")
    assert main(["detect", pretrained, str(archive / "siteA" / "a.wav"), "-o", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "--freeze-backbone" in error and "beats train" in error


def test_beats_detect_shows_progress_in_seconds_of_audio(checkpoint, archive, tmp_path, capsys):
    recording = str(archive / "siteA" / "a.wav")
    assert main(["detect", checkpoint, recording, "-o", str(tmp_path / "out"), *CLI]) == 0
    assert "BEATs (seconds of audio)" in capsys.readouterr().err


def test_detect_and_predict_need_neither_beats_data_nor_beats_train(checkpoint, archive, tmp_path):
    """In a process where beats-data, beats-train and beats-trainer cannot be imported."""
    code = textwrap.dedent(
        f"""
        import sys
        from importlib.abc import MetaPathFinder

        class Absent(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("beats_data", "beats_train", "beats_trainer"):
                    raise ImportError(f"{{name}} is not installed")

        sys.meta_path.insert(0, Absent())
        from beats_core.cli import main

        recording = {str(archive / "siteA" / "a.wav")!r}
        detect = main(["detect", {checkpoint!r}, recording, "-o", {str(tmp_path / "out")!r}, "--no-progress"])
        predict = main(["predict", {checkpoint!r}, recording, "-o", {str(tmp_path / "predictions.csv")!r}])
        print("status", detect, predict)
        print("imported", sorted(m for m in sys.modules if m.startswith(("beats_data", "beats_train"))))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "status 0 0" in done.stdout, done.stdout + done.stderr
    assert "imported []" in done.stdout
    assert read_detections(tmp_path / "out" / "detections.csv")["label"].isin(NAMES).all()
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert predictions.columns[:4].tolist() == ["filename", "label", "probability", "label_id"]
    assert predictions["filename"].tolist() == [str(archive / "siteA" / "a.wav")]
