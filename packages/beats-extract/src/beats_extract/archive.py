"""Embedding an archive of recordings into a store: resumable, on one process or many.

:func:`embed_into_store` takes a list of recordings, skips those the store already holds
completely, and streams the rest through a :class:`~beats_extract.extractor.BEATsFeatureExtractor`
into the store's parts (:mod:`beats_extract.store`). Memory stays bounded by a part, whatever
the number of recordings.

Several processes (``accelerate launch -m beats_extract ...`` or
``torchrun --nproc_per_node N -m beats_extract ...``) share the work through
``torch.distributed``: every process lists what the store holds before any writes, the
remaining recordings are split into disjoint shares balanced by duration (each process reads
the headers of a slice and they exchange them), each process writes its own parts, and the
first process writes the manifest's summary when all are done. One GPU per process where there
are GPUs (``LOCAL_RANK``).
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from beats_core.audio import audio_info
from beats_core.errors import AudioDecodeError
from beats_extract.extractor import BEATsFeatureExtractor
from beats_extract.store import (
    EmbeddingStore,
    completed_recordings,
    finish_store,
    prepare_store,
)

__all__ = ["ArchiveRun", "ProcessGroup", "embed_into_store", "share_by_duration", "store_settings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveRun:
    """What one run of :func:`embed_into_store` did (in this process, and in all together).

    Attributes:
        folder: the store.
        skipped: recordings the store already held completely (all processes).
        embedded: recordings this process embedded.
        rows: rows this process wrote.
        failures: recordings this process could not embed -> why.
        summary: the manifest's summary after the run (written by the first process; empty in others).
    """

    folder: Path
    skipped: int
    embedded: int
    rows: int
    failures: dict[str, str]
    summary: dict[str, Any]


class ProcessGroup:
    """The processes of a run started by ``accelerate launch`` or ``torchrun``, or this process alone.

    The launchers set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
    with more than one process a ``torch.distributed`` group is joined (gloo on the CPU, NCCL on GPUs).
    """

    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self._joined = False
        if self.world_size > 1:
            import torch
            import torch.distributed as dist

            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(self.local_rank)
            dist.init_process_group(backend)
            self._joined = True

    @property
    def device(self) -> str:
        """This process's device: its own GPU where there are GPUs, else ``"auto"``."""
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() and self.world_size > 1 else "auto"

    def barrier(self) -> None:
        """Wait until every process is here."""
        if self._joined:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value``, in rank order (on every process)."""
        if not self._joined:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        """Leave the group."""
        if self._joined:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._joined = False


def store_settings(extractor: BEATsFeatureExtractor) -> dict[str, Any]:
    """What a store records about how its rows are made.

    Args:
        extractor: the extractor.

    Returns:
        The extractor's settings, the SHA-256 of its checkpoint file (``model_sha256``, None for a
        model built in memory) and the fingerprint of its encoder (``encoder_sha256``), for
        :func:`~beats_extract.store.prepare_store`.
    """
    return {**extractor.settings(), **extractor.runner.fingerprints()}


def share_by_duration(durations: Sequence[float], count: int) -> list[list[int]]:
    """Split items into ``count`` disjoint shares of about equal total duration (longest first, greedily).

    Args:
        durations: each item's duration (or any positive weight).
        count: the number of shares.

    Returns:
        For each share, the indices of its items, in input order.
    """
    heap = [(0.0, share) for share in range(count)]
    shares: list[list[int]] = [[] for _ in range(count)]
    for index in sorted(range(len(durations)), key=lambda i: (-durations[i], i)):
        load, share = heapq.heappop(heap)
        shares[share].append(index)
        heapq.heappush(heap, (load + durations[index], share))
    return [sorted(share) for share in shares]


def embed_into_store(
    extractor: BEATsFeatureExtractor,
    recordings: Sequence[str | os.PathLike[str]],
    folder: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool = True,
    group: ProcessGroup | None = None,
    part_bytes: int = 64 << 20,
    flush_seconds: float = 60.0,
) -> ArchiveRun:
    """Embed recordings into a store, skipping those it already holds completely.

    Args:
        extractor: how to embed (its settings must match an existing store's).
        recordings: the audio files.
        folder: the store's folder.
        overwrite: replace an existing store instead of adding to it.
        progress: show a progress bar in seconds of audio (the first process only).
        group: the processes sharing the work (default: this process alone).
        part_bytes: write a part when the buffered embeddings reach this many bytes.
        flush_seconds: write a part at least this often while rows come in.

    Returns:
        What this run did.

    Raises:
        StoreError: the store was made with other settings, or is damaged.
    """
    group = group or ProcessGroup()
    folder = Path(folder)
    if group.rank == 0:
        prepare_store(folder, store_settings(extractor), overwrite=overwrite)
    group.barrier()
    if group.rank != 0:
        prepare_store(folder, store_settings(extractor))
    done = completed_recordings(folder)
    group.barrier()  # every process has listed the store before any writes to it
    names = [os.fspath(path) for path in recordings]
    pending = [name for name in dict.fromkeys(names) if name not in done]
    mine = _my_share(pending, group)
    failures: dict[str, str] = {}
    embedded = rows = 0
    with EmbeddingStore(folder, rank=group.rank, part_bytes=part_bytes, flush_seconds=flush_seconds) as store:
        results = extractor.stream_from_files(mine, on_error="skip", progress=progress and group.rank == 0)
        for result in results:
            if result.error is not None:
                failures[result.path] = str(result.error)
                store.add_failure(result.path, str(result.error))
                continue
            starts, ends, matrix = result.rows()
            store.add(result.path, starts, ends, matrix)
            embedded += 1
            rows += len(starts)
    group.barrier()
    summary = finish_store(folder) if group.rank == 0 else {}
    return ArchiveRun(folder, len(names) - len(pending), embedded, rows, failures, summary)


def _my_share(pending: list[str], group: ProcessGroup) -> list[str]:
    """This process's share of the pending recordings, balanced by their durations."""
    if group.world_size == 1:
        return pending
    mine = {i: _duration(pending[i]) for i in range(group.rank, len(pending), group.world_size)}
    durations = np.zeros(len(pending))
    for part in group.gather(mine):
        for index, seconds in part.items():
            durations[index] = seconds
    return [pending[i] for i in share_by_duration(durations.tolist(), group.world_size)[group.rank]]


def _duration(path: str) -> float:
    try:
        return audio_info(path).duration
    except AudioDecodeError:
        return 0.0  # reported when it is decoded
