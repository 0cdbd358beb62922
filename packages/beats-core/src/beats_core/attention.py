"""Attention for half-precision (bfloat16/float16) training on the CPU.

SDPA cannot serve this case: its fused CPU kernel does not differentiate the attention
mask, which carries BEATs' learned gated relative position bias, so it falls back to its
float32 math kernel. The official code computes the attention weights explicitly: a
half-precision matmul, the mask added in float32, a float32 softmax, and a cast back for
the second matmul. Done tensor by tensor, that makes five (B, H, P, P) float32 or
half-precision intermediates per layer, each freshly allocated, each read and written in
full (on the CPU, their page faults can cost more than their arithmetic).

:func:`half_precision_attention` keeps the official arithmetic (float32 for the mask and
the softmax, half precision for the matmuls) but computes the masked softmax and its
gradient a few heads at a time, in cache-sized float32 blocks: the only (B, H, P, P)
tensors are the half-precision scores, probabilities and their gradients. Its outputs and
gradients are as accurate as the official ones, against float64 (``tests/core/test_model.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["half_precision_attention"]

#: float32 elements per block of the masked softmax (2 MiB): small enough for its temporaries to stay in cache.
_BLOCK_ELEMENTS = 512 * 1024


def half_precision_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    gate: Tensor | None,
    bias: Tensor | None,
    key_padding: Tensor | None,
    dropout_p: float,
) -> Tensor:
    """``softmax(q k^T / sqrt(D) + gate * bias + key_padding) v`` with half-precision matmuls.

    Args:
        q: queries (B, H, P, D) in bfloat16 or float16.
        k: keys (B, H, P, D), same dtype.
        v: values (B, H, P, D), same dtype.
        gate: the per-query gate of the relative position bias (B, H, P, 1), or None.
        bias: the relative position bias (H, P, P), usually float32, or None.
        key_padding: (B, 1, 1, P) with 0 for real keys and -inf for padding, or None.
        dropout_p: dropout on the attention weights.

    Returns:
        The attention output (B, H, P, D) in the dtype of ``q``.
    """
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))
    if gate is not None and bias is not None:
        probabilities = _GatedBiasSoftmax.apply(scores, gate, bias, key_padding)
    else:
        mask = key_padding if bias is None else bias if key_padding is None else bias + key_padding
        logits = scores if mask is None else scores + mask.float()
        probabilities = torch.softmax(logits, dim=-1, dtype=torch.float32).type_as(scores)
    probabilities = F.dropout(probabilities, dropout_p, training=dropout_p > 0)
    return torch.matmul(probabilities, v)


def _head_blocks(scores: Tensor) -> list[tuple[int, slice]]:
    """(batch index, head slice) blocks of the (B, H, P, P) scores, each at most ``_BLOCK_ELEMENTS`` in float32."""
    batch, heads, length, keys = scores.shape
    num_blocks = math.ceil(heads / max(1, _BLOCK_ELEMENTS // (length * keys)))  # per batch item
    per_block = math.ceil(heads / num_blocks)  # as even as possible: 12 heads in 2 x 6, not 8 + 4
    return [(b, slice(h, h + per_block)) for b in range(batch) for h in range(0, heads, per_block)]


class _GatedBiasSoftmax(torch.autograd.Function):
    """``softmax(scores + gate * bias + key_padding)`` in float32 block by block, returned in the scores' dtype.

    The backward pass recomputes each block's float32 probabilities from the saved
    half-precision scores (no float32 (B, H, P, P) tensor is kept between the passes) and
    computes the softmax gradient and the gate and bias gradients in float32, again block by
    block.
    """

    @staticmethod
    def forward(ctx: Any, scores: Tensor, gate: Tensor, bias: Tensor, key_padding: Tensor | None) -> Tensor:
        probabilities = torch.empty_like(scores)
        bias32 = bias.float()
        for b, heads in _head_blocks(scores):
            probabilities[b, heads] = _block_probabilities(scores, gate, bias32, key_padding, b, heads)
        ctx.save_for_backward(scores, gate, bias, key_padding)
        return probabilities

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        scores, gate, bias, key_padding = ctx.saved_tensors
        bias32 = bias.float()
        grad_scores = torch.empty_like(scores)
        grad_gate = torch.empty(gate.shape, dtype=torch.float32, device=gate.device)
        grad_bias = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
        for b, heads in _head_blocks(scores):
            probabilities = _block_probabilities(scores, gate, bias32, key_padding, b, heads)
            grad_logits = torch._softmax_backward_data(
                grad[b, heads].float(), probabilities, -1, torch.float32
            )
            grad_scores[b, heads] = grad_logits
            torch.sum(grad_logits * bias32[heads], dim=-1, keepdim=True, out=grad_gate[b, heads])
            grad_bias[heads].addcmul_(grad_logits, gate[b, heads])
        return grad_scores, grad_gate.to(gate.dtype), grad_bias.to(bias.dtype), None


def _block_probabilities(
    scores: Tensor, gate: Tensor, bias32: Tensor, key_padding: Tensor | None, b: int, heads: slice
) -> Tensor:
    logits = torch.addcmul(scores[b, heads], gate[b, heads], bias32[heads])
    if key_padding is not None:
        logits += key_padding[b]
    return torch.softmax(logits, dim=-1)
