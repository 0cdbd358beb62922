"""The time geometry of BEATs: sample rate, fbank frames, patches, tokens and time steps.

Every module that needs a length in samples, frames or tokens asks here, so that no caller
re-derives them. Nothing here imports torch.

BEATs computes a Kaldi fbank of 25 ms frames every 10 ms (``snip_edges``) at 16 kHz and cuts
it into square patches of ``patch_size`` (16) frames by 16 mel bins: a *time step* is 16
consecutive frames and has 8 tokens (frequency patches). Time step ``k`` of a clip covers the
samples ``[2560 k, 2560 k + 2800)``, 0.16 k s to 0.16 k + 0.175 s; trailing frames that do
not fill a step are dropped, and a clip shorter than one step (2800 samples) cannot be fed.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "FRAME_LENGTH",
    "FRAME_SHIFT",
    "NUM_MEL_BINS",
    "PATCH_SIZE",
    "SAMPLE_RATE",
    "min_num_samples",
    "num_fbank_frames",
    "num_time_steps",
    "num_tokens",
    "step_samples",
    "step_timestamps",
]

#: The sample rate BEATs works at, in Hz; audio at any other rate is resampled to it.
SAMPLE_RATE = 16000
#: Samples per fbank frame (25 ms at 16 kHz).
FRAME_LENGTH = 400
#: Samples between the starts of consecutive frames (10 ms at 16 kHz).
FRAME_SHIFT = 160
#: Number of triangular mel filters.
NUM_MEL_BINS = 128
#: The side of the square fbank patches of every released BEATs model (``BEATsConfig.input_patch_size``).
PATCH_SIZE = 16


def num_fbank_frames(num_samples: int) -> int:
    """Number of fbank frames for a clip of ``num_samples`` samples (Kaldi ``snip_edges``).

    Args:
        num_samples: clip length in samples at 16 kHz.

    Returns:
        ``1 + (num_samples - 400) // 160``, or 0 when the clip is shorter than one frame.
    """
    if num_samples < FRAME_LENGTH:
        return 0
    return 1 + (num_samples - FRAME_LENGTH) // FRAME_SHIFT


def min_num_samples(patch_size: int = PATCH_SIZE) -> int:
    """Shortest clip, in samples at 16 kHz, that gives one patch (``patch_size`` fbank frames).

    Args:
        patch_size: ``BEATsConfig.input_patch_size`` (16 for every released model).

    Returns:
        ``400 + 160 * (patch_size - 1)``: 2800 samples (175 ms) for patches of 16.
    """
    return FRAME_LENGTH + FRAME_SHIFT * (patch_size - 1)


def num_tokens(num_samples: int, patch_size: int = PATCH_SIZE) -> int:
    """Number of tokens (patches) BEATs makes of a clip of ``num_samples`` samples.

    Tokens are time-major: ``NUM_MEL_BINS // patch_size`` (8) frequency patches per
    time step of ``patch_size`` frames; trailing frames that do not fill a patch are dropped.

    Args:
        num_samples: clip length in samples at 16 kHz.
        patch_size: ``BEATsConfig.input_patch_size``.

    Returns:
        ``(num_fbank_frames(num_samples) // patch_size) * (128 // patch_size)``.
    """
    return (num_fbank_frames(num_samples) // patch_size) * (NUM_MEL_BINS // patch_size)


def step_samples(patch_size: int = PATCH_SIZE) -> int:
    """Samples at 16 kHz between the starts of consecutive time steps (2560, i.e. 160 ms)."""
    return FRAME_SHIFT * patch_size


def num_time_steps(num_samples: int, patch_size: int = PATCH_SIZE) -> int:
    """Time steps BEATs makes of a clip of ``num_samples`` samples (at least 1: short clips are padded).

    Args:
        num_samples: clip length in samples at 16 kHz.
        patch_size: ``BEATsConfig.input_patch_size``.

    Returns:
        ``max(1, num_fbank_frames(num_samples) // patch_size)``.
    """
    return max(1, num_fbank_frames(num_samples) // patch_size)


def step_timestamps(num_steps: int, first_step: int = 0, patch_size: int = PATCH_SIZE) -> np.ndarray:
    """Timestamps in seconds of time steps ``first_step ... first_step + num_steps - 1``.

    The timestamp of step ``k`` is the centre of the samples its 16 fbank frames cover:
    ``(2560 k + 1400) / 16000`` s (``0.16 k + 0.0875`` s).

    Args:
        num_steps: how many steps.
        first_step: index of the first one on the recording's grid.
        patch_size: ``BEATsConfig.input_patch_size``.

    Returns:
        float64 ``(num_steps,)``.
    """
    steps = np.arange(first_step, first_step + num_steps, dtype=np.float64)
    return (steps * step_samples(patch_size) + min_num_samples(patch_size) / 2) / SAMPLE_RATE
