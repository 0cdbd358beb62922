"""How a recording is cut into clips: the one rule that training, prediction, extraction and detection share.

A clip is a stretch of a recording that is classified or embedded *alone*, as if it were its
own file (the semantics of BirdNET-Analyzer and Perch). :class:`ClipRule` says how long
clips are and how much consecutive clips overlap; :meth:`ClipRule.clips` cuts a recording of
a given length:

* a recording no longer than a clip is one clip, the whole recording;
* otherwise clips start every ``clip_seconds - overlap_seconds`` from the beginning, until
  one reaches the end of the recording; that last clip may be shorter than the others (it
  holds what is left, with no padding, as a file of that length would);
* a last clip shorter than ``min_clip_seconds`` (by default the shortest input BEATs accepts,
  175 ms) is dropped: its audio is covered by the clip before it when clips overlap, and is
  too short to say anything about when they do not.

Times are in samples at 16 kHz (:data:`~beats_core.geometry.SAMPLE_RATE`) and in seconds;
``round(seconds * 16000)`` converts. With ``align_to_steps`` the distance between clip starts
is rounded to whole BEATs time steps (160 ms), so that the time steps of all clips fall on one
grid: the extractor's windows over a long recording use this to give frame-level outputs and
pooled embeddings of the whole recording without gaps or repeats.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from beats_core.errors import ConfigError
from beats_core.geometry import SAMPLE_RATE, min_num_samples, step_samples

__all__ = ["MIN_CLIP_SAMPLES", "STEP_SAMPLES", "Clip", "ClipRule"]

#: The shortest input BEATs accepts, in samples (175 ms): the shortest clip.
MIN_CLIP_SAMPLES = min_num_samples()
#: Samples between the starts of consecutive BEATs time steps (160 ms).
STEP_SAMPLES = step_samples()


@dataclass(frozen=True)
class Clip:
    """One clip of a recording.

    Attributes:
        start: its first sample in the recording, at 16 kHz.
        stop: the sample after its last one (exclusive).
    """

    start: int
    stop: int

    @property
    def num_samples(self) -> int:
        """Its length in samples."""
        return self.stop - self.start

    @property
    def start_seconds(self) -> float:
        """Where it starts, in seconds from the beginning of the recording."""
        return self.start / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        """Where it ends, in seconds from the beginning of the recording."""
        return self.stop / SAMPLE_RATE


@dataclass(frozen=True)
class ClipRule:
    """How a recording is cut into clips (see the module docstring for the rule).

    Args:
        clip_seconds: the length of a clip; ``None`` makes the whole recording one clip.
        overlap_seconds: how much consecutive clips share, in ``[0, clip_seconds)``.
        min_clip_seconds: a last clip shorter than this is dropped (unless it is the only one).
        align_to_steps: round the distance between clip starts to whole BEATs time steps.

    Raises:
        ConfigError: a value is out of range; the message names it.
    """

    clip_seconds: float | None = None
    overlap_seconds: float = 0.0
    min_clip_seconds: float = MIN_CLIP_SAMPLES / SAMPLE_RATE
    align_to_steps: bool = False

    def __post_init__(self) -> None:
        clip = self.clip_seconds
        if clip is not None and not (_number(clip) and clip * SAMPLE_RATE >= MIN_CLIP_SAMPLES):
            raise ConfigError(
                f"clip_seconds={clip!r} must be a number of seconds of at least "
                f"{MIN_CLIP_SAMPLES / SAMPLE_RATE:g} (the shortest clip BEATs accepts), or None for whole "
                "recordings; BEATs was trained on 10 s clips"
            )
        overlap = self.overlap_seconds
        if not (_number(overlap) and overlap >= 0 and (clip is None or overlap < clip)):
            limit = "" if clip is None else f" and below clip_seconds={clip:g}"
            raise ConfigError(f"overlap_seconds={overlap!r} must be a number of seconds >= 0{limit}")
        if not (_number(self.min_clip_seconds) and self.min_clip_seconds >= 0):
            raise ConfigError(f"min_clip_seconds={self.min_clip_seconds!r} must be a number of seconds >= 0")

    @classmethod
    def windows(cls, window_seconds: float | None, hop_seconds: float | None = None) -> ClipRule:
        """The rule for the windows a long recording is processed in, to give one result for the whole of it.

        Windows start on BEATs' time-step grid (``align_to_steps``), so that their time steps
        are those of the whole recording. Without ``hop_seconds`` the windows follow each other
        by their whole time steps (every 9.92 s for 10 s windows), so no audio is skipped.

        Args:
            window_seconds: the window length; ``None`` for one window whatever the length.
            hop_seconds: the distance between window starts, rounded to whole time steps.

        Returns:
            The rule.

        Raises:
            ConfigError: a window shorter than one time step, or a hop that is not positive or
                longer than the window's time steps (it would leave gaps).
        """
        if window_seconds is None:
            return cls()
        if not (_number(window_seconds) and window_seconds * SAMPLE_RATE >= MIN_CLIP_SAMPLES):
            raise ConfigError(
                f"window_seconds={window_seconds!r} is shorter than one BEATs patch "
                f"({MIN_CLIP_SAMPLES / SAMPLE_RATE:g} s); use at least that, ideally 10 s (the clip length "
                "BEATs was trained on)"
            )
        steps = (round(window_seconds * SAMPLE_RATE) - MIN_CLIP_SAMPLES) // STEP_SAMPLES + 1
        if hop_seconds is None:
            return cls(
                window_seconds, window_seconds - steps * STEP_SAMPLES / SAMPLE_RATE, align_to_steps=True
            )
        if not (_number(hop_seconds) and hop_seconds > 0):
            raise ConfigError(
                f"hop_seconds must be a positive number of seconds or None, got {hop_seconds!r}"
            )
        if round(hop_seconds * SAMPLE_RATE / STEP_SAMPLES) > steps:
            raise ConfigError(
                f"hop_seconds={hop_seconds:g} is longer than the window's {steps} time steps "
                f"({steps * STEP_SAMPLES / SAMPLE_RATE:g} s): windows would leave gaps; use a hop of at most that"
            )
        return cls(window_seconds, max(0.0, window_seconds - hop_seconds), align_to_steps=True)

    @property
    def clip_samples(self) -> int | None:
        """The length of a clip in samples, or ``None`` for whole recordings."""
        return None if self.clip_seconds is None else round(self.clip_seconds * SAMPLE_RATE)

    @property
    def hop_samples(self) -> int | None:
        """Samples between the starts of consecutive clips, or ``None`` for whole recordings."""
        if self.clip_seconds is None:
            return None
        hop = round((self.clip_seconds - self.overlap_seconds) * SAMPLE_RATE)
        if not self.align_to_steps:
            return max(1, hop)
        steps_per_clip = max(1, (self.clip_samples - MIN_CLIP_SAMPLES) // STEP_SAMPLES + 1)
        return min(max(1, round(hop / STEP_SAMPLES)), steps_per_clip) * STEP_SAMPLES

    def clips(self, num_samples: int) -> list[Clip]:
        """Cut a recording of ``num_samples`` samples into clips.

        Args:
            num_samples: the recording's length at 16 kHz.

        Returns:
            The clips in time order; none for an empty recording.
        """
        length, hop = self.clip_samples, self.hop_samples
        if num_samples <= 0:
            return []
        if length is None or hop is None or num_samples <= length:
            return [Clip(0, num_samples)]
        clips = []
        start = 0
        while True:
            clips.append(Clip(start, min(start + length, num_samples)))
            if start + length >= num_samples:
                break
            start += hop
        if len(clips) > 1 and clips[-1].num_samples < round(self.min_clip_seconds * SAMPLE_RATE):
            clips.pop()
        return clips

    def count(self, num_samples: int) -> int:
        """How many clips :meth:`clips` makes of a recording, without making them.

        Args:
            num_samples: the recording's length at 16 kHz.

        Returns:
            The number of clips.
        """
        length, hop = self.clip_samples, self.hop_samples
        if num_samples <= 0:
            return 0
        if length is None or hop is None or num_samples <= length:
            return 1
        count = math.ceil((num_samples - length) / hop) + 1
        last = num_samples - (count - 1) * hop
        return count - (last < round(self.min_clip_seconds * SAMPLE_RATE))

    def random_clip(self, num_samples: int, start_fraction: float) -> Clip:
        """A clip of this rule's length at a chosen place, for random crops in training.

        Args:
            num_samples: the recording's length at 16 kHz.
            start_fraction: where the clip starts, in ``[0, 1]``: 0 at the beginning, 1 with
                its end at the recording's end (draw it from the training generator).

        Returns:
            The clip; the whole recording when it is no longer than a clip.
        """
        length = self.clip_samples
        if length is None or num_samples <= length:
            return Clip(0, max(0, num_samples))
        start = min(int(start_fraction * (num_samples - length + 1)), num_samples - length)
        return Clip(start, start + length)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (for a store's manifest)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ClipRule:
        """The inverse of :meth:`to_dict`.

        Raises:
            ConfigError: a value is out of range.
        """
        return cls(**values)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
