"""Detections over long recordings: which sound, in which file, from when to when, and how sure.

Every recording is cut into clips by the one clip rule (:class:`beats_core.clips.ClipRule`:
clips of ``clip_seconds``, consecutive ones sharing ``clip_overlap``, the last one holding what
is left) and every clip is classified alone by a fine-tuned checkpoint
(:class:`~beats_extract.classify.ClipClassifier`): its confidence for a class is the
checkpoint's output on that clip cut out. Each clip and class whose confidence reaches
``min_confidence`` is a detection, among the ``top_k`` most confident classes of the clip and
the ``classes`` asked for; ``merge`` joins consecutive or overlapping clips with the same label
into one event (the first start, the last end, the highest confidence).

From audio, the clips come from :class:`~beats_extract.extractor.BEATsFeatureExtractor`
(bounded memory for hour-long recordings, progress in seconds of audio, a recording that cannot
be decoded listed and skipped). From a store of clip embeddings written by ``beats extract``,
the head is applied to the stored embeddings without running the model (hours of audio in
seconds) when they were made by the checkpoint's encoder, pooled by the mean, from the layers
the head reads, with the clip settings asked.

A clip whose every sample is below -80 dBFS (:data:`SILENCE_PEAK`) is silent: it gets no
detection (a model trained without a class for silence would otherwise name one of its
classes), and a silent recording is reported with a :class:`SilentRecordingWarning`. A store
holds no audio, so from a store silent clips are classified like the others.

:func:`detect_events` is the whole job (tables in a folder, resumable), ``beats detect`` its command.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from beats_core.clips import ClipRule
from beats_core.errors import ConfigError, StoreError
from beats_core.geometry import SAMPLE_RATE
from beats_core.lookup import close_matches
from beats_core.model import BEATs
from beats_extract.classify import ClipClassifier, open_classifier
from beats_extract.tables import LABEL_ID_COLUMN, DetectionOutputs, check_formats, empty_detections

if TYPE_CHECKING:
    from beats_extract.store import StoredEmbeddings

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MIN_CONFIDENCE",
    "SILENCE_PEAK",
    "Detector",
    "RecordingDetections",
    "SilentRecordingWarning",
    "detect_events",
    "merge_events",
]

#: The confidence a detection needs by default: BirdNET-Analyzer's default, so that tables compare.
#: Detections are candidates to review, and a threshold can be raised on the table later but not lowered.
DEFAULT_MIN_CONFIDENCE = 0.1
#: Clips per forward pass by default: 10 s clips of the base model stay under 500 MB above the model
#: in float32 on the CPU (16 take about 650 MB and run no faster there).
DEFAULT_BATCH_SIZE = 8
#: A clip whose largest absolute sample is below this (-80 dBFS) is silent.
SILENCE_PEAK = 1e-4
#: Decimals of a confidence in the tables (the threshold applies to what they show).
_DECIMALS = 6
#: Clips this close (in seconds, less than a sample) touch: merged events join across them.
_TOUCH_SECONDS = 1e-6


class SilentRecordingWarning(UserWarning):
    """A recording is silent (every sample below -80 dBFS): it has no detections; the message names it."""


@dataclass(frozen=True)
class RecordingDetections:
    """What detection found in one recording.

    Attributes:
        path: the recording, as given.
        detections: its detection table (columns of :data:`beats_extract.tables.DETECTION_COLUMNS`).
        starts: float64 ``(n,)`` start of each clip, in seconds.
        ends: float64 ``(n,)`` end of each clip.
        confidences: float32 ``(n, K)`` the checkpoint's output per clip and class.
        silent: bool ``(n,)`` the clips that are silent.
        error: why the recording could not be decoded, or ``None``.
        existing: its outputs were already there and it was skipped (no clips then).
    """

    path: str
    detections: pd.DataFrame
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ends: np.ndarray = field(default_factory=lambda: np.zeros(0))
    confidences: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    silent: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    error: str | None = None
    existing: bool = False

    @property
    def clips(self) -> int:
        """The number of clips classified."""
        return len(self.starts)

    @property
    def seconds(self) -> float:
        """The audio the clips cover, in seconds."""
        return float(self.ends.max()) if len(self.ends) else 0.0

    @property
    def is_silent(self) -> bool:
        """Whether every clip of the recording is silent."""
        return bool(len(self.silent)) and bool(self.silent.all())


class Detector:
    """Turns recordings, or their stored clip embeddings, into detection tables.

    Args:
        checkpoint: a fine-tuned checkpoint (file, registered name, ``hf-hub:owner/name``), a
            ``BEATs`` with a head, a classifier exported by ``beats export`` (``.onnx``, run by
            onnxruntime), or a :class:`~beats_extract.classify.ClipClassifier`.
        clip_seconds: the clip length; default: the checkpoint's training clip length (10 s when
            it records none), or for a store the store's.
        clip_overlap: seconds shared by consecutive clips; default 0, or for a store the store's.
        min_confidence: the confidence a detection needs, in [0, 1].
        top_k: keep at most this many classes per clip (the most confident); ``None``: all.
        classes: only these classes: labels or display names (``"/m/09x0r"`` or ``"Speech"``),
            case-insensitive; ``None``: every class.
        merge: join consecutive or overlapping clips with the same label into one event.
        device: where the model runs (``"auto"``: CUDA, then MPS, then the CPU).
        dtype: the precision (see :class:`~beats_extract.extractor.BEATsFeatureExtractor`).
        batch_size: clips per forward pass.
        num_workers: decoding processes (default: the extractor's).

    Raises:
        ConfigError: a setting is out of range, a class is not one of the checkpoint's, or the
            checkpoint has no head.
        CheckpointError: the checkpoint cannot be loaded.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] | BEATs | ClipClassifier,
        *,
        clip_seconds: float | None = None,
        clip_overlap: float | None = None,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        top_k: int | None = None,
        classes: Sequence[str] | str | None = None,
        merge: bool = False,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        num_workers: int | None = None,
    ) -> None:
        if not (_number(min_confidence) and 0.0 <= min_confidence <= 1.0):
            raise ConfigError(f"min_confidence must be a number in [0, 1], got {min_confidence!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"top_k must be a positive int or None, got {top_k!r}")
        self.classifier = open_classifier(checkpoint, device=device)
        self.requested_clip_seconds = clip_seconds
        self.requested_clip_overlap = clip_overlap
        self.clip_rule = ClipRule(
            self.classifier.clip_seconds if clip_seconds is None else clip_seconds,
            0.0 if clip_overlap is None else clip_overlap,
        )
        self.min_confidence = float(min_confidence)
        self.top_k = top_k
        self.selected = self._select(classes)
        self.merge = bool(merge)
        self.dtype = dtype
        self.batch_size = batch_size
        self.num_workers = num_workers

    # ------------------------------------------------------------------ description
    def settings(self, clip_rule: ClipRule | None = None) -> dict[str, Any]:
        """What makes this detector's tables, as plain data (a run's ``detect_settings.json``).

        Args:
            clip_rule: the clips of the run (default: :attr:`clip_rule`).

        Returns:
            The classifier's fingerprint, labels and activation, the clip rule, the threshold,
            top-k, the selected classes and whether events are merged.
        """
        rule = clip_rule or self.clip_rule
        classifier = self.classifier
        selected = [classifier.labels[k] for k in np.flatnonzero(self.selected)]
        return {
            "classifier_sha256": classifier.fingerprint(),
            "labels": classifier.labels,
            "multi_label": classifier.multi_label,
            "clip_seconds": rule.clip_seconds,
            "clip_overlap": rule.overlap_seconds,
            "min_confidence": self.min_confidence,
            "top_k": self.top_k,
            "classes": None if self.selected.all() else selected,
            "merge": self.merge,
        }

    # ------------------------------------------------------------------ tables
    def table(
        self, path: str, starts: np.ndarray, ends: np.ndarray, confidences: np.ndarray, silent: np.ndarray
    ) -> pd.DataFrame:
        """The detection table of one recording from its clips' confidences.

        Args:
            path: the recording.
            starts: float ``(n,)`` clip starts in seconds.
            ends: float ``(n,)`` clip ends.
            confidences: float ``(n, K)``.
            silent: bool ``(n,)``, clips that get no detection.

        Returns:
            One row per clip and class passing the class filter, the top-k and the threshold
            (merged into events with ``merge``), in time order, the most confident first.
        """
        classifier = self.classifier
        confidences = np.round(
            np.asarray(confidences, dtype=np.float64), _DECIMALS
        )  # as the tables show them
        scores = np.where(self.selected, confidences, -np.inf)
        keep = (scores >= self.min_confidence) & ~np.asarray(silent, dtype=bool)[:, None]
        if self.top_k is not None and self.top_k < scores.shape[1]:
            best = np.argsort(-scores, axis=1, kind="stable")[:, : self.top_k]
            top = np.zeros_like(keep)
            np.put_along_axis(top, best, True, axis=1)
            keep &= top
        rows, columns = np.nonzero(keep)
        table = pd.DataFrame(
            {
                "path": pd.Series([path] * len(rows), dtype="object"),
                "start": np.asarray(starts, dtype=np.float64)[rows],
                "end": np.asarray(ends, dtype=np.float64)[rows],
                "label": pd.Series([classifier.names[k] for k in columns], dtype="object"),
                "confidence": confidences[rows, columns],
            }
        )
        if classifier.label_ids is not None:
            table[LABEL_ID_COLUMN] = pd.Series([classifier.label_ids[k] for k in columns], dtype="object")
        return merge_events(table) if self.merge else sort_detections(table)

    def _recording(
        self, path: str, starts: np.ndarray, ends: np.ndarray, features: np.ndarray, peaks: np.ndarray | None
    ) -> RecordingDetections:
        order = np.argsort(starts, kind="stable")
        starts, ends, features = np.asarray(starts)[order], np.asarray(ends)[order], features[order]
        silent = (
            np.zeros(len(starts), dtype=bool) if peaks is None else np.asarray(peaks)[order] < SILENCE_PEAK
        )
        confidences = self.classifier.classify(features)
        table = self.table(path, starts, ends, confidences, silent)
        result = RecordingDetections(path, table, starts, ends, confidences, silent)
        if result.is_silent:
            warnings.warn(
                f"{path!r} is silent (no sample above -80 dBFS): no detections",
                SilentRecordingWarning,
                stacklevel=3,
            )
        return result

    # ------------------------------------------------------------------ sources
    def detect_files(
        self, files: Iterable[str | os.PathLike[str]], *, progress: bool | None = None
    ) -> Iterator[RecordingDetections]:
        """Detections in audio files, yielded one recording at a time, in order.

        Args:
            files: the recordings (any format and sample rate, any length).
            progress: show a progress bar in seconds of audio (default: for more files than a batch).

        Yields:
            One :class:`RecordingDetections` per file; a file that cannot be decoded has its
            ``error`` (and a :class:`~beats_extract.extractor.SkippedFileWarning` is issued).
        """
        extractor = self.classifier.feature_extractor(
            clip_seconds=self.clip_rule.clip_seconds,
            clip_overlap=self.clip_rule.overlap_seconds,
            dtype=self.dtype,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
        )
        names = [os.fspath(path) for path in files]
        for result in extractor.stream_from_files(names, on_error="skip", progress=progress):
            clips = result.features
            if clips is None:
                yield RecordingDetections(result.path, self.empty_table(), error=str(result.error))
                continue
            yield self._recording(result.path, clips.starts, clips.ends, clips.features, clips.peaks)  # type: ignore[union-attr, arg-type]

    def stored_clip_rule(self, settings: Mapping[str, Any], source: str) -> ClipRule:
        """The clip rule of stored embeddings, checked against the clip settings asked for.

        Args:
            settings: the store's settings.
            source: the store, for messages.

        Returns:
            The store's clip rule.

        Raises:
            StoreError: the store has one row per recording, or other clip settings than those asked.
        """
        seconds, overlap = settings.get("clip_seconds"), settings.get("clip_overlap") or 0.0
        if seconds is None:
            raise StoreError(
                f"store {source!r} holds one embedding per recording, not per clip; embed the recordings with "
                "`beats extract ... --clip-seconds S` to detect from a store"
            )
        differences = [
            f"{name} {stored:g} s (asked {asked:g} s)"
            for name, stored, asked in (
                ("clip_seconds", seconds, self.requested_clip_seconds),
                ("clip_overlap", overlap, self.requested_clip_overlap),
            )
            if asked is not None and round(stored * SAMPLE_RATE) != round(asked * SAMPLE_RATE)
        ]
        if differences:
            raise StoreError(
                f"store {source!r} holds clips made with other settings: {', '.join(differences)}; ask for the "
                "store's settings (or leave them out), or embed the recordings again with the ones you want"
            )
        return ClipRule(seconds, overlap)

    def detect_stored(
        self, stored: StoredEmbeddings, source: str, recordings: Iterable[str] | None = None
    ) -> Iterator[RecordingDetections]:
        """Detections from stored clip embeddings, yielded one recording at a time.

        Args:
            stored: the store's rows (:class:`~beats_extract.store.StoredEmbeddings`).
            source: the store, for messages.
            recordings: only these recordings (default: all, in the store's order).

        Yields:
            One :class:`RecordingDetections` per recording.

        Raises:
            StoreError: the embeddings are not those the checkpoint's head reads, or were made
                with other clip settings.
        """
        settings = stored.metadata.get("settings", {})
        self.classifier.check_embeddings(settings, source)
        self.stored_clip_rule(settings, source)
        rows: dict[str, list[int]] = {}
        for index, path in enumerate(stored.paths):
            rows.setdefault(path, []).append(index)
        for path in rows if recordings is None else recordings:
            chosen = np.asarray(rows.get(path, []), dtype=np.int64)
            yield self._recording(
                path, stored.starts[chosen], stored.ends[chosen], stored.features[chosen], None
            )

    def empty_table(self) -> pd.DataFrame:
        """A detection table without rows, with this checkpoint's columns."""
        return empty_detections(self.classifier.label_ids is not None)

    # ------------------------------------------------------------------ classes
    def _select(self, classes: Sequence[str] | str | None) -> np.ndarray:
        """Which classes detections may have: bool ``(K,)``."""
        classifier = self.classifier
        selected = np.zeros(classifier.num_classes, dtype=bool)
        if classes is None:
            return ~selected
        wanted = [classes] if isinstance(classes, str) else list(classes)
        if not wanted:
            raise ConfigError("classes is empty; give class labels or names, or None for every class")
        known: dict[str, int] = {}
        for index, (label, name) in enumerate(zip(classifier.labels, classifier.names, strict=True)):
            for key in (label, name, label.lower(), name.lower()):
                known.setdefault(key, index)
        for item in wanted:
            index = known.get(item.strip(), known.get(item.strip().lower()))
            if index is None:
                close = close_matches(item, [*classifier.names, *classifier.labels])
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"{item!r} is not a class of {classifier.name!r}.{hint} Its {classifier.num_classes} classes "
                    f"are listed by `beats info {classifier.name} --all-labels` (labels or AudioSet display names)"
                )
            selected[index] = True
        return selected


