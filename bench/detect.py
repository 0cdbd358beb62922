"""Benchmark: detections over a long recording, against extracting the same clips; and from a store.

    python3 -m hatch run python bench/detect.py [--minutes 60] [--batch-size 8] [--repeats 2]
        [--dtype auto] [--store-hours 20] [--skip-speed] [--skip-store] [--skip-memory]

The checkpoint is the base size (``BEATsConfig.base()``, random weights from seed 0) with a random
head of 527 classes labelled with AudioSet's ids (scaled so that, as with an AudioSet model, a few
classes per clip reach 0.1), saved as an official fine-tuned checkpoint;
the recording is ``--minutes`` of generated sounds (16 kHz mono WAV). Both are kept in
bench/_cache/detect (git-ignored). On the CPU, in this process, one after the other, ``--repeats``
times (each figure is the best run):

* extract: ``BEATsFeatureExtractor(model, pooling="mean", clip_seconds=10).extract_from_file``,
  the clip embeddings detection needs (10 s clips, no overlap);
* detect: ``detect_events(classifier, [recording], OUT_DIR)`` with the same clips, batch size and
  precision: the same extraction, the head, the threshold and the tables written to disk.
  Detection should run at 90 % or more of extraction's speed;
* store: the extracted clips written into a store ``--store-hours`` long (the recording's
  clips under many names), then ``detect_events(classifier, embeddings=STORE, out_dir=...)``
  (reading the store, checking it fits the checkpoint, classifying, writing the tables): clips
  classified per second without running the model; and, apart, loading the checkpoint.

Then memory, in a fresh process: the peak resident memory above the loaded model while detecting
in the recording (the kernel's high-water mark, reset once the model is loaded).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import testkit  # noqa: E402
from _memory import current_rss, peak_rss, reset_peak_rss  # noqa: E402

from beats_core import BEATs, BEATsConfig, save_checkpoint  # noqa: E402
from beats_core.audioset import audioset_classes  # noqa: E402
from beats_core.devices import resolve_dtype  # noqa: E402
from beats_extract import BEATsFeatureExtractor, ClipClassifier, detect_events  # noqa: E402
from beats_extract.archive import store_settings  # noqa: E402
from beats_extract.store import EmbeddingStore, finish_store, prepare_store  # noqa: E402

CACHE = ROOT / "bench" / "_cache" / "detect"
CLIP_SECONDS = 10.0


def checkpoint() -> Path:
    """BEATs base with a random 527-class head and AudioSet's ids as labels (built once).

    The head's logits spread like an AudioSet model's: a few classes per clip reach 0.1.
    """
    path = CACHE / "base_audioset_head.pt"
    if not path.exists():
        torch.manual_seed(0)
        model = BEATs(BEATsConfig.base())
        model.reset_classifier(527)
        with torch.no_grad():
            model.predictor.weight.mul_(10.0)
            model.predictor.bias.fill_(-9.0)
        save_checkpoint(model, path, label_dict={c.index: c.id for c in audioset_classes()})
    return path


def recording(minutes: float) -> Path:
    """``minutes`` of changing generated sounds, 16 kHz mono WAV (written once)."""
    path = CACHE / f"recording_{minutes:g}min.wav"
    if not path.exists():
        import soundfile

        path.parent.mkdir(parents=True, exist_ok=True)
        with soundfile.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as f:
            for second in range(0, round(minutes * 60), 30):
                seconds = min(30.0, minutes * 60 - second)
                f.write(testkit.class_sound(second // 30 % 10, seconds, 16000, seed=second))
    return path


def timed(work):
    """``(wall seconds, CPU seconds of this process, result)`` of ``work()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def speed(args: argparse.Namespace, model_path: Path, audio: Path) -> None:
    classifier = ClipClassifier(model_path, device="cpu")
    classifier.fingerprint()  # computed once per classifier; not part of either side's work
    extractor = BEATsFeatureExtractor(
        classifier.model,
        pooling="mean",
        clip_seconds=CLIP_SECONDS,
        dtype=args.dtype,
        batch_size=args.batch_size,
        num_workers=args.workers,
    )
    options = {
        "clip_seconds": CLIP_SECONDS,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "progress": False,
    }
    out = Path(tempfile.mkdtemp(prefix="bench-detect-"))
    runs: dict[str, list[tuple[float, float]]] = {"extract": [], "detect": []}
    work = {
        "extract": lambda: extractor.extract_from_file(audio),
        "detect": lambda: detect_events(classifier, [audio], out / "audio", **options),
    }
    results = {}
    try:
        for repeat in range(args.repeats):
            for side in ("extract", "detect") if repeat % 2 == 0 else ("detect", "extract"):
                wall, cpu, results[side] = timed(work[side])
                runs[side].append((wall, cpu))
                print(f"  {side:<7} run {repeat + 1}: {wall:.1f} s ({cpu:.1f} s of CPU)", flush=True)
        clips, table = results["extract"], results["detect"]
        count = len(clips)
        extract_wall, detect_wall = (min(wall for wall, _ in runs[side]) for side in ("extract", "detect"))
        extract_cpu, detect_cpu = (min(cpu for _, cpu in runs[side]) for side in ("extract", "detect"))
        print(
            f"\n{count} clips of {CLIP_SECONDS:g} s ({args.minutes:g} min of audio), batch {args.batch_size}, "
            f"best of {args.repeats}:\n"
            f"  extract {count / extract_wall:.2f} clips/s ({args.minutes * 60 / extract_wall:.0f}x real time)\n"
            f"  detect  {count / detect_wall:.2f} clips/s ({args.minutes * 60 / detect_wall:.0f}x real time), "
            f"{len(table)} detections at or above 0.1\n"
            f"  detect / extract speed: {extract_wall / detect_wall:.3f} (wall time), "
            f"{extract_cpu / detect_cpu:.3f} (CPU time)",
            flush=True,
        )
        if args.skip_store:
            return
        per_clip = store_speed(args, extractor, classifier, clips, out)
        print(
            f"  what detection adds to extraction (the head, the tables, the files; measured from the store): "
            f"{per_clip * 1e3:.2f} ms per clip, so detect / extract = "
            f"{extract_wall / (extract_wall + per_clip * count):.4f}",
            flush=True,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)


