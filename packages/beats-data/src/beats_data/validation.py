"""Checking a dataset before training: every file decoded once, in parallel, and a report.

:func:`validate_dataset` decodes every clip in DataLoader worker processes (decoding holds
the GIL in PyAV, so threads would not help) and returns a :class:`ValidationReport`:
``errors`` and ``warnings`` (lists of :class:`Issue`), ``stats`` (a :class:`DatasetStats`),
``clips`` (one row of facts per clip) and ``ok``. :func:`format_report` renders it as text
for people; ``beats validate`` prints that (or :meth:`ValidationReport.to_dict` as JSON).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beats_core.audio import audio_info, load_audio
from beats_core.audio_files import display_path, has_undecodable_name
from beats_core.errors import AudioDecodeError
from beats_core.geometry import SAMPLE_RATE
from beats_data.frame import CATEGORY, FILENAME, FOLD, SPLIT, require_columns, resolve_paths
from beats_data.labels import split_labels

__all__ = ["DatasetStats", "Issue", "ValidationReport", "format_report", "validate_dataset"]

#: Clips shorter than one fbank frame (25 ms) carry no usable signal.
MIN_DURATION_SECONDS = 0.025
#: A clip whose peak is below this level (dB full scale) is reported as silent.
SILENCE_DBFS = -60.0
#: Classes with fewer clips than this get a warning.
FEW_CLIPS = 20
#: Largest / smallest class size above this is reported as imbalance.
IMBALANCE_RATIO = 3.0
#: The highest frequency BEATs hears, in Hz: half its 16 kHz sample rate.
BEATS_BANDWIDTH_HZ = SAMPLE_RATE / 2
#: Below this share of its energy above 8 kHz, a file loses nothing worth a mention when resampled.
NEGLIGIBLE_ENERGY_SHARE = 0.001

# The energy above 8 kHz is measured on up to this many Hann-windowed spectra of this many
# samples, spread evenly over a file: about 3 ms a file whatever its length (a seventh of what
# validating a 10 s file at 44.1 kHz costs), covering 3 s of its audio at 44.1 kHz.
_SPECTRUM_SAMPLES = 1024
_MAX_SPECTRA = 128


@dataclass
class Issue:
    """One problem found in a dataset, for people and for programs.

    Attributes:
        code: a stable identifier, e.g. ``"missing_file"`` (see :func:`validate_dataset`).
        message: one readable sentence with counts and the fix.
        files: the files concerned (absolute paths), all of them.
        details: extra facts by key, e.g. the decoding error of each file (``reasons``:
            path -> reason), a note per file (``notes``: path -> note), or the class sizes.
    """

    code: str
    message: str
    files: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetStats:
    """Facts about a dataset, from its frame and its decoded clips.

    Attributes:
        num_clips: rows of the frame.
        num_decoded: clips that decoded.
        num_classes: distinct labels.
        clips_per_class: label -> clips (per label of multi-label rows).
        duration_seconds: ``min``, ``median``, ``max`` (``None`` when nothing decoded) and
            ``total`` of the decoded clips, in seconds.
        sample_rates: native rate in Hz -> clips, most common first.
        channels: channel count -> clips, most common first.
        formats: ``"<format>/<codec>"`` -> clips, most common first.
        splits: split name -> clips, when the frame has a ``split`` column; else ``None``.
        folds: fold -> clips, when the frame has a ``fold`` column; else ``None``.
    """

    num_clips: int
    num_decoded: int
    num_classes: int
    clips_per_class: dict[str, int]
    duration_seconds: dict[str, float | None]
    sample_rates: dict[int, int]
    channels: dict[int, int]
    formats: dict[str, int]
    splits: dict[str, int] | None = None
    folds: dict[str, int] | None = None


@dataclass
class ValidationReport:
    """What :func:`validate_dataset` found.

    Attributes:
        ok: whether there are no errors.
        errors: problems that make training fail or meaningless (see :func:`validate_dataset`).
        warnings: problems worth knowing about.
        stats: facts about the dataset.
        clips: one row per clip, with the index of the validated frame: ``path``,
            ``error`` (``None`` for a good clip, so ``df[report.clips["error"].isna()]``
            keeps the usable rows), ``duration``, ``sample_rate``, ``channels``,
            ``format``, ``codec``, ``peak_dbfs``, ``energy_above_8khz`` (the share of a
            file's energy that resampling to 16 kHz discards; ``NaN`` for files at 16 kHz or
            below) and ``content_hash``. Not compared by ``==``.
    """

    ok: bool
    errors: list[Issue]
    warnings: list[Issue]
    stats: DatasetStats
    clips: pd.DataFrame = field(compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The report without ``clips``, as plain lists and dicts (JSON-serialisable).

        Returns:
            ``ok``, ``errors`` and ``warnings`` (issues as dicts), ``stats`` (without
            ``splits``/``folds`` when the frame has none).
        """
        return {
            "ok": self.ok,
            "errors": [asdict(issue) for issue in self.errors],
            "warnings": [asdict(issue) for issue in self.warnings],
            "stats": {key: value for key, value in asdict(self.stats).items() if value is not None},
        }


