from __future__ import annotations

import numpy as np
import pytest
import torch

from beats_core import ConfigError
from beats_core.batching import MIN_WAVEFORM_SAMPLES, batch_by_length, pad_waveforms


def test_pad_waveforms_pads_with_zeros_and_marks_padding():
    batch, mask = pad_waveforms([torch.ones(3), np.full(5, 2.0, dtype=np.float64), torch.arange(1.0, 2.0)])

    assert batch.dtype == torch.float32 and mask.dtype == torch.bool
    torch.testing.assert_close(
        batch, torch.tensor([[1.0, 1, 1, 0, 0], [2.0, 2, 2, 2, 2], [1.0, 0, 0, 0, 0]], dtype=torch.float32)
    )
    assert mask.tolist() == [
        [False, False, False, True, True],
        [False] * 5,
        [False, True, True, True, True],
    ]


def test_pad_waveforms_min_length_pads_short_batches_as_padding():
    batch, mask = pad_waveforms([torch.ones(100)], min_length=MIN_WAVEFORM_SAMPLES)

    assert batch.shape == mask.shape == (1, 2800)
    assert not mask[0, :100].any() and mask[0, 100:].all()
    assert batch[0, 100:].abs().sum() == 0


def test_pad_waveforms_rejects_bad_input():
    with pytest.raises(ConfigError, match="at least one"):
        pad_waveforms([])
    with pytest.raises(ConfigError, match=r"waveform 1 must be 1-D.*\(2, 3\)"):
        pad_waveforms([torch.ones(3), torch.ones(2, 3)])


def _waste(batches, lengths):
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / padded


def test_batch_by_length_deterministic_is_longest_first_and_complete():
    lengths = [5, 1, 9, 3, 7, 2, 8]

    batches = batch_by_length(lengths, 3)

    assert batches == [[2, 6, 4], [0, 3, 5], [1]]
    assert batch_by_length(lengths, 3, drop_last=True) == [[2, 6, 4], [0, 3, 5]]


def test_batch_by_length_shuffled_is_reproducible_complete_and_wastes_little():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1000, 160000, size=1000).tolist()

    first = batch_by_length(lengths, 16, generator=torch.Generator().manual_seed(3))
    again = batch_by_length(lengths, 16, generator=torch.Generator().manual_seed(3))
    other = batch_by_length(lengths, 16, generator=torch.Generator().manual_seed(4))
    random_batches = [list(range(i, min(i + 16, 1000))) for i in range(0, 1000, 16)]

    assert first == again and first != other
    assert sorted(i for b in first for i in b) == list(range(1000))
    assert sum(len(b) < 16 for b in first) == 1 and len(first[-1]) == 1000 % 16  # one short batch, last
    assert _waste(first, lengths) < 0.05 < 0.3 < _waste(random_batches, lengths)


def test_batch_by_length_sample_budget():
    lengths = [100, 100, 100, 100, 400, 50]

    batches = batch_by_length(lengths, 4, max_batch_samples=400)

    assert batches == [[4], [0, 1, 2, 3], [5]]
    assert all(len(b) * max(lengths[i] for i in b) <= 400 for b in batches)


def test_batch_by_length_padding_budget():
    lengths = [1000, 950, 900, 400, 390, 100]

    batches = batch_by_length(lengths, 8, max_padding=0.1)

    assert batches == [[0, 1, 2], [3, 4], [5]]
    assert all(_waste([b], lengths) <= 0.1 for b in batches)
    assert batch_by_length(lengths, 8) == [[0, 1, 2, 3, 4, 5]]
    assert batch_by_length(lengths, 8, max_padding=0.0) == [[0], [1], [2], [3], [4], [5]]
    with pytest.raises(ConfigError, match="max_padding"):
        batch_by_length(lengths, 8, max_padding=1.0)


def test_batch_by_length_rejects_bad_sizes():
    with pytest.raises(ConfigError, match="positive"):
        batch_by_length([1, 2], 0)
