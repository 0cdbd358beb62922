"""A dataset loader for JSON-lines manifests.

A manifest has one JSON object per line::

    {"audio": "clips/0001.wav", "label": "dog"}
    {"audio": "clips/0002.wav", "label": "rain", "split": "test"}
    {"audio": "/data/other/0003.flac", "label": "dog", "fold": 2}

``audio`` paths are relative to the manifest's folder unless absolute; ``split``
(``train``/``val``/``test``) and ``fold`` (an int) are optional. Blank lines and lines
starting with ``#`` are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from beats_core.errors import DatasetError

#: The file the loader reads when it is given a folder.
MANIFEST_NAME = "manifest.jsonl"


def load_jsonl_manifest(root: str | Path, audio_key: str = "audio", label_key: str = "label") -> pd.DataFrame:
    """Read a JSON-lines manifest into the standard dataset frame.

    Args:
        root: the manifest file, or a folder holding ``manifest.jsonl``.
        audio_key: the key holding each clip's path.
        label_key: the key holding each clip's label.

    Returns:
        One row per clip: ``filename`` (absolute path), ``category``, and ``split`` /
        ``fold`` when the manifest has them.

    Raises:
        DatasetError: the manifest is missing, a line is not a JSON object, or a line lacks
            the audio path or the label (the message names the file and the line).
    """
    path = Path(root)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise DatasetError(
            f"no JSON-lines manifest at {str(path)!r}: pass the .jsonl file or a folder holding {MANIFEST_NAME}"
        )
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}, line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{where} is not valid JSON: {e.msg}") from e
        if not isinstance(entry, dict):
            raise DatasetError(f"{where} is a JSON {type(entry).__name__}, not an object")
        missing = [key for key in (audio_key, label_key) if not entry.get(key)]
        if missing:
            raise DatasetError(
                f"{where} has no {' and no '.join(map(repr, missing))}; its keys are {sorted(entry)}"
            )
        row = {"filename": str((path.parent / entry[audio_key]).resolve()), "category": str(entry[label_key])}
        if "split" in entry:
            row["split"] = str(entry["split"])
        if "fold" in entry:
            row["fold"] = int(entry["fold"])
        rows.append(row)
    if not rows:
        raise DatasetError(f"{str(path)!r} lists no clips")
    return pd.DataFrame(rows)
