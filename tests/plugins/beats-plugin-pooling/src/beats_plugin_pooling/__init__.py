"""A third-party beats plugin, as a user would write one: a median pooling over the tokens."""

import torch

from beats_core import hookimpl


def median_pooling(features, padding_mask=None):
    """Median of each channel over the tokens that are not padding: (B, T, C) -> (B, C)."""
    if padding_mask is not None:
        features = features.masked_fill(padding_mask.unsqueeze(-1), float("nan"))
    return torch.nanmedian(features, dim=1).values


@hookimpl
def beats_poolings():
    return {"median": median_pooling}
