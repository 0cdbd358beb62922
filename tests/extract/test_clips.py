"""Clip-level extraction: one row per clip of a recording, each clip embedded alone."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import testkit

from beats_core import load_audio
from beats_core.clips import ClipRule
from beats_extract import BEATsFeatureExtractor, ClipFeatures


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory):
    """23.3 s of changing sounds at 44.1 kHz, stereo: clips cut out of it differ from each other."""
    root = tmp_path_factory.mktemp("recording")
    pieces = [testkit.class_sound(k % 3, 2.9, 44100, seed=k) for k in range(8)]
    signal = np.concatenate(pieces)[: round(23.3 * 44100)]
    return testkit.write_audio(root / "long.flac", np.stack([signal, 0.7 * signal], axis=1), 44100)


@pytest.mark.parametrize(
    ("clip_seconds", "overlap", "window_seconds"),
    [(5.0, 0.0, 10.0), (4.0, 1.5, 10.0), (12.0, 0.0, 5.0)],  # the last: clips longer than a window
)
def test_a_clips_row_is_the_clip_embedded_alone(
    tiny_checkpoint, recording, tmp_path, clip_seconds, overlap, window_seconds
):
    extractor = BEATsFeatureExtractor(
        str(tiny_checkpoint),
        clip_seconds=clip_seconds,
        clip_overlap=overlap,
        window_seconds=window_seconds,
        batch_size=3,
        num_workers=0,
        dtype="float32",
    )
    rows = extractor.extract_from_file(recording)
    waveform = load_audio(recording).numpy()
    clips = ClipRule(clip_seconds, overlap).clips(len(waveform))
    assert isinstance(rows, ClipFeatures) and len(rows) == len(clips) >= 2
    assert rows.paths == [str(recording)] * len(clips)
    np.testing.assert_allclose(rows.starts, [c.start_seconds for c in clips])
    np.testing.assert_allclose(rows.ends, [c.end_seconds for c in clips])
    alone = BEATsFeatureExtractor(
        str(tiny_checkpoint), window_seconds=window_seconds, num_workers=0, dtype="float32"
    )
    for k, clip in enumerate(clips):
        cut = tmp_path / f"clip{k}.wav"
        sf.write(cut, waveform[clip.start : clip.stop], 16000, subtype="FLOAT")
        np.testing.assert_allclose(rows.features[k], alone.extract_from_file(cut), atol=1e-4, rtol=0)
    assert not np.allclose(rows.features[0], rows.features[1], atol=1e-3)


def test_many_files_give_rows_in_order_and_a_short_file_one_clip(tiny_checkpoint, recording, mixed_clips):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), clip_seconds=5.0, batch_size=4, num_workers=0)
    files = [mixed_clips[0], recording, mixed_clips[1]]
    table = extractor.extract_from_files(files, progress=False)
    assert table.paths[0] == str(files[0]) and table.paths[-1] == str(files[2])
    assert table.paths.count(str(recording)) == 5  # 23.3 s in 5 s clips: the last holds 3.3 s
    assert table.starts[0] == 0.0 and table.ends[0] == pytest.approx(1.3, abs=1e-3)
    assert table.features.shape == (7, 64) and np.isfinite(table.features).all()


def test_frame_level_clips_keep_the_recordings_time(tiny_checkpoint, recording):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling=None, clip_seconds=5.0, num_workers=0)
    rows = extractor.extract_from_file(recording)
    assert len(rows) == 5
    second = rows.features[1]
    assert second.timestamps[0] == pytest.approx(5.0 + 0.0875)
    assert np.all(second.timestamps < 10.0) and second.embeddings.shape[1] == 64


def test_arrays_in_clips(tiny_checkpoint):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), clip_seconds=2.0, num_workers=0)
    table = extractor.extract_from_arrays([testkit.sine(440, 5.0), testkit.sine(880, 1.0)])
    assert table.paths == ["<array 0>"] * 3 + ["<array 1>"]
    np.testing.assert_allclose(table.ends, [2.0, 4.0, 5.0, 1.0])


def test_settings_record_how_rows_were_made(tiny_checkpoint):
    extractor = BEATsFeatureExtractor(
        str(tiny_checkpoint), clip_seconds=3.0, clip_overlap=1.0, dtype="float32"
    )
    settings = extractor.settings()
    assert settings["clip_seconds"] == 3.0 and settings["clip_overlap"] == 1.0
    assert settings["window_seconds"] == 10.0 and settings["hop_seconds"] == pytest.approx(9.92)
    assert settings["dtype"] == "float32" and settings["feature_shape"] == [64]
