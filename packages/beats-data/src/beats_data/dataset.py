"""The torch side: a Dataset over the standard frame, a padding collate, and a DataLoader factory.

Files are decoded in the DataLoader's worker processes. Each item is a dict::

    {"waveform": float32 (samples,) at 16 kHz, "index": int row position in the frame,
     "target": int64 () or float32 (num_classes,) multi-hot, "window": int (evaluation windows)}

and :class:`AudioCollator` pads a list of them into::

    {"waveform": float32 (B, N), "padding_mask": bool (B, N) with True = padding,
     "index": int64 (B,), "target": int64 (B,) or float32 (B, num_classes), "window": int64 (B,)}

which is what ``BEATs.extract_features(waveform, padding_mask)`` takes.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler

from beats_core.audio import audio_info, load_audio
from beats_core.batching import MIN_WAVEFORM_SAMPLES, pad_waveforms
from beats_core.clips import ClipRule
from beats_core.errors import AudioDecodeError, ConfigError, DatasetError
from beats_core.geometry import SAMPLE_RATE
from beats_data.frame import CATEGORY, FILENAME, require_columns, resolve_paths
from beats_data.labels import LabelEncoder
from beats_data.samplers import LengthGroupedSampler

__all__ = ["AudioCollator", "AudioDataset", "create_dataloader"]

logger = logging.getLogger(__name__)

#: A column with clip durations in seconds (e.g. from validation) spares reading headers.
DURATION_COLUMN = "duration"


class AudioDataset(Dataset):
    """Clips of a dataset frame, decoded on demand, with their class targets.

    Training (``train=True``): a clip longer than ``max_duration`` is cropped at a random
    place (only that window is decoded); shorter clips are kept whole and padded by the
    collate. Evaluation (``train=False``): whole clips, or, with ``max_duration``, every
    clip is cut into deterministic windows of ``max_duration`` (the last one aligned to the
    clip's end), each window one item, so that predictions can be averaged per clip through
    the items' ``index``.

    A file that cannot be decoded is skipped with a logged warning naming it
    (``on_error="skip"``, the item is ``None`` and the collate drops it) or raises its
    :class:`~beats_core.errors.AudioDecodeError` (``on_error="raise"``).

    Args:
        frame: the dataset frame, one row per clip.
        labels: the label mapping; share one built from the whole dataset between splits.
            Built from ``frame`` when ``None`` (single-label). Unlabeled data: set
            ``label_column=None``.
        root: the folder relative paths start from.
        audio_column: the column with the audio paths.
        label_column: the column with the labels, or ``None`` for items without targets.
        sample_rate: the rate of the waveforms, in Hz.
        train: random crops (training) or whole clips / fixed windows (evaluation).
        max_duration: the longest waveform in seconds; ``None`` keeps whole clips.
        on_error: ``"skip"`` or ``"raise"`` for files that cannot be decoded.

    Raises:
        DatasetError: a column is missing or a label is not in ``labels``.
        ConfigError: a bad ``max_duration`` or ``on_error``.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        labels: LabelEncoder | None = None,
        root: str | Path | None = None,
        audio_column: str = FILENAME,
        label_column: str | None = CATEGORY,
        sample_rate: int = SAMPLE_RATE,
        train: bool = False,
        max_duration: float | None = None,
        on_error: Literal["skip", "raise"] = "skip",
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise ConfigError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if max_duration is not None and not (math.isfinite(max_duration) and max_duration > 0):
            raise ConfigError(
                f"max_duration must be a positive number of seconds or None, got {max_duration!r}"
            )
        self.paths = resolve_paths(frame, root, audio_column)
        self.sample_rate = sample_rate
        self.train = train
        self.max_duration = max_duration
        self.on_error = on_error
        self.labels: LabelEncoder | None = None
        self.targets: np.ndarray | None = None
        if label_column is not None:
            require_columns(
                frame, [label_column], "the dataset DataFrame", "Pass label_column= (None for no labels)."
            )
            self.labels = (
                labels if labels is not None else LabelEncoder.from_frame(frame, label_column=label_column)
            )
            self.targets = self.labels.encode(frame[label_column])
        self._durations: np.ndarray | None = None
        if DURATION_COLUMN in frame.columns and pd.api.types.is_numeric_dtype(frame[DURATION_COLUMN]):
            self._durations = frame[DURATION_COLUMN].fillna(0.0).to_numpy(dtype=float)
        # item -> (row, offset in seconds, duration in seconds or None, window number)
        self._items: list[tuple[int, float, float | None, int]] = [
            (row, 0.0, None, 0) for row in range(len(self.paths))
        ]
        if not train and max_duration is not None:
            windows = ClipRule.windows(max_duration)
            self._items = [
                window
                for row, length in enumerate(self.durations())
                for window in _windows(row, round(length * SAMPLE_RATE), windows)
            ]
        self._reported: set[str] = set()

    @property
    def label_dict(self) -> dict[int, str]:
        """The ``{index: label}`` mapping of the targets (a fine-tuned checkpoint's ``label_dict``)."""
        if self.labels is None:
            raise DatasetError("this dataset has no labels (label_column=None)")
        return self.labels.to_label_dict()

    def durations(self) -> np.ndarray:
        """Each clip's duration in seconds, from the frame's ``duration`` column or the file headers.

        Read once (about a millisecond per file) and kept; an unreadable file counts as 0.
        """
        if self._durations is None:
            durations = np.zeros(len(self.paths))
            for row, path in enumerate(self.paths):
                with contextlib.suppress(AudioDecodeError):  # reported when the item is loaded
                    durations[row] = audio_info(path).duration
            self._durations = durations
        return self._durations

    def lengths(self) -> np.ndarray:
        """Each item's waveform length in samples (after cropping), for :class:`LengthGroupedSampler`."""
        durations = self.durations()
        seconds = np.array([durations[row] if d is None else d for row, _, d, _ in self._items])
        if self.max_duration is not None:
            seconds = np.minimum(seconds, self.max_duration)
        return np.round(seconds * self.sample_rate).astype(np.int64)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, item: int) -> dict[str, Any] | None:
        row, offset, duration, window = self._items[item]
        try:
            waveform = self._load(row, offset, duration)
        except AudioDecodeError as e:
            if self.on_error == "raise":
                raise
            if self.paths[row] not in self._reported:
                self._reported.add(self.paths[row])
                logger.warning("skipping row %d: %s", row, e)
            return None
        result: dict[str, Any] = {"waveform": waveform, "index": row}
        if self.targets is not None:
            result["target"] = torch.from_numpy(np.asarray(self.targets[row]))
        if not self.train and self.max_duration is not None:
            result["window"] = window
        return result

    def _load(self, row: int, offset: float, duration: float | None) -> torch.Tensor:
        path = self.paths[row]
        if not self.train or self.max_duration is None:
            return load_audio(path, sample_rate=self.sample_rate, offset=offset, duration=duration)
        crop = ClipRule(self.max_duration)
        if self._durations is not None and self._durations[row] > self.max_duration:
            # decode only a random window; a header that overstates the length falls back to the whole clip
            clip = crop.random_clip(round(self._durations[row] * SAMPLE_RATE), float(torch.rand(())))
            try:
                waveform = load_audio(
                    path, sample_rate=self.sample_rate, offset=clip.start_seconds, duration=self.max_duration
                )
            except AudioDecodeError:
                waveform = load_audio(path, sample_rate=self.sample_rate)
        else:
            waveform = load_audio(path, sample_rate=self.sample_rate)
        if waveform.shape[0] > crop.clip_samples:
            clip = crop.random_clip(waveform.shape[0], float(torch.rand(())))
            waveform = waveform[clip.start : clip.stop]
        return waveform


