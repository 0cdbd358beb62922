"""``beats validate DATA``: check a dataset before training and print the report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from beats_core.hookspecs import SubParsers

__all__ = ["add_validate_command", "run_validate"]


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
    parser.add_argument("--audio-column", default="filename", help="CSV column with the audio paths")
    parser.add_argument("--label-column", default="category", help="CSV column with the labels")
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
    """
    from beats_data.loaders import parse_dataset_spec, resolve_dataset
    from beats_data.validation import format_report, validate_dataset

    name, _ = parse_dataset_spec(args.data)
    options: dict[str, Any] = {}
    if name == "csv":
        options = {"audio_col": args.audio_column, "label_col": args.label_column}
    frame = resolve_dataset(args.data, **options)
    report = validate_dataset(frame, label_delimiter=args.label_delimiter, num_workers=args.workers)
    if args.json:
        printable = {key: value for key, value in report.items() if key != "clips"}
        print(json.dumps(printable, indent=2, default=str))
    else:
        print(format_report(report))
    sys.stdout.flush()
    return 0 if report["ok"] else 1