# --------------------------------------------------------------------------- tables
def sort_detections(detections: pd.DataFrame) -> pd.DataFrame:
    """Detections by path and time, the most confident first within a clip.

    Args:
        detections: a detection table.

    Returns:
        The sorted table, with a fresh index.
    """
    return detections.sort_values(
        ["path", "start", "confidence", "label"], ascending=[True, True, False, True], kind="stable"
    ).reset_index(drop=True)


def merge_events(detections: pd.DataFrame) -> pd.DataFrame:
    """Join consecutive or overlapping detections with the same label in the same recording into events.

    Args:
        detections: a detection table.

    Returns:
        One row per event: its first start, its last end and its highest confidence, sorted
        by path and time.
    """
    if detections.empty:
        return detections.reset_index(drop=True)
    keys = ["path", "label"]
    frame = detections.sort_values([*keys, "start", "end"], kind="stable").reset_index(drop=True)
    reach = frame.groupby(keys, sort=False)["end"].cummax()
    previous = reach.groupby([frame["path"], frame["label"]], sort=False).shift()
    event = (previous.isna() | (frame["start"] > previous + _TOUCH_SECONDS)).cumsum()
    how = {column: "first" for column in frame.columns}
    how.update(start="min", end="max", confidence="max")
    merged = frame.groupby(event, sort=False).agg(how)
    return sort_detections(merged[list(detections.columns)])


