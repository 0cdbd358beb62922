"""A batched, torch-native, Kaldi-compatible log-mel filterbank: the BEATs preprocessing.

BEATs computes its input features with Kaldi's ``compute-fbank-feats`` settings
(torchaudio's ``compliance.kaldi.fbank`` with 128 mel bins, 25 ms windows every
10 ms, povey window, pre-emphasis 0.97, DC removal, no dither, ``snip_edges``)
on the waveform scaled to the 16-bit range, then normalises it with a global mean
and standard deviation. The official code loops over the clips of a batch on the
CPU; :func:`compute_fbank` does the same arithmetic for a whole padded batch at
once, on whatever device the waveforms are on, without torchaudio.

Every row of a batch is featurised independently over its full length: zero
padding at the end of a row is featurised like signal, exactly as in the
official code. Frame and token geometry helpers (:func:`num_fbank_frames`) are
here so that no caller re-derives them.
"""

from __future__ import annotations

import math

import torch

from beats_core.errors import AudioTooShortError, InvalidAudioError
from beats_core.geometry import FRAME_LENGTH, FRAME_SHIFT, NUM_MEL_BINS, SAMPLE_RATE, num_fbank_frames
from beats_core.tensor_cache import tensor_cache

__all__ = [
    "FBANK_MEAN",
    "FBANK_STD",
    "FFT_SIZE",
    "compute_fbank",
    "mel_filterbank",
    "normalize_fbank",
    "povey_window",
]

#: FFT length: the frame is zero-padded to the next power of two.
FFT_SIZE = 512
#: Official normalisation statistics of the log-mel fbank (AudioSet).
FBANK_MEAN = 15.41663
FBANK_STD = 6.55582

_LOW_FREQ = 20.0
_PREEMPHASIS = 0.97
_INT16_SCALE = 2.0**15
# Kaldi floors the mel energies at float32 epsilon, also when computing in float64.
_EPSILON = torch.finfo(torch.float32).eps


