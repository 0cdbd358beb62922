"""Similarity search over audio embeddings: cosine similarity, top k, with the file and clip of each row.

A :class:`FeatureIndex` answers queries in one of two ways:

* ``"exact"``: compares a query with every row (one matrix product over the float32 matrix,
  which it keeps as the only copy, with one over each row's norm beside it). About 25 ms a
  query at 200,000 x 768 on two CPU cores, growing with the number of rows.
* ``"approximate"``: walks an HNSW graph (:mod:`beats_extract.hnsw`, needs
  ``pip install 'beats-extract[search]'``): under a millisecond a query at 200,000 rows, its
  time growing with the logarithm of the number of rows, finding 97 to 99 % of the exact top 10 on
  embedding-like (clustered) data, far fewer on structureless (isotropic) vectors. The graph
  takes minutes to build, so it is saved beside the features and later opened memory-mapped
  instead of rebuilt.

``"auto"`` (the default) takes the exact search for matrices under :data:`APPROXIMATE_FROM_VALUES`
float32 values, where it answers in under about 20 ms, and the approximate one from there on.

It is saved as the features files of :mod:`beats_extract.storage`, so the output of
``beats extract`` is an index as it is:

    beats extract recordings/ --out index.npz
    beats search index.npz query.wav
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from beats_core.errors import ConfigError, MissingDependencyError
from beats_extract.hnsw import HnswIndex, HnswSettings, index_record, saved_index_problem, usearch_index_class
from beats_extract.storage import load_features, save_features

if TYPE_CHECKING:
    from beats_extract.extractor import BEATsFeatureExtractor

__all__ = ["APPROXIMATE_FROM_VALUES", "FeatureIndex", "SearchHit", "index_path_for"]

logger = logging.getLogger(__name__)

#: ``method="auto"`` searches approximately from this many float32 values in the matrix on
#: (rows x size of a row; 2**27 = 512 MB, 174,763 rows of 768): there an exact query takes
#: about 20 ms on two CPU cores (``bench/search.py``).
APPROXIMATE_FROM_VALUES = 2**27
#: The most float32 scores an exact search holds at once (256 MB); queries are taken in blocks.
_SCORE_BLOCK_VALUES = 2**26
_METHODS = ("auto", "exact", "approximate")
_NORM_BLOCK_ROWS = 1024


@dataclass(frozen=True)
class SearchHit:
    """One result of a search.

    Attributes:
        path: the file of the matching row.
        score: cosine similarity to the query, in [-1, 1].
        index: the row in the index.
        start: where the row's clip starts in its file, in seconds (None when not known).
        end: where the row's clip ends in its file, in seconds (None when not known).
    """

    path: str
    score: float
    index: int
    start: float | None = None
    end: float | None = None


class FeatureIndex:
    """Embeddings with their files (and clips), searchable by cosine similarity.

    Rows that are NaN (files that were skipped), infinite or zero are kept but never returned.
    The exact method holds the matrix once: the caller's float32 array itself when it is
    C-contiguous (so it must not be changed while the index is in use), else one float32
    copy, and one over the norm of each row.

    Args:
        features: ``(N, ...)`` float embeddings; trailing axes are flattened.
        paths: the file of each row.
        metadata: how the embeddings were made (``model``, ``pooling``, ``layer``, ...),
            used to embed queries the same way.
        starts: ``(N,)`` float64, where each row's clip starts in its file, in seconds.
        ends: ``(N,)`` float64, where each row's clip ends in its file, in seconds.
        method: ``"exact"``, ``"approximate"`` (an HNSW graph, needs usearch) or ``"auto"``:
            exact under :data:`APPROXIMATE_FROM_VALUES` values, approximate from there on
            (exact, with a logged warning, when usearch is not installed).
        index_path: where the approximate method keeps its graph: opened memory-mapped when
            the file there was built from the same features and settings, else built and saved
            there (with a warning when a file there does not fit). None: built in memory.
        mmap: open a saved graph memory-mapped (read only) instead of reading it into memory.
        connectivity: links per row in the graph (:class:`~beats_extract.hnsw.HnswSettings`).
        expansion_add: candidates considered when linking a row while building.
        expansion_search: candidates kept while answering a query; default: 64 up to 250,000
            rows, 256 above (see :meth:`~beats_extract.hnsw.HnswSettings.expansion_for`).
        vector_dtype: scalar type of the vectors in the graph: ``"f16"``, ``"f32"``, ``"bf16"``, ``"i8"``.
        progress: show a progress bar while building a graph (tqdm, on stderr).

    Raises:
        ConfigError: ``features``, ``paths``, ``starts`` and ``ends`` differ in length, or an
            unknown method or bad graph setting.
        MissingDependencyError: ``method="approximate"`` without usearch installed.
    """

    def __init__(
        self,
        features: np.ndarray,
        paths: Sequence[str | os.PathLike[str]],
        metadata: dict[str, Any] | None = None,
        *,
        starts: np.ndarray | Sequence[float] | None = None,
        ends: np.ndarray | Sequence[float] | None = None,
        method: Literal["auto", "exact", "approximate"] = "auto",
        index_path: str | os.PathLike[str] | None = None,
        mmap: bool = True,
        connectivity: int = HnswSettings.connectivity,
        expansion_add: int = HnswSettings.expansion_add,
        expansion_search: int | None = HnswSettings.expansion_search,
        vector_dtype: str = HnswSettings.vector_dtype,
        progress: bool = True,
    ) -> None:
        if method not in _METHODS:
            raise ConfigError(f"method must be one of {', '.join(_METHODS)}; got {method!r}")
        settings = HnswSettings(connectivity, expansion_add, expansion_search, vector_dtype)
        matrix = np.asarray(features)
        self._row_shape = matrix.shape[1:]
        self.features = np.ascontiguousarray(matrix.reshape(matrix.shape[0], -1), dtype=np.float32)
        self.paths = [os.fspath(p) for p in paths]
        self.metadata = dict(metadata or {})
        rows = len(self.features)
        if rows != len(self.paths):
            raise ConfigError(f"{rows} embeddings but {len(self.paths)} paths")
        self.starts = _clip_times(starts, rows, "starts")
        self.ends = _clip_times(ends, rows, "ends")
        self._inverse_norms, self._usable = _inverse_norms(self.features)
        self._unusable_rows = np.flatnonzero(~self._usable)
        self.hnsw: HnswIndex | None = None
        if self._chooses_approximate(method):
            self.hnsw = self._attach_graph(settings, index_path, mmap=mmap, progress=progress)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"FeatureIndex({len(self)} rows of {self.dim}, method={self.method!r})"

    @property
    def dim(self) -> int:
        """Size of each (flattened) embedding."""
        return self.features.shape[1]

    @property
    def method(self) -> str:
        """How queries are answered: ``"exact"`` or ``"approximate"``."""
        return "exact" if self.hnsw is None else "approximate"

    @classmethod
    def build(
        cls, extractor: BEATsFeatureExtractor, paths: Sequence[str | os.PathLike[str]], **options: Any
    ) -> FeatureIndex:
        """Embed files with an extractor and index them (exactly); files that cannot be decoded are skipped.

        Args:
            extractor: a pooling extractor (not ``pooling=None``).
            paths: the audio files.
            **options: passed to :meth:`BEATsFeatureExtractor.extract_from_files`
                (default ``on_error="skip"``).

        Returns:
            The index, with the extractor's settings as metadata.

        Raises:
            ConfigError: the extractor gives frame-level output.
        """
        if extractor.pooling is None:
            raise ConfigError("FeatureIndex.build needs an extractor with a pooling, not pooling=None")
        options.setdefault("on_error", "skip")
        features = extractor.extract_from_files(paths, **options)
        return cls(np.asarray(features), [os.fspath(p) for p in paths], extractor_metadata(extractor))

    def search(self, query: np.ndarray, k: int = 5) -> list[SearchHit] | list[list[SearchHit]]:
        """The ``k`` rows most similar to a query (cosine similarity), best first.

        Several queries are answered together: one matrix product per block of queries
        (exact), or one batched call of the graph library (approximate). Scores are exact
        cosine similarities in both methods.

        Args:
            query: one embedding, of the index's per-row shape (e.g. ``(D,)``), or ``(Q, ...)`` queries.
            k: how many results per query.

        Returns:
            A list of :class:`SearchHit` for one query; a list of such lists for several.

        Raises:
            ConfigError: the query's size differs from the index's, a query is NaN, infinite
                or zero, or ``k < 1``.
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        query = np.asarray(query, dtype=np.float32)
        single = query.shape == self._row_shape
        if single:
            queries = query.reshape(1, self.dim)
        elif query.ndim >= 2 and query[0].size == self.dim:
            queries = query.reshape(query.shape[0], self.dim)
        else:
            raise ConfigError(
                f"query of shape {query.shape} does not fit an index of {self.dim}-d embeddings; "
                "embed the query with the same model, pooling and layer"
            )
        norms = np.linalg.norm(queries.astype(np.float64), axis=1)
        bad = np.flatnonzero(~(np.isfinite(norms) & (norms > 0)))
        if len(bad):
            raise ConfigError(
                f"query {bad[0]} is NaN, infinite or zero; cosine similarity needs a finite non-zero embedding"
            )
        queries = (queries / norms[:, None]).astype(np.float32)
        count = min(k, len(self) - len(self._unusable_rows))
        if count == 0:
            results: list[list[SearchHit]] = [[] for _ in queries]
        elif self.hnsw is None:
            results = self._search_exact(queries, count)
        else:
            results = self._search_approximate(self.hnsw, queries, count)
        return results[0] if single else results

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save as a features file (``.npz`` or ``.parquet``), the format ``beats extract`` writes.

        An approximate index also writes its graph beside it (:func:`index_path_for`), so that
        :meth:`load` opens it instead of building it again. Clip starts and ends are columns of
        the file.

        Args:
            path: the output file.

        Returns:
            The path written.

        Raises:
            ConfigError: the suffix is neither ``.npz`` nor ``.parquet``.
        """
        written = save_features(
            path,
            self.features.reshape(len(self), *self._row_shape),
            self.paths,
            metadata=self.metadata,
            starts=self.starts,
            ends=self.ends,
        )
        if self.hnsw is not None:
            self.hnsw.save(index_path_for(written))
        return written

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        method: Literal["auto", "exact", "approximate"] = "auto",
        mmap: bool = True,
        **options: Any,
    ) -> FeatureIndex:
        """Load a features file written by :meth:`save` or ``beats extract``.

        The approximate method opens the graph saved beside the file (:func:`index_path_for`)
        without rebuilding it; when there is none, or it was built from other features or
        settings, it builds one and saves it there.

        Args:
            path: a ``.npz`` or ``.parquet`` features file, or a store folder.
            method: ``"exact"``, ``"approximate"`` or ``"auto"`` (see :class:`FeatureIndex`).
            mmap: open the saved graph memory-mapped instead of reading it into memory.
            **options: the graph settings of :class:`FeatureIndex` (``connectivity``,
                ``expansion_add``, ``expansion_search``, ``vector_dtype``, ``progress``).

        Returns:
            The index.

        Raises:
            ConfigError: the file is missing or is not a features file.
            MissingDependencyError: ``method="approximate"`` without usearch.
        """
        saved = load_features(path)
        return cls(
            saved.features,
            saved.paths,
            saved.metadata,
            starts=saved.starts,
            ends=saved.ends,
            method=method,
            index_path=index_path_for(path),
            mmap=mmap,
            **options,
        )

    def _chooses_approximate(self, method: str) -> bool:
        if method == "exact" or (method == "auto" and self.features.size < APPROXIMATE_FROM_VALUES):
            return False
        try:
            usearch_index_class()
        except MissingDependencyError as e:
            if method == "approximate":
                raise
            logger.warning("searching %d embeddings exactly (tens of ms a query): %s", len(self), e)
            return False
        return True

    def _attach_graph(
        self, settings: HnswSettings, index_path: str | os.PathLike[str] | None, *, mmap: bool, progress: bool
    ) -> HnswIndex:
        if index_path is not None:
            problem = saved_index_problem(index_path, index_record(self.features, self._usable, settings))
            if problem is None:
                try:
                    return HnswIndex.open(index_path, settings.expansion_search, mmap=mmap)
                except ConfigError as e:
                    problem = f"cannot be opened ({type(e.__cause__).__name__}: {e.__cause__})"
            if problem != "does not exist":
                warnings.warn(
                    f"search index {os.fspath(index_path)!r} {problem}; rebuilding it", stacklevel=3
                )
        hnsw = HnswIndex.build(self.features, self._inverse_norms, self._usable, settings, progress=progress)
        if index_path is not None:
            try:
                hnsw.save(index_path)
            except OSError as e:
                warnings.warn(
                    f"cannot save the search index to {os.fspath(index_path)!r} ({e}); it is kept in memory "
                    "and built again next time",
                    stacklevel=3,
                )
        return hnsw

    def _search_exact(self, queries: np.ndarray, count: int) -> list[list[SearchHit]]:
        rows = len(self)
        block = max(1, _SCORE_BLOCK_VALUES // rows)
        results = []
        for first in range(0, len(queries), block):
            scores = queries[first : first + block] @ self.features.T
            with np.errstate(invalid="ignore"):  # inf x 0 in unusable rows, overwritten next
                scores *= self._inverse_norms
            scores[:, self._unusable_rows] = -np.inf
            top = np.argpartition(scores, rows - count, axis=1)[:, rows - count :]
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            top, top_scores = (
                np.take_along_axis(top, order, axis=1),
                np.take_along_axis(top_scores, order, axis=1),
            )
            results.extend(
                self._hits(line, line_scores) for line, line_scores in zip(top, top_scores, strict=True)
            )
        return results

    def _search_approximate(self, hnsw: HnswIndex, queries: np.ndarray, count: int) -> list[list[SearchHit]]:
        found, counts = hnsw.search(queries, count)
        results = []
        for query, line, found_count in zip(queries, found, counts, strict=True):
            rows = line[:found_count]
            scores = (self.features[rows] @ query) * self._inverse_norms[rows]
            order = np.argsort(-scores, kind="stable")
            results.append(self._hits(rows[order], scores[order]))
        return results

    def _hits(self, rows: np.ndarray, scores: np.ndarray) -> list[SearchHit]:
        starts = [None] * len(rows) if self.starts is None else self.starts[rows].tolist()
        ends = [None] * len(rows) if self.ends is None else self.ends[rows].tolist()
        return [
            SearchHit(self.paths[row], score, row, start, end)
            for row, score, start, end in zip(rows.tolist(), scores.tolist(), starts, ends, strict=True)
        ]


def index_path_for(features_path: str | os.PathLike[str]) -> Path:
    """Where the graph of an approximate index is saved beside its features file, or in its store.

    Args:
        features_path: the ``.npz`` or ``.parquet`` features file, or a store folder.

    Returns:
        ``<features_path>.usearch`` (its JSON record is ``<features_path>.usearch.json``), or
        ``<store>/_index.usearch`` for a store (the underscore keeps Parquet readers off it).
    """
    features_path = Path(features_path)
    if features_path.is_dir():
        return features_path / "_index.usearch"
    return features_path.with_name(features_path.name + ".usearch")


def extractor_metadata(extractor: BEATsFeatureExtractor) -> dict[str, Any]:
    """What to record about an extractor so that queries can be embedded the same way."""
    return extractor.settings()


def _clip_times(times: np.ndarray | Sequence[float] | None, rows: int, name: str) -> np.ndarray | None:
    if times is None:
        return None
    values = np.asarray(times, dtype=np.float64)
    if values.shape != (rows,):
        raise ConfigError(
            f"{name} has shape {values.shape}; it must give one time in seconds per row, ({rows},)"
        )
    return values


def _inverse_norms(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One over each row's L2 norm (0 for NaN, infinite or zero rows) and which rows are usable.

    Sums the squares in float32 a block of rows at a time (no temporary the size of the matrix),
    and again in float64 for the rows where float32 overflows.
    """
    squares = np.empty(len(features), dtype=np.float32)
    for first in range(0, len(features), _NORM_BLOCK_ROWS):
        block = features[first : first + _NORM_BLOCK_ROWS]
        squares[first : first + _NORM_BLOCK_ROWS] = np.einsum("ij,ij->i", block, block)
    norms = np.sqrt(squares.astype(np.float64))
    overflowed = np.flatnonzero(np.isinf(squares))
    if len(overflowed):
        large = features[overflowed].astype(np.float64)
        norms[overflowed] = np.sqrt(np.einsum("ij,ij->i", large, large))
    usable = np.isfinite(norms) & (norms > 0)
    inverse = np.zeros(len(features), dtype=np.float32)
    inverse[usable] = 1.0 / norms[usable]
    return inverse, usable
