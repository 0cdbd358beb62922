"""Dataset loaders: folders, CSV files, ESC-50, UrbanSound8K, and any loader a plugin registers.

Every loader is a callable ``loader(root, **options) -> pandas.DataFrame`` returning the
standard frame (see :mod:`beats_data.frame`), with absolute paths in ``filename``. The
built-in ones are registered under ``directory``, ``csv``, ``esc50`` and ``urbansound8k``
through beats-data's ``beats`` entry point, exactly as a third-party package registers
its own with the ``beats_dataset_loaders`` hook; :func:`load_dataset` calls any of them by
name, and :func:`resolve_dataset` turns a user's ``DATA`` argument into a frame.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from beats_core.audio import AUDIO_EXTENSIONS
from beats_core.audio_files import display_path, has_undecodable_name, normalize_extensions, walk_audio_files
from beats_core.errors import BeatsError, DatasetError, PluginError, UnknownLoaderError
from beats_core.lookup import lookup
from beats_core.plugins import Registration, collect_registrations
from beats_data.frame import CATEGORY, FILENAME, FOLD, SPLIT, TARGET, require_columns

__all__ = [
    "get_dataset_loader",
    "list_dataset_loaders",
    "load_csv_dataset",
    "load_dataset",
    "load_esc50",
    "load_urbansound8k",
    "parse_dataset_spec",
    "resolve_dataset",
    "scan_directory_dataset",
]

logger = logging.getLogger(__name__)

#: Top-level folder names that mean "split folders with class folders inside".
SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


_NOT_ORIGINAL = "It is not the dataset's original metadata file: download the dataset again."

# ---------------------------------------------------------------------------
# Built-in loaders
# ---------------------------------------------------------------------------


def scan_directory_dataset(root: str | Path, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> pd.DataFrame:
    r"""Load a dataset laid out as one sub-folder per class.

    ``root/<class>/**/<file>``: every audio file below a class folder, at any depth,
    belongs to that class. If every top-level folder is a split name (``train``,
    ``val``/``valid``/``validation``, ``test``), the layout is
    ``root/<split>/<class>/**/<file>`` and a ``split`` column is added. Hidden files and
    folders (names starting with ``.``, such as macOS ``._x.wav`` files) are skipped, as are
    files lying directly in ``root``.

    The folders are walked by :func:`beats_core.audio_files.walk_audio_files`: links are
    followed once (a link loop such as ``x/up -> ..`` is not followed), a file reached
    twice is taken once, and entries that are not regular files (a FIFO, a socket, a
    device) are skipped; a :class:`~beats_core.audio_files.SkippedPathWarning` names them.
    File names need not be valid UTF-8 (they are kept as Python gives them, surrogate-escaped,
    in an ``object`` column); a class folder whose name is not valid UTF-8 gives a label
    with ``\xNN`` escapes.

    Args:
        root: the dataset folder.
        extensions: the file extensions to take (case-insensitive, with or without the dot).

    Returns:
        The standard frame, sorted by (split,) class and path: ``filename`` (absolute),
        ``category``, and ``split`` for the split layout.

    Raises:
        DatasetError: ``root`` is not a folder or holds no audio file in a class folder.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(
            f"dataset folder {display_path(root)!r} does not exist or is not a folder; pass a folder with one "
            "sub-folder per class"
        )
    wanted = normalize_extensions(extensions)
    top = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_layout = bool(top) and all(p.name.lower() in SPLIT_FOLDERS for p in top)
    class_level = 1 if split_layout else 0  # the index of the class folder in a file's relative path
    rows: list[tuple[str, str, str]] = []
    stray = 0
    for path in walk_audio_files(root, wanted).files:
        parts = path.relative_to(root).parts
        if len(parts) <= class_level + 1:
            stray += 1
            continue
        split = SPLIT_FOLDERS[parts[0].lower()] if split_layout else ""
        rows.append((str(path), display_path(parts[class_level]), split))
    if stray:
        logger.warning(
            "%d audio files lie directly in %s%s and are ignored: put each in the folder of its class",
            stray,
            display_path(root),
            " or in a split folder" if split_layout else "",
        )
    if not rows:
        raise DatasetError(
            f"no audio files ({', '.join(sorted(wanted))}) found in class folders under {display_path(root)!r}; "
            "expected ROOT/<class>/<file> (or ROOT/<split>/<class>/<file>)"
        )
    # Sorted here, not by pandas, and in an object column where a name is not UTF-8: pandas'
    # Arrow strings (its default, also inside sort_values) cannot hold such names.
    rows.sort(key=lambda row: (row[2], row[1], row[0]))
    text = object if any(has_undecodable_name(row[0]) for row in rows) else None
    frame = pd.DataFrame(rows, columns=[FILENAME, CATEGORY, SPLIT], dtype=text)
    return frame if split_layout else frame.drop(columns=SPLIT)


