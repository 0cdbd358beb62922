"""Windows of long audio and the padding masks that make a clip in a batch what it is alone.

A recording (or a clip of one) longer than a window is processed window by window; the
windows are cut by the one clip rule of beats-core (:meth:`beats_core.clips.ClipRule.windows`):
they start on BEATs' time-step grid, so the steps of all windows fall on the grid of the whole
recording. Where windows overlap, each step is taken from the window in which it lies most
centrally, so the windows split the recording's steps between them without gaps or repeats
(:class:`Window` records which of its steps a window contributes). Time-step geometry is in
:mod:`beats_core.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from beats_core.clips import ClipRule
from beats_core.geometry import NUM_MEL_BINS, num_fbank_frames, num_time_steps, step_samples

__all__ = ["Window", "aligned_padding_mask", "plan_windows"]


@dataclass(frozen=True)
class Window:
    """One window of a recording.

    Attributes:
        start: first sample, at 16 kHz, from the start of the recording (a multiple of
            :func:`step_samples`).
        length: samples in the window.
        keep_start: first of the window's own time steps that it contributes.
        keep_stop: end (exclusive) of the steps it contributes; ``None`` for all the rest.
    """

    start: int
    length: int
    keep_start: int = 0
    keep_stop: int | None = None

    def kept_steps(self, num_steps: int) -> tuple[int, int]:
        """``(first, stop)`` of the contributed steps for a window with ``num_steps`` steps."""
        stop = num_steps if self.keep_stop is None else min(self.keep_stop, num_steps)
        return min(self.keep_start, stop), stop


def plan_windows(num_samples: int, rule: ClipRule, patch_size: int = 16) -> list[Window]:
    """Cut a recording into windows with ``rule`` and split the time steps of overlapping windows.

    Args:
        num_samples: the recording's length in samples at 16 kHz.
        rule: the window rule (:meth:`beats_core.clips.ClipRule.windows`), aligned to time steps.
        patch_size: ``BEATsConfig.input_patch_size``.

    Returns:
        The windows, in time order; together their kept steps are the recording's steps.
    """
    clips = rule.clips(num_samples)
    if len(clips) <= 1:
        return [Window(0, num_samples)]
    hop_steps = rule.hop_samples // step_samples(patch_size)
    margin = (num_time_steps(rule.clip_samples, patch_size) - hop_steps) // 2
    return [
        Window(
            start=clip.start,
            length=clip.num_samples,
            keep_start=0 if k == 0 else margin,
            keep_stop=None if k == len(clips) - 1 else margin + hop_steps,
        )
        for k, clip in enumerate(clips)
    ]


def aligned_padding_mask(
    lengths: list[int] | np.ndarray, num_samples: int, patch_size: int = 16
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Padding masks for a batch that make every clip's tokens exactly those of the clip alone.

    The model shortens a sample-level padding mask to tokens with the official rule,
    which is not aligned with the patches (:func:`beats_core.model.downsample_padding_mask`):
    at the boundary the 8 tokens of one time step can get different mask values, and a
    time step that the clip alone would not have can be kept. This function builds a
    sample-level mask whose downsampling gives the aligned token mask: a row's first
    :func:`num_time_steps` steps (all their tokens) are kept and every later token is
    padding. The model only uses the sample mask through that downsampling, and returns
    the token mask it made of it, which callers compare with the one returned here.

    Args:
        lengths: ``(B,)`` samples of each clip before padding.
        num_samples: ``N``, the padded batch length (at least ``min_num_samples``).
        patch_size: ``BEATsConfig.input_patch_size``.

    Returns:
        ``(sample_mask (B, N), token_mask (B, P))`` bool, ``True`` = padding; both ``None``
        when no token of the batch is padding.
    """
    frames = num_fbank_frames(num_samples)
    steps = frames // patch_size
    per_step = NUM_MEL_BINS // patch_size
    tokens = steps * per_step
    valid = torch.tensor([min(num_time_steps(int(n), patch_size), steps) for n in lengths])
    token_mask = (torch.arange(steps).unsqueeze(0) >= valid.unsqueeze(1)).repeat_interleave(per_step, dim=1)
    if not bool(token_mask.any()):
        return None, None
    # Invert the two downsamplings: frame t takes the mask of token t // g2 (trailing frames are
    # dropped by the model anyway), sample i the mask of frame i // g1.
    frames_per_token = frames // tokens
    frame_mask = torch.ones(len(lengths), frames, dtype=torch.bool)
    frame_mask[:, : frames_per_token * tokens] = token_mask.repeat_interleave(frames_per_token, dim=1)
    samples_per_frame = num_samples // frames
    sample_mask = torch.ones(len(lengths), num_samples, dtype=torch.bool)
    sample_mask[:, : samples_per_frame * frames] = frame_mask.repeat_interleave(samples_per_frame, dim=1)
    return sample_mask, token_mask
