from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from beats_core import AudioTooShortError, InvalidAudioError
from beats_core.fbank import (
    FBANK_MEAN,
    FBANK_STD,
    compute_fbank,
    mel_filterbank,
    normalize_fbank,
    povey_window,
)
from beats_core.geometry import FRAME_LENGTH, FRAME_SHIFT, num_fbank_frames

LOG_EPSILON = math.log(torch.finfo(torch.float32).eps)  # -15.942385


def _noise(*shape: int, seed: int = 0, scale: float = 0.1) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _kaldi_fbank_float64(wave: np.ndarray) -> np.ndarray:
    """An independent float64 NumPy transcription of Kaldi's fbank (README section 4)."""
    x = wave.astype(np.float64) * 2**15
    count = 1 + (len(x) - FRAME_LENGTH) // FRAME_SHIFT
    frames = np.stack([x[t * FRAME_SHIFT : t * FRAME_SHIFT + FRAME_LENGTH] for t in range(count)])
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames - 0.97 * np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    n = np.arange(FRAME_LENGTH)
    frames = frames * (0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME_LENGTH - 1))) ** 0.85
    power = np.abs(np.fft.rfft(frames, n=512)) ** 2
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    low, high = mel(20.0), mel(8000.0)
    delta = (high - low) / 129
    bins = mel(31.25 * np.arange(256))
    weights = np.zeros((257, 128))
    for m in range(128):
        left, center, right = low + m * delta, low + (m + 1) * delta, low + (m + 2) * delta
        weights[:256, m] = np.maximum(
            0, np.minimum((bins - left) / (center - left), (right - bins) / (right - center))
        )
    return np.log(np.maximum(power @ weights, np.finfo(np.float32).eps))


@pytest.mark.parametrize(("samples", "frames"), [(400, 1), (559, 1), (560, 2), (16000, 98), (160000, 998)])
def test_number_of_frames(samples, frames):
    assert num_fbank_frames(samples) == frames
    assert compute_fbank(torch.zeros(samples)).shape == (frames, 128)


def test_shorter_than_one_frame():
    assert num_fbank_frames(399) == 0
    with pytest.raises(AudioTooShortError, match=r"399 samples .* at least 400 samples .* pad it with zeros"):
        compute_fbank(torch.zeros(2, 399))


def test_bad_inputs_are_refused():
    with pytest.raises(InvalidAudioError, match=r"\(B, N\) or \(N,\)"):
        compute_fbank(torch.zeros(1, 2, 16000))
    with pytest.raises(InvalidAudioError, match="float samples"):
        compute_fbank(torch.zeros(16000, dtype=torch.int16))
    with pytest.raises(InvalidAudioError):
        compute_fbank(np.zeros(16000, dtype=np.float32))


def test_matches_an_independent_float64_transcription():
    wave = _noise(24000, seed=3).numpy()
    ours = compute_fbank(torch.from_numpy(wave)).numpy()
    np.testing.assert_allclose(ours, _kaldi_fbank_float64(wave), rtol=0, atol=2e-3)


def test_silence_and_the_empty_mel_bin():
    fbank = compute_fbank(torch.zeros(2, 16000))
    torch.testing.assert_close(fbank, torch.full_like(fbank, LOG_EPSILON))
    assert normalize_fbank(fbank)[0, 0, 0].item() == pytest.approx(-2.3916929, abs=1e-6)
    noisy = compute_fbank(_noise(16000, seed=1))
    torch.testing.assert_close(noisy[:, 3], torch.full_like(noisy[:, 3], LOG_EPSILON))  # filter 3 has no bin
    assert torch.all(noisy[:, [0, 1, 2, 4]] > LOG_EPSILON)


def test_rows_are_independent_and_padding_is_featurised():
    clips = _noise(3, 20000, seed=2)
    clips[1, 12000:] = 0.0
    batch = compute_fbank(clips)
    for row in range(3):
        torch.testing.assert_close(batch[row], compute_fbank(clips[row]), rtol=0, atol=1e-5)


def test_long_clips_are_processed_in_blocks_without_seams():
    clip = _noise(40 * 16000, seed=4)  # 3998 frames: two CPU blocks
    whole = compute_fbank(clip)
    head = compute_fbank(clip[: 25 * 16000])
    tail = compute_fbank(clip[2040 * FRAME_SHIFT :])
    torch.testing.assert_close(whole[: head.shape[0]], head, rtol=0, atol=1e-5)
    torch.testing.assert_close(whole[2040:], tail, rtol=0, atol=1e-5)


def test_dtypes_and_autocast():
    clip = _noise(2, 8000, seed=5)
    single = compute_fbank(clip)
    assert single.dtype == torch.float32
    double = compute_fbank(clip.double())
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, rtol=0, atol=2e-3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = compute_fbank(clip)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, single, rtol=0, atol=0)
    half = compute_fbank(clip.to(torch.bfloat16))
    assert half.dtype == torch.float32


def test_normalisation_divides_by_twice_the_std():
    fbank = torch.tensor([FBANK_MEAN, FBANK_MEAN + 2 * FBANK_STD])
    assert normalize_fbank(fbank).tolist() == pytest.approx([0.0, 1.0])
    assert normalize_fbank(torch.tensor([1.0]), mean=1.0, std=0.5).item() == 0.0


def test_window_and_filterbank():
    window = povey_window()
    assert window.shape == (400,) and window[0] == 0 and window[-1] == 0
    torch.testing.assert_close(window, window.flip(0))
    assert window.max().item() == pytest.approx(1.0, abs=1e-4)
    mel = mel_filterbank()
    assert mel.shape == (257, 128)
    assert torch.all(mel[256] == 0) and torch.all(mel[:, 3] == 0) and torch.all(mel >= 0)
    assert mel_filterbank() is mel  # cached per device and dtype
    assert mel_filterbank(dtype=torch.float64).dtype == torch.float64


def test_the_fbank_is_differentiable():
    wave = _noise(1, 720, seed=6).double().requires_grad_()
    fbank = compute_fbank(wave)
    assert fbank.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(fbank, compute_fbank(wave))
    weights = torch.randn(fbank.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    assert torch.autograd.gradcheck(
        lambda x: (compute_fbank(x) * weights).sum(), (wave,), eps=1e-7, atol=1e-4
    )


def test_the_fbank_exports_with_a_dynamic_batch_and_length():
    """Under torch.export the fbank runs in one block with the dense filterbank, for any batch and length."""

    class Fbank(torch.nn.Module):
        def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
            return compute_fbank(waveforms)

    auto = torch.export.Dim.AUTO
    program = torch.export.export(
        Fbank(), (_noise(2, 16000),), dynamic_shapes=({0: auto, 1: auto},), strict=False
    )
    # torch's exported program checks the guards of its trace (at least 2 rows and 2 frames); the ONNX
    # graph, which has no such checks, is tested on one row of one time step in tests/extract.
    for batch, length in ((2, 560), (3, 16000), (2, 5 * 16000 + 77)):
        waveforms = _noise(batch, length, seed=length)
        exported = program.module()(waveforms)
        assert exported.shape == (batch, num_fbank_frames(length), 128)
        torch.testing.assert_close(exported, compute_fbank(waveforms), rtol=0, atol=1e-4)
