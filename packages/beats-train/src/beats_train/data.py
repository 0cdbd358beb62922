"""From a :class:`~beats_train.config.DataConfig` to validated, split data and DataLoaders.

Everything here is beats-data's pipeline (loaders, validation, splits, labels, dataset,
collate, length-grouped sampler) put together the way training needs it, plus a sampler
that draws every class equally often.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Sampler

from beats_core.errors import ConfigError, DatasetError
from beats_data.dataset import AudioCollator, AudioDataset, create_dataloader
from beats_data.frame import CATEGORY, FILENAME, FOLD, SPLIT, require_columns, resolve_paths
from beats_data.labels import LabelEncoder, split_labels
from beats_data.loaders import load_csv_dataset, parse_dataset_spec, resolve_dataset
from beats_data.splits import fold_split, stratified_split
from beats_data.validation import format_report, validate_dataset
from beats_train.config import DataConfig, TrainingConfig

__all__ = [
    "CLIP_END",
    "CLIP_START",
    "BalancedSampler",
    "PreparedData",
    "assign_splits",
    "build_dataset",
    "build_loader",
    "build_loaders",
    "class_counts",
    "class_weights",
    "load_frame",
    "load_labelled",
    "prepare_data",
    "refuse_clips",
    "validate_clips",
    "validate_frame",
]

logger = logging.getLogger(__name__)

#: Validation errors about single files: those rows are left out, training goes on.
_FILE_ERRORS = ("missing_file", "undecodable_file")
#: Where a clip starts in its recording, in seconds (a table of clips, :attr:`DataConfig.start_column`).
CLIP_START = "clip_start"
#: Where it ends.
CLIP_END = "clip_end"


@dataclass
class PreparedData:
    """A dataset ready for training.

    Attributes:
        frame: every usable clip, one row each (index 0..n-1): absolute ``filename``,
            ``category``, ``split`` (``train``/``val``/``test``; absent when prepared with
            ``split=False``), ``duration`` when known, :data:`CLIP_START` and
            :data:`CLIP_END` for clips of recordings, and the dataset's other columns.
        labels: the label mapping, built from every split.
        report: the validation report, or ``None`` when validation was off.
    """

    frame: pd.DataFrame
    labels: LabelEncoder
    report: dict[str, Any] | None = None

    def split(self, name: str) -> pd.DataFrame:
        """The rows of one split (``train``, ``val`` or ``test``), re-indexed from 0."""
        return self.frame[self.frame[SPLIT] == name].reset_index(drop=True)


def load_frame(config: DataConfig, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The dataset as the standard frame: absolute paths in ``filename``, label strings in ``category``.

    Args:
        config: where the data is (``data_dir``, ``metadata_file``) and its columns.
        frame: a DataFrame given directly; its ``audio_column`` / ``label_column`` are used
            and relative paths start at ``config.data_dir``.

    With :attr:`~DataConfig.start_column` / :attr:`~DataConfig.end_column`, the rows are clips
    of recordings: their bounds go to :data:`CLIP_START` / :data:`CLIP_END`.

    Returns:
        A new frame, index 0..n-1.

    Raises:
        ConfigError: neither data nor a place to find it is given.
        DatasetError: the data cannot be read or lacks a column, or a clip's bounds are not
            seconds with its end after its start.
    """
    if frame is not None:
        return _clip_bounds(_standard_frame(frame, config), config, "the dataset DataFrame")
    if config.metadata_file is not None:
        loaded = load_csv_dataset(
            config.metadata_file,
            audio_col=config.audio_column,
            label_col=config.label_column,
            root=config.data_dir,
        )
    elif config.data_dir is not None:
        name, path = parse_dataset_spec(config.data_dir)
        if name == "csv":
            loaded = load_csv_dataset(path, audio_col=config.audio_column, label_col=config.label_column)
        else:
            loaded = resolve_dataset(config.data_dir)
    else:
        raise ConfigError(
            "DataConfig needs data_dir (a folder with one sub-folder per class, or NAME:PATH such as "
            "esc50:/data/ESC-50-master) or metadata_file (a CSV), or give the trainer a DataFrame"
        )
    return _clip_bounds(loaded.reset_index(drop=True), config, str(config.data_dir))


