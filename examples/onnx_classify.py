"""Classify audio files with a BEATs model exported to ONNX: onnxruntime, numpy and soundfile only.

This is what runs on a field computer, a small server or a laptop without torch or beats
installed. Export a fine-tuned checkpoint once, on any machine with beats (a model from
``beats train``, or an official fine-tuned file such as
``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``)::

    beats export finetuned.pt -o classifier.onnx                       # float32
    beats export finetuned.pt -o classifier_int8.onnx --quantize int8  # 3.4x smaller

then, where the files are (``pip install onnxruntime numpy soundfile``)::

    python examples/onnx_classify.py classifier.onnx recording.wav more/*.flac [--top 5]

What it shows:

1. the graph's metadata (``beats.*`` entries of ``metadata_props``): its labels, what it returns,
   the sample rate it expects and the shortest input it takes;
2. reading a file with soundfile, mixing it to mono and resampling it to 16 kHz in numpy with a
   windowed-sinc interpolator (32 input samples per output sample, Hann window, cut-off at the
   lower Nyquist frequency: band-limited, unlike linear interpolation);
3. cutting files longer than ``--window-seconds`` (10 s, what AudioSet models are trained on)
   into windows, and padding them into batches with the length of each row: a padded row gives
   what its clip alone gives;
4. running the graph and printing the top labels of each file (for a file of several windows,
   the mean of the windows' probabilities weighted by their lengths).

Output: for each file, its path and its ``--top`` labels with their probabilities.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import soundfile

INTERPOLATION_HALF_WIDTH = 16  # input samples on each side of an output sample


def read_metadata(session: onnxruntime.InferenceSession) -> dict:
    """The ``beats.*`` metadata of an exported graph, decoded (labels as a list)."""
    props = session.get_modelmeta().custom_metadata_map
    if "beats.kind" not in props:
        sys.exit("this ONNX file was not written by `beats export`")
    meta = {key.removeprefix("beats."): value for key, value in props.items() if key.startswith("beats.")}
    meta["labels"] = json.loads(meta["labels"])
    for key in ("sample_rate", "min_samples", "output_dim"):
        meta[key] = int(meta[key])
    return meta


def resample(signal: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample a 1-D signal from ``rate`` to ``target`` Hz with a Hann-windowed sinc interpolator."""
    if rate == target:
        return signal
    ratio = target / rate
    cutoff = min(1.0, ratio)  # of the input's Nyquist frequency: below both Nyquist frequencies
    num_out = math.floor(len(signal) * ratio)
    offsets = np.arange(-INTERPOLATION_HALF_WIDTH + 1, INTERPOLATION_HALF_WIDTH + 1)
    padded = np.pad(signal.astype(np.float64), INTERPOLATION_HALF_WIDTH)
    out = np.empty(num_out, dtype=np.float32)
    for start in range(0, num_out, 65536):  # in chunks: memory stays bounded for long files
        positions = np.arange(start, min(start + 65536, num_out)) / ratio  # in input samples
        nearest = np.floor(positions).astype(np.int64)
        taps = nearest[:, None] + offsets[None, :]  # (chunk, 32) input indices
        distance = positions[:, None] - taps
        window = 0.5 + 0.5 * np.cos(np.pi * distance / INTERPOLATION_HALF_WIDTH)
        weights = cutoff * np.sinc(cutoff * distance) * window
        out[start : start + len(positions)] = (padded[taps + INTERPOLATION_HALF_WIDTH] * weights).sum(axis=1)
    return out


def load(path: Path, sample_rate: int) -> np.ndarray:
    """A file's samples, mixed to mono, at ``sample_rate``, float32 in [-1, 1]."""
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return resample(samples.mean(axis=1), rate, sample_rate)


def windows(signal: np.ndarray, window: int) -> list[np.ndarray]:
    """Consecutive windows of at most ``window`` samples (one for a shorter signal)."""
    return [signal[start : start + window] for start in range(0, max(len(signal), 1), window)]


def classify(
    session: onnxruntime.InferenceSession, clips: list[np.ndarray], min_samples: int, batch_size: int
) -> np.ndarray:
    """The graph's output for each clip, run in zero-padded batches with the length of each row."""
    outputs = []
    for start in range(0, len(clips), batch_size):
        chunk = clips[start : start + batch_size]
        lengths = np.array([max(len(clip), 1) for clip in chunk], dtype=np.int64)
        batch = np.zeros((len(chunk), max(int(lengths.max()), min_samples)), dtype=np.float32)
        for row, clip in enumerate(chunk):
            batch[row, : len(clip)] = clip
        outputs.append(session.run(None, {"waveforms": batch, "lengths": lengths})[0])
    return np.concatenate(outputs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="an .onnx file written by `beats export` from a fine-tuned model")
    parser.add_argument(
        "files", nargs="+", help="audio files (anything soundfile reads: WAV, FLAC, OGG, ...)"
    )
    parser.add_argument("--top", type=int, default=3, help="labels to print per file (default: 3)")
    parser.add_argument(
        "--window-seconds", type=float, default=10.0, help="longer files are cut into windows"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="windows per run of the graph")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (default: its choice)")
    args = parser.parse_args()

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = onnxruntime.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    meta = read_metadata(session)
    if meta["kind"] != "probabilities":
        sys.exit(f"{args.model} returns {meta['kind']}, not class probabilities: export a fine-tuned model")
    labels = meta["labels"] or [f"class {k}" for k in range(meta["output_dim"])]
    precision = "float32" if meta["quantize"] == "none" else meta["quantize"]
    print(f"{args.model}: {len(labels)} classes, {precision} weights, exported from {meta['model']}")

    window = round(args.window_seconds * meta["sample_rate"])
    pieces, owners = [], []
    for index, name in enumerate(args.files):
        for piece in windows(load(Path(name), meta["sample_rate"]), window):
            pieces.append(piece)
            owners.append(index)
    probabilities = classify(session, pieces, meta["min_samples"], args.batch_size)
    weights = np.array([max(len(piece), 1) for piece in pieces], dtype=np.float64)
    owners = np.array(owners)
    for index, name in enumerate(args.files):
        mine = owners == index
        mean = np.average(probabilities[mine], axis=0, weights=weights[mine])
        print(name)
        for rank, k in enumerate(np.argsort(-mean)[: args.top], start=1):
            print(f"  {rank}. {mean[k]:.4f}  {labels[k]}")


if __name__ == "__main__":
    main()
