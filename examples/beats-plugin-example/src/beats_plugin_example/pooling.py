"""The ``maxmean`` pooling: the largest and the mean value of each channel, side by side.

Max pooling keeps short, strong events (a click, a bird call) that a mean over a long clip
dilutes; the mean keeps the overall character of the clip. Concatenated they give
``2 x C`` values per clip (1536 for the base model).
"""

from __future__ import annotations

import numpy as np
import torch


def max_mean_pooling(features: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Max and mean of each channel over the tokens that are not padding.

    Args:
        features: float ``(B, T, C)`` token embeddings.
        padding_mask: bool ``(B, T)``, ``True`` at padding, or ``None``.

    Returns:
        float ``(B, 2 C)``: ``[max, mean]``. Padded tokens never change it.
    """
    if padding_mask is None:
        return torch.cat([features.amax(dim=1), features.mean(dim=1)], dim=-1)
    padding = padding_mask.unsqueeze(-1)
    largest = features.masked_fill(padding, float("-inf")).amax(dim=1)
    keep = (~padding).to(features.dtype)
    mean = (features * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    return torch.cat([largest, mean], dim=-1)


def combine_windows(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Combine the pooled windows of a long recording exactly: max of the maxima, weighted mean of the means.

    Args:
        values: ``(W, ..., 2 C)``, one pooled vector per window.
        weights: ``(W,)``, the tokens each window contributed.

    Returns:
        ``(..., 2 C)``, what pooling every token of the recording at once gives.
    """
    half = values.shape[-1] // 2
    share = (np.asarray(weights, dtype=np.float64) / np.sum(weights)).reshape(-1, *([1] * (values.ndim - 1)))
    mean = (share * values[..., half:].astype(np.float64)).sum(axis=0)
    return np.concatenate([values[..., :half].max(axis=0), mean], axis=-1).astype(values.dtype)


# What beats needs to know about the pooling beyond the function itself.
max_mean_pooling.output_multiplier = 2  # D = 2 C, for get_feature_dim()
max_mean_pooling.combine_windows = combine_windows
