"""Saving and loading features with the path of each row: ``.npz`` (numpy) or ``.parquet``.

* ``.npz``: arrays ``features`` (float32 ``(N, ...)``), ``paths`` (unicode ``(N,)``) and
  ``metadata`` (a JSON string); read back without pickle.
* ``.parquet`` (needs the ``parquet`` extra: ``pip install 'beats-extract[parquet]'``):
  columns ``path`` (string) and ``embedding`` (list of float32, the row's features
  flattened), the metadata as JSON under the schema metadata key ``beats``. Opens in
  pandas with ``pandas.read_parquet``; ``np.stack(frame["embedding"])`` gives the matrix.

The metadata records how the features were made (model, pooling, layer, window), so
that ``beats search`` can embed a query the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beats_core.atomic import atomic_path
from beats_core.errors import ConfigError, MissingDependencyError

__all__ = ["FEATURE_SUFFIXES", "SavedFeatures", "check_feature_path", "load_features", "save_features"]

#: The file types features can be saved as.
FEATURE_SUFFIXES = (".npz", ".parquet")
_METADATA_KEY = b"beats"


@dataclass(frozen=True)
class SavedFeatures:
    """Features read back from a file.

    Attributes:
        features: float32 ``(N, ...)``, one row per file.
        paths: the file of each row.
        metadata: how they were made (``model``, ``pooling``, ``layer``, ...).
    """

    features: np.ndarray
    paths: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)


def check_feature_path(path: str | os.PathLike[str]) -> Path:
    """Check that features can be written to ``path`` (suffix, and the parquet extra if needed).

    Args:
        path: the output file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: the suffix is neither ``.npz`` nor ``.parquet``.
        MissingDependencyError: ``.parquet`` without pandas and pyarrow installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FEATURE_SUFFIXES:
        raise ConfigError(f"cannot save features as {str(path)!r}: use a .npz or .parquet file name")
    if suffix == ".parquet":
        _parquet_modules()
    return path


def save_features(
    path: str | os.PathLike[str],
    features: np.ndarray,
    paths: list[str] | list[os.PathLike[str]],
    *,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write features and the path of each row to a ``.npz`` or ``.parquet`` file.

    The file is written next to its destination and renamed into place, so an
    interrupted run never leaves half a file.

    Args:
        path: the output file; its suffix picks the format.
        features: ``(N, ...)`` float features.
        paths: the N paths, one per row.
        metadata: JSON-serialisable facts about the features.

    Returns:
        The path written.

    Raises:
        ConfigError: bad suffix, or ``features`` and ``paths`` differ in length.
        MissingDependencyError: ``.parquet`` without pandas and pyarrow.
    """
    path = check_feature_path(path)
    features = np.asarray(features, dtype=np.float32)
    names = [os.fspath(p) for p in paths]
    if features.ndim < 1 or features.shape[0] != len(names):
        raise ConfigError(f"{features.shape[0] if features.ndim else 0} feature rows but {len(names)} paths")
    meta = json.dumps({**(metadata or {}), "feature_shape": list(features.shape[1:])})
    with atomic_path(path) as partial:
        if path.suffix.lower() == ".npz":
            with partial.open("wb") as f:
                np.savez(f, features=features, paths=np.array(names, dtype=str), metadata=np.array(meta))
        else:
            pd, pa, pq = _parquet_modules()
            frame = pd.DataFrame({"path": names, "embedding": list(features.reshape(len(names), -1))})
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.replace_schema_metadata(
                {**(table.schema.metadata or {}), _METADATA_KEY: meta.encode()}
            )
            pq.write_table(table, partial)
    return path


def load_features(path: str | os.PathLike[str]) -> SavedFeatures:
    """Read features written by :func:`save_features` (or ``beats extract``).

    Args:
        path: a ``.npz`` or ``.parquet`` features file.

    Returns:
        The :class:`SavedFeatures`.

    Raises:
        ConfigError: the file is missing or is not a features file (the message says what it lacks).
        MissingDependencyError: ``.parquet`` without pandas and pyarrow.
    """
    path = check_feature_path(path)
    if not path.is_file():
        raise ConfigError(f"features file {str(path)!r} does not exist; make one with `beats extract`")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                features, names, meta = data["features"], data["paths"].tolist(), str(data["metadata"])
        else:
            _, _, pq = _parquet_modules()
            table = pq.read_table(path)
            meta = (table.schema.metadata or {}).get(_METADATA_KEY, b"{}").decode()
            names = table.column("path").to_pylist()
            values = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
            shape = json.loads(meta).get("feature_shape", [-1])
            features = np.asarray(values, dtype=np.float32).reshape(len(names), *shape)
    except (KeyError, ValueError, OSError) as e:
        raise ConfigError(
            f"{str(path)!r} is not a features file written by beats-extract ({type(e).__name__}: {e})"
        ) from e
    return SavedFeatures(features.astype(np.float32, copy=False), [str(n) for n in names], json.loads(meta))


def _parquet_modules() -> tuple[Any, Any, Any]:
    try:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise MissingDependencyError(
            f"writing and reading .parquet features needs pandas and pyarrow ({e}); install them with "
            "`pip install 'beats-extract[parquet]'`, or save as .npz"
        ) from e
    return pd, pa, pq
