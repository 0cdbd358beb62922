"""Training-time augmentation: on waveforms (gain, roll, mixup) and on the fbank (time and frequency masks).

Every function draws from torch's global random generator, which the trainer seeds and
saves with the run's state, so a resumed run repeats the same draws. Shapes: B clips,
N samples at 16 kHz, T fbank frames, F mel bins, K classes; padding masks are bool with
``True`` = padding, and padding is at the end of each row (as the collate makes it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from beats_train.config import AugmentationConfig

__all__ = ["FbankMasking", "augment_waveforms", "mixup", "random_gain", "roll"]


def random_gain(waveforms: Tensor, max_db: float) -> Tensor:
    """Scale each clip by a gain drawn uniformly in ``[-max_db, +max_db]`` dB.

    Args:
        waveforms: float (B, N).
        max_db: the largest gain in decibels (> 0).

    Returns:
        A new float (B, N) tensor (padding stays zero).
    """
    gain_db = (torch.rand(waveforms.shape[0], 1, device=waveforms.device) * 2.0 - 1.0) * max_db
    return waveforms * torch.pow(10.0, gain_db / 20.0).to(waveforms.dtype)


def roll(waveforms: Tensor, padding_mask: Tensor | None, interval: int = 1) -> Tensor:
    """Shift each clip circularly in time, within its own (unpadded) length.

    The shift of a clip of ``n`` samples is ``k * interval`` with ``k`` drawn uniformly in
    ``0 .. max(n // interval, 1) - 1``, as ESPnet's ``roll_augment`` does for BEATs.

    Args:
        waveforms: float (B, N).
        padding_mask: bool (B, N), ``True`` = padding (at the end of each row), or None.
        interval: shifts are multiples of this many samples.

    Returns:
        A new float (B, N) tensor; padding stays where it was.
    """
    batch, length = waveforms.shape
    device = waveforms.device
    lengths = (
        torch.full((batch,), length, device=device)
        if padding_mask is None
        else (~padding_mask).sum(dim=1).clamp_min(1)
    )
    choices = torch.div(lengths, interval, rounding_mode="floor").clamp_min(1)
    shifts = (torch.rand(batch, device=device) * choices).long() * interval
    positions = torch.arange(length, device=device).expand(batch, length)
    source = torch.remainder(positions - shifts[:, None], lengths[:, None])
    source = torch.where(positions < lengths[:, None], source, positions)
    return waveforms.gather(1, source)


def mixup(
    waveforms: Tensor, padding_mask: Tensor | None, targets: Tensor, alpha: float
) -> tuple[Tensor, Tensor | None, Tensor]:
    """Mix each clip with another clip of the batch, and their targets likewise.

    One weight ``lam ~ Beta(alpha, alpha)`` per batch; clip ``i`` becomes
    ``lam * x_i + (1 - lam) * x_perm(i)``. A sample is padding only if it is padding in both.

    Args:
        waveforms: float (B, N).
        padding_mask: bool (B, N) or None.
        targets: float (B, K) target distributions or multi-hot vectors.
        alpha: the Beta distribution's parameter (> 0).

    Returns:
        ``(waveforms, padding_mask, targets)``, mixed.
    """
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(waveforms.shape[0], device=waveforms.device)
    mixed = lam * waveforms + (1.0 - lam) * waveforms[perm]
    mask = None if padding_mask is None else padding_mask & padding_mask[perm]
    return mixed, mask, lam * targets + (1.0 - lam) * targets[perm]


def augment_waveforms(waveforms: Tensor, padding_mask: Tensor | None, config: AugmentationConfig) -> Tensor:
    """Apply the waveform augmentations of ``config`` that keep the labels (gain, then roll).

    Args:
        waveforms: float (B, N).
        padding_mask: bool (B, N) or None.
        config: the augmentation settings.

    Returns:
        The augmented (B, N) waveforms (the input itself when nothing applies).
    """
    if config.gain_db > 0:
        waveforms = random_gain(waveforms, config.gain_db)
    if config.roll:
        waveforms = roll(waveforms, padding_mask, config.roll_interval)
    return waveforms


class FbankMasking:
    """SpecAugment-style masks on a normalised fbank: bands of frames or mel bins set to 0.

    Each clip gets ``time_masks`` masks of a width drawn uniformly in
    ``0 .. time_mask_ratio * T`` frames and ``freq_masks`` masks of up to
    ``freq_mask_bins`` bins, at uniformly drawn positions. 0 is the normalised mean.

    Args:
        config: the augmentation settings (only the mask fields are used).
    """

    def __init__(self, config: AugmentationConfig) -> None:
        self.time_masks = config.time_masks
        self.time_mask_ratio = config.time_mask_ratio
        self.freq_masks = config.freq_masks
        self.freq_mask_bins = config.freq_mask_bins

    @property
    def active(self) -> bool:
        """Whether any mask is drawn."""
        return (self.time_masks > 0 and self.time_mask_ratio > 0) or (
            self.freq_masks > 0 and self.freq_mask_bins > 0
        )

    def __call__(self, fbank: Tensor) -> Tensor:
        """Mask a batch of fbanks.

        Args:
            fbank: float (B, ..., T, F), e.g. the (B, 1, T, 128) input of the patch embedding.

        Returns:
            A new tensor of the same shape with the masked entries set to 0.
        """
        batch, frames, bins = fbank.shape[0], fbank.shape[-2], fbank.shape[-1]
        device = fbank.device
        mask = torch.zeros(batch, frames, bins, dtype=torch.bool, device=device)
        if self.time_masks:
            widest = int(self.time_mask_ratio * frames)
            mask |= _bands(batch, self.time_masks, frames, widest, device)[:, :, None]
        if self.freq_masks:
            mask |= _bands(batch, self.freq_masks, bins, min(self.freq_mask_bins, bins), device)[:, None, :]
        shape = (batch,) + (1,) * (fbank.dim() - 3) + (frames, bins)
        return fbank.masked_fill(mask.view(shape), 0.0)


def _bands(batch: int, count: int, size: int, widest: int, device: torch.device) -> Tensor:
    """(B, size) bool: ``count`` bands per row of widths uniform in 0..widest at uniform positions."""
    widths = (torch.rand(batch, count, device=device) * (widest + 1)).long()
    starts = (torch.rand(batch, count, device=device) * (size - widths + 1)).long()
    positions = torch.arange(size, device=device)[None, None, :]
    inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
    return inside.any(dim=1)
