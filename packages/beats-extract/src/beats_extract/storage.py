"""Saving and loading features with the path, start and end of each row: ``.npz``, ``.parquet`` or a store.

* ``.npz``: arrays ``features`` (float32 ``(N, ...)``), ``paths`` (unicode ``(N,)``),
  ``starts`` and ``ends`` (float64 seconds) and ``metadata`` (a JSON string); read back
  without pickle.
* ``.parquet``: columns ``path``
  (string; bytes of a file name that are not UTF-8 as backslash escapes), ``start``, ``end`` (float64 seconds) and ``embedding`` (list of float32, the row's
  features flattened), the metadata as JSON under the schema metadata key ``beats``. Opens in
  pandas with ``pandas.read_parquet``; ``np.stack(frame["embedding"])`` gives the matrix.
* a folder: a store of embeddings (:mod:`beats_extract.store`), for archives; written part by
  part as it is computed and resumable. :func:`load_features` reads it too.

A row is a recording (start 0, end its duration) or a clip of one. The metadata records how
the features were made (model, pooling, layer, clips, windows), so that ``beats search`` can
embed a query the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beats_core.atomic import atomic_path
from beats_core.audio_files import display_path
from beats_core.errors import ConfigError
from beats_extract.store import parquet_modules, read_store

__all__ = [
    "FEATURE_SUFFIXES",
    "SavedFeatures",
    "check_feature_path",
    "is_store_path",
    "load_features",
    "save_features",
]

#: The file types features can be saved as (anything else names a store folder).
FEATURE_SUFFIXES = (".npz", ".parquet")
_METADATA_KEY = b"beats"


@dataclass(frozen=True)
class SavedFeatures:
    """Features read back from a file or a store.

    Attributes:
        features: float32 ``(N, ...)``, one row per recording or clip.
        paths: the recording of each row.
        metadata: how they were made (``model``, ``pooling``, ``layer``, ...).
        starts: float64 ``(N,)``, where each row starts, in seconds (0 for whole recordings).
        ends: float64 ``(N,)``, where each row ends, in seconds (NaN where unknown).
    """

    features: np.ndarray
    paths: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    starts: np.ndarray | None = None
    ends: np.ndarray | None = None


def is_store_path(path: str | os.PathLike[str]) -> bool:
    """Whether an output path names a store folder rather than a ``.npz`` or ``.parquet`` file.

    Args:
        path: the output of ``beats extract``.

    Returns:
        True for an existing folder or a name without a suffix; False for ``.npz``/``.parquet``.

    Raises:
        ConfigError: a name with another suffix (``features.csv``), which is neither.
    """
    path = Path(path)
    if path.suffix.lower() in FEATURE_SUFFIXES:
        return False
    if path.is_dir() or not path.suffix:
        return True
    raise ConfigError(
        f"cannot save features as {str(path)!r}: use a .npz or .parquet file name, or a folder name "
        "(no suffix) for a store of Parquet parts"
    )


def check_feature_path(path: str | os.PathLike[str]) -> Path:
    """Check that features can be written to ``path`` (its suffix).

    Args:
        path: the output file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: the suffix is neither ``.npz`` nor ``.parquet``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FEATURE_SUFFIXES:
        raise ConfigError(f"cannot save features as {str(path)!r}: use a .npz or .parquet file name")
    return path


def save_features(
    path: str | os.PathLike[str],
    features: np.ndarray,
    paths: list[str] | list[os.PathLike[str]],
    *,
    metadata: dict[str, Any] | None = None,
    starts: np.ndarray | None = None,
    ends: np.ndarray | None = None,
) -> Path:
    """Write features with the path (and start and end) of each row to a ``.npz`` or ``.parquet`` file.

    The file is written next to its destination and renamed into place, so an
    interrupted run never leaves half a file.

    Args:
        path: the output file; its suffix picks the format.
        features: ``(N, ...)`` float features.
        paths: the N paths, one per row.
        metadata: JSON-serialisable facts about the features.
        starts: ``(N,)`` seconds where each row starts (default 0).
        ends: ``(N,)`` seconds where each row ends (default NaN: unknown).

    Returns:
        The path written.

    Raises:
        ConfigError: bad suffix, or ``features``, ``paths``, ``starts`` and ``ends`` differ in length.
    """
    path = check_feature_path(path)
    features = np.asarray(features, dtype=np.float32)
    names = [os.fspath(p) for p in paths]
    count = features.shape[0] if features.ndim else 0
    starts = np.zeros(count) if starts is None else np.asarray(starts, dtype=np.float64)
    ends = np.full(count, np.nan) if ends is None else np.asarray(ends, dtype=np.float64)
    if features.ndim < 1 or not count == len(names) == len(starts) == len(ends):
        raise ConfigError(
            f"{count} feature rows but {len(names)} paths, {len(starts)} starts and {len(ends)} ends"
        )
    meta = json.dumps({**(metadata or {}), "feature_shape": list(features.shape[1:])})
    with atomic_path(path) as partial:
        if path.suffix.lower() == ".npz":
            with partial.open("wb") as f:
                np.savez(
                    f,
                    features=features,
                    paths=np.array(names, dtype=str),
                    starts=starts,
                    ends=ends,
                    metadata=np.array(meta),
                )
        else:
            pa, pq = parquet_modules()
            flat = features.reshape(count, -1)
            table = pa.table(
                {
                    "path": pa.array([display_path(name) for name in names], pa.string()),
                    "start": pa.array(starts),
                    "end": pa.array(ends),
                    "embedding": pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1]),
                },
                metadata={_METADATA_KEY: meta.encode()},
            )
            pq.write_table(table, partial)
    return path


def load_features(path: str | os.PathLike[str]) -> SavedFeatures:
    """Read features written by :func:`save_features`, ``beats extract`` or a store.

    Args:
        path: a ``.npz`` or ``.parquet`` features file, or a store folder.

    Returns:
        The :class:`SavedFeatures`.

    Raises:
        ConfigError: the file is missing or is not a features file (the message says what it lacks).
        StoreError: a store is damaged.
    """
    if Path(path).is_dir():
        stored = read_store(path)
        shape = stored.metadata["settings"].get("feature_shape") or [-1]
        features = stored.features.reshape(len(stored), *shape)
        return SavedFeatures(features, stored.paths, stored.metadata["settings"], stored.starts, stored.ends)
    path = check_feature_path(path)
    if not path.is_file():
        raise ConfigError(f"features file {str(path)!r} does not exist; make one with `beats extract`")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                features, names, meta = data["features"], data["paths"].tolist(), str(data["metadata"])
                starts, ends = data.get("starts"), data.get("ends")
        else:
            _, pq = parquet_modules()
            table = pq.read_table(path)
            meta = (table.schema.metadata or {}).get(_METADATA_KEY, b"{}").decode()
            names = table.column("path").to_pylist()
            values = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            shape = json.loads(meta).get("feature_shape", [-1])
            features = np.asarray(values, dtype=np.float32).reshape(len(names), *shape)
            columns = table.column_names
            starts = table.column("start").to_numpy() if "start" in columns else None
            ends = table.column("end").to_numpy() if "end" in columns else None
    except (KeyError, ValueError, OSError) as e:
        raise ConfigError(
            f"{str(path)!r} is not a features file written by beats-extract ({type(e).__name__}: {e})"
        ) from e
    return SavedFeatures(
        features.astype(np.float32, copy=False), [str(n) for n in names], json.loads(meta), starts, ends
    )
