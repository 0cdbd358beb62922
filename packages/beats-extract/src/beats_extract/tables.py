"""Detection tables in the formats people open them with: CSV, Raven Pro selection tables, Audacity labels.

A detection table has one row per detection: ``path``, ``start`` and ``end`` (seconds from the
beginning of the recording), ``label``, ``confidence`` and, for labels that are AudioSet ids,
``label_id``. It is written three ways:

* ``csv``: the table itself (pandas, spreadsheets, R);
* ``raven``: a Raven Pro selection table per recording, tab-separated, with Raven's columns
  (``Selection``, ``View``, ``Channel``, ``Begin Time (s)``, ``End Time (s)``, ``Low Freq (Hz)``,
  ``High Freq (Hz)``) and then ``Label`` and ``Confidence``; each detection is a selection on
  ``Spectrogram 1``, channel 1, from 0 to 8000 Hz (the band BEATs hears at 16 kHz), so the
  table opens over the recording's spectrogram (File > Open Selection Table);
* ``audacity``: an Audacity label track per recording, ``start<TAB>end<TAB>label`` lines
  (File > Import > Labels).

:class:`DetectionOutputs` lays the files of a run out under one folder: each recording's files
mirror its path relative to the folder that holds all the recordings (two ``a.wav`` in
different folders do not clash), every file is written atomically as its recording is done,
and the combined ``detections.csv`` is written at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from beats_core.atomic import atomic_write_text
from beats_core.errors import BeatsError, ConfigError
from beats_core.geometry import SAMPLE_RATE

__all__ = [
    "DETECTION_COLUMNS",
    "FORMATS",
    "LABEL_ID_COLUMN",
    "RAVEN_COLUMNS",
    "DetectionOutputs",
    "OutputError",
    "audacity_labels",
    "check_formats",
    "empty_detections",
    "mirrored_names",
    "raven_table",
    "read_detections",
]

#: The columns of a detection table (``label_id`` follows where labels are AudioSet ids).
DETECTION_COLUMNS = ("path", "start", "end", "label", "confidence")
#: The column of AudioSet ids.
LABEL_ID_COLUMN = "label_id"
#: The output formats.
FORMATS = ("csv", "raven", "audacity")
#: The columns of a Raven selection table.
RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Label",
    "Confidence",
)
#: The highest frequency BEATs hears (half its 16 kHz sample rate), the top of a Raven selection.
HIGHEST_FREQUENCY = SAMPLE_RATE // 2
#: The combined table of a run, in its output folder.
COMBINED_NAME = "detections.csv"
#: The settings of a run, in its output folder.
SETTINGS_NAME = "detect_settings.json"
#: What each format's per-recording file name adds to the recording's name.
SUFFIXES = {"csv": ".detections.csv", "raven": ".selections.txt", "audacity": ".labels.txt", "plot": ".png"}


class OutputError(BeatsError, OSError):
    """Detections cannot be written to the output folder (full disk, no permission); what is written is complete."""


def empty_detections(with_label_ids: bool) -> pd.DataFrame:
    """A detection table without rows.

    Args:
        with_label_ids: add the ``label_id`` column.

    Returns:
        The table, with its columns and types.
    """
    columns = {
        "path": "object",
        "start": "float64",
        "end": "float64",
        "label": "object",
        "confidence": "float64",
    }
    if with_label_ids:
        columns[LABEL_ID_COLUMN] = "object"
    return pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in columns.items()})


def check_formats(formats: Sequence[str]) -> list[str]:
    """The output formats asked for, checked.

    Args:
        formats: names among :data:`FORMATS`.

    Returns:
        Them, without repeats, in order.

    Raises:
        ConfigError: an unknown format.
    """
    chosen = list(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown output format(s) {unknown}; choose among {', '.join(FORMATS)}")
    return chosen


def _single_line(text: str) -> str:
    return " ".join(str(text).split())


def raven_table(detections: pd.DataFrame) -> str:
    """A Raven Pro selection table of one recording's detections.

    Args:
        detections: a detection table (of one recording).

    Returns:
        The tab-separated text: the header of :data:`RAVEN_COLUMNS`, then one selection per
        detection, numbered from 1.
    """
    lines = ["\t".join(RAVEN_COLUMNS)]
    for number, row in enumerate(detections.itertuples(index=False), start=1):
        lines.append(
            f"{number}\tSpectrogram 1\t1\t{row.start:.6f}\t{row.end:.6f}\t0\t{HIGHEST_FREQUENCY}\t"
            f"{_single_line(row.label)}\t{row.confidence:.4f}"
        )
    return "\n".join(lines) + "\n"


def audacity_labels(detections: pd.DataFrame) -> str:
    """An Audacity label track of one recording's detections.

    Args:
        detections: a detection table (of one recording).

    Returns:
        ``start<TAB>end<TAB>label`` lines, seconds with 6 decimals (empty for no detection).
    """
    return "".join(
        f"{row.start:.6f}\t{row.end:.6f}\t{_single_line(row.label)}\n"
        for row in detections.itertuples(index=False)
    )


def read_detections(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a detection table written as CSV (labels stay text, even ``"NA"`` or ``"1"``).

    Args:
        path: the CSV file.

    Returns:
        The table.
    """
    text_columns = {"path": str, "label": str, LABEL_ID_COLUMN: str}
    return pd.read_csv(path, dtype=text_columns, keep_default_na=False)


