"""``beats detect`` (detection tables of long recordings) and ``beats predict`` (one prediction per file).

Each wraps the public API (:func:`~beats_extract.detect.detect_events`,
:meth:`~beats_extract.classify.ClipClassifier.predict`) and needs only beats-core and
beats-extract. Heavy modules are imported when a command runs, so ``beats --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beats_core.hookspecs import SubParsers
from beats_extract.cli import add_runtime_options

__all__ = ["add_commands", "read_class_list", "run_detect", "run_predict"]

#: Recordings named in a summary line before "... and N more".
_NAMED = 10


def add_commands(subparsers: SubParsers) -> None:
    """Add ``detect`` and ``predict`` to the ``beats`` parser.

    Args:
        subparsers: the ``beats`` parser's sub-parsers object.
    """
    detect = subparsers.add_parser(
        "detect",
        help="detect sounds in long recordings: which, where, when, how sure",
        description=(
            "Cut recordings into clips, classify every clip alone with a fine-tuned checkpoint and write the "
            "detections (each clip and class whose confidence reaches --min-confidence) as tables: "
            "OUT_DIR/detections.csv, and per recording a CSV, a Raven Pro selection table, an Audacity label "
            "track and a heat map, as asked. Each recording's files are written as it is done; run the same "
            "command again with --skip-existing after an interruption to continue. Recordings that cannot be "
            "decoded are listed at the end; the exit status is 1 only if none could be."
        ),
    )
    detect.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="a fine-tuned .pt file, a model name, hf-hub:owner/name or a classifier exported to .onnx",
    )
    detect.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="audio files, folders (searched recursively) or .txt files listing paths",
    )
    detect.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="the folder for the tables")
    detect.add_argument(
        "--embeddings",
        metavar="STORE",
        help="classify the clip embeddings of a store written by `beats extract --clip-seconds S` instead of audio",
    )
    detect.add_argument(
        "--clip-seconds",
        type=float,
        help="clip length (default: the length the checkpoint was trained on if it records one, else 10; "
        "with --embeddings the store's)",
    )
    detect.add_argument(
        "--clip-overlap",
        type=float,
        help="seconds shared by consecutive clips (default: 0; with --embeddings the store's)",
    )
    detect.add_argument(
        "--min-confidence",
        type=float,
        default=0.1,
        help="the confidence a detection needs, 0 to 1 (default: 0.1, as BirdNET-Analyzer; raise it on the table later)",
    )
    detect.add_argument(
        "--top-k", type=int, help="at most this many classes per clip, the most confident (default: all)"
    )
    detect.add_argument(
        "--classes",
        help="only these classes: a comma-separated list, or a file with one per line (labels or AudioSet display "
        "names; names that hold commas need the file)",
    )
    detect.add_argument(
        "--format",
        default="csv",
        help="output formats, comma-separated: csv, raven (Raven Pro selection tables), audacity (label tracks) "
        "(default: csv)",
    )
    detect.add_argument(
        "--merge",
        action="store_true",
        help="join consecutive or overlapping clips with the same label into one event",
    )
    detect.add_argument(
        "--skip-existing", action="store_true", help="skip the recordings whose files are already in OUT_DIR"
    )
    detect.add_argument(
        "--plot", action="store_true", help="a PNG heat map of confidence by label and time per recording"
    )
    _add_model_options(
        detect, batch_size=8, batch_note=": 10 s clips stay under 500 MB above the model on the CPU"
    )
    detect.set_defaults(func=run_detect)

    predict = subparsers.add_parser(
        "predict",
        help="classify audio files with a fine-tuned checkpoint, one row per file",
        description=(
            "Classify audio files with a fine-tuned checkpoint: one row per file with the label, its "
            "probability and the probability of every class. A long file is cut into windows of the "
            "checkpoint's clip length whose logits are averaged."
        ),
    )
    predict.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="a fine-tuned .pt file, a model name, hf-hub:owner/name or a classifier exported to .onnx",
    )
    predict.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="audio files, folders (searched recursively) or .txt lists"
    )
    predict.add_argument("-o", "--output", help="write the table to this CSV file instead of printing it")
    predict.add_argument(
        "--clip-seconds",
        "--max-duration",
        dest="clip_seconds",
        type=float,
        help="window length for long files (default: the checkpoint's clip length, else 10)",
    )
    predict.add_argument(
        "--label-delimiter", default=",", help="joins the labels of a multi-label prediction (default: ,)"
    )
    _add_model_options(predict, batch_size=16)
    predict.set_defaults(func=run_predict)


def _add_model_options(parser: argparse.ArgumentParser, *, batch_size: int, batch_note: str = "") -> None:
    add_runtime_options(parser, batch_size=batch_size, batch_note=batch_note)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_class_list(value: str) -> list[str]:
    """The classes of ``--classes``: a file with one per line (``#`` comments), or a comma-separated list.

    Args:
        value: the option's value.

    Returns:
        The class labels or names.
    """
    path = Path(value)
    if path.is_file():
        lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    return [part.strip() for part in value.split(",") if part.strip()]


def run_detect(args: argparse.Namespace) -> int:
    """Run ``beats detect``.

    Args:
        args: the parsed arguments of :func:`add_commands`.

    Returns:
        0 if at least one recording was classified (or all were done already), 1 if none could be.
    """
    import warnings

    from beats_extract.detect import SilentRecordingWarning, detect_events
    from beats_extract.extractor import SkippedFileWarning

    recordings: list[_Done] = []
    with warnings.catch_warnings():  # listed together at the end instead
        warnings.simplefilter("ignore", SkippedFileWarning)
        warnings.simplefilter("ignore", SilentRecordingWarning)
        table = detect_events(
            args.checkpoint,
            args.inputs,
            args.out,
            embeddings=args.embeddings,
            clip_seconds=args.clip_seconds,
            clip_overlap=args.clip_overlap,
            min_confidence=args.min_confidence,
            top_k=args.top_k,
            classes=None if args.classes is None else read_class_list(args.classes),
            merge=args.merge,
            formats=args.format.split(","),
            plot=args.plot,
            skip_existing=args.skip_existing,
            device=args.device,
            dtype=args.dtype,
            batch_size=args.batch_size,
            num_workers=args.workers,
            progress=not args.no_progress,
            on_recording=lambda recording: recordings.append(_Done.of(recording)),
        )
    failed = [r for r in recordings if r.error is not None]
    existing = [r for r in recordings if r.existing]
    done = [r for r in recordings if r.error is None and not r.existing]
    silent = [r.path for r in done if r.silent]
    quiet = [r.path for r in done if not r.detections and not r.silent]
    if failed:
        print(f"{len(failed)} of {len(recordings)} recording(s) could not be decoded:", file=sys.stderr)
        for recording in failed:
            print(f"  {recording.error}", file=sys.stderr)
    if existing:
        print(f"{len(existing)} recording(s) skipped: their files are already in {args.out}")
    hours = sum(r.seconds for r in done) / 3600
    print(
        f"{len(done)} recording(s) classified ({hours:.2f} h of audio, {sum(r.clips for r in done)} clips); "
        f"{len(table)} detection(s) at or above {args.min_confidence:g} in {table['path'].nunique()} recording(s)"
    )
    if silent:
        print(f"silent (no sample above -80 dBFS), no detections: {_names(silent)}")
    if quiet:
        print(
            f"no detections at or above {args.min_confidence:g} in {len(quiet)} recording(s): {_names(quiet)}"
        )
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if "csv" in formats:
        print(f"table: {Path(args.out) / 'detections.csv'}")
    print(f"per-recording files ({', '.join(formats + (['plot'] if args.plot else []))}) in {args.out}")
    return 0 if done or existing else 1


def run_predict(args: argparse.Namespace) -> int:
    """Run ``beats predict``: print (or write) one row per file.

    Args:
        args: the parsed arguments of :func:`add_commands`.

    Returns:
        0 if at least one file was classified, 1 if none could be.
    """
    import warnings

    from beats_core.atomic import atomic_write_text
    from beats_extract.classify import open_classifier
    from beats_extract.extractor import SkippedFileWarning
    from beats_extract.inputs import find_audio_files

    classifier = open_classifier(args.checkpoint, device=args.device)
    files = find_audio_files(args.inputs)
    with warnings.catch_warnings(record=True) as skipped:
        warnings.simplefilter("always", SkippedFileWarning)
        table = classifier.predict(
            files,
            clip_seconds=args.clip_seconds,
            dtype=args.dtype,
            batch_size=args.batch_size,
            num_workers=args.workers,
            delimiter=args.label_delimiter,
            progress=not args.no_progress,
        )
    for warning in skipped:
        print(f"beats: {warning.message}", file=sys.stderr)
    if args.output:
        atomic_write_text(args.output, table.to_csv(index=False))
        print(f"{len(table)} predictions written to {args.output}")
    else:
        _print_names(table[["filename", "label", "probability"]].to_string(index=False))
    sys.stdout.flush()
    return 0 if table["probability"].notna().any() else 1


def _print_names(text: str) -> None:
    """Print text holding file names; names that are not UTF-8 come out as their own bytes."""
    try:
        print(text)
    except UnicodeEncodeError:  # a strict UTF-8 terminal and a surrogate-escaped name
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode(sys.stdout.encoding, "surrogateescape") + b"\n")


@dataclass(frozen=True)
class _Done:
    """What the summary of ``beats detect`` needs of a recording (not its clips' confidences)."""

    path: str
    error: str | None
    existing: bool
    silent: bool
    clips: int
    seconds: float
    detections: int

    @classmethod
    def of(cls, recording: Any) -> _Done:
        return cls(
            recording.path,
            recording.error,
            recording.existing,
            recording.is_silent,
            recording.clips,
            recording.seconds,
            len(recording.detections),
        )


def _names(paths: list[Any]) -> str:
    shown = ", ".join(str(p) for p in paths[:_NAMED])
    return shown + (f" ... and {len(paths) - _NAMED} more" if len(paths) > _NAMED else "")
