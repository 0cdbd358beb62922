"""Time geometry of BEATs tokens: time steps, their timestamps, windows of long audio, padding masks.

BEATs cuts the Kaldi fbank (25 ms windows every 10 ms, ``snip_edges``) into 16 x 16
patches: a *time step* is 16 consecutive fbank frames, and each time step has 8 tokens
(frequency patches). Time step ``k`` of a clip covers the samples
``[2560 k, 2560 k + 2800)``, i.e. 0.16 k s to 0.16 k + 0.175 s; its timestamp is the
centre of that span, ``0.16 k + 0.0875`` s. A clip of ``n`` samples has
``num_fbank_frames(n) // 16`` time steps (the trailing frames that do not fill one are
dropped); a clip shorter than one step (2800 samples, 175 ms) is zero-padded to one.

A recording longer than a window is processed window by window. Windows start on the
time-step grid (every ``hop_steps`` steps), so the steps of all windows fall on the grid
of the whole recording; where windows overlap, each step is taken from the window in
which it lies most centrally, so the windows split the recording's steps between them
without gaps or repeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from beats_core.errors import ConfigError
from beats_core.geometry import (
    NUM_MEL_BINS,
    SAMPLE_RATE,
    min_num_samples,
    num_fbank_frames,
    num_time_steps,
    step_samples,
)

__all__ = [
    "Window",
    "aligned_padding_mask",
    "hop_steps_for",
    "plan_windows",
]


def hop_steps_for(window_samples: int, hop_seconds: float | None, patch_size: int = 16) -> int:
    """The hop between windows in time steps: ``hop_seconds`` rounded to the step grid.

    Args:
        window_samples: the window length in samples at 16 kHz.
        hop_seconds: the wanted hop in seconds; ``None`` for windows that follow each
            other without overlap (the window's number of steps, e.g. 62 steps = 9.92 s
            for 10 s windows).
        patch_size: ``BEATsConfig.input_patch_size``.

    Returns:
        The hop in steps, between 1 and the window's number of steps.

    Raises:
        ConfigError: ``hop_seconds`` is not positive or longer than the window.
    """
    window_steps = num_time_steps(window_samples, patch_size)
    if hop_seconds is None:
        return window_steps
    step_seconds = step_samples(patch_size) / SAMPLE_RATE
    if not (math.isfinite(hop_seconds) and hop_seconds > 0):
        raise ConfigError(f"hop_seconds must be a positive number of seconds or None, got {hop_seconds!r}")
    hop = max(1, round(hop_seconds / step_seconds))
    if hop > window_steps:
        raise ConfigError(
            f"hop_seconds={hop_seconds:g} is longer than the window's {window_steps} time steps "
            f"({window_steps * step_seconds:g} s): windows would leave gaps; use a hop of at most that"
        )
    return hop


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


def plan_windows(
    num_samples: int, window_samples: int | None, hop_steps: int, patch_size: int = 16
) -> list[Window]:
    """Cut a recording into windows on the time-step grid.

    A recording no longer than the window is one window. Otherwise windows start every
    ``hop_steps`` steps until one reaches the end; a last window shorter than one time
    step is not made (its samples do not fill a step of the whole recording either). The
    kept ranges split the steps between overlapping windows at the middle of each overlap.

    Args:
        num_samples: the recording's length in samples at 16 kHz.
        window_samples: the window length in samples; ``None`` for one window whatever the length.
        hop_steps: steps between window starts (from :func:`hop_steps_for`).
        patch_size: ``BEATsConfig.input_patch_size``.

    Returns:
        The windows, in time order; together their kept steps are the recording's steps.
    """
    if window_samples is None or num_samples <= window_samples:
        return [Window(0, num_samples)]
    hop = hop_steps * step_samples(patch_size)
    minimum = min_num_samples(patch_size)
    starts = [0]
    while starts[-1] + window_samples < num_samples and num_samples - (starts[-1] + hop) >= minimum:
        starts.append(starts[-1] + hop)
    margin = (num_time_steps(window_samples, patch_size) - hop_steps) // 2
    windows = []
    for k, start in enumerate(starts):
        last = k == len(starts) - 1
        windows.append(
            Window(
                start=start,
                length=min(window_samples, num_samples - start),
                keep_start=0 if k == 0 else margin,
                keep_stop=None if last else margin + hop_steps,
            )
        )
    return windows


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
