"""Dataset-specific fbank normalisation: the mean and standard deviation of a dataset's log-mel fbank.

BEATs normalises its fbank as ``(fbank - mean) / (2 * std)`` with statistics of AudioSet;
fine-tuning on other audio (ESC-50, bird song, underwater recordings) often goes better with
the statistics of that audio. :func:`compute_fbank_stats` measures them; set them as
``TrainingConfig(fbank_mean=..., fbank_std=...)`` (or ``dataset_fbank_stats=True``), and they
travel inside the saved checkpoint's cfg, so every later use of the model normalises the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from beats_core.errors import DatasetError
from beats_core.fbank import compute_fbank
from beats_core.geometry import num_fbank_frames
from beats_data.dataset import AudioDataset, create_dataloader
from beats_data.frame import FILENAME

__all__ = ["compute_fbank_stats"]


def compute_fbank_stats(
    data: pd.DataFrame | Sequence[str | Path],
    *,
    max_clips: int | None = 2000,
    max_duration: float | None = 10.0,
    batch_size: int = 16,
    num_workers: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> tuple[float, float]:
    """The mean and standard deviation of the raw log-mel fbank over a dataset's clips.

    Every fbank value of every frame that is not padding counts once (all 128 mel bins),
    computed as BEATs computes its input (Kaldi fbank of 16 kHz audio).

    Args:
        data: a dataset frame (its ``filename`` column) or a list of audio files.
        max_clips: use a random subset of this many clips (``None``: all of them).
        max_duration: decode long clips in windows of this many seconds (all of each clip counts).
        batch_size: clips decoded per batch.
        num_workers: decoding processes.
        seed: the seed of the subset.
        progress: show a progress bar.

    Returns:
        ``(mean, std)``, for ``BEATsConfig.fbank_mean`` / ``fbank_std``.

    Raises:
        DatasetError: no clip could be decoded.
    """
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame({FILENAME: [str(f) for f in data]})
    if max_clips is not None and len(frame) > max_clips:
        frame = frame.sample(n=max_clips, random_state=seed)
    dataset = AudioDataset(
        frame.reset_index(drop=True), label_column=None, max_duration=max_duration, on_error="skip"
    )
    loader = create_dataloader(dataset, batch_size, shuffle=False, num_workers=num_workers)
    total = 0.0
    squares = 0.0
    count = 0
    for batch in tqdm(loader, desc="fbank statistics", disable=not progress, leave=False):
        fbank = compute_fbank(batch["waveform"]).double()  # (B, T, 128)
        valid = (~batch["padding_mask"]).sum(dim=1)
        for row, samples in enumerate(valid.tolist()):
            frames = num_fbank_frames(samples) if samples >= 400 else 0
            values = fbank[row, :frames]
            total += float(values.sum())
            squares += float(values.square().sum())
            count += values.numel()
    if count == 0:
        raise DatasetError(
            "no clip could be decoded to compute fbank statistics; run `beats validate` on the data"
        )
    mean = total / count
    variance = max(squares / count - mean * mean, 0.0)
    return float(mean), float(np.sqrt(variance))