def _clip_bounds(frame: pd.DataFrame, config: DataConfig, source: str) -> pd.DataFrame:
    """Add :data:`CLIP_START` / :data:`CLIP_END` from the clip columns, checked: seconds, end after start."""
    if not config.clips:
        return frame
    start_column, end_column = config.start_column, config.end_column
    require_columns(
        frame, [start_column, end_column], source, "Name them with start_column= and end_column=."
    )
    starts = pd.to_numeric(frame[start_column], errors="coerce").to_numpy(dtype=float)
    ends = pd.to_numeric(frame[end_column], errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(starts) & np.isfinite(ends) & (starts >= 0) & (ends > starts))
    if bad.any():
        rows = np.flatnonzero(bad)[:10].tolist()
        shown = ", ".join(f"{frame[start_column].iloc[r]!r}-{frame[end_column].iloc[r]!r}" for r in rows[:3])
        raise DatasetError(
            f"rows {rows} of {source} are not clips ({shown}): {start_column!r} and {end_column!r} must be seconds "
            "from the beginning of the recording, the end after the start"
        )
    result = frame.copy()
    result[CLIP_START], result[CLIP_END] = starts, ends
    return result


def load_labelled(data: pd.DataFrame | str | Path, config: DataConfig) -> pd.DataFrame:
    """Every clip of labelled data given in any usual form, as the standard frame (no split).

    Args:
        data: a DataFrame (its ``config.audio_column`` / ``label_column``), a folder with one
            sub-folder per class, a ``.csv`` file, or ``NAME:PATH`` of a registered loader.
        config: the columns and the folder relative paths start from.

    Returns:
        The frame (absolute ``filename``, ``category``), index 0..n-1.

    Raises:
        DatasetError: the data cannot be read or lacks a column.
    """
    if isinstance(data, pd.DataFrame):
        return load_frame(config, data)
    spec = str(data)
    csv = spec.lower().endswith(".csv")
    return load_frame(config.replace(data_dir=None if csv else spec, metadata_file=spec if csv else None))


def _standard_frame(frame: pd.DataFrame, config: DataConfig) -> pd.DataFrame:
    result = frame.reset_index(drop=True).copy()
    result[FILENAME] = pd.Series(
        resolve_paths(result, config.data_dir, config.audio_column), index=result.index, dtype=object
    )
    require_columns(result, [config.label_column], "the dataset DataFrame", "Pass label_column=.")
    if result[config.label_column].isna().any():
        rows = np.flatnonzero(result[config.label_column].isna().to_numpy())[:10].tolist()
        raise DatasetError(
            f"rows {rows} of the dataset DataFrame have no label in column {config.label_column!r}"
        )
    result[CATEGORY] = result[config.label_column].astype(str).str.strip()
    return result


