"""Putting the windows of a clip back together: one pooled vector, or the frames with their times.

A clip longer than the model's window is processed window by window
(:mod:`beats_extract.loading`); each window contributes what :class:`~beats_extract.runner.ModelRunner`
gives for the time steps it keeps. An accumulator collects those pieces for one clip and makes
the clip's result when all are in:

* :class:`PooledAccumulator`: the windows' pooled vectors, combined by the pooling's own rule
  (a weighted mean by token counts for ``mean``, exact; see :mod:`beats_extract.poolings`);
* :class:`FrameAccumulator`: the kept time steps, concatenated, with their timestamps.

:class:`RecordingAccumulator` holds the accumulators of a recording's clips and makes its result:
the one clip's, or every clip's as :class:`ClipFeatures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from beats_core.clips import Clip
from beats_core.geometry import SAMPLE_RATE, step_timestamps
from beats_extract.poolings import Pooling

__all__ = ["ClipFeatures", "FrameAccumulator", "FrameEmbeddings", "PooledAccumulator", "RecordingAccumulator"]


@dataclass(frozen=True)
class FrameEmbeddings:
    """The embeddings of a clip's time steps, with their timestamps.

    Attributes:
        embeddings: float32 ``(T, D)`` (``(T, L + 1, C)`` with ``layer="all"``): for each
            time step, the encoder's 8 tokens of that step averaged over frequency.
        timestamps: float64 ``(T,)``, seconds from the start of the recording: the centre of
            the samples the step's 16 fbank frames cover, ``start + 0.16 k + 0.0875`` for step
            ``k`` of a clip starting at ``start`` (0 for a whole file).
    """

    embeddings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass
class PooledAccumulator:
    """The pooled vectors of a clip's windows and the number of tokens each kept."""

    pooling: Pooling
    values: list[np.ndarray] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)

    def add(self, value: np.ndarray, weight: int) -> None:
        """Add one window's pooled vector and its count of kept tokens."""
        self.values.append(value)
        self.weights.append(weight)

    def __bool__(self) -> bool:
        return bool(self.values)

    def result(self) -> np.ndarray:
        """The clip's vector: the only window's, or the windows' combined by the pooling's rule."""
        if len(self.values) == 1:
            return self.values[0]
        combined = self.pooling.combine_windows(np.stack(self.values), np.asarray(self.weights))
        return np.asarray(combined, dtype=np.float32)


@dataclass
class FrameAccumulator:
    """The kept time steps of a clip's windows, with the index of each window's first step."""

    offset_seconds: float
    patch_size: int = 16
    frames: list[np.ndarray] = field(default_factory=list)
    first_steps: list[int] = field(default_factory=list)

    def add(self, frames: np.ndarray, first_step: int) -> None:
        """Add one window's kept steps ``(T, ...)`` and the clip-grid index of the first."""
        self.frames.append(frames)
        self.first_steps.append(first_step)

    def __bool__(self) -> bool:
        return bool(self.frames)

    def result(self) -> FrameEmbeddings:
        """The clip's time steps, in order, and their timestamps in the recording."""
        timestamps = np.concatenate(
            [
                step_timestamps(len(frames), first, self.patch_size)
                for frames, first in zip(self.frames, self.first_steps, strict=True)
            ]
        )
        embeddings = np.concatenate(self.frames).astype(np.float32, copy=False)
        return FrameEmbeddings(embeddings, timestamps + self.offset_seconds)


@dataclass(frozen=True)
class ClipFeatures:
    """Clip-level results: one row per clip, each clip embedded alone.

    Attributes:
        paths: the recording of each row.
        starts: float64 ``(n,)``, where each clip starts, in seconds from the beginning of its recording.
        ends: float64 ``(n,)``, where each clip ends.
        features: float32 ``(n, *feature_shape)``; with ``pooling=None`` a list of
            :class:`FrameEmbeddings` (timestamps in the recording's time).
        peaks: float32 ``(n,)``, the largest absolute sample of each clip as the model received
            it (0 for digital silence), or ``None`` where not known.
    """

    paths: list[str]
    starts: np.ndarray
    ends: np.ndarray
    features: np.ndarray | list[FrameEmbeddings]
    peaks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def concatenate(cls, parts: Sequence[ClipFeatures], feature_shape: tuple[int, ...]) -> ClipFeatures:
        """The rows of several results, in order.

        Args:
            parts: the results to join.
            feature_shape: the shape of one row's features (for an empty result).

        Returns:
            One :class:`ClipFeatures`.
        """
        frames = any(isinstance(part.features, list) for part in parts)
        if frames:
            features: np.ndarray | list[FrameEmbeddings] = [f for part in parts for f in part.features]
        elif parts:
            features = np.concatenate([part.features for part in parts]).astype(np.float32, copy=False)
        else:
            features = np.zeros((0, *feature_shape), dtype=np.float32)
        known = parts and all(part.peaks is not None for part in parts)
        return cls(
            paths=[path for part in parts for path in part.paths],
            starts=np.concatenate([part.starts for part in parts]) if parts else np.zeros(0),
            ends=np.concatenate([part.ends for part in parts]) if parts else np.zeros(0),
            features=features,
            peaks=np.concatenate([part.peaks for part in parts]) if known else None,  # type: ignore[misc]
        )


class RecordingAccumulator:
    """The clips of one recording gathered so far, each with its accumulator.

    Args:
        pooling: the pooling, or ``None`` for frame-level output.
        patch_size: the model's ``input_patch_size`` (the time-step grid of frame-level output).
        clips: whether the recording is cut into clips (its result is :class:`ClipFeatures`).
    """

    def __init__(self, pooling: Pooling | None, patch_size: int, clips: bool) -> None:
        self.pooling = pooling
        self.patch_size = patch_size
        self.cut_into_clips = clips
        self.clips: dict[int, tuple[Clip, PooledAccumulator | FrameAccumulator]] = {}
        self.peaks: dict[int, float] = {}

    @property
    def seconds(self) -> float:
        """The duration of the audio it held (the end of its last clip)."""
        return max(clip.stop for clip, _ in self.clips.values()) / SAMPLE_RATE

    def add(self, number: int, clip: Clip, value: np.ndarray, weight: int, peak: float) -> None:
        """Add what one row gave to its clip (a clip cut short by the data keeps its shortest extent), and its peak."""
        if number in self.clips:
            known, accumulator = self.clips[number]
            clip = clip if clip.stop < known.stop else known
        elif self.pooling is not None:
            accumulator = PooledAccumulator(self.pooling)
        else:
            accumulator = FrameAccumulator(clip.start_seconds, self.patch_size)
        self.clips[number] = (clip, accumulator)
        self.peaks[number] = max(peak, self.peaks.get(number, 0.0))
        accumulator.add(value, weight)

    def result(self) -> np.ndarray | FrameEmbeddings | ClipFeatures:
        """The recording's features: its one clip's, or every clip's as :class:`ClipFeatures`."""
        ordered = [self.clips[number] for number in sorted(self.clips)]
        if not self.cut_into_clips:
            return ordered[0][1].result()
        values = [accumulator.result() for _, accumulator in ordered]
        features = values if self.pooling is None else np.stack(values).astype(np.float32, copy=False)
        return ClipFeatures(
            paths=[""] * len(ordered),
            starts=np.array([clip.start_seconds for clip, _ in ordered]),
            ends=np.array([clip.end_seconds for clip, _ in ordered]),
            features=features,
            peaks=np.array([self.peaks[number] for number in sorted(self.clips)], dtype=np.float32),
        )
