"""Search queries: audio files, clips of recordings (``path@start-end``), or rows already in an index.

``beats search STORE QUERY...`` takes any mix of them. A clip that is a row of the store is not
embedded again: its stored vector is the query, so searching an archive with a clip found in
it costs nothing. Hits are written as a table ready to be labelled and handed to training
(``path,start,end,score,label,query``, with ``label`` empty).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from beats_core.audio import load_audio
from beats_core.audio_files import display_path
from beats_core.errors import ConfigError

if TYPE_CHECKING:
    from beats_extract.extractor import BEATsFeatureExtractor
    from beats_extract.search import FeatureIndex, SearchHit

__all__ = ["HIT_COLUMNS", "Query", "embed_queries", "hits_csv", "parse_query"]

#: The columns of a hits table; ``label`` is left empty for a person to fill in.
HIT_COLUMNS = ("path", "start", "end", "score", "label", "query")
_CLIP = re.compile(r"^(?P<path>.+)@(?P<start>\d+(?:\.\d*)?)-(?P<end>\d+(?:\.\d*)?)$")
#: How close (in seconds) a query clip's start and end must be to a row's to be that row.
_SAME_ROW_SECONDS = 1e-3


@dataclass(frozen=True)
class Query:
    """One query: a whole audio file, or the clip ``start``-``end`` (seconds) of a recording."""

    path: str
    start: float | None = None
    end: float | None = None

    def __str__(self) -> str:
        if self.start is None:
            return display_path(self.path)
        return f"{display_path(self.path)}@{self.start:g}-{self.end:g}"


def parse_query(text: str | os.PathLike[str]) -> Query:
    """Read a query as typed: ``clip.wav``, or ``recording.flac@12.5-17.5`` for a clip of a recording.

    An existing file whose name contains ``@`` is taken as that file.

    Args:
        text: the query.

    Returns:
        The :class:`Query`.

    Raises:
        ConfigError: a clip whose end is not after its start.
    """
    text = os.fspath(text)
    match = _CLIP.match(text)
    if match is None or Path(text).exists():
        return Query(text)
    start, end = float(match["start"]), float(match["end"])
    if not end > start:
        raise ConfigError(
            f"query {text!r}: the clip must end after it starts (write PATH@START-END in seconds)"
        )
    return Query(match["path"], start, end)


def embed_queries(
    queries: Sequence[Query], index: FeatureIndex, extractor: BEATsFeatureExtractor
) -> np.ndarray:
    """The embedding of each query, as the index's rows were made.

    A clip that is a row of the index takes that row's vector; another clip is decoded from its
    recording and embedded alone; a file is embedded whole.

    Args:
        queries: the queries.
        index: the index searched (its paths, starts and ends find stored rows).
        extractor: an extractor with the index's model, pooling, layer and windows, and no
            ``clip_seconds`` (a query is one clip).

    Returns:
        float32 ``(len(queries), D)``.

    Raises:
        AudioDecodeError: a query's audio cannot be decoded.
    """
    rows = {}
    if index.starts is not None and index.ends is not None:
        for row, (path, start, end) in enumerate(zip(index.paths, index.starts, index.ends, strict=True)):
            rows.setdefault((path, round(start / _SAME_ROW_SECONDS)), (row, end))
    vectors = []
    for query in queries:
        if query.start is None:
            vectors.append(np.asarray(extractor.extract_from_file(query.path), np.float32).reshape(-1))
            continue
        stored = rows.get((query.path, round(query.start / _SAME_ROW_SECONDS)))
        if stored is not None and math.isclose(stored[1], query.end, abs_tol=_SAME_ROW_SECONDS):
            vectors.append(np.asarray(index.features).reshape(len(index), -1)[stored[0]])
            continue
        clip = load_audio(query.path, offset=query.start, duration=query.end - query.start)
        vectors.append(np.asarray(extractor.extract_from_array(clip), np.float32).reshape(-1))
    return np.stack(vectors) if vectors else np.zeros((0, index.dim), np.float32)


def hits_csv(queries: Sequence[Query], results: Sequence[Sequence[SearchHit]]) -> str:
    """The hits of every query as a CSV table to label: one row per hit, best score first.

    A clip found by several queries is listed once, with its best score and the query that
    found it.

    Args:
        queries: the queries.
        results: the hits of each query, in the same order.

    Returns:
        CSV text with the columns :data:`HIT_COLUMNS` (``label`` empty).
    """
    best: dict[tuple[str, float | None, float | None], tuple[SearchHit, Query]] = {}
    for query, hits in zip(queries, results, strict=True):
        for hit in hits:
            key = (hit.path, hit.start, hit.end)
            if key not in best or hit.score > best[key][0].score:
                best[key] = (hit, query)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HIT_COLUMNS)
    for hit, query in sorted(best.values(), key=lambda item: -item[0].score):
        start = "" if hit.start is None else f"{hit.start:.3f}"
        end = "" if hit.end is None else f"{hit.end:.3f}"
        writer.writerow([hit.path, start, end, f"{hit.score:.6f}", "", str(query)])
    return text.getvalue()
