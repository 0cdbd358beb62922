"""Approximate nearest neighbours by cosine similarity: an HNSW graph built with usearch.

A query walks the graph (Hierarchical Navigable Small World) and compares itself with several
hundred rows instead of all of them, so its time grows with the logarithm of the number of
rows, not with the number. Needs the ``search`` extra: ``pip install 'beats-extract[search]'``.

The graph is saved as a usearch file with a JSON record beside it (``<file>.json``) that says
what it was built from: the number of rows, their size, the build settings and a fingerprint
of the rows. :func:`saved_index_problem` compares that record with the features in hand, so
a file that no longer fits them is found out; a file that fits is opened memory-mapped
(usearch's ``view``): nothing is rebuilt, and only the pages a query touches are read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from beats_core.errors import ConfigError, MissingDependencyError

__all__ = [
    "LARGE_GRAPH_ROWS",
    "HnswIndex",
    "HnswSettings",
    "index_record",
    "record_path",
    "saved_index_problem",
    "usearch_index_class",
]

#: The scalar types an index can store its vectors in.
VECTOR_DTYPES = ("f32", "f16", "bf16", "i8")
#: Above this many rows a graph is searched with a wider ``expansion_search`` by default.
LARGE_GRAPH_ROWS = 250_000
_RECORD_FORMAT = "beats-hnsw-1"
_FINGERPRINT_ROWS = 1024
_ADD_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class HnswSettings:
    """How an HNSW graph is built and searched.

    The defaults were chosen by measurement (``bench/search.py``, figures in ``bench/README.md``):
    on 200,000 clustered 768-d embeddings ``expansion_search`` 64 found 97 to 99 % of the exact
    10 nearest rows, with queries 35 to 140 times faster than the exact search one at a time; on
    1,000,000 it found 86 %, and 256 found 96 % (58 times faster), so by default a graph of more
    than :data:`LARGE_GRAPH_ROWS` rows is searched with 256.

    Attributes:
        connectivity: links per row in the graph (HNSW's ``M``); more links: better recall,
            a larger file and a slower build. Fixed once built.
        expansion_add: candidates considered when linking a new row (``efConstruction``);
            more: a better graph and a slower build. Fixed once built.
        expansion_search: candidates kept while answering a query (``ef``); more: better
            recall, slower queries. Can differ between builds and searches. ``None``: by the
            graph's size (:meth:`expansion_for`).
        vector_dtype: the scalar type the graph stores its (L2-normalised) vectors in:
            ``"f16"`` (half the memory of ``"f32"``, the same recall), ``"f32"``, ``"bf16"``
            or ``"i8"`` (a quarter, lower recall).
    """

    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int | None = None
    vector_dtype: str = "f16"

    def __post_init__(self) -> None:
        for name in ("connectivity", "expansion_add", "expansion_search"):
            value = getattr(self, name)
            if name == "expansion_search" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 2:
                raise ConfigError(f"{name} must be an integer of at least 2, got {value!r}")
        if self.vector_dtype not in VECTOR_DTYPES:
            raise ConfigError(
                f"vector_dtype must be one of {', '.join(VECTOR_DTYPES)}; got {self.vector_dtype!r}"
            )

    def expansion_for(self, rows: int) -> int:
        """The ``expansion_search`` to query a graph of ``rows`` rows with.

        Args:
            rows: the rows in the graph.

        Returns:
            :attr:`expansion_search` when set; else 64 up to :data:`LARGE_GRAPH_ROWS` rows and 256
            above (recall@10 of 0.97 to 0.99 at 200,000 rows with 64, 0.96 at 1,000,000 with 256).
        """
        if self.expansion_search is not None:
            return self.expansion_search
        return 64 if rows <= LARGE_GRAPH_ROWS else 256

    def build_settings(self) -> dict[str, Any]:
        """The settings a built graph is bound to (all but ``expansion_search``)."""
        return {
            "connectivity": self.connectivity,
            "expansion_add": self.expansion_add,
            "dtype": self.vector_dtype,
        }


def index_record(features: np.ndarray, usable: np.ndarray, settings: HnswSettings) -> dict[str, Any]:
    """What a graph over ``features`` is built from; a saved graph must have the same record.

    The fingerprint hashes which rows are usable and up to 1024 evenly spaced rows, so a
    matrix extracted again (another model, other files, another order) gets another one.

    Args:
        features: ``(N, D)`` float32 embeddings.
        usable: ``(N,)`` bool, the rows that are finite and non-zero (the rows in the graph).
        settings: the build settings.

    Returns:
        A JSON-serialisable dict: ``format``, ``rows``, ``dim``, ``indexed``, ``fingerprint``,
        ``metric`` and the build settings.
    """
    rows, dim = features.shape
    sample = np.unique(np.linspace(0, rows - 1, num=min(rows, _FINGERPRINT_ROWS)).astype(np.int64))
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.packbits(usable).tobytes())
    digest.update(np.ascontiguousarray(features[sample]).tobytes())
    return {
        "format": _RECORD_FORMAT,
        "rows": int(rows),
        "dim": int(dim),
        "indexed": int(usable.sum()),
        "fingerprint": digest.hexdigest(),
        "metric": "cos",
        **settings.build_settings(),
    }


def record_path(index_path: str | os.PathLike[str]) -> Path:
    """The JSON record beside a saved graph: ``<index_path>.json``."""
    index_path = Path(index_path)
    return index_path.with_name(index_path.name + ".json")


def saved_index_problem(index_path: str | os.PathLike[str], record: dict[str, Any]) -> str | None:
    """Why a saved graph cannot serve features with ``record``, or None if it can.

    Args:
        index_path: the usearch file.
        record: :func:`index_record` of the features in hand.

    Returns:
        None when the file and its record match; otherwise what is wrong, in words
        (``"does not exist"``, or which values differ).

    Raises:
        MissingDependencyError: usearch is not installed.
    """
    index_path = Path(index_path)
    if not index_path.is_file():
        return "does not exist"
    try:
        saved = json.loads(record_path(index_path).read_text())
    except (OSError, ValueError) as e:
        return f"has no readable record {record_path(index_path).name} ({type(e).__name__})"
    if not isinstance(saved, dict):
        return f"has no readable record {record_path(index_path).name}"
    differences = [
        f"{name} {saved.get(name)!r} instead of {value!r}"
        for name, value in record.items()
        if saved.get(name) != value
    ]
    if differences:
        return "was built from other features or settings: " + ", ".join(differences)
    try:
        header = usearch_index_class().metadata(os.fspath(index_path))
    except (ValueError, RuntimeError, OSError) as e:
        return f"cannot be read ({type(e).__name__}: {e})"
    if (
        header is None
        or header.get("dimensions") != record["dim"]
        or header.get("count_present") != record["indexed"]
    ):
        return "does not hold the rows its record describes"
    return None


class HnswIndex:
    """An HNSW graph over the usable rows of a matrix; its keys are the row numbers.

    Build one with :meth:`build`, open a saved one with :meth:`open`.

    Args:
        graph: the ``usearch.index.Index``.
        record: :func:`index_record` of the features it was built from.
        memory_mapped: whether ``graph`` views a file rather than holding the graph in memory.
    """

    def __init__(self, graph: Any, record: dict[str, Any], *, memory_mapped: bool = False) -> None:
        self.graph = graph
        self.record = record
        self.memory_mapped = memory_mapped

    @property
    def expansion_search(self) -> int:
        """Candidates kept while answering a query (HNSW's ``ef``); settable."""
        return int(self.graph.expansion_search)

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self.graph.expansion_search = value

    @classmethod
    def build(
        cls,
        features: np.ndarray,
        inverse_norms: np.ndarray,
        usable: np.ndarray,
        settings: HnswSettings,
        *,
        progress: bool = True,
    ) -> HnswIndex:
        """Build a graph over the usable rows, adding them a chunk at a time (no copy of the matrix).

        Args:
            features: ``(N, D)`` float32 embeddings.
            inverse_norms: ``(N,)`` float32, one over each row's L2 norm (the rows are
                normalised chunk by chunk before the graph stores them).
            usable: ``(N,)`` bool, the rows to index; the others are left out.
            settings: the build and search settings.
            progress: show a progress bar (tqdm, on stderr).

        Returns:
            The index.

        Raises:
            MissingDependencyError: usearch is not installed.
        """
        from tqdm.auto import tqdm

        graph = usearch_index_class()(
            ndim=features.shape[1],
            metric="cos",
            dtype=settings.vector_dtype,
            connectivity=settings.connectivity,
            expansion_add=settings.expansion_add,
            expansion_search=settings.expansion_for(int(usable.sum())),
        )
        rows = np.flatnonzero(usable)
        with tqdm(total=len(rows), unit="row", desc="HNSW index", disable=not progress) as bar:
            for start in range(0, len(rows), _ADD_CHUNK_ROWS):
                chunk = rows[start : start + _ADD_CHUNK_ROWS]
                graph.add(chunk.astype(np.uint64), features[chunk] * inverse_norms[chunk, None])
                bar.update(len(chunk))
        return cls(graph, index_record(features, usable, settings))

    @classmethod
    def open(
        cls, index_path: str | os.PathLike[str], expansion_search: int | None, *, mmap: bool = True
    ) -> HnswIndex:
        """Open a saved graph without rebuilding it (check it first with :func:`saved_index_problem`).

        Args:
            index_path: the usearch file written by :meth:`save`.
            expansion_search: candidates kept while answering a query (``None``: by the graph's size).
            mmap: view the file memory-mapped (read only, nearly no memory) instead of reading it in.

        Returns:
            The index.

        Raises:
            MissingDependencyError: usearch is not installed.
            ConfigError: the file or its record cannot be read.
        """
        index_path = Path(index_path)
        try:
            record = json.loads(record_path(index_path).read_text())
            graph = usearch_index_class().restore(os.fspath(index_path), view=mmap)
            if graph is not None and expansion_search is None:
                expansion_search = HnswSettings().expansion_for(len(graph))
        except (OSError, ValueError, RuntimeError) as e:
            raise ConfigError(
                f"cannot open the search index {str(index_path)!r} ({type(e).__name__}: {e}); "
                "delete it and its .json record to rebuild it"
            ) from e
        if graph is None:
            raise ConfigError(f"the search index {str(index_path)!r} does not exist")
        graph.expansion_search = expansion_search
        return cls(graph, record, memory_mapped=mmap)

    def save(self, index_path: str | os.PathLike[str]) -> Path:
        """Write the graph and its JSON record (``<index_path>.json``), each renamed into place.

        Args:
            index_path: the usearch file to write.

        Returns:
            The path written.

        Raises:
            OSError: the file cannot be written.
        """
        index_path = Path(index_path)
        index_path.parent.mkdir(parents=True, exist_ok=True)
        record_file = record_path(index_path)
        record_file.unlink(missing_ok=True)  # a graph without its record is never taken as valid
        for target, write in (
            (index_path, lambda partial: self.graph.save(os.fspath(partial))),
            (record_file, lambda partial: partial.write_text(json.dumps(self.record, indent=1))),
        ):
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            try:
                write(partial)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
        return index_path

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The nearest rows of each query, in one batched call of the library.

        Args:
            queries: ``(Q, D)`` float32, L2-normalised.
            k: rows per query.

        Returns:
            ``rows``: ``(Q, k)`` int64 row numbers, nearest first, and ``counts``: ``(Q,)``
            int64, how many of each query's ``rows`` are found (fewer than ``k`` when the
            graph holds fewer rows); the rest of each line is to be ignored.
        """
        matches = self.graph.search(queries, k)
        rows = np.atleast_2d(matches.keys).astype(np.int64)
        if len(queries) == 1:  # usearch answers a batch of one as one query, with only the rows found
            return rows, np.array([rows.shape[1]], dtype=np.int64)
        return rows, matches.counts.astype(np.int64)


def usearch_index_class() -> Any:
    """Usearch's ``Index`` class.

    Returns:
        ``usearch.index.Index``.

    Raises:
        MissingDependencyError: usearch is not installed; the message says how to install it.
    """
    try:
        from usearch.index import Index
    except ImportError as e:
        raise MissingDependencyError(
            f"approximate search needs usearch ({e}); install it with "
            "`pip install 'beats-extract[search]'`, or use method='exact'"
        ) from e
    return Index
