"""A store of embeddings: Parquet parts and a JSON manifest, written as they are computed, resumable.

A store is a folder::

    embeddings/
      _manifest.json                       how the rows were made, and a summary of the last run
      part-<run>-r000-00000.parquet        rows of complete recordings, written atomically
      part-<run>-r001-00000.parquet        ... one series per process of a multi-process run

Every part is a Parquet table with the columns ``path`` (string), ``start`` and ``end`` (float64
seconds from the beginning of the recording) and ``embedding`` (fixed-size list of float32), so
``pandas.read_parquet(folder)``, ``pyarrow.dataset.dataset(folder)`` and DuckDB
(``read_parquet('folder/*.parquet')``) read the whole store as one table (files starting with
``_`` or ``.`` are skipped by those readers). :func:`read_store` reads it into one float32
matrix with the paths, starts, ends and settings.

Rows reach disk in parts as they are computed; a part holds complete recordings only and lists
them (with their row counts) in its Parquet metadata, and it is written to a hidden temporary
file and renamed into place. A recording is therefore complete in the store or absent, whatever
moment a run is killed at, and the next run with the same settings extracts only the
recordings that are not in a part yet. Recordings that cannot be decoded are listed in the
manifest with the reason and retried by the next run.

The manifest records the model (its spec, the SHA-256 of its checkpoint file, and the fingerprint
of its encoder, :func:`beats_core.factory.encoder_sha256`), pooling, layer, clip and window
settings, precision, embedding shape and library version; a run with other settings or another
encoder stops with an error naming the difference, unless it overwrites the store.
"""

from __future__ import annotations

import errno
import json
import os
import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from beats_core.atomic import atomic_path, atomic_write_text
from beats_core.audio_files import display_path
from beats_core.errors import DiskFullError, StoreError
from beats_extract.__about__ import __version__

__all__ = [
    "MANIFEST_NAME",
    "SETTINGS_COMPARED",
    "EmbeddingStore",
    "StoredEmbeddings",
    "completed_recordings",
    "finish_store",
    "prepare_store",
    "read_store",
]

#: The manifest's file name (the leading underscore keeps Parquet readers off it).
MANIFEST_NAME = "_manifest.json"
#: The settings two runs must share to write into one store.
SETTINGS_COMPARED = (
    "encoder_sha256",
    "pooling",
    "layer",
    "clip_seconds",
    "clip_overlap",
    "window_seconds",
    "hop_seconds",
    "dtype",
    "feature_shape",
)
_FORMAT = 1
_FILES_KEY = b"beats.recordings"
_FAILURES_PREFIX = "_failures-"


@dataclass(frozen=True)
class StoredEmbeddings:
    """The rows of a store, read into memory.

    Attributes:
        features: float32 ``(N, D)``, one row per clip (or time step), the embeddings flattened.
        paths: the recording of each row.
        starts: float64 ``(N,)``, where each row's clip starts, in seconds.
        ends: float64 ``(N,)``, where it ends.
        metadata: the manifest: ``settings`` (how the rows were made) and the last run's summary.
    """

    features: np.ndarray
    paths: list[str]
    starts: np.ndarray
    ends: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)


