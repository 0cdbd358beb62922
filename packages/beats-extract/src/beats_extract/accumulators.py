"""Putting the windows of a clip back together: one pooled vector, or the frames with their times.

A clip longer than the model's window is processed window by window
(:mod:`beats_extract.loading`); each window contributes what :class:`~beats_extract.runner.ModelRunner`
gives for the time steps it keeps. An accumulator collects those pieces for one clip and makes
the clip's result when all are in:

* :class:`PooledAccumulator`: the windows' pooled vectors, combined by the pooling's own rule
  (a weighted mean by token counts for ``mean``, exact; see :mod:`beats_extract.poolings`);
* :class:`FrameAccumulator`: the kept time steps, concatenated, with their timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from beats_core.geometry import step_timestamps
from beats_extract.poolings import Pooling

__all__ = ["FrameAccumulator", "FrameEmbeddings", "PooledAccumulator"]


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