def validate_dataset(
    df: pd.DataFrame,
    root: str | Path | None = None,
    *,
    audio_column: str = FILENAME,
    label_column: str = CATEGORY,
    label_delimiter: str | None = None,
    num_workers: int | None = None,
    progress: bool = True,
) -> ValidationReport:
    """Decode every clip of a dataset and report what would go wrong in training.

    Errors (training would fail or be meaningless):

    * ``missing_file``: the file does not exist;
    * ``undecodable_file``: it cannot be decoded (``details["reasons"]`` holds each file's
      reason): it is broken, truncated, not a regular file, not audio, or holds samples
      that are not audio (NaN, infinite, or beyond
      :data:`~beats_core.audio.MAX_SAMPLE_MAGNITUDE`);
    * ``empty_label``: a row has no label;
    * ``no_clips``: the frame is empty;
    * ``too_few_classes``: fewer than 2 classes;
    * ``class_too_small``: a class has fewer than 2 clips (it cannot be both trained and tested).

    Warnings:
    * ``too_short``: clips shorter than one fbank frame (25 ms);
    * ``silent``: clips whose peak is below -60 dBFS;
    * ``beyond_full_scale``: float files with samples beyond +-1 (``details["notes"]`` gives
      each file's peak); they are used as they are, louder than anything BEATs was trained on;
    * ``few_clips``: classes with fewer than 20 clips;
    * ``imbalance``: the largest class has more than 3 times the clips of the smallest;
    * ``leakage_across_classes`` / ``leakage_across_splits``: identical audio content under
      two labels, or in two splits or folds (the test set would contain training clips);
    * ``resampled``: files not at 16 kHz (they are resampled at load time), with what each
      loses or never had (``details["notes"]``): a file above 16 kHz loses what it holds
      above 8 kHz (the share of its energy there is measured on the decoded samples); a
      file below 16 kHz has nothing above half its rate (an 8 kHz file nothing above 4 kHz),
      where BEATs hears up to 8 kHz. The files come most affected first;
    * ``mixed_down``: files with several channels (they are averaged to mono).

    Args:
        df: the dataset frame, one row per clip.
        root: the folder relative paths start from (loaders return absolute paths).
        audio_column: the column with the audio paths.
        label_column: the column with the labels.
        label_delimiter: for multi-label data, the separator of the labels in one label
            string (e.g. ``";"``); classes are then counted per label.
        num_workers: decoding processes; ``None`` uses every CPU core, ``0`` decodes in this process.
        progress: show a tqdm progress bar.

    Returns:
        The :class:`ValidationReport`: ``ok`` (no errors), ``errors`` and ``warnings``
        (lists of :class:`Issue`), ``stats`` (:class:`DatasetStats`) and ``clips`` (a
        DataFrame with the same index as ``df``, one row of facts per clip);
        ``report.to_dict()`` gives it as plain data.

    Raises:
        DatasetError: the frame lacks the audio or label column.
    """
    require_columns(
        df, [audio_column, label_column], "the dataset DataFrame", "Pass audio_column= and label_column="
    )
    original_index = df.index
    df = df.reset_index(drop=True)  # positions from here on; the caller's index is restored at the end
    paths = resolve_paths(df, root, audio_column)
    clips = _probe_all(paths, num_workers, progress)
    labels = df[label_column]
    errors: list[Issue] = []
    warnings: list[Issue] = []

    missing = clips.index[clips["error_code"] == "missing_file"]
    if len(missing):
        files = clips.loc[missing, "path"].tolist()
        errors.append(
            Issue("missing_file", f"{len(files)} files do not exist; fix the paths or remove the rows", files)
        )
    broken = clips.index[clips["error_code"] == "undecodable_file"]
    if len(broken):
        files = clips.loc[broken, "path"].tolist()
        reasons = dict(zip(files, clips.loc[broken, "error"], strict=True))
        errors.append(
            Issue(
                "undecodable_file",
                f"{len(files)} files cannot be decoded; re-export, re-download or remove them",
                files,
                {"reasons": reasons},
            )
        )
    unlabeled = labels.isna() | (labels.astype(str).str.strip() == "")
    if unlabeled.any():
        files = clips.loc[unlabeled, "path"].tolist()
        errors.append(Issue("empty_label", f"{len(files)} rows have no label; label or remove them", files))

    label_sets = [
        sorted(split_labels(value, label_delimiter)) if label_delimiter else [str(value)]
        for value in labels.where(~unlabeled, "")
    ]
    counts = pd.Series(Counter(label for row in label_sets for label in row if label), dtype=int).sort_index()
    _check_classes(counts, label_sets, clips, errors, warnings)

    good = clips[clips["error"].isna()]
    _check_clips(good, warnings)
    _check_leakage(good, df.loc[good.index], label_column, warnings)

    return ValidationReport(
        ok=not errors,
        errors=errors,
        warnings=warnings,
        stats=_stats(df, good, counts),
        clips=clips.drop(columns="error_code").set_axis(original_index),
    )