def _windows(row: int, num_samples: int, rule: ClipRule) -> list[tuple[int, float, float | None, int]]:
    """The evaluation windows of one clip, cut by the one clip rule: ``(row, offset, duration, number)``.

    The windows are those the feature extractor processes a recording in
    (:meth:`beats_core.clips.ClipRule.windows`). A clip of one window (or of unknown length) is
    decoded whole.
    """
    clips = rule.clips(num_samples)
    if len(clips) <= 1:
        return [(row, 0.0, None, 0)]
    return [(row, clip.start_seconds, clip.num_samples / SAMPLE_RATE, k) for k, clip in enumerate(clips)]


class AudioCollator:
    """Pads a list of :class:`AudioDataset` items into a batch with its padding mask.

    Items that are ``None`` (files skipped with ``on_error="skip"``) are dropped. A batch
    whose every item was skipped raises, rather than silently producing nothing.

    Args:
        min_length: pad to at least this many samples (default: one fbank patch of BEATs,
            :data:`~beats_core.batching.MIN_WAVEFORM_SAMPLES`); the extra samples are padding.
    """

    def __init__(self, min_length: int = MIN_WAVEFORM_SAMPLES) -> None:
        self.min_length = min_length

    def __call__(self, items: list[dict[str, Any] | None]) -> dict[str, torch.Tensor]:
        """Collate items into ``waveform``, ``padding_mask``, ``index`` and, if present, ``target``, ``window``.

        Raises:
            DatasetError: every item of the batch was a file that could not be decoded.
        """
        kept = [item for item in items if item is not None]
        if not kept:
            raise DatasetError(
                f"all {len(items)} clips of a batch failed to decode (see the warnings that name "
                "them); run `beats validate` on the dataset and fix or remove the bad files"
            )
        waveform, padding_mask = pad_waveforms(
            [item["waveform"] for item in kept], min_length=self.min_length
        )
        batch = {
            "waveform": waveform,
            "padding_mask": padding_mask,
            "index": torch.tensor([item["index"] for item in kept], dtype=torch.int64),
        }
        if "target" in kept[0]:
            batch["target"] = torch.stack([item["target"] for item in kept])
        if "window" in kept[0]:
            batch["window"] = torch.tensor([item["window"] for item in kept], dtype=torch.int64)
        return batch