def prepare_store(
    folder: str | os.PathLike[str], settings: Mapping[str, Any], *, overwrite: bool = False
) -> Path:
    """Create a store, or check that an existing one was made with the same settings.

    Call it once (in one process) before writing.

    Args:
        folder: the store's folder (created if needed).
        settings: how the rows are made (:func:`beats_extract.archive.store_settings`); the keys
            of :data:`SETTINGS_COMPARED` must match an existing store.
        overwrite: delete an existing store's parts and manifest and start afresh.

    Returns:
        The folder.

    Raises:
        StoreError: the folder is a file, holds something that is not a store, or holds a
            store made with other settings (the message names each difference).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StoreError(
            f"{str(folder)!r} is a file; a store is a folder: give a folder name (no .npz/.parquet)"
        )
    manifest_path = folder / MANIFEST_NAME
    if overwrite and folder.is_dir():
        for leftover in [
            manifest_path,
            *folder.glob("part-*.parquet"),
            *folder.glob(f"{_FAILURES_PREFIX}*.json"),
        ]:
            leftover.unlink(missing_ok=True)
    if manifest_path.is_file():
        existing = _read_manifest(folder)
        differences = [
            f"{key}={existing['settings'].get(key)!r} (now {settings.get(key)!r})"
            for key in SETTINGS_COMPARED
            if existing["settings"].get(key) != _plain(settings.get(key))
        ]
        if differences:
            raise StoreError(
                f"store {str(folder)!r} was made with other settings: {', '.join(differences)}. Use the same "
                "settings to add to it, write to another folder, or overwrite it (--overwrite)"
            )
        return folder
    if folder.is_dir() and any(folder.glob("part-*.parquet")):
        raise StoreError(
            f"{str(folder)!r} holds Parquet parts but no {MANIFEST_NAME}: it is not a store made by beats "
            "(or its manifest was deleted); write to another folder, or overwrite it (--overwrite)"
        )
    manifest = {
        "format": _FORMAT,
        "library_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": _plain(dict(settings)),
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    except OSError as e:
        raise _write_error(folder, e) from e
    return folder


def completed_recordings(folder: str | os.PathLike[str]) -> dict[str, int]:
    """The recordings a store holds completely, with their number of rows.

    Only the parts' Parquet metadata is read, not their rows.

    Args:
        folder: the store.

    Returns:
        recording path -> rows.

    Raises:
        StoreError: a part cannot be read.
    """
    _, pq = parquet_modules()
    done: dict[str, int] = {}
    for part in sorted(Path(folder).glob("part-*.parquet")):
        for path, rows in _part_recordings(pq, part):
            done[path] = done.get(path, 0) + rows
    return done


class EmbeddingStore:
    """Writes one process's rows into a store, a part at a time.

    Use it as a context manager; the rows still buffered are written when it closes.

    Args:
        folder: the store (made by :func:`prepare_store`).
        rank: this process's number in a multi-process run (it names its parts).
        part_bytes: write a part when the buffered embeddings reach this many bytes.
        flush_seconds: write a part at least this often while rows come in, so that a killed
            run loses at most this much work.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        rank: int = 0,
        part_bytes: int = 64 << 20,
        flush_seconds: float = 60.0,
    ) -> None:
        self.folder = Path(folder)
        self.rank = rank
        self.part_bytes = part_bytes
        self.flush_seconds = flush_seconds
        self.run = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.parts_written = 0
        self.rows_written = 0
        self.failures: dict[str, str] = {}
        self._pending: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self._dim: int | None = None

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, path: str, starts: np.ndarray, ends: np.ndarray, features: np.ndarray) -> None:
        """Add the rows of one complete recording (written with the next part).

        Args:
            path: the recording.
            starts: float64 ``(n,)`` seconds.
            ends: float64 ``(n,)`` seconds.
            features: float32 ``(n, ...)``; flattened to ``(n, D)``.

        Raises:
            StoreError: the rows do not have the store's embedding size.
        """
        matrix = np.ascontiguousarray(np.asarray(features, dtype=np.float32).reshape(len(starts), -1))
        if self._dim is None:
            self._dim = matrix.shape[1]
        if matrix.shape[1] != self._dim:
            raise StoreError(f"rows of {path!r} have {matrix.shape[1]} values, the store's have {self._dim}")
        self._pending.append((path, np.asarray(starts, np.float64), np.asarray(ends, np.float64), matrix))
        self._pending_bytes += matrix.nbytes
        self.failures.pop(path, None)
        if (
            self._pending_bytes >= self.part_bytes
            or time.monotonic() - self._last_flush >= self.flush_seconds
        ):
            self.flush()

    def add_failure(self, path: str, reason: str) -> None:
        """Record that a recording could not be embedded, and why (it is retried by the next run)."""
        self.failures[path] = reason

    def flush(self) -> None:
        """Write the buffered recordings as one part (atomically), and this process's failures."""
        self._last_flush = time.monotonic()
        if self._pending:
            pa, pq = parquet_modules()
            paths = [
                display_path(path) for path, _, _, features in self._pending for _ in range(len(features))
            ]
            matrix = np.concatenate([features for *_, features in self._pending])
            table = pa.table(
                {
                    "path": pa.array(paths, pa.string()),
                    "start": pa.array(np.concatenate([starts for _, starts, _, _ in self._pending])),
                    "end": pa.array(np.concatenate([ends for _, _, ends, _ in self._pending])),
                    "embedding": pa.FixedSizeListArray.from_arrays(
                        pa.array(matrix.reshape(-1)), matrix.shape[1]
                    ),
                }
            )
            recordings = [[path, len(features)] for path, _, _, features in self._pending]
            table = table.replace_schema_metadata({_FILES_KEY: json.dumps(recordings).encode()})
            name = f"part-{self.run}-r{self.rank:03d}-{self.parts_written:05d}.parquet"
            try:
                with atomic_path(self.folder / name) as temporary:
                    pq.write_table(table, temporary)
            except OSError as e:
                raise _write_error(self.folder, e) from e
            self.parts_written += 1
            self.rows_written += len(paths)
            self._pending, self._pending_bytes = [], 0
        failures = self.folder / f"{_FAILURES_PREFIX}r{self.rank:03d}.json"
        if self.failures:
            atomic_write_text(failures, json.dumps(self.failures, indent=1) + "\n")
        else:
            failures.unlink(missing_ok=True)

    def close(self) -> None:
        """Write what is buffered."""
        self.flush()


