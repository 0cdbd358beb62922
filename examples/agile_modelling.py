"""Agile modelling: from one example sound to a detector over a whole archive, embedding it once.

The loop (as Perch Hoplite users know it), with the ``beats`` commands it runs:

1. an archive of long recordings, generated: background noise with sounds planted at known
   times (birdsong, siren, engine), ``planted_events.csv``;
2. ``beats extract ARCHIVE -o STORE --clip-seconds 5``: every 5 s clip embedded once into a
   store (Parquet parts, resumable);
3. ``beats search STORE REC@START-END -k 40 -o hits.csv``: the clips most like one example
   of the sound we look for (a clip of the store: no audio is decoded again);
4. labelling: the ``label`` column of ``hits.csv`` filled in, here from the generator's
   ground truth (``birdsong`` or ``other``), as a person would by listening;
5. ``beats train hits.csv --freeze-backbone --embeddings STORE``: a linear probe trained on the
   stored embeddings of the labelled clips (seconds: the encoder does not run), written as
   ``best_model.pt``, an official fine-tuned BEATs checkpoint;
6. ``beats detect best_model.pt --embeddings STORE``: every clip of the archive classified from
   the store (the encoder does not run either);
7. the detections against the ground truth: precision and recall of the clips with the sound.

Run it::

    python examples/agile_modelling.py                                 # a minute on a CPU
    python examples/agile_modelling.py --model BEATs_iter3_plus_AS2M --recordings 20

Options: ``--model`` (default ``small``: a small BEATs, 2 layers 64 wide, trained from scratch
for half a minute on generated sounds of every class but the target, standing in for a
pre-trained model; or a registered name, downloaded on first use, a checkpoint file or
``hf-hub:owner/name``), ``--recordings``, ``--recording-seconds``, ``--top``
(hits to label), ``--target`` (the sound to find), ``--output-dir`` (default
``examples-output/agile_modelling``).

Output (in the output folder): ``pretraining/`` (the small encoder), ``archive/`` (the recordings), ``planted_events.csv``,
``store/``, ``hits.csv`` (labelled), ``run/`` (the probe's run folder) and ``detections/``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile

from beats_core import BeatsError
from beats_core.cli import main as beats
from beats_data.synthetic import SYNTHETIC_CLASSES, synthesize_clip
from beats_trainer import BEATsTrainer
from beats_trainer.config import TrainingConfig
from beats_trainer.datasets import make_synthetic_dataset

EVENTS = ["birdsong", "siren", "engine"]
SAMPLE_RATE = 16000
CLIP_SECONDS = 5.0
#: A small BEATs (2 layers, 64 wide) trained for half a minute on generated sounds of the other
#: classes stands in for a pre-trained model: the example runs in a minute with no download.
SMALL_MODEL = "small"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Find a sound in an archive from one example: embed, search, label, probe, detect.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=SMALL_MODEL, help=f"the encoder (default {SMALL_MODEL})")
    parser.add_argument("--recordings", type=int, default=5, help="recordings in the archive (default 5)")
    parser.add_argument(
        "--recording-seconds", type=float, default=120.0, help="length of each recording (default 120)"
    )
    parser.add_argument("--top", type=int, default=40, help="search hits to label (default 40)")
    parser.add_argument("--target", default="birdsong", choices=EVENTS, help="the sound to find")
    parser.add_argument(
        "--output-dir", type=Path, default=Path("examples-output/agile_modelling"), help="where results go"
    )
    return parser.parse_args(argv)


def run(*arguments: str) -> None:
    """Run one ``beats`` command, shown as it would be typed; stop on an error."""
    print(f"\n$ beats {shlex.join(arguments)}", flush=True)
    started = time.perf_counter()
    status = beats(list(arguments))
    if status != 0:
        raise SystemExit(f"beats {arguments[0]} failed (exit status {status})")
    print(f"  ({time.perf_counter() - started:.1f} s)")


def background(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Quiet pink-ish noise (about -40 dBFS) whose level drifts: what a recorder hears between events."""
    white = rng.standard_normal(round(seconds * SAMPLE_RATE))
    spectrum = np.fft.rfft(white) / np.sqrt(np.maximum(np.arange(len(white) // 2 + 1), 1.0))
    noise = np.fft.irfft(spectrum, len(white))
    level = np.interp(np.arange(len(noise)), [0, len(noise) - 1], rng.uniform(0.5, 2.0, 2))
    return (0.01 * level * noise / noise.std()).astype(np.float32)


def make_archive(folder: Path, recordings: int, seconds: float) -> pd.DataFrame:
    """Recordings with a sound planted in about a third of their 5 s clips, inside the clip; where they are."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    planted = []
    for number in range(recordings):
        path = folder / f"site{number:02d}.wav"
        audio = background(seconds, rng)
        for start in np.arange(0.0, seconds - CLIP_SECONDS + 1e-9, CLIP_SECONDS):
            if rng.random() > 0.35:
                continue
            name = EVENTS[rng.integers(len(EVENTS))]
            length = float(rng.uniform(2.5, 4.5))
            onset = start + float(rng.uniform(0.0, CLIP_SECONDS - length))
            sound = synthesize_clip(name, length, sample_rate=SAMPLE_RATE, seed=int(rng.integers(1 << 30)))
            first = round(onset * SAMPLE_RATE)
            audio[first : first + len(sound)] += sound
            planted.append(
                {"path": str(path), "clip_start": start, "label": name, "start": onset, "end": onset + length}
            )
        soundfile.write(path, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return pd.DataFrame(planted)


def pretrain_small_encoder(folder: Path, target: str) -> str:
    """A small BEATs trained from scratch to tell apart generated sounds of every class but ``target``.

    It has never heard the target sound: like a pre-trained model, it only knows sounds. Returns
    its checkpoint (its head is not used: the probe trains its own).
    """
    classes = [name for name in SYNTHETIC_CLASSES if name != target]
    make_synthetic_dataset(
        folder / "data", classes=classes, clips_per_class=24, min_seconds=2.0, max_seconds=2.0
    )
    config = TrainingConfig.preset(
        "fast",
        model="random:tiny",
        learning_rate=2e-3,
        layer_wise_gradient_decay_ratio=None,
        encoder_layerdrop=0.0,
        patience=None,
        max_epochs=20,
        output_dir=str(folder / "run"),
        seed=0,
        progress=False,
    )
    print(f"training a small encoder on {', '.join(classes)} (it never hears a {target})")
    trainer = BEATsTrainer.from_directory(folder / "data", config=config, batch_size=8, max_duration=2.0)
    return str(trainer.train(overwrite=True).paths["best_model"])


def truth(planted: pd.DataFrame, target: str) -> set[tuple[str, float]]:
    """The clips (path, start) that hold the target sound."""
    rows = planted[planted["label"] == target]
    return {(path, round(start, 3)) for path, start in zip(rows["path"], rows["clip_start"], strict=True)}


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = args.output_dir.resolve()
    output.mkdir(parents=True, exist_ok=True)

    # The encoder every step uses (the store records its fingerprint and refuses another).
    encoder = (
        pretrain_small_encoder(output / "pretraining", args.target)
        if args.model == SMALL_MODEL
        else args.model
    )

    # 1. The archive, with the ground truth.
    archive = output / "archive"
    planted = make_archive(archive, args.recordings, args.recording_seconds)
    planted.to_csv(output / "planted_events.csv", index=False)
    positives = truth(planted, args.target)
    hours = args.recordings * args.recording_seconds / 3600
    print(
        f"archive: {args.recordings} recordings, {hours * 60:.0f} min; {len(planted)} sounds planted, "
        f"{len(positives)} clips hold a {args.target}"
    )

    # 2. Embed every 5 s clip once.
    store = output / "store"
    run(
        "extract",
        str(archive),
        "-o",
        str(store),
        "--model",
        encoder,
        "--clip-seconds",
        f"{CLIP_SECONDS:g}",
        "--dtype",
        "float32",
        "--overwrite",
        "--no-progress",
    )

    # 3. Search with one example: the first clip that holds the target sound.
    example = planted[planted["label"] == args.target].iloc[0]
    query = f"{example['path']}@{example['clip_start']:g}-{example['clip_start'] + CLIP_SECONDS:g}"
    hits_file = output / "hits.csv"
    run(
        "search",
        str(store),
        query,
        "-k",
        str(args.top),
        "-o",
        str(hits_file),
        "--model",
        encoder,
        "--dtype",
        "float32",
    )

    # 4. Label the hits (here from the ground truth; by ear in real life).
    hits = pd.read_csv(hits_file)
    found = [
        (path, round(start, 3)) in positives for path, start in zip(hits["path"], hits["start"], strict=True)
    ]
    hits["label"] = np.where(found, args.target, "other")
    hits.to_csv(hits_file, index=False)
    print(f"labelled {len(hits)} hits: {sum(found)} {args.target}, {len(hits) - sum(found)} other")

    # 5. A linear probe on the stored embeddings of the labelled clips. Every labelled clip
    #    trains (few labels: none is held out; the whole archive is the test in step 7).
    run_folder = output / "run"
    probe_config = output / "probe.yaml"
    probe_config.write_text(
        "data:\n  train_split: 1.0\n  val_split: 0.0\n  test_split: 0.0\n"
        "training:\n  max_epochs: 100\n  learning_rate: 0.01\n  mixed_precision: 'no'\n  seed: 0\n"
    )
    run(
        "train",
        str(hits_file),
        "--config",
        str(probe_config),
        "--model",
        encoder,
        "--freeze-backbone",
        "--embeddings",
        str(store),
        "--max-duration",
        f"{CLIP_SECONDS:g}",
        "--batch-size",
        "8",
        "--output-dir",
        str(run_folder),
        "--overwrite",
        "--no-progress",
    )

    # 6. Every clip of the archive classified from the store.
    detections_folder = output / "detections"
    run(
        "detect",
        str(run_folder / "best_model.pt"),
        "--embeddings",
        str(store),
        "-o",
        str(detections_folder),
        "--classes",
        args.target,
        "--min-confidence",
        "0.5",
        "--no-progress",
    )

    # 7. Against the ground truth, clip by clip.
    detections = pd.read_csv(detections_folder / "detections.csv")
    detected = {
        (path, round(start, 3)) for path, start in zip(detections["path"], detections["start"], strict=True)
    }
    true_positives = len(detected & positives)
    precision = true_positives / len(detected) if detected else 0.0
    recall = true_positives / len(positives) if positives else 0.0
    total_clips = round(args.recordings * args.recording_seconds / CLIP_SECONDS)
    print(
        f"\n{len(detected)} of {total_clips} clips detected as {args.target}, {true_positives} of them right"
    )
    print(f"precision {precision:.3f}  recall {recall:.3f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BeatsError as error:  # bad data or settings: one clear line, no traceback
        sys.exit(f"error: {error}")