# --------------------------------------------------------------------------- the whole job
def detect_events(
    checkpoint: str | os.PathLike[str] | BEATs | ClipClassifier,
    inputs: Sequence[str | os.PathLike[str]] = (),
    out_dir: str | os.PathLike[str] | None = None,
    *,
    embeddings: str | os.PathLike[str] | None = None,
    clip_seconds: float | None = None,
    clip_overlap: float | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    top_k: int | None = None,
    classes: Sequence[str] | str | None = None,
    merge: bool = False,
    formats: Sequence[str] = ("csv",),
    plot: bool = False,
    skip_existing: bool = False,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int | None = None,
    progress: bool | None = None,
    on_recording: Callable[[RecordingDetections], None] | None = None,
) -> pd.DataFrame:
    """Detect sounds in recordings with a fine-tuned checkpoint, and write the tables.

    Args:
        checkpoint: see :class:`Detector`.
        inputs: audio files, folders (searched recursively) or ``.txt`` lists of paths
            (:func:`~beats_extract.inputs.find_audio_files`).
        out_dir: the folder for the tables; ``None`` writes nothing. In it, per recording (its
            path relative to the folder that holds all the recordings, plus a suffix):
            ``.detections.csv`` (csv), ``.selections.txt`` (raven), ``.labels.txt`` (audacity)
            and ``.png`` (plot), each written as the recording is done; ``detections.csv``,
            every recording's detections, written at the end; ``detect_settings.json``.
        embeddings: a store written by ``beats extract --clip-seconds S`` to classify instead
            of audio (then no ``inputs``).
        clip_seconds: see :class:`Detector`.
        clip_overlap: see :class:`Detector`.
        min_confidence: see :class:`Detector`.
        top_k: see :class:`Detector`.
        classes: see :class:`Detector`.
        merge: see :class:`Detector`.
        formats: among ``csv``, ``raven``, ``audacity``.
        plot: also a heat map of confidence per recording (needs matplotlib).
        skip_existing: skip the recordings whose files are all in ``out_dir`` (a stopped run
            continues); their CSV tables are read back into the result.
        device: see :class:`Detector`.
        dtype: see :class:`Detector`.
        batch_size: see :class:`Detector`.
        num_workers: see :class:`Detector`.
        progress: show a progress bar in seconds of audio (default: for more files than a batch).
        on_recording: called with each recording's :class:`RecordingDetections` as it is done
            (and for each skipped one).

    Returns:
        The detections of every recording: ``path``, ``start``, ``end``, ``label``,
        ``confidence`` (and ``label_id`` for AudioSet ids), sorted by path and time.

    Raises:
        ConfigError: a setting is out of range, or inputs and a store are both given or both missing.
        StoreError: the store cannot serve the checkpoint (the message says why).
        MissingDependencyError: ``plot`` without matplotlib.
        OutputError: the tables cannot be written.
    """
    from beats_extract.inputs import find_audio_files
    from beats_extract.store import read_store

    formats = check_formats(formats)
    if plot:
        from beats_extract.plots import require_matplotlib

        require_matplotlib()
    if embeddings is not None and inputs:
        raise ConfigError("give recordings (files, folders or .txt lists) or a store of embeddings, not both")
    if embeddings is None and not inputs:
        raise ConfigError(
            "no recordings: give audio files, folders or .txt lists of paths, or a store of embeddings"
        )
    if skip_existing and out_dir is None:
        raise ConfigError("skip_existing needs an output folder (out_dir)")
    detector = Detector(
        checkpoint,
        clip_seconds=clip_seconds,
        clip_overlap=clip_overlap,
        min_confidence=min_confidence,
        top_k=top_k,
        classes=classes,
        merge=merge,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        num_workers=num_workers,
    )
    stored = None
    if embeddings is None:
        unique: dict[str, str] = {}  # a file named twice (a.wav, ./a.wav) is detected once
        for path in find_audio_files(inputs):
            unique.setdefault(os.path.abspath(path), os.fspath(path))
        recordings = list(unique.values())
        rule = detector.clip_rule
    else:
        stored = read_store(embeddings)
        recordings = list(dict.fromkeys(stored.paths))
        rule = detector.stored_clip_rule(stored.metadata.get("settings", {}), os.fspath(embeddings))
    outputs = None
    if out_dir is not None:
        outputs = DetectionOutputs(
            out_dir, recordings, formats=formats, plot=plot, settings=detector.settings(rule)
        )
        outputs.start(resume=skip_existing)
    tables = []
    pending = []
    for path in recordings:
        if skip_existing and outputs is not None and outputs.complete(path):
            table = outputs.read(path) if "csv" in formats else detector.empty_table()
            tables.append(table)
            if on_recording is not None:
                on_recording(RecordingDetections(path, table, existing=True))
        else:
            pending.append(path)
    found = (
        detector.detect_files(pending, progress=progress)
        if stored is None
        else detector.detect_stored(stored, os.fspath(embeddings), pending)  # type: ignore[arg-type]
    )
    for recording in found:
        if outputs is not None and recording.error is None:
            outputs.write(
                recording.path, recording.detections, _plotter(detector, recording) if plot else None
            )
        tables.append(recording.detections)
        if on_recording is not None:
            on_recording(recording)
    filled = [table for table in tables if len(table)]
    combined = sort_detections(pd.concat(filled, ignore_index=True)) if filled else detector.empty_table()
    if outputs is not None and "csv" in formats:
        outputs.finish(combined)
    return combined


def _plotter(detector: Detector, recording: RecordingDetections) -> Callable[[Path], None]:
    """Draws a recording's heat map into a given PNG file."""
    from beats_extract.plots import plot_detections

    names = detector.classifier.names
    detected = sorted({names.index(label) for label in recording.detections["label"]})

    def draw(path: Path) -> None:
        plot_detections(
            path,
            starts=recording.starts,
            ends=recording.ends,
            confidences=recording.confidences,
            silent=recording.silent,
            names=names,
            detected=detected,
            title=recording.path,
            min_confidence=detector.min_confidence,
        )

    return draw


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