def store_speed(
    args: argparse.Namespace, extractor: BEATsFeatureExtractor, classifier: ClipClassifier, clips, out: Path
) -> float:
    """Detections from a store of ``--store-hours`` of clips (the recording's, under many names); seconds per clip."""
    store = out / "store"
    prepare_store(store, store_settings(extractor))
    copies = max(1, round(args.store_hours * 60 / args.minutes))
    with EmbeddingStore(store) as writer:
        for copy in range(copies):
            writer.add(
                f"site{copy:03d}/{Path(clips.paths[0]).name}", clips.starts, clips.ends, clips.features
            )
    finish_store(store)
    count = copies * len(clips)
    times = [
        timed(lambda: detect_events(classifier, embeddings=store, out_dir=out / "from-store"))
        for _ in range(3)
    ]
    best, _, table = min(times, key=lambda run: run[0])
    load, _, _ = timed(lambda: ClipClassifier(checkpoint(), device="cpu").fingerprint())
    print(
        f"  from a store of {count} clips ({copies * args.minutes / 60:g} h of audio): {best:.2f} s "
        f"(reading the store, classifying, {len(table)} detections written), {count / best:.0f} clips/s, "
        f"{copies * args.minutes * 60 / best / 3600:.1f} h of audio per second; loading the checkpoint and "
        f"its fingerprint once: {load:.1f} s",
        flush=True,
    )
    return best / count


# --------------------------------------------------------------------------- memory
def memory_child(args: argparse.Namespace, model_path: Path, audio: Path) -> None:
    """Runs in a fresh process; prints JSON with the peak RSS of a detection above the loaded model."""
    classifier = ClipClassifier(model_path, device="cpu")
    classifier.classify(np.zeros((1, 768), np.float32))
    loaded = current_rss()
    reset_peak_rss()
    out = Path(tempfile.mkdtemp(prefix="bench-detect-memory-"))
    try:
        seconds, _, table = timed(
            lambda: detect_events(
                classifier,
                [audio],
                out,
                clip_seconds=CLIP_SECONDS,
                dtype=args.dtype,
                batch_size=args.batch_size,
                num_workers=args.workers,
                progress=False,
            )
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    peak = peak_rss()
    figures = {"model_mb": loaded / 2**20, "peak_above_model_mb": (peak - loaded) / 2**20, "seconds": seconds}
    print(json.dumps({**figures, "detections": len(table)}))


def memory(args: argparse.Namespace) -> None:
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        "--minutes",
        str(args.minutes),
        "--dtype",
        args.dtype,
    ]
    command += ["--batch-size", str(args.batch_size)] + (
        [] if args.workers is None else ["--workers", str(args.workers)]
    )
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"\nmemory (fresh process): model {figures['model_mb']:.0f} MB; detecting in {args.minutes:g} min of audio, "
        f"batch {args.batch_size}: peak {figures['peak_above_model_mb']:.0f} MB above the model "
        f"({figures['seconds']:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the recording (default 60)")
    parser.add_argument(
        "--batch-size", type=int, default=8, help="clips per forward pass (default 8, detect's)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="decoding processes (default: the extractor's)"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument(
        "--store-hours", type=float, default=20.0, help="hours of clips in the store (default 20)"
    )
    parser.add_argument("--skip-store", action="store_true", help="do not measure detection from a store")
    parser.add_argument("--skip-speed", action="store_true", help="only measure memory")
    parser.add_argument("--skip-memory", action="store_true", help="do not measure memory")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    model_path, audio = checkpoint(), recording(args.minutes)
    if args.memory_child:
        memory_child(args, model_path, audio)
        return
    dtype = resolve_dtype(args.dtype, torch.device("cpu"))
    print(
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, dtype {args.dtype} -> {str(dtype).removeprefix('torch.')}",
        flush=True,
    )
    if not args.skip_speed:
        speed(args, model_path, audio)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