def finish_store(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the run's summary into the manifest: recordings, rows and the failures of every process.

    Call it once, after every process has closed its :class:`EmbeddingStore`.

    Args:
        folder: the store.

    Returns:
        The summary: ``recordings``, ``rows``, ``parts`` and ``failures`` (path -> reason).
    """
    folder = Path(folder)
    manifest = _read_manifest(folder)
    failures: dict[str, str] = {}
    for path in sorted(folder.glob(f"{_FAILURES_PREFIX}*.json")):
        failures.update(json.loads(path.read_text(encoding="utf-8", errors="surrogateescape")))
    done = completed_recordings(folder)
    failures = {path: reason for path, reason in failures.items() if path not in done}
    summary = {
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "recordings": len(done),
        "rows": sum(done.values()),
        "parts": len(list(folder.glob("part-*.parquet"))),
        "failures": [{"path": path, "reason": reason} for path, reason in sorted(failures.items())],
    }
    manifest["summary"] = summary
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    for path in folder.glob(f"{_FAILURES_PREFIX}*.json"):
        path.unlink(missing_ok=True)
    return summary


def read_store(
    folder: str | os.PathLike[str], *, recordings: Collection[str] | None = None
) -> StoredEmbeddings:
    """Read the rows of a store: one float32 matrix, the paths, starts, ends and the manifest.

    The matrix is allocated once from the parts' row counts and each part's embeddings are
    copied into it straight from the Arrow buffer: one copy of the data, never two. With
    ``recordings``, only the parts that hold one of them are read, and only their rows are kept
    (a few labelled recordings of a large archive cost what they hold, not what the store holds).

    Args:
        folder: the store.
        recordings: read only the rows of these recordings (paths as the store holds them, see
            :func:`completed_recordings`); ``None`` reads every row.

    Returns:
        The :class:`StoredEmbeddings`, in part order (each recording's rows together, in time order).

    Raises:
        StoreError: the folder is not a store or a part is damaged.
    """
    pa, pq = parquet_modules()
    folder = Path(folder)
    manifest = _read_manifest(folder)
    parts = sorted(folder.glob("part-*.parquet"))
    # each part's recordings with the range of their rows (a part holds them one after the other)
    wanted = None if recordings is None else set(recordings)
    listed = {part: _row_ranges(_part_recordings(pq, part), wanted) for part in parts}
    if recordings is None:
        counts = [_part_rows(pq, part) for part in parts]
    else:
        parts = [part for part in parts if listed[part]]
        counts = [sum(stop - start for _, start, stop in listed[part]) for part in parts]
    shape = manifest["settings"].get("feature_shape") or [0]
    features = np.empty((sum(counts), int(np.prod(shape))), dtype=np.float32)
    starts = np.empty(sum(counts))
    ends = np.empty(sum(counts))
    paths: list[str] = []
    row = 0
    for part, count in zip(parts, counts, strict=True):
        try:
            table = pq.read_table(part, columns=["start", "end", "embedding"])
        except (OSError, pa.ArrowException) as e:
            raise StoreError(f"part {str(part)!r} of store {str(folder)!r} cannot be read: {e}") from e
        if recordings is not None:
            table = table.take(np.concatenate([np.arange(start, stop) for _, start, stop in listed[part]]))
        embedding = table.column("embedding").combine_chunks()
        values = embedding.values.to_numpy(zero_copy_only=False)
        features[row : row + count] = values.reshape(count, -1)
        starts[row : row + count] = table.column("start").to_numpy()
        ends[row : row + count] = table.column("end").to_numpy()
        for path, start, stop in listed[part]:
            paths.extend([path] * (stop - start))
        row += count
    return StoredEmbeddings(features, paths, starts, ends, manifest)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _write_error(folder: Path, error: OSError) -> StoreError:
    if isinstance(error, DiskFullError) or error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk (or the quota) is full"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "it is not writable (permissions, or a read-only file system)"
    else:
        reason = f"{error.strerror or error}"
    return StoreError(
        f"cannot write to store {str(folder)!r}: {reason}. What is already in it is complete; make room or "
        "choose another folder, then run the same command again to continue"
    )


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise StoreError(f"{str(folder)!r} is not a store of embeddings: it has no {MANIFEST_NAME}") from e
    except (OSError, ValueError) as e:
        raise StoreError(
            f"the manifest of store {str(folder)!r} cannot be read ({e}); overwrite the store"
        ) from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("settings"), dict):
        raise StoreError(f"{str(path)!r} is not a store manifest (no settings); overwrite the store")
    return manifest


def _part_recordings(pq: Any, part: Path) -> Iterable[tuple[str, int]]:
    try:
        metadata = pq.read_schema(part).metadata or {}
        return [(str(path), int(rows)) for path, rows in json.loads(metadata[_FILES_KEY])]
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise StoreError(
            f"part {str(part)!r} is damaged or was not written by beats ({e}); delete it to extract its "
            "recordings again"
        ) from e


def _row_ranges(listed: Iterable[tuple[str, int]], wanted: set[str] | None) -> list[tuple[str, int, int]]:
    """``(path, first row, row after the last)`` of a part's recordings, of those ``wanted`` (all for None)."""
    ranges, start = [], 0
    for path, rows in listed:
        if wanted is None or path in wanted:
            ranges.append((path, start, start + rows))
        start += rows
    return ranges


def _part_rows(pq: Any, part: Path) -> int:
    try:
        return pq.read_metadata(part).num_rows
    except OSError as e:
        raise StoreError(
            f"part {str(part)!r} is damaged ({e}); delete it to extract its recordings again"
        ) from e


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists), to compare settings."""
    return json.loads(json.dumps(value))


def parquet_modules() -> tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet``, imported when first needed (they take a moment to import)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq
