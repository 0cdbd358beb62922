"""BEATs: Bidirectional Encoder representation from Audio Transformers.

Paper: Chen et al., "BEATs: Audio Pre-Training with Acoustic Tokenizers", ICML 2023,
https://arxiv.org/abs/2212.09058. Reference implementation: ``microsoft/unilm``,
folder ``beats/`` (MIT licence), itself based on fairseq.

This is an independent implementation with the same parameter and buffer names as
the official one, so official checkpoints load with ``strict=True`` and checkpoints
written here load in the official code; its outputs equal the official ones within
float rounding (see ``tests/core/test_parity.py``). The computation is organised for
speed: attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`
with the gated relative position bias and the key padding folded into one additive
mask (half-precision training on the CPU, which SDPA would run in float32, uses
:mod:`beats_core.attention` instead), the relative-position bucket table is computed
once per sequence length, and the fbank is computed for the whole batch at once on the
model's device.

Shapes: B batch, N samples (16 kHz), T fbank frames, P tokens (patches), C width,
H heads. Masks are boolean with ``True`` = padding.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from beats_core.attention import half_precision_attention
from beats_core.checkpoint import checkpoint_filter_fn
from beats_core.config import BEATsConfig
from beats_core.errors import AudioTooShortError, ConfigError, InvalidAudioError
from beats_core.fbank import compute_fbank, normalize_fbank
from beats_core.geometry import FRAME_LENGTH, NUM_MEL_BINS, SAMPLE_RATE, min_num_samples, num_tokens
from beats_core.tensor_cache import tensor_cache

__all__ = ["BEATs", "downsample_padding_mask"]


# --------------------------------------------------------------------------- geometry
def downsample_padding_mask(padding_mask: Tensor, length: int) -> Tensor:
    """Shorten a padding mask the way the official code does (not aligned with frames or patches).

    The last ``M mod length`` entries are dropped, the rest is cut into ``length``
    consecutive groups, and a position is padding iff its whole group is padding.

    Args:
        padding_mask: bool tensor (B, M), ``True`` = padding.
        length: the target length S <= M.

    Returns:
        Bool tensor (B, S).
    """
    batch, size = padding_mask.shape
    extra = size % length
    if extra:
        padding_mask = padding_mask[:, : size - extra]
    return padding_mask.reshape(batch, length, -1).all(dim=-1)


@tensor_cache(maxsize=64)
def _relative_buckets(length: int, num_buckets: int, max_distance: int, device: torch.device) -> Tensor:
    """Bucket of every relative position r = j - i in [-(length-1), length-1], as the official code computes it.

    Returns an int64 tensor of 2 * length - 1 entries; entry ``r + length - 1`` is the bucket of r.
    """
    relative = torch.arange(-(length - 1), length, dtype=torch.long)
    half = num_buckets // 2
    exact = half // 2
    buckets = (relative > 0).long() * half
    distance = relative.abs()
    # The official code evaluates the logarithmic branch in float32, with ln(max/exact) in double.
    large = (
        exact
        + (
            torch.log(distance.clamp_min(1).float() / exact) / math.log(max_distance / exact) * (half - exact)
        ).long()
    )
    large = large.clamp_max(half - 1)
    buckets += torch.where(distance < exact, distance, large)
    return buckets.to(device)


# --------------------------------------------------------------------------- layers
class _GradMultiply(torch.autograd.Function):
    """Identity in the forward pass; multiplies the gradient by ``scale`` in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