# ---------------------------------------------------------------------------
# Decoding every clip
# ---------------------------------------------------------------------------


class _Probe:
    """A map-style dataset whose item ``i`` is the facts about file ``i`` (run in DataLoader workers)."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return _probe_clip(self.paths[i])


def _probe_clip(path: str) -> dict[str, Any]:
    """Decode one file at its native rate and collect what validation needs.

    Args:
        path: the audio file.

    Returns:
        ``path``, ``error_code`` and ``error`` (``None`` when it decodes), ``duration``
        (decoded seconds), ``sample_rate``, ``channels``, ``format``, ``codec``,
        ``peak_dbfs``, ``energy_above_8khz`` (for files above 16 kHz) and ``content_hash``
        (of the decoded mono samples, so the same audio in two files or formats has the
        same hash).
    """
    facts: dict[str, Any] = dict.fromkeys(_CLIP_COLUMNS)
    facts["path"] = path
    if not os.path.lexists(path) or not os.path.exists(path):
        reason = "the file does not exist" if not os.path.lexists(path) else "it is a link to nothing"
        facts.update(error_code="missing_file", error=reason)
        return facts
    try:
        info = audio_info(path)
        samples = load_audio(path, sample_rate=None).numpy()
    except AudioDecodeError as e:
        facts.update(error_code="undecodable_file", error=str(e))
        return facts
    peak = float(np.max(np.abs(samples)))
    facts.update(
        duration=samples.shape[0] / info.sample_rate,
        sample_rate=info.sample_rate,
        channels=info.channels,
        format=info.format,
        codec=info.codec,
        peak_dbfs=20 * math.log10(peak) if peak > 0 else -math.inf,
        energy_above_8khz=(
            _energy_share_above(samples, info.sample_rate, BEATS_BANDWIDTH_HZ)
            if info.sample_rate > SAMPLE_RATE
            else None
        ),
        content_hash=hashlib.blake2b(samples.tobytes(), digest_size=16).hexdigest(),
    )
    return facts


_CLIP_COLUMNS = [
    "path",
    "error_code",
    "error",
    "duration",
    "sample_rate",
    "channels",
    "format",
    "codec",
    "peak_dbfs",
    "energy_above_8khz",
    "content_hash",
]


def _energy_share_above(samples: np.ndarray, sample_rate: int, frequency: float) -> float:
    """The share of a signal's energy above ``frequency`` Hz, from Hann-windowed spectra spread over it."""
    length = min(_SPECTRUM_SAMPLES, samples.shape[0])
    frames = samples[: samples.shape[0] - samples.shape[0] % length].reshape(-1, length)
    chosen = np.unique(np.linspace(0, frames.shape[0] - 1, _MAX_SPECTRA).round().astype(int))
    power = np.abs(np.fft.rfft(frames[chosen] * np.hanning(length).astype(np.float32), axis=1)) ** 2
    total = float(power.sum())
    above = np.fft.rfftfreq(length, 1 / sample_rate) > frequency
    return float(power[:, above].sum()) / total if total > 0 else 0.0


def _collate_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


