"""Benchmark: a linear probe on stored embeddings against today's ``freeze_backbone`` loop, in one process.

The data has ESC-50's shape: 50 classes, 5 s clips, five folds (fold 5 is the test set; the
validation set is carved out of folds 1-4), generated: class ``k`` is a chord of two tones
(its own pair of frequencies) over one of beats-data's synthetic sounds and noise, every
clip different. The model is BEATs base with random weights (``--size``; written to a
checkpoint file so that the store can check it is the encoder trained). Three runs of
``BEATsTrainer`` with the same settings (``freeze_backbone``, ``--epochs`` epochs, no
augmentation, no early stopping, seed 0, ``mixed_precision="auto"``):

1. the loop: the frozen encoder runs on every clip in every epoch (training, validation);
2. the probe, first run: every clip embedded once into an empty store, then the head trained
   in memory;
3. the probe, second run on the filled store: nothing embedded.

It prints the CPU capability, the precision, the number of clips, the wall time of each run,
the speed-ups of the probe runs over the loop and the test accuracies (the probe trains on
what the loop computes, so they should agree; they are not bit-equal: the loop's batches
are decoded and padded differently). A run of base size on 2 cores takes minutes per epoch
of the loop: ``--loop-epochs N`` runs the loop for N epochs only and adds ``epochs - N``
times its mean epoch time (from its ``metrics.csv``) to its wall time; the output says so, and
the accuracies are then not compared. ``--clips-per-class`` sets the size (default 5: 250
clips, one per class and fold).

    python3 -m hatch run python bench/probe.py --loop-epochs 2     # base, 250 clips, 30 epochs
    python3 -m hatch run python bench/probe.py --size tiny         # every run 30 epochs
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch

from beats_core import create_model, save_checkpoint
from beats_core.devices import resolve_dtype
from beats_data.synthetic import SYNTHETIC_CLASSES, synthesize_clip
from beats_train import BEATsTrainer, TrainingConfig

SAMPLE_RATE = 16000
CLIP_SECONDS = 5.0
CLASSES = 50
FOLDS = 5


def class_clip(k: int, number: int) -> np.ndarray:
    """A 5 s clip of class ``k``: its two tones over a synthetic sound and noise (a new variation per ``number``)."""
    rng = np.random.default_rng(1000 * k + number)
    t = np.arange(round(CLIP_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    low, high = 150.0 * 1.06**k, 150.0 * 1.06 ** (k + 17)
    phase = rng.uniform(0, 2 * np.pi, 2)
    chord = 0.15 * np.sin(2 * np.pi * low * t + phase[0]) + 0.1 * np.sin(2 * np.pi * high * t + phase[1])
    sounds = list(SYNTHETIC_CLASSES)
    texture = synthesize_clip(sounds[k % len(sounds)], CLIP_SECONDS, sample_rate=SAMPLE_RATE, seed=rng)
    return np.clip(chord * rng.uniform(0.5, 1.5) + 0.5 * texture, -1, 1).astype(np.float32)


def make_dataset(folder: Path, clips_per_class: int) -> pd.DataFrame:
    """ESC-50's table: filename, category, fold (clip ``i`` of a class in fold ``i % 5 + 1``)."""
    rows = []
    for k in range(CLASSES):
        for number in range(clips_per_class):
            path = folder / f"{k:02d}-{number:03d}.wav"
            soundfile.write(path, class_clip(k, number), SAMPLE_RATE, subtype="PCM_16")
            rows.append({"filename": str(path), "category": f"class{k:02d}", "fold": number % FOLDS + 1})
    return pd.DataFrame(rows)


def run(
    frame: pd.DataFrame, model: Path, output: Path, epochs: int, store: Path | None
) -> tuple[float, dict]:
    """One training run; its wall time and its results."""
    config = TrainingConfig(
        model=str(model),
        freeze_backbone=True,
        embeddings=None if store is None else str(store),
        max_epochs=epochs,
        patience=None,
        learning_rate=5e-3,
        seed=0,
        output_dir=str(output),
        progress=False,
    )
    trainer = BEATsTrainer.from_dataframe(
        frame, config=config, batch_size=8, test_fold=FOLDS, max_duration=CLIP_SECONDS, validate=False
    )
    started = time.perf_counter()
    results = trainer.train()
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size", default="base", choices=["tiny", "base"], help="model size (random weights)"
    )
    parser.add_argument(
        "--clips-per-class", type=int, default=5, help="clips per class (default 5: 250 clips)"
    )
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every run (default 30)")
    parser.add_argument(
        "--loop-epochs", type=int, help="run the loop for this many epochs and extrapolate to --epochs"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    capability = torch.backends.cpu.get_cpu_capability()
    precision = resolve_dtype("auto", torch.device("cpu"))
    print(f"CPU capability: {capability}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    print(f"precision: mixed_precision='auto' -> {precision}")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "audio").mkdir()
        frame = make_dataset(scratch / "audio", args.clips_per_class)
        torch.manual_seed(0)
        model = save_checkpoint(create_model(f"random:{args.size}"), scratch / "encoder.pt")
        print(
            f"data: {len(frame)} clips of {CLIP_SECONDS:g} s, {CLASSES} classes, {FOLDS} folds (test fold {FOLDS}); "
            f"model: BEATs {args.size}, random weights; {args.epochs} epochs, batch 8, no augmentation"
        )

        loop_epochs = args.epochs if args.loop_epochs is None else min(args.loop_epochs, args.epochs)
        seconds, results = run(frame, model, scratch / "loop", loop_epochs, None)
        measured = seconds
        if loop_epochs < args.epochs:
            seconds += (args.epochs - loop_epochs) * float(results.history["seconds"].mean())
        loop_accuracy = results.test_metrics["accuracy"]
        note = (
            f"  (ran {loop_epochs} epochs in {measured:.1f} s; {args.epochs} extrapolated from its mean epoch time)"
            if loop_epochs < args.epochs
            else ""
        )
        print(
            f"{'loop (encoder every epoch)':<34} {seconds:9.1f} s   test accuracy {loop_accuracy:.4f}{note}",
            flush=True,
        )
        loop = seconds
        lines = []
        for number, name in enumerate(("probe, first run (embeds)", "probe, second run (store filled)")):
            seconds, results = run(frame, model, scratch / f"probe{number}", args.epochs, scratch / "store")
            accuracy = results.test_metrics["accuracy"]
            stored = results.embeddings
            print(
                f"{name:<34} {seconds:9.1f} s   test accuracy {accuracy:.4f}  (embedded "
                f"{stored['recordings_embedded']}, reused {stored['recordings_reused']})",
                flush=True,
            )
            difference = (
                f"; accuracy difference {accuracy - loop_accuracy:+.4f}" if loop_epochs == args.epochs else ""
            )
            lines.append(f"{name:<34} {loop / seconds:7.1f}x faster than the loop{difference}")
        print()
        print("\n".join(lines))


if __name__ == "__main__":
    main()
