"""Similarity search over audio embeddings: cosine similarity, top k, with the path of each row.

A :class:`FeatureIndex` holds L2-normalised embeddings in memory as one float32 matrix, so
a query is one matrix-vector product: a million 768-d embeddings take 3 GB and answer a
query in well under a second on a CPU. It is saved as the features files of
:mod:`beats_extract.storage`, so the output of ``beats extract`` is an index as it is:

    beats extract recordings/ --out index.npz
    beats search index.npz query.wav
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from beats_core.errors import ConfigError
from beats_extract.storage import load_features, save_features

if TYPE_CHECKING:
    from beats_extract.extractor import BEATsFeatureExtractor

__all__ = ["FeatureIndex", "SearchHit"]


@dataclass(frozen=True)
class SearchHit:
    """One result of a search.

    Attributes:
        path: the file of the matching row.
        score: cosine similarity to the query, in [-1, 1].
        index: the row in the index.
    """

    path: str
    score: float
    index: int


@dataclass
class FeatureIndex:
    """Embeddings with their file paths, searchable by cosine similarity.

    Rows that are NaN (files that were skipped) or zero are kept but never returned.

    Args:
        features: ``(N, ...)`` float embeddings; trailing axes are flattened.
        paths: the file of each row.
        metadata: how the embeddings were made (``model``, ``pooling``, ``layer``, ...),
            used to embed queries the same way.

    Raises:
        ConfigError: ``features`` and ``paths`` differ in length.
    """

    features: np.ndarray
    paths: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        features = np.asarray(self.features, dtype=np.float32)
        self._row_shape = features.shape[1:]
        features = features.reshape(features.shape[0], -1)
        self.paths = [os.fspath(p) for p in self.paths]
        if features.shape[0] != len(self.paths):
            raise ConfigError(f"{features.shape[0]} embeddings but {len(self.paths)} paths")
        self.features = features
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        usable = np.isfinite(norms) & (norms > 0)
        self._normalised = np.where(usable, features / np.where(usable, norms, 1.0), 0.0).astype(np.float32)
        self._usable = usable[:, 0]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def dim(self) -> int:
        """Size of each (flattened) embedding."""
        return self.features.shape[1]

    @classmethod
    def build(
        cls, extractor: BEATsFeatureExtractor, paths: Sequence[str | os.PathLike[str]], **options: Any
    ) -> FeatureIndex:
        """Embed files with an extractor and index them; files that cannot be decoded are skipped.

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

        Args:
            query: one embedding, of the index's per-row shape (e.g. ``(D,)``), or ``(Q, ...)`` queries.
            k: how many results per query.

        Returns:
            A list of :class:`SearchHit` for one query; a list of such lists for several.

        Raises:
            ConfigError: the query's size differs from the index's, or ``k < 1``.
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
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        scores = (queries / np.where(norms > 0, norms, 1.0)) @ self._normalised.T
        scores[:, ~self._usable] = -np.inf
        count = min(k, int(self._usable.sum()))
        results = []
        for row in scores:
            top = np.argpartition(-row, count - 1)[:count] if count else np.array([], dtype=int)
            top = top[np.argsort(-row[top], kind="stable")]
            results.append([SearchHit(self.paths[i], float(row[i]), int(i)) for i in top])
        return results[0] if single else results

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save as a features file (``.npz`` or ``.parquet``), the format ``beats extract`` writes.

        Args:
            path: the output file.

        Returns:
            The path written.
        """
        return save_features(path, self.features, self.paths, metadata=self.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureIndex:
        """Load a features file written by :meth:`save` or ``beats extract``.

        Args:
            path: a ``.npz`` or ``.parquet`` features file.

        Returns:
            The index.
        """
        saved = load_features(path)
        return cls(saved.features, saved.paths, saved.metadata)


def extractor_metadata(extractor: BEATsFeatureExtractor) -> dict[str, Any]:
    """What to record about an extractor so that queries can be embedded the same way."""
    return extractor.settings()