def create_dataloader(
    dataset: AudioDataset,
    batch_size: int,
    *,
    shuffle: bool | None = None,
    seed: int = 0,
    group_by_length: bool = True,
    num_workers: int = 0,
    drop_last: bool = False,
    min_length: int = MIN_WAVEFORM_SAMPLES,
    num_replicas: int = 1,
    rank: int = 0,
    **loader_options: Any,
) -> DataLoader:
    """Build the DataLoader of the training pipeline: decoding in workers, padding, length grouping.

    The result works as is with ``accelerator.prepare`` (keep ``num_replicas=1`` then):
    the order is reproducible per epoch from ``seed``, and Accelerate sets the epoch.

    Args:
        dataset: the :class:`AudioDataset`.
        batch_size: clips per batch.
        shuffle: random order; defaults to ``dataset.train``.
        seed: the seed of the order (epoch ``e`` uses ``seed + e`` when grouping by length).
        group_by_length: batch clips of similar length (:class:`LengthGroupedSampler`; reads
            each file's header once) so that padding wastes little.
        num_workers: decoding processes (0 decodes in the main process).
        drop_last: drop a final batch smaller than ``batch_size``.
        min_length: pad every batch to at least this many samples.
        num_replicas: processes to shard across when not using Accelerate.
        rank: this process's index among them.
        **loader_options: more ``torch.utils.data.DataLoader`` arguments (``pin_memory``,
            ``persistent_workers``, ``prefetch_factor``, ...).

    Returns:
        A DataLoader yielding the dicts of :class:`AudioCollator`.
    """
    shuffle = dataset.train if shuffle is None else shuffle
    if group_by_length:
        sampler: Any = LengthGroupedSampler(
            dataset.lengths(), batch_size, shuffle=shuffle, seed=seed, num_replicas=num_replicas, rank=rank
        )
    elif num_replicas > 1:
        sampler = DistributedSampler(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed
        )
    elif shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=AudioCollator(min_length),
        **loader_options,
    )
