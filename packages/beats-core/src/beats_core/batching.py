"""Batching waveforms of different lengths: padding with a mask, and grouping by length.

Shared by the training pipeline (beats-data) and feature extraction (beats-extract), which
works without beats-data. The padding mask follows the model's convention: ``True`` marks
padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from beats_core.errors import ConfigError
from beats_core.geometry import min_num_samples

if TYPE_CHECKING:
    import torch

__all__ = ["MIN_WAVEFORM_SAMPLES", "batch_by_length", "pad_waveforms"]

#: The shortest waveform BEATs accepts, in 16 kHz samples: 16 fbank frames (one 16 x 16
#: patch) of 25 ms windows with a 10 ms hop, i.e. 400 + 15 * 160 = 2800 samples.
MIN_WAVEFORM_SAMPLES = min_num_samples()


def pad_waveforms(
    waveforms: Sequence[torch.Tensor | np.ndarray], *, min_length: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad 1-D waveforms with zeros into one batch and mark the padding.

    Args:
        waveforms: ``B >= 1`` waveforms, each ``(samples,)``, of any lengths.
        min_length: pad to at least this many samples (e.g.
            :data:`MIN_WAVEFORM_SAMPLES`), so that short clips still fill one fbank patch.

    Returns:
        ``(batch, padding_mask)``: ``batch`` is float32 ``(B, N)`` with
        ``N = max(longest waveform, min_length)``; ``padding_mask`` is bool ``(B, N)``,
        ``True`` at padded samples.

    Raises:
        ConfigError: no waveforms, or one that is not 1-D.
    """
    import torch

    if len(waveforms) == 0:
        raise ConfigError("pad_waveforms needs at least one waveform, got none")
    tensors = [torch.as_tensor(w, dtype=torch.float32) for w in waveforms]
    for i, tensor in enumerate(tensors):
        if tensor.ndim != 1:
            raise ConfigError(f"waveform {i} must be 1-D (samples,), got shape {tuple(tensor.shape)}")
    length = max(max(t.shape[0] for t in tensors), int(min_length))
    # In a DataLoader worker, build the batch in shared memory, as torch's default_collate
    # does: otherwise it is copied there to reach the main process (6x slower here).
    shared = torch.utils.data.get_worker_info() is not None
    batch = _filled((len(tensors), length), torch.float32, 0.0, shared)
    padding_mask = _filled((len(tensors), length), torch.bool, True, shared)
    for i, tensor in enumerate(tensors):
        batch[i, : tensor.shape[0]] = tensor
        padding_mask[i, : tensor.shape[0]] = False
    return batch, padding_mask


def _filled(shape: tuple[int, int], dtype: torch.dtype, value: float | bool, shared: bool) -> torch.Tensor:
    import torch

    tensor = torch.empty(shape, dtype=dtype)
    if shared:
        tensor.share_memory_()
    return tensor.fill_(value)


def batch_by_length(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    pool_batches: int = 50,
    max_batch_samples: int | None = None,
    max_padding: float | None = None,
    drop_last: bool = False,
) -> list[list[int]]:
    """Group indices into batches of similar length, so that padding wastes little.

    Without a ``generator`` the result is deterministic: indices sorted by length, longest
    first (so the largest batch comes first and a lack of memory shows at once), cut into
    batches. With one, the order is random but reproducible: indices are shuffled, sorted
    by length inside pools of ``pool_batches * batch_size``, cut into batches, and the
    batches shuffled; a short final batch stays last.

    Args:
        lengths: the length of each item (e.g. samples); item ``i`` has ``lengths[i]``.
        batch_size: the most items per batch.
        generator: a seeded ``torch.Generator`` for a random, reproducible order; ``None``
            for the deterministic longest-first order.
        pool_batches: how many batches' worth of items are sorted together when shuffling:
            larger pools waste less padding, smaller ones mix lengths more.
        max_batch_samples: if given, a batch also stops growing before its padded size
            (items x longest length) would exceed this; one longer item still makes a batch.
        max_padding: if given, a batch also stops growing before padding would make up more
            than this share of its padded size (e.g. 0.1: at most 10 % of the computed
            samples are padding), so that clips of very different lengths are not batched
            together; with ``batch_size`` 1 there is never any padding.
        drop_last: drop the final batch when it has fewer than ``batch_size`` items.

    Returns:
        Batches of indices into ``lengths``; every index appears once (unless dropped).

    Raises:
        ConfigError: ``batch_size``, ``pool_batches`` or ``max_batch_samples`` is not positive.
    """
    import torch

    if batch_size < 1 or pool_batches < 1 or (max_batch_samples is not None and max_batch_samples < 1):
        raise ConfigError(
            f"batch_size, pool_batches and max_batch_samples must be positive, got {batch_size}, "
            f"{pool_batches} and {max_batch_samples}"
        )
    if max_padding is not None and not 0 <= max_padding < 1:
        raise ConfigError(f"max_padding must be a share in [0, 1), got {max_padding}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if generator is None:
        order = np.argsort(-lengths, kind="stable")
    else:
        permutation = torch.randperm(len(lengths), generator=generator).numpy()
        pool = pool_batches * batch_size
        order = np.concatenate(
            [
                chunk[np.argsort(-lengths[chunk], kind="stable")]
                for chunk in np.split(permutation, range(pool, len(permutation), pool))
            ]
            or [np.zeros(0, np.int64)]
        )
    batches: list[list[int]] = []
    current: list[int] = []
    longest = total = 0
    for index in order.tolist():
        length = int(lengths[index])
        grown = max(longest, length)
        padded = (len(current) + 1) * grown
        full = len(current) == batch_size or (
            bool(current)
            and (
                (max_batch_samples is not None and padded > max_batch_samples)
                or (max_padding is not None and padded - total - length > max_padding * padded)
            )
        )
        if full:
            batches.append(current)
            current, grown, total = [], length, 0
        current.append(index)
        longest = grown
        total += length
    if current and not (drop_last and len(current) < batch_size):
        batches.append(current)
    if generator is not None:
        # a short final batch stays last, where distributed samplers (Accelerate's
        # BatchSamplerShard) expect it
        short = batches[-1:] if batches and len(batches[-1]) < batch_size else []
        body = batches[: len(batches) - len(short)]
        batches = [body[i] for i in torch.randperm(len(body), generator=generator).tolist()] + short
    return batches
