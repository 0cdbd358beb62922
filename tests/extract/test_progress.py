"""The progress bar in seconds of audio: an estimated total that is refined and never overrun."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import testkit

from beats_extract.progress import AudioProgress


def test_the_total_follows_the_audio_when_the_estimate_falls_short(tmp_path):
    # a compressed file first (few bytes a second), then a large one: the estimate from the first is short
    short = testkit.write_audio(tmp_path / "a.flac", testkit.sine(440.0, 2.0, 16000), 16000)
    long = testkit.write_audio(tmp_path / "b.wav", testkit.noise(1.0, 16000), 16000, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's "clamping frac to range [0, 1]" would fail here
        with AudioProgress([short, long], enabled=True) as progress:
            list(progress.track([SimpleNamespace(seconds=2.0)]))
            progress.file_done(0, 2.0)
            estimate = progress.bar.total
            list(progress.track([SimpleNamespace(seconds=30.0)]))  # far more than estimated
            assert progress.bar.n == 32.0 and progress.bar.total == 32.0 > estimate
            progress.file_done(1, 30.0)
            assert progress.bar.total == 32.0 and progress.files == 2