def validate_frame(
    frame: pd.DataFrame, config: DataConfig, *, multi_label: bool = False, progress: bool = True
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Decode every clip; leave out broken files, stop on a dataset that cannot be trained on.

    Missing and undecodable files are dropped with a warning naming them. Any other
    validation error (no clips, an empty label, fewer than two classes, a class with fewer
    than two clips, also after dropping files) raises with the whole report. Validation
    warnings (imbalance, leakage, ...) are logged.

    Args:
        frame: the standard frame (from :func:`load_frame`).
        config: the data configuration (``num_workers``, ``label_delimiter``).
        multi_label: count classes per label of multi-label strings.
        progress: show the progress bar of the decoding.

    Returns:
        ``(usable rows with a duration column, report)``.

    Raises:
        DatasetError: the message holds the validation report and what to fix.
    """
    delimiter = config.label_delimiter if multi_label else None
    report = validate_dataset(
        frame, label_delimiter=delimiter, num_workers=config.num_workers, progress=progress
    )
    fatal = [issue for issue in report.errors if issue.code not in _FILE_ERRORS]
    if fatal:
        raise DatasetError(
            "the dataset cannot be trained on; fix the errors below (`beats validate` shows the same report):\n"
            + format_report(report)
        )
    for issue in report.warnings:
        logger.warning("dataset: %s", issue.message)
    clips = report.clips
    bad = clips["error"].notna()
    if bad.any():
        listing = "; ".join(
            f"{path}: {error}"
            for path, error in zip(clips.loc[bad, "path"], clips.loc[bad, "error"], strict=True)
        )
        logger.warning(
            "leaving out %d of %d clips that cannot be read: %s", int(bad.sum()), len(frame), listing
        )
    usable = frame.loc[~bad.to_numpy()].copy()
    usable["duration"] = clips.loc[~bad, "duration"].to_numpy(dtype=float)
    counts = class_counts(usable, multi_label=multi_label, delimiter=config.label_delimiter)
    small = sorted(label for label, count in counts.items() if count < 2)
    if small:
        raise DatasetError(
            f"after leaving out the unreadable files, classes {small} have fewer than 2 clips; add clips or "
            "remove those classes:\n" + format_report(report)
        )
    return usable.reset_index(drop=True), report


def validate_clips(frame: pd.DataFrame, config: DataConfig, *, multi_label: bool = False) -> pd.DataFrame:
    """Check a table of clips of recordings (:attr:`DataConfig.clips`) without decoding the recordings.

    Its clips are read from a store of embeddings or cut out of their recordings when
    they are embedded (:mod:`beats_train.stored`); here only what makes the table trainable
    is checked: clips, two classes or more, two clips or more per class.

    Args:
        frame: the standard frame with :data:`CLIP_START` and :data:`CLIP_END`.
        config: the data configuration (``label_delimiter``).
        multi_label: count classes per label of multi-label strings.

    Returns:
        The frame with a ``duration`` column (each clip's length in seconds).

    Raises:
        DatasetError: no clips, fewer than two classes, or a class with fewer than two clips.
    """
    counts = class_counts(frame, multi_label=multi_label, delimiter=config.label_delimiter)
    if len(frame) == 0:
        raise DatasetError("the table of clips has no rows")
    if len(counts) < 2:
        raise DatasetError(
            f"the clips have {len(counts)} class ({', '.join(counts)}); a classifier needs two or more: label "
            "clips of another class too (e.g. hits that are not the sound)"
        )
    small = sorted(label for label, count in counts.items() if count < 2)
    if small:
        raise DatasetError(
            f"classes {small} have fewer than 2 clips; label more clips of them or leave them out"
        )
    result = frame.copy()
    result["duration"] = result[CLIP_END] - result[CLIP_START]
    return result


def refuse_clips(frame: pd.DataFrame, what: str) -> None:
    """Stop when ``what`` would read whole files for rows that are clips of recordings.

    Args:
        frame: the standard frame.
        what: what would read the files (``"training the whole model"``, ...), for the message.

    Raises:
        ConfigError: the rows are clips (:data:`CLIP_START` is a column).
    """
    if CLIP_START in frame.columns:
        raise ConfigError(
            f"{what} reads whole files, and the rows of this dataset are clips of recordings (DataConfig."
            "start_column / end_column): train a linear probe on their embeddings instead, with "
            "TrainingConfig(freeze_backbone=True, embeddings=STORE) (beats train --freeze-backbone --embeddings "
            "STORE), or give one file per clip"
        )


def class_counts(frame: pd.DataFrame, *, multi_label: bool = False, delimiter: str = ",") -> dict[str, int]:
    """Clips per class (per label of the label strings in multi-label mode)."""
    if not multi_label:
        return {str(k): int(v) for k, v in frame[CATEGORY].value_counts().items()}
    counts: dict[str, int] = {}
    for value in frame[CATEGORY]:
        for label in split_labels(value, delimiter):
            counts[label] = counts.get(label, 0) + 1
    return counts


def assign_splits(frame: pd.DataFrame, config: DataConfig) -> pd.DataFrame:
    """Add the ``split`` column (see :class:`~beats_train.config.DataConfig` for the rules).

    Args:
        frame: the standard frame.
        config: the split settings.

    Returns:
        A copy with ``split`` set for every row.

    Raises:
        DatasetError: a fold is asked for but the data has none, or a fold does not exist.
    """
    if config.test_fold is not None:
        if FOLD not in frame.columns:
            raise DatasetError(
                f"DataConfig.test_fold={config.test_fold} needs a 'fold' column, and this dataset has none "
                f"(its columns: {list(frame.columns)}); use train_split/val_split/test_split instead"
            )
        result = fold_split(frame, config.test_fold, val_fold=config.val_fold)
        return result if config.val_fold is not None else _carve_validation(result, config)
    if SPLIT in frame.columns and frame[SPLIT].isin(["train", "val", "test"]).all():
        logger.info("using the dataset's own train/val/test split")
        return _carve_validation(frame.copy(), config)
    if FOLD in frame.columns:
        logger.warning(
            "the dataset has folds but DataConfig.test_fold is not set: splitting at random instead; clips of one "
            "recording may end up in both training and test. Set test_fold (or use cross_validate) for the "
            "dataset's own protocol"
        )
    ratios = {
        name: share
        for name, share in (
            ("train", config.train_split),
            ("val", config.val_split),
            ("test", config.test_split),
        )
        if share > 0
    }
    return stratified_split(frame, ratios, seed=config.seed)


def _carve_validation(frame: pd.DataFrame, config: DataConfig) -> pd.DataFrame:
    """Take a validation set out of the training rows when the data has none (never out of the test set)."""
    if (frame[SPLIT] == "val").any() or config.val_split == 0:
        return frame
    train = frame[SPLIT] == "train"
    share = config.val_split / (config.train_split + config.val_split)
    carved = stratified_split(frame[train], {"train": 1.0 - share, "val": share}, seed=config.seed)
    frame.loc[train, SPLIT] = carved[SPLIT].to_numpy()
    return frame


def prepare_data(
    config: DataConfig,
    *,
    frame: pd.DataFrame | None = None,
    multi_label: bool = False,
    progress: bool = True,
    split: bool = True,
) -> PreparedData:
    """Load, validate (if ``config.validate``), split and label a dataset.

    Files are validated by decoding every one (:func:`validate_frame`); a table of clips of
    recordings by its labels only (:func:`validate_clips`).

    Args:
        config: the data configuration.
        frame: a DataFrame to use instead of reading ``config.data_dir`` / ``metadata_file``.
        multi_label: the labels are sets of labels joined by ``config.label_delimiter``.
        progress: show the validation's progress bar.
        split: add the ``split`` column; ``False`` only loads, validates and labels
            (cross-validation splits each fold itself).

    Returns:
        The :class:`PreparedData`.

    Raises:
        ConfigError, DatasetError: the data cannot be found, read or trained on.
    """
    loaded = load_frame(config, frame)
    report = None
    if config.validate and config.clips:
        loaded = validate_clips(loaded, config, multi_label=multi_label)
    elif config.validate:
        loaded, report = validate_frame(loaded, config, multi_label=multi_label, progress=progress)
    if split:
        loaded = assign_splits(loaded, config).reset_index(drop=True)
        if not (loaded[SPLIT] == "train").any():
            raise DatasetError("the training split is empty; check the split settings of the DataConfig")
    labels = LabelEncoder.from_frame(loaded, multi_label=multi_label, delimiter=config.label_delimiter)
    return PreparedData(frame=loaded, labels=labels, report=report)


# ---------------------------------------------------------------------------
# Datasets and loaders
# ---------------------------------------------------------------------------


def build_dataset(
    frame: pd.DataFrame, labels: LabelEncoder | None, config: DataConfig, *, train: bool
) -> AudioDataset:
    """An :class:`~beats_data.AudioDataset` of a split (random crops for training, windows for evaluation).

    Args:
        frame: the split's rows (standard columns); ``labels`` None for unlabelled clips.
        labels: the label mapping, or None.
        config: ``max_duration``.
        train: training (random crops) or evaluation (every window).

    Returns:
        The dataset; bad files are skipped with a logged warning.
    """
    return AudioDataset(
        frame,
        labels=labels,
        label_column=CATEGORY if labels is not None else None,
        train=train,
        max_duration=config.max_duration,
        on_error="skip",
    )


def build_loader(
    dataset: AudioDataset,
    batch_size: int,
    config: DataConfig,
    *,
    shuffle: bool,
    seed: int = 0,
    sampler: Sampler[int] | None = None,
) -> DataLoader:
    """The DataLoader of a split: length-grouped batches, or ``sampler`` (e.g. :class:`BalancedSampler`).

    Args:
        dataset: the split's dataset.
        batch_size: clips per batch.
        config: ``num_workers``.
        shuffle: random order (training).
        seed: the seed of the order.
        sampler: draw items with this sampler instead of grouping by length.

    Returns:
        A DataLoader that ``accelerator.prepare`` can shard.
    """
    if sampler is None:
        return create_dataloader(
            dataset, batch_size, shuffle=shuffle, seed=seed, num_workers=config.num_workers
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        collate_fn=AudioCollator(),
    )


def build_loaders(
    frames: dict[str, pd.DataFrame],
    labels: LabelEncoder,
    data_config: DataConfig,
    config: TrainingConfig,
    batch_size: int,
) -> tuple[DataLoader, dict[str, DataLoader]]:
    """The loaders of a run: shuffled training batches (or balanced draws), and every evaluation split.

    Args:
        frames: ``train``, ``val`` and ``test`` rows (empty splits get no loader).
        labels: the label mapping.
        data_config: decoding settings.
        config: ``seed`` and ``class_balance`` (``sampler``: :class:`BalancedSampler`).
        batch_size: clips per batch and process.

    Returns:
        ``(training loader, {split: evaluation loader})`` for the non-empty ``val`` / ``test`` splits.
    """
    train_set = build_dataset(frames["train"], labels, data_config, train=True)
    sampler = (
        BalancedSampler(train_set.targets, seed=config.seed) if config.class_balance == "sampler" else None
    )
    train_loader = build_loader(
        train_set, batch_size, data_config, shuffle=True, seed=config.seed, sampler=sampler
    )
    evaluation = {
        name: build_loader(
            build_dataset(frame, labels, data_config, train=False), batch_size, data_config, shuffle=False
        )
        for name, frame in frames.items()
        if name != "train" and len(frame)
    }
    return train_loader, evaluation


class BalancedSampler(Sampler[int]):
    """Draws items with replacement so that every class comes up equally often.

    An item's weight is the mean, over its labels, of ``1 / (clips of that label)``. The
    draw of epoch ``e`` is fixed by ``seed + e`` (call :meth:`set_epoch`; Accelerate does),
    so every process sees the same order and a resumed run repeats it.

    Args:
        targets: int class indices (N,), or multi-hot (N, K) for multi-label data.
        num_samples: items per epoch (default: N).
        seed: the base seed.
    """

    def __init__(
        self, targets: np.ndarray | Sequence[int], *, num_samples: int | None = None, seed: int = 0
    ) -> None:
        targets = np.asarray(targets)
        multi_hot = targets if targets.ndim == 2 else np.eye(int(targets.max()) + 1)[targets]
        per_class = multi_hot.sum(axis=0)
        inverse = np.divide(1.0, per_class, out=np.zeros_like(per_class, dtype=float), where=per_class > 0)
        labels_per_item = np.maximum(multi_hot.sum(axis=1), 1.0)
        self.weights = torch.as_tensor((multi_hot @ inverse) / labels_per_item, dtype=torch.double)
        self.num_samples = len(targets) if num_samples is None else num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose draw to produce next."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.multinomial(
            self.weights, self.num_samples, replacement=True, generator=generator
        ).tolist()

    def __len__(self) -> int:
        return self.num_samples


def class_weights(targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """Loss weights inverse to the class frequencies: ``N / (K * n_c)`` (0 for an absent class).

    Args:
        targets: int class indices (N,), or multi-hot (N, K).
        num_classes: K.

    Returns:
        float32 (K,).
    """
    targets = np.asarray(targets)
    counts = targets.sum(axis=0) if targets.ndim == 2 else np.bincount(targets, minlength=num_classes)
    counts = counts.astype(float)
    weights = np.divide(len(targets), num_classes * counts, out=np.zeros(num_classes), where=counts > 0)
    return torch.as_tensor(weights, dtype=torch.float32)
