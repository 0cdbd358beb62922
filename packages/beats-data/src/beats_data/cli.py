"""``beats validate DATA``: check a dataset before training and print the report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from beats_core.hookspecs import SubParsers

__all__ = [
    "AUDIO_COLUMN_NAMES",
    "LABEL_COLUMN_NAMES",
    "add_validate_command",
    "guess_csv_columns",
    "run_validate",
]

#: Column names tried, in order, for the audio paths of a CSV file when ``--audio-column`` is not given.
AUDIO_COLUMN_NAMES = ("filename", "file_path", "path", "file")
#: Column names tried, in order, for the labels of a CSV file when ``--label-column`` is not given.
LABEL_COLUMN_NAMES = ("category", "class_name", "label", "class")


def add_validate_command(subparsers: SubParsers) -> None:
    """Add the ``validate`` sub-command to the ``beats`` parser.

    Args:
        subparsers: the ``beats`` parser's sub-parsers object.
    """
    parser = subparsers.add_parser(
        "validate",
        help="decode every clip of a dataset and report errors and warnings",
        description=(
            "Decode every clip of a dataset and report missing or broken files, class problems, "
            "leakage between splits and format facts. Exits with status 1 if there are errors."
        ),
    )
    parser.add_argument(
        "data",
        metavar="DATA",
        help="a folder with one sub-folder per class, a .csv file, or NAME:PATH for a registered "
        "loader (e.g. esc50:/data/ESC-50-master)",
    )
    parser.add_argument(
        "--audio-column",
        default=None,
        help=f"CSV column with the audio paths (default: the first of {', '.join(AUDIO_COLUMN_NAMES)} found)",
    )
    parser.add_argument(
        "--label-column",
        default=None,
        help=f"CSV column with the labels (default: the first of {', '.join(LABEL_COLUMN_NAMES)} found)",
    )
    parser.add_argument(
        "--label-delimiter", default=None, help="separator of several labels per clip (multi-label data)"
    )
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    """Run ``beats validate``: load the dataset, validate it, print the report.

    Args:
        args: the parsed arguments of :func:`add_validate_command`.

    Returns:
        0 when the dataset has no errors, 1 otherwise.

    Raises:
        DatasetError: the dataset cannot be loaded (for a CSV file, also when a column
            cannot be found; the message names the flags that choose them).
    """
    from beats_data.loaders import parse_dataset_spec, resolve_dataset
    from beats_data.validation import format_report, validate_dataset

    name, path = parse_dataset_spec(args.data)
    options: dict[str, Any] = {}
    if name == "csv":
        audio, label = guess_csv_columns(path, args.audio_column, args.label_column)
        if (audio, label) != (
            args.audio_column or AUDIO_COLUMN_NAMES[0],
            args.label_column or LABEL_COLUMN_NAMES[0],
        ):
            print(
                f"beats validate: using column {audio!r} for the audio paths and {label!r} for the labels "
                "(choose others with --audio-column and --label-column)",
                file=sys.stderr,
            )
        options = {"audio_col": audio, "label_col": label}
    frame = resolve_dataset(args.data, **options)
    report = validate_dataset(frame, label_delimiter=args.label_delimiter, num_workers=args.workers)
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else format_report(report))
    sys.stdout.flush()
    return 0 if report.ok else 1


def guess_csv_columns(
    csv_path: str | Path, audio_column: str | None, label_column: str | None
) -> tuple[str, str]:
    """Pick the audio and label columns of a CSV file: those given, else the first usual name present.

    Names are matched without regard to case (``File_Path`` is found for ``file_path``).

    Args:
        csv_path: the CSV file.
        audio_column: the column the user named for the audio paths, or ``None`` to guess
            from :data:`AUDIO_COLUMN_NAMES`.
        label_column: the column the user named for the labels, or ``None`` to guess from
            :data:`LABEL_COLUMN_NAMES`.

    Returns:
        ``(audio column, label column)``. Where the header cannot be read, the given names
        (or the defaults), so that loading the CSV reports why.

    Raises:
        DatasetError: a column named is missing, or none of the usual names is there; the
            message lists the CSV's columns and the ``--audio-column``/``--label-column`` flags.
    """
    import pandas as pd

    from beats_core.errors import DatasetError

    try:
        found = [str(column) for column in pd.read_csv(csv_path, nrows=0).columns]
    except (OSError, ValueError, UnicodeDecodeError):  # the loader reports an unreadable CSV
        return audio_column or AUDIO_COLUMN_NAMES[0], label_column or LABEL_COLUMN_NAMES[0]
    by_lower = {column.lower(): column for column in reversed(found)}
    chosen = []
    for given, names, flag, what in (
        (audio_column, AUDIO_COLUMN_NAMES, "--audio-column", "audio paths"),
        (label_column, LABEL_COLUMN_NAMES, "--label-column", "labels"),
    ):
        if given is not None and given not in found:
            raise DatasetError(
                f"CSV file {str(csv_path)!r} has no column {given!r} ({flag}); its columns are {found}. "
                f"Name the column of the {what} with {flag}."
            )
        guess = given or next((by_lower[name] for name in names if name in by_lower), None)
        if guess is None:
            raise DatasetError(
                f"CSV file {str(csv_path)!r} has none of the usual columns for the {what} ({', '.join(names)}); "
                f"its columns are {found}. Name the column with {flag}."
            )
        chosen.append(guess)
    return chosen[0], chosen[1]
