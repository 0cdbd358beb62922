from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from beats_core import ConfigError, load_audio
from beats_data import scan_directory_dataset, validate_dataset
from beats_data.synthetic import SYNTHETIC_CLASSES, make_synthetic_dataset, synthesize_clip


def _centroid(clip: np.ndarray, sample_rate: int = 16000) -> float:
    power = np.abs(np.fft.rfft(clip)) ** 2
    frequencies = np.fft.rfftfreq(len(clip), 1 / sample_rate)
    return float((power * frequencies).sum() / power.sum())


def test_a_clip_has_the_asked_length_and_a_sane_level():
    for name in SYNTHETIC_CLASSES:
        clip = synthesize_clip(name, 1.5, seed=3)
        assert clip.dtype == np.float32 and clip.shape == (24000,)
        peak_db = 20 * np.log10(np.abs(clip).max())
        assert -18.5 <= peak_db <= -2.9
        assert np.isfinite(clip).all()


def test_same_seed_same_clip_other_seed_other_clip():
    assert np.array_equal(synthesize_clip("siren", 1.0, seed=7), synthesize_clip("siren", 1.0, seed=7))
    assert not np.allclose(synthesize_clip("siren", 1.0, seed=7), synthesize_clip("siren", 1.0, seed=8))


def test_classes_differ_in_a_way_a_model_can_hear():
    # Engines are low, birdsong is high, whistles sit between: every clip, not on average.
    for seed in range(5):
        engine, whistle, bird = (
            _centroid(synthesize_clip(n, 2.0, seed=seed)) for n in ("engine", "whistle", "birdsong")
        )
        assert engine < whistle < bird


def test_dataset_is_the_directory_layout_and_validates(tmp_path):
    frame = make_synthetic_dataset(
        tmp_path, classes=["engine", "birdsong", "knocking"], clips_per_class=4, seed=1, progress=False
    )
    assert len(frame) == 12 and sorted(frame["category"].unique()) == ["birdsong", "engine", "knocking"]
    scanned = scan_directory_dataset(tmp_path)
    assert sorted(scanned["filename"]) == sorted(frame["filename"])
    durations = [soundfile.info(path).duration for path in frame["filename"]]
    assert min(durations) >= 1.0 and max(durations) <= 3.0 and len(set(durations)) > 1
    assert load_audio(frame["filename"][0]).shape[0] == round(durations[0] * 16000)
    report = validate_dataset(frame, progress=False)
    assert report.errors == []


def test_same_seed_same_files(tmp_path):
    first = make_synthetic_dataset(
        tmp_path / "a", classes=["rain"], clips_per_class=2, seed=5, progress=False
    )
    second = make_synthetic_dataset(
        tmp_path / "b", classes=["rain"], clips_per_class=2, seed=5, progress=False
    )
    for a, b in zip(first["filename"], second["filename"], strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"classes": ["violin"]}, r"unknown synthetic sound classes \['violin'\]"),
        ({"clips_per_class": 0}, "clips_per_class must be at least 1"),
        ({"min_seconds": 2.0, "max_seconds": 1.0}, "0 < min_seconds <= max_seconds"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        make_synthetic_dataset(tmp_path, progress=False, **options)
