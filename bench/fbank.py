"""Benchmark: batched fbank (beats_core.compute_fbank) against the official clip-by-clip path.

The official BEATs preprocessing calls torchaudio's ``compliance.kaldi.fbank`` on
each clip of a batch in turn. torchaudio is loaded from its wheel through a
stand-in package (see bench/_official.py). Both run side by side in this process
on the same random clips; each timing is the best of several repeats, because
the machine is shared.

It also times the two steps no implementation can skip, each alone and at its
fastest: the 512-point real FFT of every frame and the natural log of every mel
energy, both on one cache-resident block of 2048 frames processed as many times as
the batch has blocks. The official time divided by that floor bounds the speed-up
any fbank built on torch's FFT can reach on this machine.

    python3 -m hatch run python bench/fbank.py [--clips 32] [--seconds 10] [--repeats 7]
"""

from __future__ import annotations

import argparse

import torch
from _official import best_of, kaldi_module

from beats_core.fbank import FFT_SIZE, compute_fbank
from beats_core.geometry import NUM_MEL_BINS, num_fbank_frames

# Parity tolerance for raw fbank values (tests/reference/README.md, section 7).
RAW_ATOL = 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(
        f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, dtype float32 unless a row says otherwise"
    )

    kaldi = kaldi_module()
    generator = torch.Generator().manual_seed(0)
    waves = 0.1 * torch.randn(args.clips, int(args.seconds * 16000), generator=generator)

    def official() -> torch.Tensor:
        return torch.stack(
            [
                kaldi.fbank(
                    wave.unsqueeze(0) * 2**15,
                    num_mel_bins=128,
                    sample_frequency=16000,
                    frame_length=25,
                    frame_shift=10,
                )
                for wave in waves
            ]
        )

    def ours() -> torch.Tensor:
        return compute_fbank(waves)

    blocks = -(-args.clips * num_fbank_frames(waves.shape[1]) // 2048)
    frames = torch.randn(2048, FFT_SIZE, generator=generator)
    spectrum = torch.empty(2048, FFT_SIZE // 2 + 1, dtype=torch.complex64)
    energies, logs = (
        torch.rand(2048, NUM_MEL_BINS, generator=generator) + 1.0,
        torch.empty(2048, NUM_MEL_BINS),
    )

    def fft_alone() -> None:
        for _ in range(blocks):
            torch.fft.rfft(frames, out=spectrum)

    def log_alone() -> None:
        for _ in range(blocks):
            torch.log(energies, out=logs)

    official(), ours(), fft_alone(), log_alone()  # warm-up: caches, allocator, FFT plans
    fft_floor = best_of(fft_alone, args.repeats)[0] + best_of(log_alone, args.repeats)[0]
    times = {"official": float("inf"), "ours": float("inf")}
    results = {}
    for _ in range(args.repeats):  # interleaved, so both see the same load
        for name, fn in (("official", official), ("ours", ours)):
            seconds, results[name] = best_of(fn, 1)
            times[name] = min(times[name], seconds)
    diff = (results["official"] - results["ours"]).abs().max().item()

    print(
        f"fbank of {args.clips} clips x {args.seconds:g} s, {torch.get_num_threads()} threads, "
        f"best of {args.repeats}"
    )
    print(f"{'path':34s} {'ms/batch':>9s} {'clips/s':>9s} {'speed-up':>9s}")
    for name, label in (
        ("official", "official (kaldi.fbank per clip)"),
        ("ours", "beats_core.compute_fbank"),
    ):
        ms = 1000 * times[name]
        print(
            f"{label:34s} {ms:9.1f} {args.clips / times[name]:9.0f} {times['official'] / times[name]:8.1f}x"
        )
    print(
        f"{'FFT + log alone (floor)':34s} {1000 * fft_floor:9.1f} {args.clips / fft_floor:9.0f} "
        f"{times['official'] / fft_floor:8.1f}x  (no fbank on torch's FFT can be faster)"
    )
    verdict = "within" if diff <= RAW_ATOL else "OUTSIDE"
    print(f"max |ours - official| = {diff:.2e} (raw log-mel; {verdict} the parity tolerance {RAW_ATOL:g})")


if __name__ == "__main__":
    main()
