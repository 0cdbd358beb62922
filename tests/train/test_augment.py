from __future__ import annotations

import pytest
import torch

from beats_train.augment import FbankMasking, augment_waveforms, mixup, random_gain, roll
from beats_train.config import AugmentationConfig


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    waveforms = torch.zeros(3, 40)
    waveforms[0, :40] = torch.arange(1, 41.0)
    waveforms[1, :25] = torch.arange(1, 26.0)
    waveforms[2, :10] = torch.arange(1, 11.0)
    return waveforms, waveforms == 0


def test_roll_shifts_each_clip_circularly_within_its_own_length():
    torch.manual_seed(0)
    waveforms, mask = _batch()
    for _ in range(20):
        rolled = roll(waveforms, mask, interval=5)
        for row, length in enumerate((40, 25, 10)):
            valid = rolled[row, :length]
            shift = int(torch.nonzero(valid == 1.0)[0])
            assert shift % 5 == 0
            assert torch.equal(valid, torch.roll(waveforms[row, :length], shift))
            assert torch.equal(rolled[row, length:], torch.zeros(40 - length))  # padding stays padding
    shifts = {int(torch.nonzero(roll(waveforms, mask, 1)[0] == 1.0)[0]) for _ in range(50)}
    assert len(shifts) > 10  # shifts are random


def test_gain_stays_within_its_range():
    torch.manual_seed(0)
    waveforms = torch.ones(200, 5)
    gains_db = 20 * torch.log10(random_gain(waveforms, 6.0)[:, 0])
    assert gains_db.min() >= -6.0 - 1e-4 and gains_db.max() <= 6.0 + 1e-4 and gains_db.std() > 2.0


def test_mixup_mixes_waveforms_masks_and_targets_with_the_same_weight():
    torch.manual_seed(1)
    waveforms = torch.randn(6, 40)
    mask = torch.zeros(6, 40, dtype=torch.bool)
    mask[::2, 30:] = True
    mixed, mixed_mask, targets = mixup(waveforms, mask, torch.eye(6), alpha=0.4)
    # targets = lam * I + (1 - lam) * P for the permutation P the clips were mixed with
    diagonal = targets.diagonal()
    lam = float(diagonal[diagonal < 1][0])
    partner = [
        row if diagonal[row] == 1 else int((targets[row] - lam * torch.eye(6)[row]).argmax())
        for row in range(6)
    ]
    assert sorted(partner) == list(range(6)) and partner != list(range(6))
    assert torch.allclose(targets.sum(dim=1), torch.ones(6))
    assert torch.allclose(mixed, lam * waveforms + (1 - lam) * waveforms[partner], atol=1e-6)
    assert torch.equal(mixed_mask, mask & mask[partner])


def test_fbank_masks_set_bands_of_frames_and_bins_to_zero():
    torch.manual_seed(0)
    masking = FbankMasking(
        AugmentationConfig(time_masks=2, time_mask_ratio=0.2, freq_masks=1, freq_mask_bins=20)
    )
    fbank = torch.ones(64, 1, 100, 128)
    masked = masking(fbank)
    zero_frames = (masked[:, 0] == 0).all(dim=2).sum(dim=1)  # frames masked across every bin
    zero_bins = (masked[:, 0] == 0).all(dim=1).sum(dim=1)  # bins masked across every frame
    assert zero_frames.max() <= 2 * 20 and zero_frames.float().mean() > 5
    assert zero_bins.max() <= 20 and zero_bins.float().mean() > 3
    assert set(masked.unique().tolist()) <= {0.0, 1.0}
    assert not FbankMasking(AugmentationConfig()).active


@pytest.mark.parametrize("config", [AugmentationConfig(), AugmentationConfig(mixup=0.5)])
def test_label_keeping_augmentations_are_off_by_default(config):
    waveforms, mask = _batch()
    assert augment_waveforms(waveforms, mask, config) is waveforms
