"""Benchmark of the data pipeline: decode + resample + batch, and dataset validation.

    python3 -m hatch run python bench/data.py                  # pipeline: WAV and MP3, 0 and 2 workers
    python3 -m hatch run python bench/data.py --validate 10000 # also validate 10,000 generated clips

Pipeline: N clips of 5 s, 44.1 kHz stereo (WAV 16-bit, and MP3) go through
AudioDataset(train=True) -> create_dataloader(batch_size=16) -> padded (16, 80000) batches
at 16 kHz mono. Clips per second are counted over whole epochs, worker start-up included
(first epoch) and steady (second epoch, persistent workers).
Generated files are kept in bench/_cache/data (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import testkit  # noqa: E402

from beats_data import AudioDataset, create_dataloader, validate_dataset  # noqa: E402

CACHE = ROOT / "bench" / "_cache" / "data"


def make_clips(extension: str, count: int, seconds: float = 5.0, rate: int = 44100) -> pd.DataFrame:
    folder = CACHE / f"pipeline{extension.replace('.', '_')}"
    rows = []
    for i in range(count):
        path = folder / f"clip{i:04d}{extension}"
        if not path.exists():
            left = testkit.class_sound(i % 10, seconds, rate, seed=i)
            testkit.write_audio(path, np.stack([left, 0.5 * left], axis=1), rate)
        rows.append((str(path), f"class{i % 10}"))
    return pd.DataFrame(rows, columns=["filename", "category"])


def time_pipeline(frame: pd.DataFrame, workers: int, batch_size: int = 16) -> tuple[float, float]:
    dataset = AudioDataset(frame, train=True, max_duration=10.0)
    loader = create_dataloader(
        dataset, batch_size, num_workers=workers, persistent_workers=workers > 0, seed=0
    )
    rates = []
    for _ in range(2):
        start = time.perf_counter()
        clips = sum(batch["waveform"].shape[0] for batch in loader)
        rates.append(clips / (time.perf_counter() - start))
    return rates[0], rates[1]


def bench_validation(count: int, workers: int) -> None:
    folder = CACHE / f"validate{count}"
    rows = []
    generated = 0
    start = time.perf_counter()
    for i in range(count):
        path = folder / f"class{i % 10}" / f"clip{i:05d}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, testkit.class_sound(i % 10, 1.0, 44100, seed=i), 44100, subtype="PCM_16")
            generated += 1
        rows.append((str(path), f"class{i % 10}"))
    if generated:
        print(f"generated {generated} clips of 1 s, 44.1 kHz mono WAV in {time.perf_counter() - start:.1f} s")
    frame = pd.DataFrame(rows, columns=["filename", "category"])
    start = time.perf_counter()
    report = validate_dataset(frame, num_workers=workers, progress=True)
    seconds = time.perf_counter() - start
    print(
        f"validate_dataset: {count} clips (1 s, 44.1 kHz mono WAV), {workers} worker processes: "
        f"{seconds:.1f} s ({count / seconds:.0f} clips/s); ok={report.ok}, "
        f"warnings={[w.code for w in report.warnings]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=240, help="clips per format for the pipeline")
    parser.add_argument(
        "--validate", type=int, default=0, metavar="N", help="also validate N generated clips"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes for validation")
    args = parser.parse_args()
    print(
        f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, dtype float32 unless a row says otherwise"
    )
    torch.set_num_threads(1)
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs; the machine may be shared, so timings are noisy"
    )
    print(f"{'format':<22} {'workers':>7} {'clips/s epoch 1':>16} {'clips/s epoch 2':>16}")
    frames = {}
    for extension, name in ((".wav", "WAV 5 s 44.1k stereo"), (".mp3", "MP3 5 s 44.1k stereo")):
        frames[name] = frame = make_clips(extension, args.clips)
        for workers in (0, 2):
            first, second = time_pipeline(frame, workers)
            print(f"{name:<22} {workers:>7} {first:>16.0f} {second:>16.0f}")
    for name, frame in frames.items():
        start = time.perf_counter()
        validate_dataset(frame, num_workers=args.workers, progress=False)
        seconds = time.perf_counter() - start
        print(f"validate_dataset, {name}, {args.workers} workers: {len(frame) / seconds:.0f} clips/s")
    if args.validate:
        bench_validation(args.validate, args.workers)


if __name__ == "__main__":
    main()