def _probe_all(paths: list[str], num_workers: int | None, progress: bool) -> pd.DataFrame:
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    workers = min(workers, max(0, len(paths) // 8))  # starting processes is not worth it for a few files
    loader = DataLoader(
        _Probe(paths), batch_size=16, num_workers=workers, collate_fn=_collate_list, shuffle=False
    )
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(paths), desc="validating", unit="file", disable=not progress) as bar:
        for batch in loader:
            rows.extend(batch)
            bar.update(len(batch))
    # pandas' Arrow strings cannot hold names that are not UTF-8: those need an object column.
    text = object if any(has_undecodable_name(row["path"]) for row in rows) else None
    clips = pd.DataFrame(rows, columns=_CLIP_COLUMNS, dtype=text)
    # Counts stay integers when some files fail (and leave NaN in the column).
    clips = clips.astype({"sample_rate": "Int64", "channels": "Int64"})
    return clips.astype({"duration": float, "peak_dbfs": float, "energy_above_8khz": float})


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def _check_classes(
    counts: pd.Series,
    label_sets: list[list[str]],
    clips: pd.DataFrame,
    errors: list[Issue],
    warnings: list[Issue],
) -> None:
    if len(clips) == 0:
        errors.append(Issue("no_clips", "the dataset has no clips"))
    elif len(counts) < 2:
        errors.append(
            Issue(
                "too_few_classes",
                f"the dataset has {len(counts)} class{'es' if len(counts) != 1 else ''} "
                f"({', '.join(counts.index)}); a classifier needs at least 2",
                details={"classes": counts.to_dict()},
            )
        )
    tiny = counts[counts < 2]
    if len(tiny):
        errors.append(
            Issue(
                "class_too_small",
                f"{len(tiny)} classes have fewer than 2 clips ({_some(tiny.index)}): they cannot be both "
                "trained on and tested; add clips or remove the classes",
                [
                    path
                    for path, row in zip(clips["path"], label_sets, strict=True)
                    if set(row) & set(tiny.index)
                ],
                {"classes": tiny.to_dict()},
            )
        )
    few = counts[(counts >= 2) & (counts < FEW_CLIPS)]
    if len(few):
        warnings.append(
            Issue(
                "few_clips",
                f"{len(few)} classes have fewer than {FEW_CLIPS} clips ({_some(f'{k} ({v})' for k, v in few.items())}); "
                "expect noisy accuracy for them",
                details={"classes": few.to_dict()},
            )
        )
    if len(counts) >= 2 and counts.min() > 0 and counts.max() / counts.min() > IMBALANCE_RATIO:
        warnings.append(
            Issue(
                "imbalance",
                f"classes are imbalanced: {counts.idxmax()!r} has {counts.max()} clips, {counts.idxmin()!r} "
                f"has {counts.min()} (ratio {counts.max() / counts.min():.1f} > {IMBALANCE_RATIO:g}); "
                "consider class weights or balanced sampling",
                details={
                    "largest": counts.idxmax(),
                    "smallest": counts.idxmin(),
                    "classes": counts.to_dict(),
                },
            )
        )


def _check_clips(good: pd.DataFrame, warnings: list[Issue]) -> None:
    checks = [
        (
            "too_short",
            good["duration"] < MIN_DURATION_SECONDS,
            f"clips are shorter than one fbank frame ({MIN_DURATION_SECONDS * 1000:g} ms); they are padded and carry almost no signal",
        ),
        ("silent", good["peak_dbfs"] < SILENCE_DBFS, f"clips are silent (peak below {SILENCE_DBFS:g} dBFS)"),
    ]
    for code, selected, text in checks:
        files = good.loc[selected, "path"].tolist()
        if files:
            warnings.append(Issue(code, f"{len(files)} {text}", files))
    _check_full_scale(good, warnings)
    _check_bandwidth(good, warnings)
    multichannel = good[good["channels"] > 1]
    if len(multichannel):
        warnings.append(
            Issue(
                "mixed_down",
                f"{len(multichannel)} files have several channels and will be averaged to mono (this is fine)",
                multichannel["path"].tolist(),
                {"channels": _counts(multichannel["channels"])},
            )
        )


def _check_full_scale(good: pd.DataFrame, warnings: list[Issue]) -> None:
    """Float files beyond +-1: usable (load_audio rejects only what is not audio), but too loud."""
    loud = good[good["codec"].map(_is_float_codec) & (good["peak_dbfs"] > 0)]
    if not len(loud):
        return
    peaks = {path: 10 ** (dbfs / 20) for path, dbfs in zip(loud["path"], loud["peak_dbfs"], strict=True)}
    warnings.append(
        Issue(
            "beyond_full_scale",
            f"{len(loud)} float files have samples beyond +-1 (peak up to {max(peaks.values()):.3g}); they are "
            "used as they are, louder than any audio BEATs was trained on: scale them into [-1, 1]",
            loud["path"].tolist(),
            {
                "notes": {
                    path: f"peak {peak:.3g} ({20 * math.log10(peak):+.1f} dBFS)"
                    for path, peak in peaks.items()
                },
                "peaks": peaks,
            },
        )
    )


def _is_float_codec(codec: str) -> bool:
    """Whether a codec (soundfile subtype or FFmpeg codec, lower case) stores float samples."""
    return codec in ("float", "double") or codec.startswith("pcm_f")


def _check_bandwidth(good: pd.DataFrame, warnings: list[Issue]) -> None:
    """Files not at 16 kHz, with the bandwidth each loses (above 16 kHz) or never had (below)."""
    resampled = good[good["sample_rate"] != SAMPLE_RATE]
    if not len(resampled):
        return
    above = resampled[resampled["sample_rate"] > SAMPLE_RATE].sort_values(
        "energy_above_8khz", ascending=False, kind="stable"
    )
    below = resampled[resampled["sample_rate"] < SAMPLE_RATE].sort_values("sample_rate", kind="stable")
    khz = BEATS_BANDWIDTH_HZ / 1000
    notes = {
        path: f"{rate} Hz: {share:.1%} of its energy lies above {khz:g} kHz and is discarded"
        if share >= NEGLIGIBLE_ENERGY_SHARE
        else f"{rate} Hz: almost nothing lies above {khz:g} kHz ({share:.2%} of its energy), little is lost"
        for path, rate, share in zip(
            above["path"], above["sample_rate"], above["energy_above_8khz"], strict=True
        )
    }
    notes |= {
        path: f"{rate} Hz: recorded without anything above {rate / 2000:g} kHz (BEATs hears up to {khz:g} kHz)"
        for path, rate in zip(below["path"], below["sample_rate"], strict=True)
    }
    parts = []
    if len(above):
        losing = above[above["energy_above_8khz"] >= NEGLIGIBLE_ENERGY_SHARE]
        parts.append(
            f"{len(above)} recorded above 16 kHz lose what they hold above {khz:g} kHz"
            + (
                f" ({len(losing)} lose {NEGLIGIBLE_ENERGY_SHARE:.1%} of their energy or more, up to "
                f"{above['energy_above_8khz'].max():.1%})"
                if len(losing)
                else " (less than 0.1 % of their energy each)"
            )
        )
    if len(below):
        lowest = int(below["sample_rate"].min())
        parts.append(
            f"{len(below)} recorded below 16 kHz never had what BEATs hears up to {khz:g} kHz (at {lowest} Hz, "
            f"nothing above {lowest / 2000:g} kHz)"
        )
    warnings.append(
        Issue(
            "resampled",
            f"{len(resampled)} files are not at {SAMPLE_RATE} Hz and are resampled to it when loaded: "
            + "; ".join(parts),
            [*above["path"], *below["path"]],
            {"sample_rates": _counts(resampled["sample_rate"]), "notes": notes},
        )
    )


def _check_leakage(good: pd.DataFrame, rows: pd.DataFrame, label_column: str, warnings: list[Issue]) -> None:
    groups: dict[str, list[Any]] = defaultdict(list)
    for index, digest in good["content_hash"].items():
        groups[digest].append(index)
    duplicates = [members for members in groups.values() if len(members) > 1]
    for code, column, what in (
        ("leakage_across_classes", label_column, "labels"),
        ("leakage_across_splits", SPLIT, "splits"),
        ("leakage_across_splits", FOLD, "folds"),
    ):
        if column not in rows.columns:
            continue
        sets = [m for m in duplicates if rows.loc[m, column].astype(str).nunique() > 1]
        if not sets:
            continue
        files = [good.loc[i, "path"] for members in sets for i in members]
        examples = [
            " = ".join(
                f"{display_path(Path(good.loc[i, 'path']).name)} ({rows.loc[i, column]})" for i in members
            )
            for members in sets[:3]
        ]
        warnings.append(
            Issue(
                code,
                f"{len(sets)} sets of files have identical audio in different {what}: {'; '.join(examples)}"
                + ("; ..." if len(sets) > 3 else "")
                + (
                    "; the evaluation would score clips the model was trained on"
                    if what != "labels"
                    else "; the same sound cannot be two classes"
                ),
                files,
                {"groups": [[good.loc[i, "path"] for i in members] for members in sets]},
            )
        )


def _stats(df: pd.DataFrame, good: pd.DataFrame, counts: pd.Series) -> DatasetStats:
    durations = good["duration"].to_numpy(dtype=float)
    present = {}
    for column in (SPLIT, FOLD):
        if column in df.columns:
            counted = Counter(df[column].astype(str))
            present[column] = {k: counted[k] for k in sorted(counted, key=_natural)}
    return DatasetStats(
        num_clips=len(df),
        num_decoded=len(good),
        num_classes=len(counts),
        clips_per_class={str(k): int(v) for k, v in counts.items()},
        duration_seconds={
            "min": float(durations.min()) if len(durations) else None,
            "median": float(np.median(durations)) if len(durations) else None,
            "max": float(durations.max()) if len(durations) else None,
            "total": float(durations.sum()),
        },
        sample_rates=_counts(good["sample_rate"]),
        channels=_counts(good["channels"]),
        formats=_counts(good["format"] + "/" + good["codec"]) if len(good) else {},
        splits=present.get(SPLIT),
        folds=present.get(FOLD),
    )


def _natural(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _counts(values: pd.Series) -> dict[Any, int]:
    counted = Counter(v.item() if hasattr(v, "item") else v for v in values.tolist())
    return dict(sorted(counted.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def _some(items: Iterable[Any], limit: int = 3) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# ---------------------------------------------------------------------------
# Text report
# ---------------------------------------------------------------------------


#: Issues about many ordinary files, whose file list the text report leaves out.
_SUMMARY_ONLY = {"mixed_down"}


def format_report(report: ValidationReport, *, max_files: int = 5) -> str:
    r"""Render a :func:`validate_dataset` report as a readable text table.

    Paths are shown with :func:`~beats_core.audio_files.display_path`, so names that are
    not valid UTF-8 print (as ``\xNN`` escapes).

    Args:
        report: the report returned by :func:`validate_dataset`.
        max_files: how many files to list under each issue, each with its reason or note.

    Returns:
        The report as lines of text (no trailing newline).
    """
    stats = report.stats
    durations = stats.duration_seconds
    lines = [f"Dataset: {stats.num_clips} clips, {stats.num_classes} classes, {stats.num_decoded} decoded"]
    if durations["min"] is not None:
        lines.append(
            f"Duration (s): min {durations['min']:.3f}  median {durations['median']:.3f}  "
            f"max {durations['max']:.3f}  total {durations['total']:.1f}"
        )
    rates = {f"{rate} Hz": count for rate, count in stats.sample_rates.items()}
    for title, counts in (
        ("Sample rates", rates),
        ("Channels", stats.channels),
        ("Formats", stats.formats),
        ("Splits", stats.splits or {}),
        ("Folds", stats.folds or {}),
    ):
        if counts:
            lines.append(f"{title}: " + ", ".join(f"{k} ({v})" for k, v in counts.items()))
    per_class = stats.clips_per_class
    if per_class:
        lines += ["", "Clips per class:"]
        width = max(len(name) for name in per_class)
        shown = sorted(per_class.items(), key=lambda kv: (kv[1], kv[0]))
        if len(shown) > 30:
            lines.append(f"  ({len(shown)} classes; the 10 smallest and the 5 largest)")
            shown = [*shown[:10], ("...", None), *shown[-5:]]
        lines += [f"  {name:<{width}}  {'' if count is None else count:>6}" for name, count in shown]
    for title, issues in (("ERRORS", report.errors), ("WARNINGS", report.warnings)):
        lines += ["", f"{title} ({len(issues)})" if issues else f"{title}: none"]
        for issue in issues:
            lines.append(f"  [{issue.code}] {issue.message}")
            if issue.code in _SUMMARY_ONLY:
                continue
            notes = issue.details.get("reasons") or issue.details.get("notes") or {}
            for path in issue.files[:max_files]:
                lines.append(
                    f"      {display_path(path)}" + (f"\n        {notes[path]}" if path in notes else "")
                )
            if len(issue.files) > max_files:
                lines.append(f"      ... and {len(issue.files) - max_files} more")
    lines += ["", "OK: no errors" if report.ok else "FAILED: fix the errors above"]
    return "\n".join(lines)