class _PositionalConv(nn.Module):
    """Grouped Conv1d with weight norm over dim 2, "same" padding for an even kernel, then exact GELU.

    The weight is stored as in the official checkpoints (legacy ``weight_norm``
    names): ``weight_g`` (1, 1, K) and ``weight_v`` (C, C/G, K); the effective
    kernel is ``weight_g * weight_v / ||weight_v||`` with the norm over the output
    and input channels of each tap.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.groups = groups
        # Registration order matches the official state dict: bias, weight_g, weight_v.
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel_size))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel_size))

    def weight(self) -> Tensor:
        """The effective (weight-normalised) kernel, shape (C, C/G, K)."""
        norm = torch.linalg.vector_norm(self.weight_v, dim=(0, 1), keepdim=True)
        return self.weight_v * (self.weight_g / norm)

    def forward(self, x: Tensor) -> Tensor:
        """Apply to x of shape (B, C, P); returns (B, C, P)."""
        length = x.shape[-1]
        # A 2-D convolution of height 1 on channels-last input, which x (a transposed (B, P, C)
        # tensor) already is: oneDNN's kernel for that layout runs 2-3x faster on the CPU than
        # conv1d's, with float32 accuracy.
        image = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        kernel = self.weight().unsqueeze(2)
        out = F.conv2d(image, kernel, self.bias, padding=(0, self.kernel_size // 2), groups=self.groups)
        return F.gelu(out[:, :, 0, :length])  # an even kernel gives P + 1 steps: drop the last


class _GLULinear(nn.Module):
    """The official ``GLU_Linear`` feed-forward input with swish gating (``activation_fn="glu"``)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features
        self.linear = nn.Linear(in_features, 2 * out_features)

    def forward(self, x: Tensor) -> Tensor:
        """Apply to (..., in_features); returns (..., out_features)."""
        value, gate = self.linear(x).split(self.out_features, dim=-1)
        return value * F.silu(gate)


def _activation(name: str, x: Tensor) -> Tensor:
    if name == "gelu":
        # Exact erf GELU in at least float32: the official code upcasts half precision. In inference,
        # torch's bfloat16 kernel computes in float32 and rounds once: bit for bit the same on every CPU,
        # without two (B, P, F) copies. Its gradient is not the official one on every CPU (AVX2 kernels
        # round differently), so with autograd the official upcast runs.
        differentiated = torch.is_grad_enabled() and x.requires_grad
        if x.dtype == torch.float16 or (x.dtype == torch.bfloat16 and differentiated):
            return F.gelu(x.float()).type_as(x)
        return F.gelu(x)
    if name in ("gelu_fast", "gelu_accurate"):
        return F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu(x)
    if name == "tanh":
        return torch.tanh(x)
    return x  # "linear", and "glu" whose gating happens in fc1


class _SelfAttention(nn.Module):
    """Multi-head self-attention with the (gated) relative position bias, through SDPA."""

    def __init__(self, config: BEATsConfig, has_bias_table: bool) -> None:
        super().__init__()
        width, heads = config.encoder_embed_dim, config.encoder_attention_heads
        self.num_heads = heads
        self.head_dim = width // heads
        self.dropout = config.attention_dropout
        self.gru_rel_pos = config.gru_rel_pos
        # Registration order matches the official state dict.
        if self.gru_rel_pos:
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(config.num_buckets, heads)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)

    def forward(self, x: Tensor, context: _LayerContext) -> Tensor:
        """Attend over x (B, P, C); returns (B, P, C)."""
        batch, length, width = x.shape
        heads, head_dim = self.num_heads, self.head_dim
        q = context.linear(self.q_proj, x, "q").view(batch, length, heads, head_dim)
        k = context.linear(self.k_proj, x, "k").view(batch, length, heads, head_dim).transpose(1, 2)
        v = context.linear(self.v_proj, x, "v").view(batch, length, heads, head_dim).transpose(1, 2)
        gate = None
        if self.gru_rel_pos and context.position_bias is not None:
            # Gate per (batch, head, query) from the unscaled query of that head.
            gates = torch.sigmoid(self.grep_linear(q).unflatten(-1, (2, 4)).sum(-1))
            gate_a, gate_b = gates.unbind(-1)
            gate = gate_a * (gate_b * self.grep_a.view(heads) - 1.0) + 2.0  # (B, P, H)
            gate = gate.transpose(1, 2).contiguous().unsqueeze(-1)  # (B, H, P, 1)
        dropout = self.dropout if self.training else 0.0
        if _needs_explicit_attention(q):
            out = half_precision_attention(
                q.transpose(1, 2),
                k,
                v,
                gate=gate,
                bias=context.position_bias,
                key_padding=context.key_padding,
                dropout_p=dropout,
            )
        else:
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k, v, attn_mask=context.attention_mask(gate, q.dtype), dropout_p=dropout
            )
        return context.linear(self.out_proj, out.transpose(1, 2).reshape(batch, length, width), "out")


def _needs_explicit_attention(q: Tensor) -> bool:
    """Half-precision training on the CPU: SDPA's only kernel that differentiates the mask runs in float32 there."""
    return q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and torch.is_grad_enabled()


