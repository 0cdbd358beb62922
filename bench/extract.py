"""Benchmark: BEATsFeatureExtractor against the loop a user writes with the official code.

    python3 -m hatch run python bench/extract.py --official-dir bench/_cache/unilm_beats
        [--clips 200] [--repeats 2] [--group N] [--batch-size 16] [--workers N] [--skip-hour]

End to end on N generated clips of 1 to 10 s in mixed formats (WAV, FLAC, MP3, OGG, M4A),
sample rates (8 to 48 kHz) and channel counts, with the base size (12 layers, 768 wide,
random weights with the official initialisation, copied into the official model with a
strict ``load_state_dict``), on the CPU:

* official loop: for each file, decode and resample it (``beats_core.audio.load_audio``,
  the same decoder for both sides), ``extract_features`` on it alone under
  ``torch.no_grad()``, mean over tokens;
* ours: ``BEATsFeatureExtractor(...).extract_from_files(paths)`` (decoding in worker
  processes, batches grouped by length), in float32, with ``dtype="auto"`` (bfloat16 where
  the CPU has it natively, float32 elsewhere) and in bfloat16 (autocast; emulated, hence slow,
  on CPUs without AMX or AVX512-BF16: the row says so).

Both run in this process, one after the other, ``--repeats`` times, and each figure is the
best run, because the machine may be shared. Each run gives a side the whole list of files,
as a user does (``--group N`` interleaves the sides every N files instead, which is steadier
on a busy machine but leaves ours only N files to batch by length). Embeddings are compared
per clip (cosine similarity and largest difference to the official float32 ones). GFLOP/s
counts the matmuls and convolutions of each clip at its own length (no padding) and is
printed next to what a large matmul reaches here; the transformer layers' matmuls at that
rate are a floor no implementation goes below, which bounds the speed-up over the official
loop.

Then memory: in fresh processes, the peak resident memory above the loaded model while
``extract_from_arrays`` embeds one batch of 4, 8 and 16 clips of 10 s, and while
``extract_from_file`` embeds a one-hour 44.1 kHz WAV (pooled over 10 s windows).
Generated audio is kept in bench/_cache/extract (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import testkit  # noqa: E402
from _flops import layers_gflop, matmul_gflops, model_gflop  # noqa: E402
from _memory import current_rss, peak_rss, reset_peak_rss  # noqa: E402
from _official import official_beats  # noqa: E402

from beats_core import BEATs, BEATsConfig, load_audio  # noqa: E402
from beats_core.devices import PrecisionWarning, has_native_bfloat16  # noqa: E402
from beats_extract import BEATsFeatureExtractor  # noqa: E402

CACHE = ROOT / "bench" / "_cache" / "extract"
FORMATS = [".wav", ".flac", ".mp3", ".ogg", ".m4a"]
RATES = [8000, 16000, 22050, 32000, 44100, 48000]


def make_clips(count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    seconds = rng.uniform(1.0, 10.0, count)
    paths = []
    for i in range(count):
        extension, rate = FORMATS[i % len(FORMATS)], RATES[(i // len(FORMATS)) % len(RATES)]
        path = CACHE / "clips" / f"clip{i:03d}_{seconds[i]:.2f}s_{rate}{extension}"
        if not path.exists():
            signal = testkit.class_sound(i % 10, float(seconds[i]), rate, seed=i)
            if i % 3 == 0:
                signal = np.stack([signal, 0.5 * signal], axis=1)
            testkit.write_audio(path, signal, rate)
        paths.append(path)
    return paths


def official_loop(model: torch.nn.Module, paths: list[Path]) -> np.ndarray:
    rows = []
    with torch.no_grad():
        for path in paths:
            waveform = load_audio(path)
            features = model.extract_features(waveform.unsqueeze(0))[0]
            rows.append(features.mean(dim=1)[0].numpy())
    return np.stack(rows)


def compare(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    cosines = (ours * reference).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    return float(cosines.min()), float(np.abs(ours - reference).max())


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def speed(args: argparse.Namespace) -> None:
    paths = make_clips(args.clips)
    lengths = [load_audio(p).shape[0] for p in paths]  # samples at 16 kHz
    audio_seconds = sum(lengths) / 16000
    torch.manual_seed(0)
    config = BEATsConfig.base()
    gflop = sum(model_gflop(config, 1, length) for length in lengths)
    floor_gflop = sum(layers_gflop(config, 1, length) for length in lengths)
    ours = BEATs(config).eval()
    official = None
    if args.official_dir:
        module = official_beats(args.official_dir)
        official = module.BEATs(module.BEATsConfig(config.to_dict())).eval()
        official.load_state_dict(ours.state_dict(), strict=True)
    options = {"batch_size": args.batch_size, "num_workers": args.workers}
    float32 = BEATsFeatureExtractor(ours, dtype="float32", **options)
    auto = BEATsFeatureExtractor(ours, dtype="auto", **options)
    native = has_native_bfloat16("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrecisionWarning)  # measured on purpose where it is emulated
        bfloat16 = BEATsFeatureExtractor(ours, dtype="bfloat16", **options)
    print(
        f"CPU capability: {torch.backends.cpu.get_cpu_capability()}; native bfloat16: {native}; "
        f"dtype 'auto' is {str(auto.dtype).removeprefix('torch.')} here"
    )
    print(
        f"{len(paths)} clips, {audio_seconds:.0f} s of audio (1-10 s; {', '.join(FORMATS)}; "
        f"{min(RATES)}-{max(RATES)} Hz), base model, CPU, {torch.get_num_threads()} threads, "
        f"{float32.num_workers} decoding worker(s), batch {args.batch_size}"
    )
    bfloat16_name = "ours bfloat16" if native else "ours bfloat16 (emulated here)"
    runs = {
        "ours float32": float32,
        f"ours auto ({str(auto.dtype).removeprefix('torch.')})": auto,
        bfloat16_name: bfloat16,
    }
    warm = paths[:1]  # first calls in a process are slower (allocator, kernels): warm every path up
    for extractor in runs.values():
        extractor.extract_from_files(warm, progress=False)
    if official is not None:
        official_loop(official, warm)
    names = (["official loop float32"] if official is not None else []) + list(runs)
    group_size = args.group or len(paths)
    groups = [paths[i : i + group_size] for i in range(0, len(paths), group_size)]
    best = {(name, g): float("inf") for name in names for g in range(len(groups))}
    outputs: dict[str, list[np.ndarray]] = {name: [None] * len(groups) for name in names}
    for repeat in range(args.repeats):
        totals = dict.fromkeys(names, 0.0)
        for g, group in enumerate(groups):
            for name in names:
                if name in runs:
                    seconds, result = timed(
                        lambda e=runs[name], p=group: e.extract_from_files(p, progress=False)
                    )
                else:
                    seconds, result = timed(lambda p=group: official_loop(official, p))
                best[name, g] = min(best[name, g], seconds)
                outputs[name][g] = result
                totals[name] += seconds
        print(f"  repeat {repeat + 1}: " + ", ".join(f"{n} {t:.1f} s" for n, t in totals.items()), flush=True)
    best_total = {name: sum(best[name, g] for g in range(len(groups))) for name in names}
    joined = {name: np.concatenate(parts) for name, parts in outputs.items()}
    reference = joined.get("official loop float32")
    base = best_total.get("official loop float32")
    float32_rate = matmul_gflops(None)
    print(
        f"\n{gflop:.0f} GFLOP in all; 4096 x 4096 matmul here: float32 {float32_rate:.0f} GFLOP/s, "
        f"bfloat16 autocast {matmul_gflops(torch.bfloat16):.0f} GFLOP/s"
    )
    if base:
        floor = floor_gflop / float32_rate
        print(
            f"floor in float32 (the transformer layers' {floor_gflop:.0f} GFLOP at the matmul rate): {floor:.1f} s, "
            f"at most {base / floor:.2f}x the official loop"
        )
    print("| run | time (s) | clips/s | GFLOP/s | speed-up | min cosine to official | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        seconds = best_total[name]
        cells = [
            name,
            f"{seconds:.1f}",
            f"{len(paths) / seconds:.2f}",
            f"{gflop / seconds:.0f}",
            f"{base / seconds:.2f}x" if base else "-",
        ]
        if reference is not None:
            cosine, diff = compare(joined[name], reference)
            cells += [f"{cosine:.6f}", f"{diff:.2e}"]
        else:
            cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |")
    print(
        f"(time: sum over {len(groups)} group(s) of {group_size} clips of the best of {args.repeats} interleaved runs)"
    )


# --------------------------------------------------------------------------- memory
def memory_child(kind: str, batch_size: int) -> None:
    """Runs in a fresh process; prints JSON with the peak RSS of the run above the loaded model.

    The kernel's high-water mark is reset once the model is loaded (``/proc/self/clear_refs``),
    so the transient memory of building the model does not count.
    """
    torch.manual_seed(0)
    model = BEATs(BEATsConfig.base()).eval()
    extractor = BEATsFeatureExtractor(model, batch_size=batch_size, num_workers=0)
    extractor.extract_from_array(np.zeros(16000 * 2, np.float32))  # warm-up on a small clip
    loaded = current_rss()
    reset_peak_rss()
    start = time.perf_counter()
    if kind == "hour":
        path = CACHE / "one_hour_44k.wav"
        features = extractor.extract_from_file(path)
    else:
        clips = [testkit.noise(10.0, seed=i) for i in range(batch_size)]
        features = extractor.extract_from_arrays(clips)
    seconds = time.perf_counter() - start
    peak = peak_rss()
    print(
        json.dumps(
            {
                "model_rss_mb": loaded / 2**20,
                "peak_above_model_mb": (peak - loaded) / 2**20,
                "seconds": seconds,
                "shape": list(np.shape(features)),
            }
        )
    )


def memory(args: argparse.Namespace) -> None:
    hour = CACHE / "one_hour_44k.wav"
    if not hour.exists():
        import soundfile

        hour.parent.mkdir(parents=True, exist_ok=True)
        with soundfile.SoundFile(hour, "w", 44100, 1, subtype="PCM_16") as f:
            for minute in range(60):
                f.write(testkit.class_sound(minute % 10, 60.0, 44100, seed=minute))
    print(
        "\nmemory: peak resident memory above the loaded base model (float32, CPU), each in a fresh process"
    )
    jobs = [("batch", size) for size in sorted({4, 8, args.batch_size})] + [("hour", args.batch_size)]
    for kind, batch_size in jobs:
        result = subprocess.run(
            [sys.executable, __file__, "--memory-child", kind, "--batch-size", str(batch_size)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        what = (
            f"{batch_size} clips of 10 s" if kind == "batch" else f"one-hour 44.1 kHz WAV, batch {batch_size}"
        )
        print(
            f"  {what:<36} model {figures['model_rss_mb']:.0f} MB, peak above it "
            f"{figures['peak_above_model_mb']:.0f} MB, {figures['seconds']:.0f} s, output {figures['shape']}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--official-dir", help="folder with the official BEATs.py, backbone.py, modules.py")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--group", type=int, default=0, help="clips per interleaved timing group (default: all of them)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--skip-hour", action="store_true", help="do not measure the one-hour file")
    parser.add_argument("--skip-speed", action="store_true", help="only measure memory")
    parser.add_argument("--memory-child", choices=["batch", "hour"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.batch_size)
        return
    if not args.skip_speed:
        speed(args)
    if not args.skip_hour:
        memory(args)


if __name__ == "__main__":
    main()
