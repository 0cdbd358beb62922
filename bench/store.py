"""Benchmark: embedding an archive into a store, in 5 s clips, against the official model clip by clip.

    python3 -m hatch run python bench/store.py --official-dir bench/_cache/unilm_beats
        [--minutes 10] [--files 1000] [--skip-official] [--skip-processes] [--skip-memory]

On the CPU with the base size (random weights with the official initialisation, copied into
the official model with a strict ``load_state_dict``):

* throughput: a recording of ``--minutes`` minutes (44.1 kHz FLAC) embedded into a store in
  5 s clips (``embed_into_store``: decoding, the clip rule, batching, Parquet parts), in float32
  and with ``dtype="auto"``, against the official model run clip by clip on the same clips
  (``extract_features`` on each 5 s clip alone, mean over tokens), side by side in one process;
  figures are hours of audio embedded per hour of compute, and the matmul floor
  (``bench/_flops.py``: the transformer layers' matmuls at this CPU's matmul rate);
* processes: the same store filled by 2 processes (``torchrun --standalone``) against 1;
* memory: the peak resident memory above the loaded model (fresh processes) while a one-hour
  recording, and while ``--files`` short files, are embedded into a store.

Generated audio is kept in bench/_cache/store (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import testkit  # noqa: E402
from _flops import layers_gflop, matmul_gflops, model_gflop  # noqa: E402
from _official import official_beats  # noqa: E402

from beats_core import BEATs, BEATsConfig, create_model, load_audio, save_checkpoint  # noqa: E402
from beats_core.clips import ClipRule  # noqa: E402
from beats_extract import BEATsFeatureExtractor  # noqa: E402
from beats_extract.archive import embed_into_store  # noqa: E402
from beats_extract.store import read_store  # noqa: E402

CACHE = ROOT / "bench" / "_cache" / "store"
CLIP_SECONDS = 5.0


def recording(minutes: float) -> Path:
    """A 44.1 kHz FLAC of changing generated sounds, written a minute at a time."""
    path = CACHE / f"recording_{minutes:g}min.flac"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with sf.SoundFile(path, "w", 44100, 1, subtype="PCM_16") as f:
            for minute in range(int(np.ceil(minutes))):
                seconds = min(60.0, minutes * 60 - minute * 60)
                f.write(testkit.class_sound(minute % 10, seconds, 44100, seed=minute))
    return path


def base_checkpoint() -> Path:
    path = CACHE / "base.pt"
    if not path.exists():
        torch.manual_seed(0)
        save_checkpoint(BEATs(BEATsConfig.base()).eval(), path)
    return path


def official_clips(official: torch.nn.Module, path: Path) -> np.ndarray:
    waveform = load_audio(path)
    rows = []
    with torch.no_grad():
        for clip in ClipRule(CLIP_SECONDS).clips(waveform.shape[0]):
            piece = waveform[clip.start : clip.stop].unsqueeze(0)
            rows.append(official.extract_features(piece)[0].mean(dim=1)[0].numpy())
    return np.stack(rows)


def throughput(args: argparse.Namespace) -> None:
    path = recording(args.minutes)
    audio_seconds = sf.info(path).duration
    model = create_model(base_checkpoint())
    config = model.cfg
    clips = ClipRule(CLIP_SECONDS).clips(round(audio_seconds * 16000))
    gflop = sum(model_gflop(config, 1, c.num_samples) for c in clips)
    floor_gflop = sum(layers_gflop(config, 1, c.num_samples) for c in clips)
    rate = matmul_gflops(None)
    print(
        f"{audio_seconds / 60:.0f} min of 44.1 kHz FLAC in {len(clips)} clips of {CLIP_SECONDS:g} s, base model, "
        f"{torch.get_num_threads()} threads; {gflop:.0f} GFLOP; 4096 x 4096 float32 matmul {rate:.0f} GFLOP/s"
    )
    floor = floor_gflop / rate
    print(f"floor (transformer layers' {floor_gflop:.0f} GFLOP at the matmul rate): {floor:.1f} s")
    rows: dict[str, np.ndarray] = {}
    print("| run | time (s) | hours of audio per hour | GFLOP/s | vs official | vs floor | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    results: dict[str, float] = {}
    official = None
    if args.official_dir and not args.skip_official:
        module = official_beats(args.official_dir)
        official = module.BEATs(module.BEATsConfig(config.to_dict())).eval()
        official.load_state_dict(model.state_dict(), strict=True)
    runs = [("ours float32", "float32"), ("ours auto", "auto")]
    for name, dtype in runs:
        extractor = BEATsFeatureExtractor(
            model, clip_seconds=CLIP_SECONDS, dtype=dtype, batch_size=args.batch_size
        )
        extractor.extract_from_arrays([np.zeros(16000 * 5, np.float32)])  # warm up
        store = CACHE / f"store-{dtype}"
        shutil.rmtree(store, ignore_errors=True)
        start = time.perf_counter()
        embed_into_store(extractor, [path], store, progress=False)
        results[f"{name} ({str(extractor.dtype).removeprefix('torch.')})"] = time.perf_counter() - start
        rows[name] = read_store(store).features
    if official is not None:
        official_clips(official, testkit.write_audio(CACHE / "warm.wav", np.zeros(80000, np.float32), 16000))
        start = time.perf_counter()
        rows["official"] = official_clips(official, path)
        results["official clip by clip (float32)"] = time.perf_counter() - start
    base = results.get("official clip by clip (float32)")
    for name, seconds in results.items():
        key = "official" if name.startswith("official") else name.split(" (")[0]
        diff = np.abs(rows[key] - rows["official"]).max() if "official" in rows else float("nan")
        print(
            f"| {name} | {seconds:.1f} | {audio_seconds / seconds:.1f} | {gflop / seconds:.0f} | "
            f"{(base / seconds if base else float('nan')):.2f}x | {floor / seconds:.2f} | {diff:.1e} |"
        )


def processes(args: argparse.Namespace) -> None:
    path = recording(args.minutes)
    folder = CACHE / "archive"
    if not folder.exists():
        folder.mkdir(parents=True)
        for k in range(8):  # the recording cut in 8 files of different lengths
            info = sf.info(path)
            start = int(info.frames * k / 8)
            signal, rate = sf.read(path, start=start, frames=int(info.frames / 8) - k * 4410)
            sf.write(folder / f"part{k}.flac", signal, rate)
    base = [sys.executable, "-m", "beats_extract", str(folder), "--model", str(base_checkpoint())]
    base += ["--clip-seconds", str(CLIP_SECONDS), "--dtype", "float32", "--no-progress"]
    timings = {}
    for count in (1, 2):
        store = CACHE / f"store-{count}p"
        shutil.rmtree(store, ignore_errors=True)
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(count),
        ]
        command = [*launcher, *base[1:], "-o", str(store)] if count > 1 else [*base, "-o", str(store)]
        start = time.perf_counter()
        subprocess.run(
            command,
            check=True,
            capture_output=True,
            env={**os.environ, "OMP_NUM_THREADS": str(os.cpu_count() // count)},
        )
        timings[count] = time.perf_counter() - start
    same = np.allclose(
        np.sort(read_store(CACHE / "store-1p").features, axis=0),
        np.sort(read_store(CACHE / "store-2p").features, axis=0),
        atol=1e-4,
    )
    print(
        f"\nprocesses: 1 process {timings[1]:.1f} s, 2 processes (torchrun) {timings[2]:.1f} s: "
        f"{timings[1] / timings[2]:.2f}x on {os.cpu_count()} cores; same rows within 1e-4: {same}"
    )


MEMORY_CHILD = """
import json, os, resource, sys, time
from pathlib import Path
import numpy as np
from beats_core import create_model
from beats_extract import BEATsFeatureExtractor
from beats_extract.archive import embed_into_store
model = create_model(sys.argv[1])
extractor = BEATsFeatureExtractor(model, clip_seconds=5.0, dtype="float32", num_workers=0)
extractor.extract_from_arrays([np.zeros(80000, np.float32)])
def rss(field):
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith(field)).split()[1]) / 1024
loaded = rss("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
files = sys.argv[3:] if len(sys.argv) > 3 else sorted(str(p) for p in Path(sys.argv[2]).glob("*.wav"))
start = time.perf_counter()
run = embed_into_store(extractor, files, sys.argv[2] + "-store", progress=False, overwrite=True)
print(json.dumps({"model_mb": loaded, "peak_above_mb": rss("VmHWM:") - loaded, "seconds": time.perf_counter() - start, "rows": run.rows}))
"""


def memory(args: argparse.Namespace) -> None:
    hour = recording(60)
    many = CACHE / "files"
    if not many.exists() or len(list(many.glob("*.wav"))) < args.files:
        many.mkdir(parents=True, exist_ok=True)
        for i in range(args.files):
            testkit.write_audio(
                many / f"f{i:05d}.wav", testkit.class_sound(i % 10, 3.0 + (i % 5), 16000, seed=i), 16000
            )
    print(
        "\nmemory: peak resident memory above the loaded base model, each in a fresh process (float32, 5 s clips)"
    )
    for what, extra in (
        ("one hour (44.1 kHz FLAC)", [str(CACHE / "hour"), str(hour)]),
        (f"{args.files} files of 3-7 s", [str(many)]),
    ):
        shutil.rmtree(Path(extra[0] + "-store"), ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(base_checkpoint()), *extra],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"  {what:<28} model {figures['model_mb']:.0f} MB, peak above it {figures['peak_above_mb']:.0f} MB, "
            f"{figures['rows']} rows in {figures['seconds']:.0f} s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--official-dir", help="folder with the official BEATs.py, backbone.py, modules.py")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="length of the recording timed (default 10)"
    )
    parser.add_argument(
        "--files", type=int, default=1000, help="short files for the memory figure (default 1000)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    print(
        f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, {os.cpu_count()} CPUs"
    )
    throughput(args)
    if not args.skip_processes:
        processes(args)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
