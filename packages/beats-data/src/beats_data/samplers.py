"""A length-grouping sampler: batches of similar length, reproducible per epoch, DDP-ready."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from beats_core.batching import batch_by_length
from beats_core.errors import ConfigError

__all__ = ["LengthGroupedSampler"]


class LengthGroupedSampler(Sampler[int]):
    """Orders items so that every run of ``batch_size`` consecutive items has similar lengths.

    Use it as the ``sampler`` of a ``DataLoader`` with the same ``batch_size``: the
    loader's batches are then the groups, and padding wastes little. The order comes from
    :func:`beats_core.batching.batch_by_length`: with ``shuffle``, it is random but fixed by
    ``(seed, epoch)``; without, longest first. Only the last batch may be short.

    Distributed training:

    * with HF Accelerate, pass the DataLoader to ``accelerator.prepare`` as is (keep
      ``num_replicas=1``): Accelerate shards the batches across processes and calls
      :meth:`set_epoch` at every epoch, so all processes agree on the order;
    * without it, pass ``num_replicas`` and ``rank`` (as for ``DistributedSampler``) and call
      :meth:`set_epoch` before each epoch. The batch list is padded by repeating its first
      batches so that every process gets the same number of batches.

    Args:
        lengths: the length of each dataset item (e.g. ``AudioDataset.lengths()``).
        batch_size: the DataLoader's batch size.
        shuffle: random order (training); ``False`` gives the deterministic longest-first
            order (evaluation, extraction).
        seed: the base seed; epoch ``e`` uses ``seed + e``.
        pool_batches: how many batches' worth of items are sorted together when shuffling.
        num_replicas: number of processes sharing the data when sharding here.
        rank: this process's index among them.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ConfigError(
                f"rank must be in 0..num_replicas-1, got rank={rank}, num_replicas={num_replicas}"
            )
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._cached: tuple[int, list[list[int]]] | None = None
        batch_by_length([], batch_size, pool_batches=pool_batches)  # checks the sizes now

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose order to produce next (each epoch has its own shuffle)."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This process's batches of item indices for the current epoch."""
        if self._cached is None or self._cached[0] != self.epoch:
            self._cached = (self.epoch, self._batches())
        return self._cached[1]

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch) if self.shuffle else None
        batches = batch_by_length(
            self.lengths, self.batch_size, generator=generator, pool_batches=self.pool_batches
        )
        if self.num_replicas == 1 or not batches:
            return batches
        # the short batch (if any) is last; padding with full batches from the front keeps
        # it last for the process that gets it
        padded = batches + batches[: (-len(batches)) % self.num_replicas]
        while len(padded) % self.num_replicas:  # fewer batches than processes
            padded += batches[: self.num_replicas - len(padded) % self.num_replicas]
        return padded[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return sum(len(batch) for batch in self.batches())
