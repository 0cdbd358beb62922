from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from beats_core import ConfigError
from beats_data import LengthGroupedSampler

LENGTHS = np.random.default_rng(0).integers(8000, 160000, size=203)


def _waste(batches):
    padded = sum(len(b) * max(LENGTHS[i] for i in b) for b in batches)
    return 1 - sum(LENGTHS[i] for b in batches for i in b) / padded


def test_order_is_reproducible_per_epoch_and_groups_lengths():
    sampler = LengthGroupedSampler(LENGTHS, 8, seed=7)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    sampler.set_epoch(0)

    assert list(sampler) == epoch0 != epoch1
    assert sorted(epoch0) == sorted(epoch1) == list(range(203))
    assert len(sampler) == 203
    batches = [list(b) for b in DataLoader(range(203), batch_size=8, sampler=sampler)]
    assert [b.tolist() for b in map(torch.as_tensor, batches)] == sampler.batches()
    assert _waste(sampler.batches()) < 0.05
    assert len(sampler.batches()[-1]) == 203 % 8  # the short batch is last


def test_without_shuffle_longest_first():
    sampler = LengthGroupedSampler(LENGTHS, 8, shuffle=False)

    order = list(sampler)

    assert LENGTHS[order].tolist() == sorted(LENGTHS.tolist(), reverse=True)


def test_sharding_without_accelerate_gives_equal_batch_counts_covering_everything():
    shards = [LengthGroupedSampler(LENGTHS, 8, seed=1, num_replicas=3, rank=r) for r in range(3)]
    for shard in shards:
        shard.set_epoch(4)

    batches = [shard.batches() for shard in shards]

    assert len({len(b) for b in batches}) == 1  # 26 batches padded to 27: 9 each
    seen = [i for shard in batches for batch in shard for i in batch]
    assert set(seen) == set(range(203))
    for shard in batches:  # only a shard's last batch may be short, so DataLoader chunks line up
        assert all(len(b) == 8 for b in shard[:-1])
    with pytest.raises(ConfigError, match="rank"):
        LengthGroupedSampler(LENGTHS, 8, num_replicas=2, rank=2)


def test_accelerate_prepare_shards_batches_and_sets_the_epoch():
    from accelerate.data_loader import prepare_data_loader

    def shard_epochs(process_index):
        sampler = LengthGroupedSampler(LENGTHS, 8, seed=3)
        loader = DataLoader(range(203), batch_size=8, sampler=sampler)
        prepared = prepare_data_loader(
            loader, num_processes=2, process_index=process_index, put_on_device=False
        )
        return [[batch.tolist() for batch in prepared] for _ in range(2)]  # two epochs

    first, second = shard_epochs(0), shard_epochs(1)

    for epoch in range(2):
        assert len(first[epoch]) == len(second[epoch])
        seen = [i for batch in first[epoch] + second[epoch] for i in batch]
        assert set(seen) == set(range(203))  # even_batches may repeat a few at the end
        assert len(seen) - 203 < 8
    assert first[0] != first[1]  # Accelerate moved the sampler to the next epoch
    reference = LengthGroupedSampler(LENGTHS, 8, seed=3)
    assert first[0] == reference.batches()[0::2][: len(first[0])]