def load_csv_dataset(
    csv_path: str | Path,
    audio_col: str = FILENAME,
    label_col: str = CATEGORY,
    root: str | Path | None = None,
) -> pd.DataFrame:
    """Load a dataset described by a CSV file with one row per clip.

    Args:
        csv_path: the CSV file.
        audio_col: the column holding the audio paths.
        label_col: the column holding the labels (any type; turned into strings).
        root: the folder relative paths start from; the CSV's own folder when ``None``.

    Returns:
        The CSV's columns, with ``filename`` set to absolute paths and ``category`` set to
        the label strings (added next to ``audio_col``/``label_col`` when those are named
        differently).

    Raises:
        DatasetError: the CSV is missing or unreadable, lacks a column (the message lists
            those found), or has rows without a path or label.
    """
    csv_path = Path(csv_path).expanduser().resolve()
    table = _read_csv(csv_path)
    require_columns(
        table,
        [audio_col, label_col],
        f"CSV file {str(csv_path)!r}",
        "Name its columns with audio_col= and label_col=",
    )
    for column in (audio_col, label_col):
        blank = table[column].isna() | (table[column].astype(str).str.strip() == "")
        if blank.any():
            lines = (table.index[blank] + 2).tolist()[:10]  # header is line 1
            raise DatasetError(
                f"CSV file {str(csv_path)!r} has empty {column!r} values on lines {lines}; fill or remove those rows"
            )
    base = Path(root).expanduser().resolve() if root is not None else csv_path.parent
    frame = table.copy()
    frame[FILENAME] = [str(_absolute(value, base)) for value in table[audio_col]]
    frame[CATEGORY] = table[label_col].astype(str).str.strip()
    return frame


def load_esc50(root: str | Path, esc10_only: bool = False) -> pd.DataFrame:
    """Load ESC-50 from its ``ESC-50-master`` folder (``meta/esc50.csv`` and ``audio/``).

    Args:
        root: the ``ESC-50-master`` folder (as downloaded from
            https://github.com/karolpiczak/ESC-50).
        esc10_only: keep only the 10 ESC-10 classes; ``target`` is then renumbered 0..9 in
            the order of the ESC-50 targets, which are kept in ``esc50_target``.

    Returns:
        The standard frame with ESC-50's columns: ``filename`` (absolute), ``category``,
        ``target`` (ESC-50 class index), ``fold`` (1..5), ``esc10``, ``src_file``, ``take``.

    Raises:
        DatasetError: the layout, the CSV or one of its columns is missing.
    """
    root = Path(root).expanduser().resolve()
    csv_path = root / "meta" / "esc50.csv"
    _require_layout(root, csv_path, root / "audio", "ESC-50", "meta/esc50.csv and audio/")
    table = _read_csv(csv_path)
    require_columns(
        table,
        [FILENAME, FOLD, TARGET, CATEGORY, "esc10"],
        f"ESC-50 metadata {str(csv_path)!r}",
        _NOT_ORIGINAL,
    )
    frame = table.copy()
    frame[FILENAME] = [str(root / "audio" / name) for name in table[FILENAME]]
    frame[FOLD] = table[FOLD].astype(int)
    frame[TARGET] = table[TARGET].astype(int)
    frame["esc10"] = table["esc10"].astype(str).str.lower().isin(["true", "1"])
    if esc10_only:
        frame = frame[frame["esc10"]].reset_index(drop=True)
        frame["esc50_target"] = frame[TARGET]
        order = sorted(frame[TARGET].unique())
        frame[TARGET] = frame[TARGET].map({old: new for new, old in enumerate(order)})
    return frame