def mirrored_names(paths: Sequence[str]) -> dict[str, Path]:
    """Where each recording's files go in an output folder: its path relative to the folder that holds them all.

    Args:
        paths: the recordings.

    Returns:
        recording -> relative path, e.g. ``siteA/a.wav`` and ``siteB/a.wav`` for
        ``/data/siteA/a.wav`` and ``/data/siteB/a.wav``.
    """
    absolute = {path: Path(os.path.abspath(path)) for path in paths}
    if not absolute:
        return {}
    try:
        root = Path(os.path.commonpath([str(a.parent) for a in absolute.values()]))
    except ValueError:  # recordings on different drives: keep each full path below the folder
        return {path: Path(*a.parts[1:]) for path, a in absolute.items()}
    return {path: a.relative_to(root) for path, a in absolute.items()}


class DetectionOutputs:
    """The files of a detection run in one folder: per recording as each is done, and the combined table.

    Args:
        folder: the output folder (created if needed).
        recordings: every recording of the run (their layout decides the file names).
        formats: among :data:`FORMATS`.
        plot: also a PNG heat map per recording.
        settings: what made the detections (written to ``detect_settings.json``).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        recordings: Sequence[str],
        *,
        formats: Sequence[str],
        plot: bool,
        settings: Mapping[str, Any],
    ) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(
                f"{str(self.folder)!r} is a file; give a folder for the detections (-o OUT_DIR)"
            )
        self.formats = check_formats(formats)
        self.kinds = [*self.formats, "plot"] if plot else list(self.formats)
        self.names = mirrored_names(recordings)
        self.settings = json.loads(json.dumps(dict(settings)))

    @property
    def combined_path(self) -> Path:
        """The combined CSV of every recording's detections."""
        return self.folder / COMBINED_NAME

    def files(self, recording: str) -> dict[str, Path]:
        """The files of one recording: kind (a format or ``"plot"``) -> path."""
        name = self.names[recording]
        return {kind: self.folder / name.parent / (name.name + SUFFIXES[kind]) for kind in self.kinds}

    def complete(self, recording: str) -> bool:
        """Whether every file of a recording exists (a run that skips existing outputs skips it)."""
        return all(path.is_file() for path in self.files(recording).values())

    def start(self, *, resume: bool) -> None:
        """Record the run's settings; when resuming, check that they are those of the outputs already there.

        Args:
            resume: existing per-recording outputs will be kept.

        Raises:
            ConfigError: resuming over outputs made with other settings (the message names the differences).
            OutputError: the folder cannot be written.
        """
        path = self.folder / SETTINGS_NAME
        if resume and path.is_file():
            try:
                before = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                before = {}
            differences = [
                f"{key}={before.get(key)!r} (now {value!r})"
                for key, value in self.settings.items()
                if before.get(key) != value
            ]
            if differences:
                raise ConfigError(
                    f"{str(self.folder)!r} holds detections made with other settings: {', '.join(differences)}. "
                    "Use the same settings to continue, another folder, or run without --skip-existing to redo "
                    "every recording"
                )
        try:
            atomic_write_text(path, json.dumps(self.settings, indent=2) + "\n")
        except OSError as e:
            raise OutputError(f"cannot write detections to {str(self.folder)!r}: {e.strerror or e}") from e

    def write(
        self, recording: str, detections: pd.DataFrame, plot: Callable[[Path], None] | None = None
    ) -> None:
        """Write one recording's files, each atomically.

        Args:
            recording: the recording.
            detections: its detection table.
            plot: called with the PNG path to draw the heat map (when the run plots).
        """
        writers = {
            "csv": lambda: detections.to_csv(index=False),
            "raven": lambda: raven_table(detections),
            "audacity": lambda: audacity_labels(detections),
        }
        try:
            for kind, path in self.files(recording).items():
                if kind == "plot":
                    if plot is not None:
                        plot(path)
                else:
                    atomic_write_text(path, writers[kind]())
        except OSError as e:
            raise OutputError(
                f"cannot write the detections of {recording!r} to {str(self.folder)!r}: {e.strerror or e}; "
                "what is written is complete: make room, then run again with --skip-existing to continue"
            ) from e

    def read(self, recording: str) -> pd.DataFrame:
        """The detections of a recording whose CSV a previous run wrote."""
        return read_detections(self.files(recording)["csv"])

    def finish(self, detections: pd.DataFrame) -> Path:
        """Write the combined table of the run (atomically).

        Args:
            detections: every recording's detections.

        Returns:
            Its path.
        """
        try:
            return atomic_write_text(self.combined_path, detections.to_csv(index=False))
        except OSError as e:
            raise OutputError(
                f"cannot write {str(self.combined_path)!r}: {e.strerror or e}; the recordings' own files are "
                "complete: make room, then run again with --skip-existing"
            ) from e