def povey_window(
    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Kaldi's povey window: a symmetric Hann window of 400 samples raised to the power 0.85.

    Args:
        device: where to put it.
        dtype: its floating dtype.

    Returns:
        Tensor of shape (400,). Cached per device and dtype; do not modify it.
    """
    return _window(torch.device(device) if device is not None else torch.device("cpu"), dtype)


def mel_filterbank(
    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Kaldi's 128 triangular mel filters over the 257 bins of a 512-point FFT, transposed.

    The filters are laid out on the mel scale ``1127 ln(1 + f / 700)`` between 20 Hz
    and 8 kHz and computed in float32 as Kaldi does (so filter 3 catches no FFT bin
    at all and mel bin 3 is always at the floor). The Nyquist bin has weight 0.

    Args:
        device: where to put it.
        dtype: its floating dtype (the weights are computed in float32 and cast).

    Returns:
        Tensor of shape (257, 128): ``power_spectrum @ mel_filterbank()`` gives the mel
        energies. Cached per device and dtype; do not modify it.
    """
    return _mel_matrix(torch.device(device) if device is not None else torch.device("cpu"), dtype)


@tensor_cache(maxsize=16)
def _window(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    window = torch.hann_window(FRAME_LENGTH, periodic=False, dtype=dtype).pow(0.85)
    return window.to(device)


@tensor_cache(maxsize=16)
def _mel_matrix(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Kaldi's get_mel_banks, evaluated in float32 in the same order of operations.
    def mel(freq: float) -> float:
        return 1127.0 * math.log(1.0 + freq / 700.0)

    mel_low, mel_high = mel(_LOW_FREQ), mel(SAMPLE_RATE / 2)
    delta = (mel_high - mel_low) / (NUM_MEL_BINS + 1)
    index = torch.arange(NUM_MEL_BINS, dtype=torch.float32).unsqueeze(1)
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    bin_freqs = (SAMPLE_RATE / FFT_SIZE) * torch.arange(FFT_SIZE // 2, dtype=torch.float32)
    bin_mels = (1.0 + bin_freqs / 700.0).log().mul(1127.0).unsqueeze(0)
    up = (bin_mels - left) / (center - left)
    down = (right - bin_mels) / (right - center)
    weights = torch.clamp_min(torch.minimum(up, down), 0.0)  # (128, 256)
    weights = torch.nn.functional.pad(weights, (0, 1))  # Nyquist bin: weight 0
    return weights.t().contiguous().to(device=device, dtype=dtype)


def compute_fbank(waveforms: torch.Tensor) -> torch.Tensor:
    """Raw Kaldi log-mel fbank (128 bins, 25 ms / 10 ms) of a batch of 16 kHz waveforms.

    Equal, within float rounding, to the official
    ``torchaudio.compliance.kaldi.fbank(x * 2**15, num_mel_bins=128,
    sample_frequency=16000, frame_length=25, frame_shift=10)`` applied to each row.
    Runs on the waveforms' device for the whole batch (on the CPU in cache-sized
    blocks of frames); autocast is disabled inside, the features are computed in
    float32 (float64 for float64 input).

    Args:
        waveforms: float tensor of shape (B, N) or (N,), samples in [-1, 1] at 16 kHz.
            Padded rows are featurised over their full length N.

    Returns:
        Tensor of shape (B, T, 128) (or (T, 128) for 1-D input), natural-log mel
        energies floored at float32 epsilon, with ``T = num_fbank_frames(N)``;
        float32 (float64 for float64 input).

    Raises:
        InvalidAudioError: the input is not a 1-D or 2-D floating tensor.
        AudioTooShortError: N is shorter than one frame (400 samples).
    """
    if not isinstance(waveforms, torch.Tensor) or waveforms.dim() not in (1, 2):
        shape = tuple(waveforms.shape) if isinstance(waveforms, torch.Tensor) else type(waveforms).__name__
        raise InvalidAudioError(f"compute_fbank expects waveforms of shape (B, N) or (N,), got {shape}")
    if not waveforms.is_floating_point():
        raise InvalidAudioError(
            f"compute_fbank expects float samples in [-1, 1], got dtype {waveforms.dtype}; "
            "convert integer PCM with x.float() / 32768"
        )
    single = waveforms.dim() == 1
    batch = waveforms.unsqueeze(0) if single else waveforms
    num_samples = batch.shape[-1]
    if num_samples < FRAME_LENGTH:
        raise AudioTooShortError(
            f"a clip of {num_samples} samples is shorter than one fbank frame: at least {FRAME_LENGTH} samples "
            f"({1000 * FRAME_LENGTH // SAMPLE_RATE} ms at 16 kHz) are needed; pad it with zeros"
        )
    dtype = torch.float64 if batch.dtype == torch.float64 else torch.float32
    num_frames = num_fbank_frames(num_samples)
    with torch.autocast(batch.device.type, enabled=False):
        if (torch.is_grad_enabled() and batch.requires_grad) or torch.compiler.is_exporting():
            out = _log_mel(batch.to(dtype))  # in one block: differentiable, and traceable for any length
        else:
            out = torch.empty(batch.shape[0], num_frames, NUM_MEL_BINS, device=batch.device, dtype=dtype)
            for rows, frames in _blocks(batch.shape[0], num_frames, batch.device):
                first = frames.start * FRAME_SHIFT
                last = (frames.stop - 1) * FRAME_SHIFT + FRAME_LENGTH
                _log_mel(batch[rows, first:last].to(dtype), out[rows, frames])
    return out[0] if single else out


# On the CPU the whole pipeline runs on blocks of about this many frames, so that its
# intermediates stay in cache; elsewhere a batch is one block.
_CPU_BLOCK_FRAMES = 2048


def _blocks(num_rows: int, num_frames: int, device: torch.device) -> list[tuple[slice, slice]]:
    if device.type != "cpu":
        return [(slice(0, num_rows), slice(0, num_frames))]
    if num_frames >= _CPU_BLOCK_FRAMES:
        return [
            (slice(row, row + 1), slice(start, min(start + _CPU_BLOCK_FRAMES, num_frames)))
            for row in range(num_rows)
            for start in range(0, num_frames, _CPU_BLOCK_FRAMES)
        ]
    rows_per_block = max(1, _CPU_BLOCK_FRAMES // num_frames)
    return [
        (slice(row, min(row + rows_per_block, num_rows)), slice(0, num_frames))
        for row in range(0, num_rows, rows_per_block)
    ]


def _log_mel(waveforms: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Kaldi fbank of (R, n) waveforms, with Kaldi's order of operations.

    Written into ``out`` (R, T, 128) when given (no autograd); otherwise returned,
    differentiable with respect to the waveforms.
    """
    rows, num_frames = waveforms.shape[0], num_fbank_frames(waveforms.shape[1])
    device, dtype = waveforms.device, waveforms.dtype
    frames = (waveforms * _INT16_SCALE).unfold(-1, FRAME_LENGTH, FRAME_SHIFT)  # (R, T, 400), a view
    centered = frames - frames.mean(dim=-1, keepdim=True)
    # Pre-emphasis y[j] = x[j] - 0.97 x[j-1], the first sample taken against itself, then the
    # window, in a frame zero-padded to the FFT length.
    first = centered[..., :1] - centered[..., :1] * _PREEMPHASIS
    if out is None:
        emphasized = torch.cat([first, centered[..., 1:] - centered[..., :-1] * _PREEMPHASIS], dim=-1)
        padded = torch.nn.functional.pad(emphasized * _window(device, dtype), (0, FFT_SIZE - FRAME_LENGTH))
    else:  # the same arithmetic, written in place
        padded = torch.zeros(rows, num_frames, FFT_SIZE, device=device, dtype=dtype)
        torch.sub(centered[..., 1:], centered[..., :-1] * _PREEMPHASIS, out=padded[..., 1:FRAME_LENGTH])
        padded[..., :1] = first
        padded[..., :FRAME_LENGTH].mul_(_window(device, dtype))
    # Power spectrum as interleaved (re, im) squares; the mel weights are interleaved to match,
    # so each filter sums w * (re^2 + im^2) over its bins.
    spectrum = torch.view_as_real(torch.fft.rfft(padded))
    squares = (spectrum.square() if out is None else spectrum.square_()).flatten(-2)  # (R, T, 514)
    if out is None:
        return _mel_energies(squares).clamp_min(_EPSILON).log()
    for filters, columns, weights in _mel_blocks(device, dtype):
        torch.matmul(squares[..., columns], weights, out=out[..., filters])
    return out.clamp_min_(_EPSILON).log_()


def _mel_energies(squares: torch.Tensor) -> torch.Tensor:
    """Mel energies (R, T, 128) of the interleaved (re, im) squares (R, T, 514) of the spectrum.

    Block by block (:func:`_mel_blocks`); in one product with the whole interleaved matrix
    under export, where the blocks' bounds, read from the filters' values, cannot be traced.
    """
    device, dtype = squares.device, squares.dtype
    if torch.compiler.is_exporting():
        return squares @ _mel_matrix(device, dtype).repeat_interleave(2, dim=0)
    return torch.cat(
        [squares[..., columns] @ weights for _, columns, weights in _mel_blocks(device, dtype)], dim=-1
    )


@tensor_cache(maxsize=16)
def _mel_blocks(device: torch.device, dtype: torch.dtype) -> list[tuple[slice, slice, torch.Tensor]]:
    """The mel matrix cut into 8 blocks of 16 filters, each with only the FFT bins it touches.

    Every filter spans at most a dozen bins, so the blocks skip 95 % of the dense
    matrix's zeros. Rows are interleaved (each weight twice) to apply directly to
    the (re, im) squares of the spectrum.
    """
    dense = _mel_matrix(torch.device("cpu"), dtype)  # (257, 128)
    blocks = []
    for first in range(0, NUM_MEL_BINS, 16):
        filters = slice(first, first + 16)
        touched = dense[:, filters].sum(dim=1).nonzero().flatten()
        low, high = int(touched.min()), int(touched.max()) + 1
        weights = dense[low:high, filters].repeat_interleave(2, dim=0).contiguous().to(device)
        blocks.append((filters, slice(2 * low, 2 * high), weights))
    return blocks


def normalize_fbank(fbank: torch.Tensor, mean: float = FBANK_MEAN, std: float = FBANK_STD) -> torch.Tensor:
    """Normalise a raw fbank as BEATs does: ``(fbank - mean) / (2 * std)``.

    Note the factor 2 on the standard deviation (it is in the official code).

    Args:
        fbank: raw log-mel fbank of any shape, e.g. (B, T, 128).
        mean: the fbank mean (``BEATsConfig.fbank_mean``).
        std: the fbank standard deviation (``BEATsConfig.fbank_std``).

    Returns:
        A new tensor of the same shape and dtype.
    """
    return (fbank - mean) / (2.0 * std)