class _LayerContext:
    """What every layer needs besides its input, and the buffers the layers reuse in inference.

    Holds the raw position bias and the key padding, and builds each layer's
    additive attention mask ``gate * bias + key_padding`` as one (B, H, P, P)
    tensor. With ``in_place`` (see :meth:`BEATs.in_place_inference`) the mask and the
    outputs of the linear layers are written into buffers that every layer reuses, and
    activations and residual sums are computed in place; otherwise every step makes a
    fresh tensor, the plain path.
    """

    def __init__(
        self, position_bias: Tensor | None, key_padding: Tensor | None, batch: int, in_place: bool
    ) -> None:
        self.position_bias = position_bias  # (H, P, P) or None
        self.key_padding = key_padding  # (B, 1, 1, P), 0 or -inf, or None
        self.batch = batch
        self.in_place = in_place
        self._masks: dict[torch.dtype, tuple[Tensor | None, Tensor | None, Tensor | None]] = {}
        self._buffers: dict[str, Tensor] = {}

    def _buffer(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or buffer.shape != shape
            or buffer.dtype != like.dtype
            or buffer.device != like.device
        ):
            buffer = self._buffers[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buffer

    def linear(self, module: nn.Linear, x: Tensor, name: str) -> Tensor:
        """``module(x)``; in place, written into a reused buffer (valid until the next layer)."""
        weight, bias = module.weight, module.bias
        reusable = x.dtype == weight.dtype and bias is not None and not _autocast_on(x.device.type)
        if not (self.in_place and reusable):
            return module(x)
        out = self._buffer(name, (x.numel() // x.shape[-1], weight.shape[0]), x)
        torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight.t(), out=out)
        return out.view(*x.shape[:-1], weight.shape[0])

    def attention_mask(self, gate: Tensor | None, dtype: torch.dtype) -> Tensor | None:
        """The additive mask for SDPA in ``dtype``: (B, H, P, P), or a broadcastable one, or None.

        Without a gate the mask is the same in every layer and is built once.
        """
        if dtype not in self._masks:
            bias, key_padding = (
                None if t is None else t.to(dtype) for t in (self.position_bias, self.key_padding)
            )
            if bias is None:
                static = key_padding
            else:
                static = bias.unsqueeze(0) if key_padding is None else bias + key_padding
            self._masks[dtype] = (bias, key_padding, static)
        bias, key_padding, static = self._masks[dtype]
        if gate is None or bias is None:
            return static
        gate = gate.to(dtype)
        if not self.in_place:
            return gate * bias if key_padding is None else torch.addcmul(key_padding, gate, bias)
        mask = self._buffer("mask", (self.batch, *bias.shape), bias)
        if key_padding is None:
            return torch.mul(gate, bias, out=mask)
        return torch.addcmul(key_padding, gate, bias, out=mask)


class _EncoderLayer(nn.Module):
    """A transformer layer: post-LN with DeepNorm residual scaling (or pre-LN), official names."""

    def __init__(self, config: BEATsConfig, has_bias_table: bool) -> None:
        super().__init__()
        width, ffn = config.encoder_embed_dim, config.encoder_ffn_embed_dim
        self.activation_fn = config.activation_fn
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout
        self.layer_norm_first = config.layer_norm_first
        self.alpha = math.pow(2 * config.encoder_layers, 0.25) if config.deep_norm else 1.0
        self.self_attn = _SelfAttention(config, has_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.fc1: nn.Module = _GLULinear(width, ffn) if self.activation_fn == "glu" else nn.Linear(width, ffn)
        self.fc2 = nn.Linear(ffn, width)
        self.final_layer_norm = nn.LayerNorm(width)

    def _feed_forward(self, x: Tensor, context: _LayerContext) -> Tensor:
        x = context.linear(self.fc1, x, "fc1") if isinstance(self.fc1, nn.Linear) else self.fc1(x)
        if context.in_place and self.activation_fn == "gelu" and x.dtype == torch.float32:
            torch.ops.aten.gelu_(x)  # exact GELU in place: no fresh (B, P, F) tensor
        else:
            x = _activation(self.activation_fn, x)
        x = F.dropout(x, self.activation_dropout, self.training)
        return F.dropout(context.linear(self.fc2, x, "fc2"), self.dropout, self.training)

    def forward(self, x: Tensor, context: _LayerContext) -> Tensor:
        """Apply to x (B, P, C); returns (B, P, C)."""
        if self.layer_norm_first:
            h = self.self_attn(self.self_attn_layer_norm(x), context)
            x = x + F.dropout(h, self.dropout, self.training)
            return x + self._feed_forward(self.final_layer_norm(x), context)
        h = F.dropout(self.self_attn(x, context), self.dropout, self.training)
        x = self.self_attn_layer_norm(_residual(x, self.alpha, h, context.in_place))
        return self.final_layer_norm(
            _residual(x, self.alpha, self._feed_forward(x, context), context.in_place)
        )


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def _residual(x: Tensor, alpha: float, branch: Tensor, in_place: bool) -> Tensor:
    """``alpha * x + branch``; in place on the branch (a fresh tensor per layer costs page faults)."""
    if in_place and branch.dtype == torch.promote_types(branch.dtype, x.dtype):
        return branch.add_(x, alpha=alpha)
    return torch.add(branch, x, alpha=alpha)


class _TransformerEncoder(nn.Module):
    """Positional convolution, input LayerNorm and the stack of layers (official ``encoder.*`` names)."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        width = config.encoder_embed_dim
        self.dropout = config.dropout
        self.layerdrop = config.encoder_layerdrop
        self.layer_norm_first = config.layer_norm_first
        self.gradient_scale = config.layer_wise_gradient_decay_ratio
        self.num_buckets = config.num_buckets
        self.max_distance = config.max_distance
        self.pos_conv = nn.Sequential(_PositionalConv(width, config.conv_pos, config.conv_pos_groups))
        relative = config.relative_position_embedding
        self.layers = nn.ModuleList(
            [_EncoderLayer(config, has_bias_table=relative and i == 0) for i in range(config.encoder_layers)]
        )
        if relative:
            # One table, physically shared by every layer, as in the official code (and its
            # state dict, which lists it under every layer).
            for layer in list(self.layers)[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(width)
        #: Work in place with reused buffers when there is no autograd (see BEATs.in_place_inference).
        self.in_place = False

    def position_bias(self, length: int) -> Tensor | None:
        """The raw relative position bias (H, P, P) from layer 0's table, or None without relative positions."""
        if not self.layers or not hasattr(self.layers[0].self_attn, "relative_attention_bias"):
            return None
        table = self.layers[0].self_attn.relative_attention_bias.weight  # (buckets, H)
        buckets = _relative_buckets(length, self.num_buckets, self.max_distance, table.device)
        per_distance = table[buckets].t()  # (H, 2P - 1): entry r + P - 1 is relative position r
        # bias[h, i, j] = per_distance[h, j - i + P - 1]: a Toeplitz matrix.
        positions = torch.arange(length, device=table.device)
        return per_distance[:, positions.unsqueeze(0) - positions.unsqueeze(1) + (length - 1)]

    def forward(
        self, x: Tensor, padding_mask: Tensor | None, hidden_states: list[Tensor] | None = None
    ) -> Tensor:
        """Run the encoder on projected tokens.

        Args:
            x: projected patch embeddings (B, P, C).
            padding_mask: token padding mask (B, P) or None.
            hidden_states: if a list is given, the input of layer 0 and the output of
                every layer are appended to it, each (B, P, C).

        Returns:
            The encoder output (B, P, C).
        """
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, self.dropout, self.training)
        if hidden_states is not None:
            hidden_states.append(x)
        key_padding = None
        if padding_mask is not None:
            key_padding = torch.zeros(padding_mask.shape, dtype=x.dtype, device=x.device)
            key_padding = key_padding.masked_fill(padding_mask, float("-inf"))[:, None, None, :]
        in_place = self.in_place and not torch.is_grad_enabled()
        context = _LayerContext(self.position_bias(x.shape[1]), key_padding, x.shape[0], in_place)
        for layer in self.layers:
            if self.gradient_scale != 1.0 and torch.is_grad_enabled() and x.requires_grad:
                x = _GradMultiply.apply(x, self.gradient_scale)
            if not (self.training and self.layerdrop > 0 and float(torch.rand(())) <= self.layerdrop):
                x = layer(x, context)
            if hidden_states is not None:
                hidden_states.append(x)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x


# --------------------------------------------------------------------------- model
class BEATs(nn.Module):
    """The BEATs audio transformer, with the official parameter names and semantics.

    Build a random model from a configuration (``BEATs(BEATsConfig.base())``) or load a
    checkpoint with :func:`beats_core.create_model`. Inputs are 16 kHz waveforms in [-1, 1],
    (B, N) float, with an optional padding mask (B, N) bool, ``True`` = padding;
    the fbank is computed on the model's device. Tokens come out time-major, with
    :attr:`num_frequency_patches` (8) frequency patches per time step.

    Main entry points:

    * :meth:`extract_features`: the official output (features, or class
      probabilities for a fine-tuned model) and the token padding mask.
    * :meth:`extract_hidden_states`: the input of the first layer and every layer's output.
    * :meth:`forward_features` + :meth:`forward_head`: per-token encoder output and
      classifier logits, for training.

    Args:
        config: the architecture; a copy is kept as :attr:`cfg`.

    Raises:
        ConfigError: the configuration cannot be built (the message names the field).
    """

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        config = config.replace()
        config.validate()
        self.cfg = config
        embed, width = config.embed_dim, config.encoder_embed_dim
        # Registration order matches the official state dict.
        self.post_extract_proj = nn.Linear(embed, width) if embed != width else None
        self.patch_embedding = nn.Conv2d(
            1,
            embed,
            kernel_size=config.input_patch_size,
            stride=config.input_patch_size,
            bias=config.conv_bias,
        )
        self.encoder = _TransformerEncoder(config)
        self.layer_norm = nn.LayerNorm(embed)
        self.predictor: nn.Linear | None = None
        if config.finetuned_model:
            self.predictor = nn.Linear(width, config.predictor_class)
        #: ``{class index: label}`` of a fine-tuned checkpoint, if it had one.
        self.label_dict: dict[int, str] | None = None
        #: The checkpoint file the model was loaded from (set by :func:`beats_core.create_model`).
        self.checkpoint_path: Path | None = None
        self._init_weights()
        self._register_load_state_dict_pre_hook(_remap_keys_hook)

    # ------------------------------------------------------------------ geometry
    @property
    def num_frequency_patches(self) -> int:
        """Frequency patches per time step (``128 // input_patch_size``, 8): tokens ``8 t ... 8 t + 7`` share time step t."""
        return NUM_MEL_BINS // self.cfg.input_patch_size

    @property
    def min_num_samples(self) -> int:
        """Shortest input the model accepts, in samples at 16 kHz (2800 for patches of 16)."""
        return min_num_samples(self.cfg.input_patch_size)

    @property
    def embed_dim(self) -> int:
        """Width C of the token features and hidden states."""
        return self.cfg.encoder_embed_dim

    def num_tokens(self, num_samples: int) -> int:
        """Number of tokens P for a clip of ``num_samples`` samples (a multiple of :attr:`num_frequency_patches`)."""
        return num_tokens(num_samples, self.cfg.input_patch_size)

    @contextlib.contextmanager
    def in_place_inference(self) -> Iterator[BEATs]:
        """Within this block, inference without autograd reuses buffers and works in place.

        The encoder then writes each layer's linear outputs and attention mask into buffers
        that every layer reuses, and computes GELU and the residual sums in place: on the
        CPU a fresh tensor per layer costs more in page faults than in arithmetic. Outputs
        are the same as the plain path's (tested). Forward hooks on the encoder's inner
        modules would see tensors that later layers overwrite, so the plain path is the
        default; the feature extractor and detection run in this block. With autograd
        (training) the plain path runs regardless.

        Yields:
            The model itself.
        """
        previous = self.encoder.in_place
        self.encoder.in_place = True
        try:
            yield self
        finally:
            self.encoder.in_place = previous

    # ---------------------------------------------------------------- pipeline
    def preprocess(
        self, waveforms: Tensor, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Normalised Kaldi fbank of a batch, on the model's device.

        Args:
            waveforms: float (B, N), samples in [-1, 1] at 16 kHz; moved to the model's device.
            padding_mask: optional bool (B, N), ``True`` = padding.

        Returns:
            ``(fbank, frame_padding_mask)``: fbank (B, T, 128) float32, normalised with
            ``cfg.fbank_mean`` / ``cfg.fbank_std``; the frame-level mask (B, T) made by
            :func:`downsample_padding_mask`, or None without a mask.

        Raises:
            InvalidAudioError: wrong shape or dtype of the waveforms or the mask.
            AudioTooShortError: N < 400 samples.
        """
        waveforms, padding_mask = self._check_inputs(waveforms, padding_mask, FRAME_LENGTH)
        return self._preprocess(waveforms, padding_mask)

    def _preprocess(self, waveforms: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        fbank = normalize_fbank(compute_fbank(waveforms), self.cfg.fbank_mean, self.cfg.fbank_std)
        frame_mask = None if padding_mask is None else downsample_padding_mask(padding_mask, fbank.shape[1])
        return fbank, frame_mask

    def _tokens(self, source: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Waveforms -> projected patch embeddings (B, P, C) and the token padding mask."""
        source, padding_mask = self._check_inputs(source, padding_mask, self.min_num_samples)
        fbank, frame_mask = self._preprocess(source, padding_mask)
        tokens = self._embed_patches(fbank)
        token_mask = None if frame_mask is None else downsample_padding_mask(frame_mask, tokens.shape[1])
        return tokens, token_mask

    def _embed_patches(self, fbank: Tensor) -> Tensor:
        """Normalised fbank (B, T, 128) -> projected patch embeddings (B, P, C)."""
        weight = self.patch_embedding.weight
        patches = self.patch_embedding(fbank.unsqueeze(1).to(weight.dtype))  # (B, E, T/p, F)
        tokens = self.layer_norm(patches.flatten(2).transpose(1, 2))  # (B, P, E), time-major
        if self.post_extract_proj is not None:
            tokens = self.post_extract_proj(tokens)
        return F.dropout(tokens, self.cfg.dropout_input, self.training)

    def forward_features_aligned(
        self, source: Tensor, num_steps: Tensor, hidden_states: list[Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Per-token encoder output for a batch whose padding is given as each row's number of time steps.

        The tokens of a row's first ``num_steps`` time steps (all their frequency patches) are
        kept and every later token is padding: the aligned token mask of
        :func:`beats_extract.framing.aligned_padding_mask`, which makes a padded row's tokens
        those of the clip alone. No step depends on the values of the inputs, so the method
        traces (:func:`torch.export.export`) with a dynamic batch size and length.

        Args:
            source: float (B, N) waveforms in [-1, 1] at 16 kHz, N >= :attr:`min_num_samples`.
            num_steps: int (B,), the time steps of each row that are not padding, at least 1
                (see :func:`beats_core.geometry.num_time_steps`); values past the batch's
                number of steps keep every token.
            hidden_states: if a list is given, the L + 1 hidden states of
                :meth:`extract_hidden_states` are appended to it, each (B, P, C).

        Returns:
            ``(features, token_padding_mask)``: features (B, P, C) and the token mask (B, P)
            bool, ``True`` = padding.

        Raises:
            InvalidAudioError: wrong shape or dtype of the waveforms.
            AudioTooShortError: N < :attr:`min_num_samples`.
        """
        source, _ = self._check_inputs(source, None, self.min_num_samples)
        fbank, _ = self._preprocess(source, None)
        tokens = self._embed_patches(fbank)
        step = torch.arange(tokens.shape[1], device=tokens.device) // self.num_frequency_patches
        token_mask = step.unsqueeze(0) >= num_steps.to(tokens.device).unsqueeze(1)
        return self.encoder(tokens, token_mask, hidden_states), token_mask

    def forward_features(
        self, source: Tensor, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Per-token encoder output, for any model (the classifier head is not applied).

        Args:
            source: float (B, N) waveforms in [-1, 1] at 16 kHz, N >= :attr:`min_num_samples`.
            padding_mask: optional bool (B, N), ``True`` = padding.

        Returns:
            ``(features, token_padding_mask)``: features (B, P, C); the token mask
            (B, P) bool, or None without a mask. Features at padded tokens hold real
            values (they are not zeroed), as in the official code.

        Raises:
            InvalidAudioError: wrong shape or dtype of the inputs.
            AudioTooShortError: N < :attr:`min_num_samples`.
        """
        tokens, token_mask = self._tokens(source, padding_mask)
        return self.encoder(tokens, token_mask), token_mask

    def extract_hidden_states(
        self, source: Tensor, padding_mask: Tensor | None = None
    ) -> tuple[tuple[Tensor, ...], Tensor | None]:
        """The input of the first layer and the output of every layer, for layer selection.

        Entry 0 is the input of layer 0 (after the positional convolution and
        ``encoder.layer_norm``); entry i is the output of layer i - 1, so the last
        entry is the encoder output (before the final LayerNorm of pre-LN models).
        This is the official ``layer_results`` of ``encoder(x, layer=L-1)``.

        Args:
            source: float (B, N) waveforms in [-1, 1] at 16 kHz.
            padding_mask: optional bool (B, N), ``True`` = padding.

        Returns:
            ``(hidden_states, token_padding_mask)``: a tuple of L + 1 tensors (B, P, C)
            and the token mask (B, P) or None.

        Raises:
            InvalidAudioError: wrong shape or dtype of the inputs.
            AudioTooShortError: N < :attr:`min_num_samples`.
        """
        tokens, token_mask = self._tokens(source, padding_mask)
        hidden: list[Tensor] = []
        self.encoder(tokens, token_mask, hidden)
        return tuple(hidden), token_mask

    def forward_head(
        self, features: Tensor, padding_mask: Tensor | None = None, *, pre_logits: bool = False
    ) -> Tensor:
        """Pool per-token features with the official masked mean and apply the classifier head.

        As in the official code, the head (with ``predictor_dropout`` in training) is
        applied to every token and the token logits are averaged over the tokens that
        are not padding (a plain mean when the mask is None or has no padding at all).

        Args:
            features: (B, P, C) from :meth:`forward_features`.
            padding_mask: token padding mask (B, P) or None.
            pre_logits: return the masked mean of the features (B, C) instead of logits.

        Returns:
            Logits (B, num_classes) (apply a sigmoid for the official probabilities),
            or pooled features (B, C) with ``pre_logits=True``.

        Raises:
            ConfigError: logits are asked of a model without a head (use :meth:`reset_classifier`).
        """
        if pre_logits:
            return _masked_mean(features, padding_mask)
        if self.predictor is None:
            raise ConfigError(
                "this BEATs model has no classifier head (finetuned_model=False); "
                "call model.reset_classifier(num_classes) first"
            )
        logits = self.predictor(F.dropout(features, self.cfg.predictor_dropout, self.training))
        return _masked_mean(logits, padding_mask)

    def extract_features(
        self, source: Tensor, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The official ``BEATs.extract_features``.

        Args:
            source: float (B, N) waveforms in [-1, 1] at 16 kHz, N >= :attr:`min_num_samples`.
            padding_mask: optional bool (B, N), ``True`` = padding.

        Returns:
            ``(output, token_padding_mask)``. For a pre-trained model the output is the
            encoder features (B, P, C); for a fine-tuned model (with a head) it is the
            class probabilities (B, num_classes), independent sigmoids of the pooled
            logits. The mask is (B, P) bool, or None when no mask was given.

        Raises:
            InvalidAudioError: wrong shape or dtype of the inputs.
            AudioTooShortError: N < :attr:`min_num_samples`.
        """
        features, token_mask = self.forward_features(source, padding_mask)
        if self.predictor is None:
            return features, token_mask
        return torch.sigmoid(self.forward_head(features, token_mask)), token_mask

    def forward(self, source: Tensor, padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Same as :meth:`extract_features`."""
        return self.extract_features(source, padding_mask)

    # ------------------------------------------------------------------- head
    def reset_classifier(self, num_classes: int) -> None:
        """Add or replace the classifier head (``predictor``), freshly initialised.

        Sets ``cfg.finetuned_model`` and ``cfg.predictor_class`` so that a saved
        checkpoint loads as a fine-tuned model in the official code. ``num_classes=0``
        removes the head.

        Args:
            num_classes: number of classes (0 to remove the head).

        Raises:
            ConfigError: ``num_classes`` is negative.
        """
        if num_classes < 0:
            raise ConfigError(f"num_classes must be >= 0, got {num_classes}")
        reference = self.patch_embedding.weight
        if num_classes == 0:
            self.predictor = None
            self.cfg.finetuned_model = False
            return
        self.predictor = nn.Linear(
            self.embed_dim, num_classes, device=reference.device, dtype=reference.dtype
        )
        self.cfg.finetuned_model = True
        self.cfg.predictor_class = num_classes

    # ------------------------------------------------------------------ helpers
    def _check_inputs(
        self, waveforms: Tensor, padding_mask: Tensor | None, minimum: int
    ) -> tuple[Tensor, Tensor | None]:
        if not isinstance(waveforms, Tensor) or waveforms.dim() != 2:
            shape = tuple(waveforms.shape) if isinstance(waveforms, Tensor) else type(waveforms).__name__
            raise InvalidAudioError(
                f"BEATs expects waveforms of shape (batch, samples), got {shape}; "
                "add a batch dimension with x.unsqueeze(0)"
            )
        if not waveforms.is_floating_point():
            raise InvalidAudioError(
                f"BEATs expects float samples in [-1, 1], got dtype {waveforms.dtype}; "
                "convert integer PCM with x.float() / 32768"
            )
        if waveforms.shape[1] < minimum:
            raise AudioTooShortError(
                f"a clip of {waveforms.shape[1]} samples is too short for BEATs: at least {minimum} samples "
                f"({1000 * minimum / SAMPLE_RATE:g} ms at 16 kHz) are needed; pad it with zeros "
                "(and mark the padding in padding_mask)"
            )
        device = self.patch_embedding.weight.device
        if padding_mask is not None:
            if not isinstance(padding_mask, Tensor) or padding_mask.shape != waveforms.shape:
                shape = (
                    tuple(padding_mask.shape)
                    if isinstance(padding_mask, Tensor)
                    else type(padding_mask).__name__
                )
                raise InvalidAudioError(
                    f"padding_mask must have the shape of the waveforms {tuple(waveforms.shape)}, got {shape}"
                )
            if padding_mask.dtype != torch.bool:
                raise InvalidAudioError(
                    f"padding_mask must be a bool tensor (True = padding), got {padding_mask.dtype}"
                )
            empty = padding_mask.all(dim=1).nonzero().flatten().tolist()
            if empty:
                raise InvalidAudioError(
                    f"padding_mask marks every sample of batch row(s) {empty} as padding; "
                    "leave such clips out of the batch"
                )
            padding_mask = padding_mask.to(device)
        return waveforms.to(device), padding_mask

    @torch.no_grad()
    def _init_weights(self) -> None:
        """The official initialisation (PyTorch defaults outside the encoder; BERT and DeepNorm inside)."""
        encoder, config = self.encoder, self.cfg
        conv = encoder.pos_conv[0]
        std = math.sqrt(4.0 / (config.conv_pos * config.encoder_embed_dim))
        nn.init.normal_(conv.weight_v, mean=0.0, std=std)
        conv.weight_g.copy_(torch.linalg.vector_norm(conv.weight_v, dim=(0, 1), keepdim=True))
        nn.init.zeros_(conv.bias)
        for module in encoder.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if config.deep_norm:
            beta = math.pow(8 * config.encoder_layers, -0.25)
            for layer in encoder.layers:
                attention = layer.self_attn
                fc1 = layer.fc1.linear if isinstance(layer.fc1, _GLULinear) else layer.fc1
                for linear, gain in (
                    (attention.k_proj, 1.0),
                    (attention.v_proj, beta),
                    (attention.q_proj, 1.0),
                    (attention.out_proj, beta),
                    (fc1, beta),
                    (layer.fc2, beta),
                ):
                    nn.init.xavier_normal_(linear.weight, gain=gain)


def _masked_mean(values: Tensor, padding_mask: Tensor | None) -> Tensor:
    """Mean over dim 1 of (B, P, D), skipping padded tokens when the mask has any padding (official rule).

    Under export, where the mask's values are not known, a mask is always applied (the same mean).
    """
    if padding_mask is None or (not torch.compiler.is_exporting() and not bool(padding_mask.any())):
        return values.mean(dim=1)
    keep = ~padding_mask
    summed = values.masked_fill(padding_mask.unsqueeze(-1), 0.0).sum(dim=1)
    return summed / keep.sum(dim=1, keepdim=True).to(values.dtype)


def _remap_keys_hook(
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: Any,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """``load_state_dict`` pre-hook: apply :func:`checkpoint_filter_fn` to this model's keys in place."""
    own = {key[len(prefix) :]: state_dict.pop(key) for key in list(state_dict) if key.startswith(prefix)}
    for key, value in checkpoint_filter_fn(own).items():
        state_dict[prefix + key] = value
