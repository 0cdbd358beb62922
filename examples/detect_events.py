"""Find sound events in a long recording: train a small detector, then get a table of detections.

What it shows:

1. a training set of 2 s labelled clips, generated: three kinds of events (birdsong, siren,
   engine) and background noise, one folder per class;
2. training a small BEATs on it from scratch (2 layers, 64 wide: under a minute on a CPU, no
   download), which writes ``best_model.pt``, an official fine-tuned BEATs checkpoint; with
   ``--model BEATs_iter3_plus_AS2M`` the pre-trained model is trained as a linear probe instead;
3. a long recording of background noise with an event planted every 10 s;
4. ``detect_events``: the recording cut into 2 s clips that overlap by 1 s, every clip
   classified alone, the clips of an event class above the threshold joined into events
   (``merge``), written as a CSV table, a Raven Pro selection table, an Audacity label
   track and a heat map of confidence (PNG), one set per recording;
5. the detected events against the planted ones: was each found, at the right time?

Run it::

    python examples/detect_events.py                                  # about a minute on a CPU
    python examples/detect_events.py --recording-seconds 600 --model BEATs_iter3_plus_AS2M

Options: ``--model`` (default ``random:tiny``; or a registered name, downloaded on first use,
a checkpoint file or ``hf-hub:owner/name``), ``--epochs``, ``--clips-per-class``,
``--recording-seconds``, ``--output-dir`` (default ``examples-output/detect_events``).

The same on the command line, once a model is trained (and on a folder of your recordings)::

    beats detect examples-output/detect_events/run/best_model.pt examples-output/detect_events/recording.wav \\
        -o detections --clip-seconds 2 --clip-overlap 1 --classes birdsong,siren,engine --merge \\
        --format csv,raven,audacity --plot

Output (in the output folder): ``data/`` (the training clips), ``run/`` (the training run),
``recording.wav``, ``planted_events.csv`` and ``detections/``: ``detections.csv``,
``recording.wav.detections.csv``, ``recording.wav.selections.txt`` (open it in Raven Pro over the
recording), ``recording.wav.labels.txt`` (File > Import > Labels in Audacity) and
``recording.wav.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile

from beats_data.synthetic import synthesize_clip
from beats_extract import detect_events
from beats_trainer import DEFAULT_MODEL, BeatsError, BEATsTrainer
from beats_trainer.config import TrainingConfig
from beats_trainer.datasets import make_synthetic_dataset

EVENTS = ["birdsong", "siren", "engine"]
#: A small BEATs (2 layers, 64 wide) trained from scratch: under a minute on a CPU, no download.
SMALL_MODEL = "random:tiny"
SAMPLE_RATE = 16000
CLIP_SECONDS, CLIP_OVERLAP = 2.0, 1.0


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a small sound-event detector and find planted events in a long recording.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default=SMALL_MODEL,
        help=f"starting model: {SMALL_MODEL} (default) is trained from scratch, every layer; a pre-trained one "
        f"(e.g. {DEFAULT_MODEL}) is trained as a linear probe",
    )
    parser.add_argument("--epochs", type=int, default=30, help="most epochs to train (default 30)")
    parser.add_argument(
        "--clips-per-class", type=int, default=32, help="training clips per class (default 32)"
    )
    parser.add_argument(
        "--recording-seconds", type=float, default=90.0, help="length of the long recording (default 90)"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("examples-output/detect_events"), help="where results go"
    )
    return parser.parse_args(argv)


def training_config(model: str, epochs: int, output_dir: Path) -> TrainingConfig:
    """A small model from scratch: every layer, a learning rate for that; a pre-trained one: its classifier alone."""
    if model.startswith("random:"):
        return TrainingConfig.preset(
            "fast",
            model=model,
            learning_rate=2e-3,
            layer_wise_gradient_decay_ratio=None,
            encoder_layerdrop=0.0,
            patience=None,
            max_epochs=epochs,
            output_dir=str(output_dir),
            seed=0,
        )
    return TrainingConfig.preset(
        "fast",
        model=model,
        freeze_backbone=True,
        learning_rate=1e-3,
        max_epochs=epochs,
        output_dir=str(output_dir),
        seed=0,
    )


def background(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Quiet pink-ish noise (about -40 dBFS): what the recorder hears between events."""
    white = rng.standard_normal(round(seconds * SAMPLE_RATE))
    spectrum = np.fft.rfft(white) / np.sqrt(np.maximum(np.arange(len(white) // 2 + 1), 1.0))
    noise = np.fft.irfft(spectrum, len(white))
    return (0.01 * noise / noise.std()).astype(np.float32)


def make_training_data(folder: Path, clips_per_class: int) -> None:
    """Two-second clips: the event classes (generated) and a ``background`` class of noise alone."""
    make_synthetic_dataset(
        folder, classes=EVENTS, clips_per_class=clips_per_class, min_seconds=2.0, max_seconds=2.0
    )
    rng = np.random.default_rng(1)
    (folder / "background").mkdir(parents=True, exist_ok=True)
    for index in range(clips_per_class):
        clip = background(2.0, rng) * rng.uniform(0.3, 3.0)
        soundfile.write(folder / "background" / f"background_{index:03d}.wav", clip, SAMPLE_RATE)


def make_recording(path: Path, seconds: float) -> pd.DataFrame:
    """Background noise with an event every 10 s (the classes in turn, 4 to 6 s long); returns where they are."""
    rng = np.random.default_rng(2)
    audio = background(seconds, rng)
    planted = []
    for number, start in enumerate(np.arange(8.0, seconds - 10.0, 10.0)):
        name = EVENTS[number % len(EVENTS)]
        length = float(rng.uniform(4.0, 6.0))
        event = synthesize_clip(name, length, sample_rate=SAMPLE_RATE, seed=100 + number)
        first = round(start * SAMPLE_RATE)
        audio[first : first + len(event)] += event
        planted.append({"label": name, "start": start, "end": start + length})
    soundfile.write(path, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return pd.DataFrame(planted)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = args.output_dir

    # 1. Training clips: data/<class>/<file>.wav, the layout `beats train` reads.
    data = output / "data"
    print(
        f"Generating {args.clips_per_class} clips per class of {', '.join(EVENTS)} and background in {data}"
    )
    make_training_data(data, args.clips_per_class)

    # 2. Train: a small BEATs from scratch (or a pre-trained one as a linear probe). The
    #    run writes best_model.pt, an official fine-tuned BEATs checkpoint.
    config = training_config(args.model, args.epochs, output / "run")
    trainer = BEATsTrainer.from_directory(data, config=config, batch_size=8, max_duration=CLIP_SECONDS)
    results = trainer.train()
    checkpoint = results.paths["best_model"]
    accuracy = (results.test_metrics or results.val_metrics)["accuracy"]
    print(f"trained: best epoch {results.best_epoch}, test accuracy {accuracy:.3f}, model {checkpoint}")

    # 3. The long recording, with events at times we know.
    recording = output / "recording.wav"
    planted = make_recording(recording, args.recording_seconds)
    planted.to_csv(output / "planted_events.csv", index=False)
    print(f"recording: {recording} ({args.recording_seconds:g} s, {len(planted)} events planted)")

    # 4. Detections: every 2 s clip (1 s apart) classified alone; only the event classes (the
    #    background class is what the model says between events); clips joined into events.
    detections = detect_events(
        checkpoint,
        [recording],
        output / "detections",
        clip_seconds=CLIP_SECONDS,
        clip_overlap=CLIP_OVERLAP,
        min_confidence=0.5,
        classes=EVENTS,
        merge=True,
        formats=("csv", "raven", "audacity"),
        plot=True,
    )
    print(f"\n{len(detections)} event(s) detected, written to {output / 'detections'}:")
    print(detections[["start", "end", "label", "confidence"]].to_string(index=False))

    # 5. Each planted event is found if an event of its class overlaps it; a detection that
    #    overlaps no planted event of its class is a false alarm.
    print("\nplanted events:")
    found = 0
    for event in planted.itertuples():
        hits = detections[
            (detections["label"] == event.label)
            & (detections["start"] < event.end)
            & (detections["end"] > event.start)
        ]
        found += not hits.empty
        where = (
            ", ".join(f"{h.start:g}-{h.end:g} s ({h.confidence:.2f})" for h in hits.itertuples()) or "missed"
        )
        print(f"  {event.label:<9} {event.start:6.1f}-{event.end:5.1f} s   detected: {where}")
    false_alarms = sum(
        not ((planted["label"] == d.label) & (planted["start"] < d.end) & (planted["end"] > d.start)).any()
        for d in detections.itertuples()
    )
    print(f"\nfound {found} of {len(planted)} planted events; {false_alarms} false alarm(s)")
    print(f"heat map: {output / 'detections' / 'recording.wav.png'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BeatsError as error:  # bad data or settings: one clear line, no traceback
        sys.exit(f"error: {error}")
