"""FLOP counts of BEATs and the matmul ceiling of this machine, shared by the benchmarks.

GFLOP/s figures only mean something next to what a plain matmul reaches on the same
machine: the transformer layers' matmuls at that rate are a floor on the model's time
that no implementation can go below without doing less arithmetic. The benchmarks that
time the model print both, and the speed-up over the official code that the floor allows.
"""

from __future__ import annotations

import torch
from _official import best_of

from beats_core import BEATsConfig
from beats_core.geometry import num_fbank_frames, num_tokens


def model_gflop(config: BEATsConfig, batch: int, num_samples: int) -> float:
    """Matmul and convolution GFLOP of one forward pass (2 FLOP per multiply-add)."""
    frames = num_fbank_frames(num_samples)
    patch = config.input_patch_size
    tokens = num_tokens(num_samples, patch)
    width, embed = config.encoder_embed_dim, config.embed_dim
    macs = tokens * patch * patch * embed  # patch embedding
    macs += tokens * embed * width if embed != width else 0  # post_extract_proj
    macs += tokens * width * (width // config.conv_pos_groups) * config.conv_pos  # positional conv
    macs += frames * 257 * 128  # mel filterbank (dense, as the official code does it)
    return 2 * batch * macs / 1e9 + layers_gflop(config, batch, num_samples)


def layers_gflop(config: BEATsConfig, batch: int, num_samples: int) -> float:
    """GFLOP of the transformer layers' matmuls alone: q, k, v, out, fc1, fc2 and attention.

    These run as matmuls in any implementation, so their FLOPs at the matmul ceiling are a
    floor for the model's time (the convolutions are left out: oneDNN runs the positional
    convolution faster than a matmul of the same FLOPs).
    """
    tokens = num_tokens(num_samples, config.input_patch_size)
    width, ffn = config.encoder_embed_dim, config.encoder_ffn_embed_dim
    per_layer = 4 * tokens * width * width + 2 * tokens * width * ffn  # q, k, v, out, fc1, fc2
    per_layer += 2 * tokens * tokens * width  # q k^T and attention x v
    return 2 * batch * config.encoder_layers * per_layer / 1e9


def training_gflop(config: BEATsConfig, batch: int, num_samples: int, *, layers_only: bool = False) -> float:
    """GFLOP of one training step: the forward pass and a backward pass of twice its work."""
    forward = layers_gflop if layers_only else model_gflop
    return 3 * forward(config, batch, num_samples)


def matmul_gflops(dtype: torch.dtype | None, repeats: int = 5) -> float:
    """Throughput of a 4096 x 4096 float32 matmul, optionally under CPU autocast to ``dtype``."""
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        a @ b
        seconds, _ = best_of(lambda: a @ b, repeats)
    return 2 * 4096**3 / seconds / 1e9