def load_urbansound8k(root: str | Path) -> pd.DataFrame:
    """Load UrbanSound8K from its folder (``metadata/UrbanSound8K.csv``, ``audio/fold1..fold10/``).

    Args:
        root: the ``UrbanSound8K`` folder.

    Returns:
        The standard frame with UrbanSound8K's columns: ``filename`` (absolute),
        ``category`` (its ``class``), ``target`` (its ``classID``), ``fold`` (1..10), and
        ``slice_file_name``, ``fsID``, ``start``, ``end``, ``salience``, ``classID``, ``class``.

    Raises:
        DatasetError: the layout, the CSV or one of its columns is missing.
    """
    root = Path(root).expanduser().resolve()
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    _require_layout(
        root, csv_path, root / "audio", "UrbanSound8K", "metadata/UrbanSound8K.csv and audio/fold1..fold10/"
    )
    table = _read_csv(csv_path)
    require_columns(
        table,
        ["slice_file_name", FOLD, "classID", "class"],
        f"UrbanSound8K metadata {str(csv_path)!r}",
        _NOT_ORIGINAL,
    )
    frame = table.copy()
    frame[FOLD] = table[FOLD].astype(int)
    frame[FILENAME] = [
        str(root / "audio" / f"fold{fold}" / name)
        for fold, name in zip(frame[FOLD], table["slice_file_name"], strict=True)
    ]
    frame[CATEGORY] = table["class"].astype(str)
    frame[TARGET] = table["classID"].astype(int)
    return frame


def _read_csv(csv_path: Path) -> pd.DataFrame:
    if not csv_path.is_file():
        raise DatasetError(f"CSV file {str(csv_path)!r} does not exist; check the path")
    try:
        return pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise DatasetError(f"CSV file {str(csv_path)!r} cannot be read as CSV: {e}") from e


def _require_layout(root: Path, csv_path: Path, audio_dir: Path, name: str, layout: str) -> None:
    if not root.is_dir():
        raise DatasetError(f"{name} folder {str(root)!r} does not exist; pass the folder that holds {layout}")
    for needed in (csv_path, audio_dir):
        if not needed.exists():
            inside = sorted(p.name for p in root.iterdir())[:10]
            raise DatasetError(
                f"{str(root)!r} is not a {name} folder: {str(needed.relative_to(root))!r} is missing "
                f"(found {inside}); pass the folder that holds {layout}"
            )


def _absolute(value: object, base: Path) -> Path:
    path = Path(str(value).strip()).expanduser()
    return path if path.is_absolute() else base / path


# ---------------------------------------------------------------------------
# The loader registry
# ---------------------------------------------------------------------------


def _registrations() -> dict[str, Registration]:
    return collect_registrations("beats_dataset_loaders")


def list_dataset_loaders() -> list[str]:
    """The names of every registered dataset loader, built-in or from a plugin, sorted.

    Returns:
        Loader names usable with :func:`load_dataset` and as ``NAME:PATH`` data arguments.
    """
    return sorted(_registrations())


def get_dataset_loader(name: str) -> Callable[..., pd.DataFrame]:
    """Return the loader registered under ``name``.

    Args:
        name: a name from :func:`list_dataset_loaders`.

    Returns:
        The callable ``loader(root, **options) -> DataFrame``.

    Raises:
        UnknownLoaderError: no loader has that name; the message suggests close names.
    """
    return _lookup(name).value


