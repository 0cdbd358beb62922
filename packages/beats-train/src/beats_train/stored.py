"""A dataset's clips as stored embeddings: embedded once into a store, read back for a linear probe.

A linear probe trains the head of a frozen encoder, so each clip's embedding never changes:
:func:`embed_dataset` embeds every clip of the training, validation and test splits once into
a store of embeddings (:mod:`beats_extract.store`, with
:func:`~beats_extract.archive.embed_into_store`) and reads them back, and the probe trains on
them in memory (:mod:`beats_train.probe`).

What is stored is what the training loop feeds the encoder, so that the probe trains on
exactly what a run with the encoder would: the mean of the tokens (``pooling="mean"``: the
head is linear, see :meth:`~beats_train.model.BEATsClassifier.head_logits`) of the last
layer, or of every hidden state for :attr:`~beats_train.config.TrainingConfig.weighted_layer_sum`
(``layer="all"``), in the run's precision, each clip processed whole and alone. A clip
longer than :attr:`~beats_train.config.DataConfig.max_duration` is stored as the windows
of :meth:`ClipRule.windows(max_duration) <beats_core.clips.ClipRule.windows>`, those the
evaluation averages; the probe evaluates on the mean of their logits, and trains on one
of them drawn at random in every epoch (a random crop on the windows' grid rather than
at any sample).

Reuse: a recording the store holds already (made by the same encoder with the same
settings) is not embedded again, so a second run, another fold, or a labelled subset of an
embedded archive costs no encoder time. A clip of a recording (a table with start and end
columns, such as the hits of ``beats search``) takes the store's rows that are its windows;
a clip that is not a row of the store is cut out of its recording and embedded alone, in
every run (the store holds complete recordings only).

A store made otherwise is refused with what differs: another encoder (weights or fbank
statistics), another pooling or layer, another precision, clips embedded in several
windows, or a recording stored in clips that are not the windows training uses.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from beats_core.audio import audio_info, load_audio
from beats_core.audio_files import display_path
from beats_core.clips import ClipRule
from beats_core.errors import AudioDecodeError, StoreError
from beats_core.geometry import SAMPLE_RATE
from beats_core.model import BEATs
from beats_data.frame import FILENAME, SPLIT
from beats_extract.archive import embed_into_store, store_settings
from beats_extract.extractor import BEATsFeatureExtractor, ClipFeatures
from beats_extract.store import MANIFEST_NAME, StoredEmbeddings, completed_recordings, read_store
from beats_train.config import DataConfig, TrainingConfig
from beats_train.data import CLIP_END, CLIP_START, PreparedData

__all__ = ["SAME_ROW_SECONDS", "ClipEmbeddings", "EmbeddingRun", "embed_dataset", "store_extractor"]

logger = logging.getLogger(__name__)

#: How close (in seconds) a clip's bounds must be to a stored row's to be that row (``beats search`` writes 3 decimals).
SAME_ROW_SECONDS = 1e-3
#: The precision of the embeddings for each mixed precision of a run.
_DTYPES = {"no": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class ClipEmbeddings:
    """The embeddings of one split's clips, one row per window (a clip longer than ``max_duration`` has several).

    Attributes:
        features: float32 ``(W, C)``, or ``(W, L + 1, C)`` for a head with layer weights: the
            mean-pooled hidden states of each window.
        rows: int64 ``(W,)``, the clip (the row of the split's frame) of each window; a clip's
            windows are consecutive. Clips that could not be embedded have none.
    """

    features: Tensor
    rows: Tensor

    def clips(self) -> Tensor:
        """The rows of the split's frame that have windows, sorted: int64 ``(N,)``."""
        return torch.unique_consecutive(self.rows)

    def draw(self, generator: torch.Generator) -> Tensor:
        """One window of every clip, drawn uniformly (a random crop of a long clip): int64 ``(N,)`` indices.

        Args:
            generator: the random generator of the draw (on the CPU).

        Returns:
            For each clip of :meth:`clips`, in order, the index of one of its windows.
        """
        _, counts = torch.unique_consecutive(self.rows, return_counts=True)
        first = torch.cumsum(counts, 0) - counts
        chosen = (torch.rand(len(counts), generator=generator) * counts).long().clamp_max(counts - 1)
        return first + chosen

    def to(self, device: torch.device) -> ClipEmbeddings:
        """The same embeddings on ``device``."""
        return ClipEmbeddings(self.features.to(device), self.rows.to(device))


@dataclass(frozen=True)
class EmbeddingRun:
    """What :func:`embed_dataset` did.

    Attributes:
        store: the store's folder.
        reused: recordings the store held already.
        embedded: recordings embedded into it by this run.
        cut: clips that are not rows of the store, embedded from their recordings' audio.
        left_out: clips without embeddings (their audio could not be decoded) -> why.
        seconds: the time it took, reading the store included.
    """

    store: Path
    reused: int
    embedded: int
    cut: int
    left_out: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain data (for ``results.json``)."""
        return {
            "store": str(self.store),
            "recordings_reused": self.reused,
            "recordings_embedded": self.embedded,
            "clips_cut_from_audio": self.cut,
            "clips_left_out": [{"clip": clip, "reason": reason} for clip, reason in self.left_out.items()],
            "seconds": round(self.seconds, 3),
        }


def store_extractor(
    backbone: BEATs,
    config: TrainingConfig,
    data_config: DataConfig,
    *,
    precision: str,
    batch_size: int,
    device: torch.device,
) -> tuple[BEATsFeatureExtractor, dict[str, Any] | None]:
    """The extractor that embeds a run's clips into :attr:`TrainingConfig.embeddings`, and the store's settings.

    A new store is made for the run: mean pooling, the last layer (every hidden state with
    :attr:`~TrainingConfig.weighted_layer_sum`), each clip whole, recordings cut into the
    windows of ``max_duration`` (the one clip rule), in the run's precision. An existing store
    keeps its own settings, once they are checked to give what the run trains on.

    Args:
        backbone: the frozen encoder of the run (with its fbank statistics).
        config: the training configuration.
        data_config: ``max_duration`` and ``num_workers``.
        precision: the run's mixed precision (``no``, ``bf16``, ``fp16``).
        batch_size: clips per forward pass.
        device: where the encoder runs.

    Returns:
        ``(extractor, settings of the existing store or None)``.

    Raises:
        StoreError: the store was made otherwise (the message names each difference and what to do).
    """
    folder = Path(config.embeddings or "")
    settings = read_store(folder, recordings=()).metadata["settings"] if _is_store(folder) else None
    dtype = _DTYPES[precision]
    common = {"pooling": "mean", "device": str(device), "batch_size": batch_size}
    common["num_workers"] = data_config.num_workers
    if settings is None:
        windows = ClipRule.windows(data_config.max_duration)
        extractor = BEATsFeatureExtractor(
            backbone,
            layer="all" if config.weighted_layer_sum else -1,
            dtype=dtype,
            window_seconds=None,
            **_clip_options(windows),
            **common,
        )
        extractor.model_name = _reproducible_spec(config)
        return extractor, None
    _check_store(folder, settings, backbone, config, dtype)
    extractor = BEATsFeatureExtractor(
        backbone,
        layer=settings["layer"],
        dtype=settings["dtype"],
        window_seconds=settings["window_seconds"],
        hop_seconds=settings["hop_seconds"],
        clip_seconds=settings["clip_seconds"],
        clip_overlap=settings["clip_overlap"],
        **common,
    )
    extractor.model_name = settings.get("model")
    fingerprint = store_settings(extractor)["encoder_sha256"]
    if fingerprint != settings.get("encoder_sha256"):
        raise StoreError(_other_encoder(folder, settings, config, fingerprint))
    return extractor, settings


def embed_dataset(
    data: PreparedData,
    extractor: BEATsFeatureExtractor,
    config: TrainingConfig,
    data_config: DataConfig,
    *,
    stacked: bool,
) -> tuple[dict[str, ClipEmbeddings], EmbeddingRun]:
    """Embed every clip of the splits into the store (those not in it yet), and read their embeddings.

    Args:
        data: the split data (whole files, or clips of recordings with :data:`CLIP_START` / :data:`CLIP_END`).
        extractor: from :func:`store_extractor`.
        config: :attr:`~TrainingConfig.embeddings` (the store) and ``progress``.
        data_config: ``max_duration`` (the windows of a long clip).
        stacked: keep every hidden state (a head with layer weights); else the last one.

    Returns:
        ``({split: ClipEmbeddings}, what was done)`` for the non-empty splits.

    Raises:
        StoreError: a recording is stored in other clips than the windows training uses, or
            the store cannot be read or written.
    """
    started = time.perf_counter()
    folder = Path(config.embeddings or "")
    windows = ClipRule.windows(data_config.max_duration)
    frame = data.frame
    clips = CLIP_START in frame.columns
    recordings = list(dict.fromkeys(frame[FILENAME]))
    keys = {_key(display_path(path)) for path in recordings}
    stored_before = {_key(path) for path in completed_recordings(folder)} if _is_store(folder) else set()
    # whole files go into the store; a clip that is not a row of it is cut out of its recording instead
    pending = [] if clips else [path for path in recordings if _key(display_path(path)) not in stored_before]
    failures: dict[str, str] = {}
    if pending:
        _check_clips_of_new_recordings(pending, frame, extractor, windows, folder)
        run = embed_into_store(extractor, pending, folder, progress=config.progress)
        failures = run.failures
        logger.info("embedded %d recordings into %s (%d rows)", run.embedded, folder, run.rows)
    wanted = (
        [path for path in completed_recordings(folder) if _key(path) in keys] if _is_store(folder) else []
    )
    shape = tuple(extractor.feature_shape)
    table = read_store(folder, recordings=wanted) if wanted else None
    stored = _StoredRows(table, math.prod(shape), extractor.window_rule.clip_seconds)
    windows_of: list[list[int]] = []  # per row of the frame: the rows of its windows in the matrix
    to_cut: list[int] = []
    left_out: dict[str, str] = {}
    for position, path in enumerate(frame[FILENAME]):
        if clips:
            start, end = float(frame[CLIP_START].iloc[position]), float(frame[CLIP_END].iloc[position])
            found = stored.clip_rows(path, start, end, windows)
            if found is None:
                to_cut.append(position)
        else:
            found = stored.recording_rows(path, windows, folder)
            if found is None:
                left_out[display_path(path)] = failures.get(path, "it is not in the store")
        windows_of.append(found or [])
    cut, cut_windows = _cut_out(frame, to_cut, extractor, windows, left_out, config.progress)
    matrix = np.concatenate([stored.features, cut]) if len(cut) else stored.features
    for position, rows in cut_windows.items():
        windows_of[position] = [len(stored.features) + row for row in rows]
    if left_out:
        shown = "; ".join(f"{clip}: {reason}" for clip, reason in list(left_out.items())[:10])
        logger.warning("leaving out %d clips without embeddings: %s", len(left_out), shown)
    features = torch.from_numpy(np.ascontiguousarray(matrix.reshape(len(matrix), *shape)))
    if len(shape) == 2 and not stacked:
        features = features[:, -1].contiguous()  # a store of every hidden state; the head reads the last
    splits = {}
    for name in ("train", "val", "test"):
        members = np.flatnonzero((frame[SPLIT] == name).to_numpy())
        if len(members):
            splits[name] = _split_embeddings(features, [windows_of[p] for p in members])
    summary = EmbeddingRun(
        folder,
        reused=len(keys & stored_before),
        embedded=len(pending) - len(failures),
        cut=len(cut_windows),
        left_out=left_out,
        seconds=time.perf_counter() - started,
    )
    return splits, summary


# ---------------------------------------------------------------------------
# The store's rows
# ---------------------------------------------------------------------------


class _StoredRows:
    """The rows of some recordings of a store (none for ``None``), found by recording and by clip bounds."""

    def __init__(self, table: StoredEmbeddings | None, dim: int, window_seconds: float | None) -> None:
        self.window_seconds = window_seconds
        self.features = table.features if table is not None else np.zeros((0, dim), dtype=np.float32)
        self.starts = table.starts if table is not None else np.zeros(0)
        self.ends = table.ends if table is not None else np.zeros(0)
        self.by_recording: dict[str, list[int]] = {}
        for row, path in enumerate(table.paths if table is not None else []):
            self.by_recording.setdefault(_key(path), []).append(row)

    def recording_rows(self, path: str, windows: ClipRule, folder: Path) -> list[int] | None:
        """The rows of a whole recording, checked to be the windows training uses, each embedded whole.

        Returns:
            Their row numbers; None when the store does not hold the recording.

        Raises:
            StoreError: its rows are other clips than those windows, or were embedded in
                several windows of the store's ``window_seconds``.
        """
        rows = self.by_recording.get(_key(display_path(path)))
        if not rows:
            return None
        stored = [(self.starts[row], self.ends[row]) for row in rows]
        _check_rows(folder, path, stored, windows, self.window_seconds)
        return rows

    def clip_rows(self, path: str, start: float, end: float, windows: ClipRule) -> list[int] | None:
        """The rows that are the windows of the clip ``start``-``end`` of a recording (each embedded whole); None if one is missing."""
        rows = self.by_recording.get(_key(display_path(path)), [])
        found = []
        for clip in windows.clips(round((end - start) * SAMPLE_RATE)):
            matches = [
                row
                for row in rows
                if math.isclose(self.starts[row], start + clip.start_seconds, abs_tol=SAME_ROW_SECONDS)
                and math.isclose(self.ends[row], start + clip.end_seconds, abs_tol=SAME_ROW_SECONDS)
                and _whole(self.ends[row] - self.starts[row], self.window_seconds)
            ]
            if not matches:
                return None
            found.append(matches[0])
        return found


def _check_rows(
    folder: Path,
    path: str,
    stored: Sequence[tuple[float, float]],
    windows: ClipRule,
    window_seconds: float | None,
) -> None:
    """Refuse a recording whose rows are not the windows training uses, or were not each embedded whole."""
    expected = windows.clips(round(stored[-1][1] * SAMPLE_RATE))
    same = len(stored) == len(expected) and all(
        math.isclose(start, clip.start_seconds, abs_tol=SAME_ROW_SECONDS)
        and math.isclose(end, clip.end_seconds, abs_tol=SAME_ROW_SECONDS)
        for (start, end), clip in zip(stored, expected, strict=True)
    )
    if not same:
        raise StoreError(_other_clips(folder, path, stored, windows))
    longest = max(end - start for start, end in stored)
    if not _whole(longest, window_seconds):
        raise StoreError(
            f"the store {str(folder)!r} (TrainingConfig.embeddings) embeds clips of {display_path(path)!r} as long as "
            f"{longest:g} s in windows of {window_seconds:g} s (its window_seconds), and training runs the encoder on "
            f"each clip whole: set DataConfig.max_duration (--max-duration) to at most {window_seconds:g} s, or give "
            "--embeddings a new folder (the run makes a store of whole clips there)"
        )


def _whole(seconds: float, window_seconds: float | None) -> bool:
    """Whether a clip of ``seconds`` is embedded in one window of ``window_seconds`` (None: always)."""
    return window_seconds is None or round(seconds * SAMPLE_RATE) <= round(window_seconds * SAMPLE_RATE)


def _key(path: str) -> str:
    """A recording's path as a key: relative paths of a store are taken from the current folder."""
    return os.path.normpath(os.path.abspath(path))


def _split_embeddings(features: Tensor, windows: list[list[int]]) -> ClipEmbeddings:
    index = torch.tensor([row for rows in windows for row in rows], dtype=torch.int64)
    owners = torch.tensor([k for k, rows in enumerate(windows) for _ in rows], dtype=torch.int64)
    return ClipEmbeddings(features[index], owners)


def _cut_out(
    frame: pd.DataFrame,
    positions: list[int],
    extractor: BEATsFeatureExtractor,
    windows: ClipRule,
    left_out: dict[str, str],
    progress: bool,
) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Embed clips that are not rows of the store from their recordings' audio, each alone.

    Returns:
        ``(float32 (R, D) rows, {row of the frame: its rows in them})``; a clip whose audio
        cannot be decoded goes to ``left_out``.
    """
    if not positions:
        return np.zeros((0, 0), dtype=np.float32), {}
    cutter = BEATsFeatureExtractor(
        extractor.model,
        pooling="mean",
        layer="all" if extractor.stacked else extractor.layers,
        dtype=extractor.dtype,
        batch_size=extractor.batch_size,
        num_workers=0,
        window_seconds=None,
        **_clip_options(windows),
    )
    rows: list[np.ndarray] = []
    found: dict[int, list[int]] = {}
    count = 0
    for position in tqdm(positions, desc="clips not in the store", disable=not progress, leave=False):
        path = frame[FILENAME].iloc[position]
        start, end = float(frame[CLIP_START].iloc[position]), float(frame[CLIP_END].iloc[position])
        try:
            audio = load_audio(path, offset=start, duration=end - start)
        except AudioDecodeError as e:
            left_out[f"{display_path(path)}@{start:g}-{end:g}"] = str(e)
            continue
        result = cutter.extract_from_array(audio)
        matrix = result.features if isinstance(result, ClipFeatures) else np.asarray(result)[None]
        matrix = np.asarray(matrix, dtype=np.float32).reshape(len(matrix), -1)
        rows.append(matrix)
        found[position] = list(range(count, count + len(matrix)))
        count += len(matrix)
    logger.info("embedded %d clips that are not rows of the store from their audio", len(found))
    return (np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)), found


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def _is_store(folder: Path) -> bool:
    return (folder / MANIFEST_NAME).is_file()


def _clip_options(windows: ClipRule) -> dict[str, float | None]:
    """The extractor's clip rule that makes the given windows (their overlap from their step)."""
    if windows.clip_seconds is None or windows.hop_samples is None:
        return {"clip_seconds": None, "clip_overlap": 0.0}
    overlap = round(windows.clip_seconds - windows.hop_samples / SAMPLE_RATE, 6)
    return {"clip_seconds": windows.clip_seconds, "clip_overlap": overlap}


def _reproducible_spec(config: TrainingConfig) -> str | None:
    """The model spec a store records, when loading it gives this encoder (not a random one, nor other statistics)."""
    changed = config.fbank_mean is not None or config.fbank_std is not None or config.dataset_fbank_stats
    return None if config.model.startswith("random:") or changed else config.model


def _check_store(
    folder: Path, settings: Mapping[str, Any], backbone: BEATs, config: TrainingConfig, dtype: str
) -> None:
    """Refuse a store whose rows are not what the run trains on (the encoder is checked by the caller)."""
    problems = []
    if settings.get("pooling") != "mean":
        problems.append(
            f"pooling={settings.get('pooling')!r} (the head reads the mean of the tokens: 'mean')"
        )
    layer = settings.get("layer")
    last = [backbone.cfg.encoder_layers]
    if config.weighted_layer_sum and layer != "all":
        problems.append(
            f"layer={layer!r} (weighted_layer_sum mixes every hidden state: a store made with 'all')"
        )
    elif layer not in ("all", last):
        problems.append(f"layer={layer!r} (the head reads the last layer, {last!r}, or a store of 'all')")
    if settings.get("dtype") != dtype:
        problems.append(
            f"dtype={settings.get('dtype')!r} (this run computes in {dtype}: mixed_precision="
            f"{config.mixed_precision!r})"
        )
    if problems:
        raise StoreError(
            f"the store {str(folder)!r} (TrainingConfig.embeddings) holds other embeddings than this run trains on: "
            f"{'; '.join(problems)}. Give --embeddings a new folder (the run makes a store there), or embed into "
            "one with `beats extract RECORDINGS -o STORE --pooling mean --layer -1 --dtype float32`"
        )


def _other_encoder(
    folder: Path, settings: Mapping[str, Any], config: TrainingConfig, fingerprint: str
) -> str:
    why = []
    if config.model.startswith("random:"):
        why.append(f"a random model's weights depend on the seed (seed={config.seed})")
    if config.fbank_mean is not None or config.fbank_std is not None or config.dataset_fbank_stats:
        why.append(
            "the fbank statistics (fbank_mean, fbank_std, dataset_fbank_stats) are part of the encoder"
        )
    reasons = f" ({'; '.join(why)})" if why else ""
    return (
        f"the store {str(folder)!r} (TrainingConfig.embeddings) was made by another encoder than the one this run "
        f"trains: the store's model is {settings.get('model')!r} (encoder_sha256 "
        f"{str(settings.get('encoder_sha256'))[:12]}...), this run's is {config.model!r} (encoder_sha256 "
        f"{fingerprint[:12]}...){reasons}. Train the model that made the store (--model), or give --embeddings "
        "another folder"
    )


def _other_clips(folder: Path, path: str, stored: Sequence[tuple[float, float]], windows: ClipRule) -> str:
    shown = ", ".join(f"{start:g}-{end:g}" for start, end in stored[:4]) + (
        ", ..." if len(stored) > 4 else ""
    )
    if windows.clip_seconds is None:
        wanted = "whole (max_duration=None)"
    else:
        wanted = (
            f"in the windows of max_duration={windows.clip_seconds:g} s (every "
            f"{windows.hop_samples / SAMPLE_RATE:g} s)"
        )
    return (
        f"the store {str(folder)!r} (TrainingConfig.embeddings) cuts {display_path(path)!r} into the clips {shown} s, "
        f"and training reads it {wanted}: set DataConfig.max_duration (--max-duration) to the store's clip "
        "length, or give --embeddings a new folder (the run makes a store of the right clips there)"
    )


def _check_clips_of_new_recordings(
    pending: list[str], frame: pd.DataFrame, extractor: BEATsFeatureExtractor, windows: ClipRule, folder: Path
) -> None:
    """Before embedding: refuse recordings the store would cut otherwise than training does, or not embed whole."""
    rule, window_seconds = extractor.clip_rule, extractor.window_rule.clip_seconds
    same_rule = (rule.clip_samples, rule.hop_samples) == (windows.clip_samples, windows.hop_samples)
    if same_rule and windows.clip_seconds is not None and _whole(windows.clip_seconds, window_seconds):
        return
    durations = dict(zip(frame[FILENAME], frame["duration"], strict=True)) if "duration" in frame else {}
    for path in pending:
        seconds = durations.get(path)
        if seconds is None or not np.isfinite(seconds):
            try:
                seconds = audio_info(path).duration
            except AudioDecodeError:
                continue  # reported when it is embedded
        clips = rule.clips(round(float(seconds) * SAMPLE_RATE))
        if clips:
            _check_rows(
                folder, path, [(c.start_seconds, c.end_seconds) for c in clips], windows, window_seconds
            )
