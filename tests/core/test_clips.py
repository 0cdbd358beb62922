"""The one clip rule: how a recording is cut into clips, for every consumer."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beats_core.clips import MIN_CLIP_SAMPLES, STEP_SAMPLES, Clip, ClipRule
from beats_core.errors import ConfigError

SR = 16000


def _spans(rule: ClipRule, seconds: float) -> list[tuple[float, float]]:
    return [(c.start_seconds, c.end_seconds) for c in rule.clips(round(seconds * SR))]


def test_clips_follow_each_other_and_the_last_holds_what_is_left():
    assert _spans(ClipRule(5.0), 12.0) == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]
    assert _spans(ClipRule(5.0), 10.0) == [(0.0, 5.0), (5.0, 10.0)]


def test_overlapping_clips_stop_at_the_one_that_reaches_the_end():
    assert _spans(ClipRule(3.0, overlap_seconds=1.0), 7.5) == [(0, 3), (2, 5), (4, 7), (6, 7.5)]
    assert _spans(ClipRule(10.0, overlap_seconds=5.0), 12.0) == [(0, 10), (5, 12)]


def test_a_recording_no_longer_than_a_clip_is_one_clip_and_whole_recordings_too():
    assert _spans(ClipRule(5.0), 3.2) == [(0.0, 3.2)]
    assert _spans(ClipRule(5.0), 0.1) == [(0.0, 0.1)]  # shorter than BEATs accepts: the model pads it
    assert _spans(ClipRule(), 3600.0) == [(0.0, 3600.0)]
    assert ClipRule(5.0).clips(0) == []


def test_a_last_clip_shorter_than_the_minimum_is_dropped():
    assert _spans(ClipRule(5.0), 10.1) == [(0.0, 5.0), (5.0, 10.0)]  # 0.1 s left: less than 175 ms
    assert _spans(ClipRule(5.0, min_clip_seconds=0.0), 10.1)[-1] == (10.0, 10.1)
    assert _spans(ClipRule(5.0, min_clip_seconds=1.0), 10.5) == [(0.0, 5.0), (5.0, 10.0)]


def test_aligned_hops_are_whole_time_steps():
    rule = ClipRule(10.0, align_to_steps=True)
    assert rule.hop_samples == 62 * STEP_SAMPLES  # 9.92 s: the 62 whole steps of a 10 s clip
    assert ClipRule(10.0, overlap_seconds=5.0, align_to_steps=True).hop_samples == 31 * STEP_SAMPLES
    assert all(c.start % STEP_SAMPLES == 0 for c in rule.clips(SR * 100))


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(1, 200 * SR),
    clip=st.floats(0.2, 30.0),
    overlap_share=st.floats(0.0, 0.9),
    aligned=st.booleans(),
)
def test_clips_cover_the_recording_in_order(length, clip, overlap_share, aligned):
    rule = ClipRule(clip, overlap_seconds=overlap_share * clip, align_to_steps=aligned)
    clips = rule.clips(length)
    assert len(clips) == rule.count(length) >= 1
    assert clips[0].start == 0
    assert all(0 < c.num_samples <= max(rule.clip_samples, length) for c in clips)
    assert all(b.start - a.start == rule.hop_samples for a, b in itertools.pairwise(clips))
    assert all(b.start <= a.stop for a, b in itertools.pairwise(clips))  # no gap
    assert clips[-1].stop == length or length - clips[-1].stop < MIN_CLIP_SAMPLES


def test_random_crops_have_the_clip_length_and_stay_inside():
    rule = ClipRule(2.0)
    assert rule.random_clip(SR * 10, 0.0) == Clip(0, 2 * SR)
    assert rule.random_clip(SR * 10, 1.0) == Clip(8 * SR, 10 * SR)
    assert rule.random_clip(SR, 0.7) == Clip(0, SR)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clip_seconds": 0.1}, "clip_seconds=0.1 must be a number of seconds of at least 0.175"),
        ({"clip_seconds": float("nan")}, "clip_seconds=nan"),
        ({"clip_seconds": 5.0, "overlap_seconds": 5.0}, "below clip_seconds=5"),
        ({"clip_seconds": 5.0, "overlap_seconds": -1.0}, "overlap_seconds=-1.0 must be"),
    ],
)
def test_bad_settings_name_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClipRule(**kwargs)


def test_the_rule_round_trips_through_plain_data():
    rule = ClipRule(3.0, overlap_seconds=1.5)
    assert ClipRule.from_dict(rule.to_dict()) == rule
