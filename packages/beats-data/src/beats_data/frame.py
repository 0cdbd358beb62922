"""The standard dataset DataFrame: its column names and helpers shared by the modules.

One row per clip. Required columns: ``filename`` (path, absolute or relative to the
dataset root) and ``category`` (label string; for multi-label data, several labels joined
by a delimiter). Optional: ``fold`` (int), ``split`` (``"train"``/``"val"``/``"test"``),
``target`` (int class index). Loaders may add columns; consumers ignore those they do not
know.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from beats_core.errors import DatasetError

__all__ = ["CATEGORY", "FILENAME", "FOLD", "SPLIT", "SPLITS", "TARGET", "require_columns", "resolve_paths"]

FILENAME = "filename"
CATEGORY = "category"
FOLD = "fold"
SPLIT = "split"
TARGET = "target"
#: The split names, in order.
SPLITS = ("train", "val", "test")


def require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str, fix: str = "") -> None:
    """Raise a :class:`DatasetError` naming ``source`` and the columns found if any column is missing.

    Args:
        frame: the table to check.
        columns: the columns it must have.
        source: what the table is (a CSV path, "the dataset DataFrame"), for the message.
        fix: what to do about it, appended to the message.

    Raises:
        DatasetError: a column is missing; the message lists the columns found and close matches.
    """
    missing = [c for c in columns if c not in frame.columns]
    if not missing:
        return
    found = [str(c) for c in frame.columns]
    hints = {m: difflib.get_close_matches(m, found, n=1) for m in missing}
    suggestions = "; ".join(f"did you mean {h[0]!r} for {m!r}?" for m, h in hints.items() if h)
    raise DatasetError(
        f"{source} has no column {', '.join(map(repr, missing))}; its columns are {found}. "
        + " ".join(part for part in (suggestions, fix) if part)
    )


def resolve_paths(frame: pd.DataFrame, root: str | Path | None = None, column: str = FILENAME) -> list[str]:
    """The absolute path of every clip: relative paths are taken relative to ``root``.

    Args:
        frame: the dataset DataFrame.
        root: the folder relative paths start from; the current directory when ``None``.
        column: the column holding the paths.

    Returns:
        One path string per row, in row order.

    Raises:
        DatasetError: ``column`` is missing, or a row has no path.
    """
    require_columns(frame, [column], "the dataset DataFrame", "Pass the name of its path column.")
    values = frame[column]
    empty = [
        int(i)
        for i in range(len(values))
        if not isinstance(values.iloc[i], (str, Path)) or not str(values.iloc[i])
    ]
    if empty:
        raise DatasetError(f"rows {empty[:10]} of the dataset DataFrame have no path in column {column!r}")
    base = Path(root).expanduser() if root is not None else Path.cwd()
    paths = (Path(value).expanduser() for value in values)
    return [str(path if path.is_absolute() else base / path) for path in paths]