def _lookup(name: str) -> Registration:
    return lookup(
        name,
        _registrations(),
        kind="dataset loader",
        error=UnknownLoaderError,
        advice="A plugin package can register more (hook beats_dataset_loaders).",
    )


def load_dataset(name: str, root: str | Path, **options: Any) -> pd.DataFrame:
    """Load a dataset with the loader registered under ``name``.

    Args:
        name: a loader name (``directory``, ``csv``, ``esc50``, ``urbansound8k``, or one
            registered by a plugin).
        root: what the loader reads: the dataset folder, or the CSV file for ``csv``.
        **options: the loader's own options (e.g. ``esc10_only=True`` for ``esc50``).

    Returns:
        The standard DataFrame.

    Raises:
        DatasetError: unknown name, an option the loader does not take, or the loader's
            own error about the data.
        PluginError: a plugin's loader crashed or returned something that is not a
            standard DataFrame; the message names its distribution.
    """
    registration = _lookup(name)
    loader = registration.value
    try:
        inspect.signature(loader).bind(root, **options)
    except TypeError as e:
        raise DatasetError(
            f"dataset loader {name!r} does not accept the options {sorted(options)}: {e}. "
            f"Its signature is {name}{inspect.signature(loader)}"
        ) from e
    except ValueError:  # no signature to check (a builtin or C callable): just call it
        pass
    try:
        frame = loader(root, **options)
    except BeatsError:
        raise
    except Exception as e:
        if registration.builtin:
            raise
        raise PluginError(
            f"dataset loader {name!r} from distribution {registration.distribution!r} failed on "
            f"{str(root)!r}: {type(e).__name__}: {e}. Report it to that plugin's authors."
        ) from e
    if not isinstance(frame, pd.DataFrame) or not {FILENAME, CATEGORY} <= set(frame.columns):
        found = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
        raise PluginError(
            f"dataset loader {name!r} from distribution {registration.distribution!r} returned {found}, "
            f"not a DataFrame with the columns {FILENAME!r} and {CATEGORY!r}"
        )
    return frame


def parse_dataset_spec(spec: str | Path) -> tuple[str, Path]:
    """Work out which loader reads a user's ``DATA`` argument.

    * an existing folder -> ``directory`` (one sub-folder per class);
    * an existing ``.csv`` file -> ``csv``;
    * ``NAME:PATH`` with a registered loader ``NAME`` -> that loader, e.g.
      ``esc50:/data/ESC-50-master``.

    Args:
        spec: the argument as the user typed it.

    Returns:
        ``(loader name, path)``.

    Raises:
        DatasetError: the path does not exist, is a file that is not a CSV, or ``NAME`` is
            not a registered loader; the message lists the accepted forms.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        return "directory", path
    if path.is_file() and path.suffix.lower() == ".csv":
        return "csv", path
    name, sep, rest = text.partition(":")
    forms = "a folder with one sub-folder per class, a .csv file, or NAME:PATH"
    if sep and rest and not path.exists():
        try:
            _lookup(name)
        except UnknownLoaderError as e:
            raise UnknownLoaderError(f"{text!r}: NAME in NAME:PATH must be a dataset loader: {e}") from e
        return name, Path(rest).expanduser()
    if not path.exists():
        raise DatasetError(f"dataset {text!r} does not exist; pass {forms}")
    raise DatasetError(f"dataset {text!r} is a file but not a .csv; pass {forms}")


def resolve_dataset(spec: str | Path, **options: Any) -> pd.DataFrame:
    """Load the dataset a user's ``DATA`` argument names (see :func:`parse_dataset_spec`).

    Args:
        spec: a folder, a ``.csv`` file, or ``NAME:PATH``.
        **options: passed to the loader.

    Returns:
        The standard DataFrame.

    Raises:
        DatasetError: see :func:`parse_dataset_spec` and :func:`load_dataset`.
        PluginError: see :func:`load_dataset`.
    """
    name, path = parse_dataset_spec(spec)
    return load_dataset(name, path, **options)
