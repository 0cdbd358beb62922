from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beats_core import ConfigError
from beats_core.clips import ClipRule
from beats_core.geometry import num_fbank_frames, num_time_steps, step_timestamps
from beats_core.model import downsample_padding_mask
from beats_extract.framing import aligned_padding_mask, plan_windows


def test_time_steps_and_their_timestamps():
    assert num_time_steps(160000) == 62  # 10 s: 998 frames
    assert num_time_steps(2800) == 1 and num_time_steps(2799) == 1 and num_time_steps(1) == 1
    assert num_time_steps(5360) == 2  # 2560 + 2800
    np.testing.assert_allclose(step_timestamps(3), [0.0875, 0.2475, 0.4075])
    np.testing.assert_allclose(step_timestamps(1, first_step=62), [10.0075])  # 9.92 s + 87.5 ms


def _hop_steps(window_seconds: float, hop_seconds: float | None) -> int:
    return ClipRule.windows(window_seconds, hop_seconds).hop_samples // 2560


def test_hop_is_rounded_to_the_step_grid():
    assert _hop_steps(10.0, None) == 62
    assert _hop_steps(10.0, 5.0) == 31  # 4.96 s
    assert _hop_steps(10.0, 0.01) == 1
    with pytest.raises(ConfigError, match="longer than the window"):
        _hop_steps(10.0, 10.5)
    with pytest.raises(ConfigError, match="positive"):
        _hop_steps(10.0, -1.0)


@settings(max_examples=200, deadline=None)
@given(
    num_samples=st.integers(1, 400_000),
    window_steps=st.integers(1, 80),
    data=st.data(),
)
def test_windows_split_the_steps_of_the_recording_without_gaps_or_repeats(num_samples, window_steps, data):
    window = 2800 + 2560 * (window_steps - 1) + data.draw(st.integers(0, 2559))
    hop = data.draw(st.integers(1, num_time_steps(window)))
    windows = plan_windows(num_samples, ClipRule.windows(window / 16000, hop * 0.16))
    covered = []
    for w in windows:
        assert w.start % 2560 == 0 and 0 < w.length <= max(window, num_samples)
        first, stop = w.kept_steps(num_time_steps(w.length))
        covered.extend(range(w.start // 2560 + first, w.start // 2560 + stop))
    assert covered == list(range(num_time_steps(num_samples)))


def test_a_short_recording_is_one_window():
    assert len(plan_windows(159999, ClipRule.windows(10.0))) == 1
    assert len(plan_windows(10**7, ClipRule.windows(None))) == 1
    assert [w.start for w in plan_windows(400000, ClipRule.windows(10.0))] == [0, 158720, 317440]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60000), min_size=1, max_size=6), st.integers(0, 5000))
def test_aligned_mask_downsamples_to_whole_time_steps(lengths, extra):
    num_samples = max(max(lengths), 2800) + extra
    sample_mask, token_mask = aligned_padding_mask(lengths, num_samples)
    steps = num_fbank_frames(num_samples) // 16
    expected = np.repeat(
        np.arange(steps)[None] >= np.array([min(num_time_steps(n), steps) for n in lengths])[:, None],
        8,
        axis=1,
    )
    if not expected.any():
        assert sample_mask is None and token_mask is None
        return
    np.testing.assert_array_equal(token_mask.numpy(), expected)
    frames = downsample_padding_mask(sample_mask, num_fbank_frames(num_samples))
    np.testing.assert_array_equal(downsample_padding_mask(frames, 8 * steps).numpy(), expected)
