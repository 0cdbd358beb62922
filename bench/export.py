"""Benchmark: BEATs base exported to ONNX, float32 and int8 in onnxruntime, against torch float32.

Exports the base size (12 layers, 768 wide, random weights with the official
initialisation, pre-trained layout: the graph returns mean-pooled embeddings) with
``beats_extract.export_onnx`` and quantizes it to int8 (``quantize_onnx``), then times a
batch of 4 random 10 s clips (one of them padded) side by side in this process,
interleaved, best of several repeats, with the same number of threads everywhere:

* torch float32: the same computation as the graph (``ExportedForward``) in eval mode under
  ``torch.inference_mode()`` and ``BEATs.in_place_inference()`` (the extractor's fast path);
* onnxruntime float32 and int8 (``OnnxModel``, CPU execution provider);
* torch bfloat16 autocast, only where the CPU has native bfloat16 (AMX or AVX512-BF16).

It prints the CPU, its int8 and bfloat16 instructions, export times, file sizes, the
largest difference of the float32 graph to torch and the smallest cosine of the int8
embeddings to the float32 ones. The exported files are kept in ``bench/_cache/export``
(``--reuse`` takes them from there instead of exporting again).

    python3 -m hatch run python bench/export.py [--batch 4] [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from beats_core import BEATs, BEATsConfig
from beats_core.devices import has_native_bfloat16
from beats_extract.export import ExportedForward, export_onnx, quantize_onnx
from beats_extract.onnx_model import OnnxModel
from beats_extract.poolings import get_pooling

CACHE = Path(__file__).parent / "_cache" / "export"
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "avx512vnni")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_description() -> tuple[str, set[str]]:
    """The CPU's model name and its flags, from /proc/cpuinfo."""
    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name == "unknown CPU":
                name = line.partition(":")[2].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.partition(":")[2].split())
    except OSError:
        pass
    return name, flags


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--reuse", action="store_true", help="take the exported files from bench/_cache/export"
    )
    args = parser.parse_args()

    name, flags = cpu_description()
    threads = torch.get_num_threads()
    print(f"CPU: {name}; torch.backends.cpu.get_cpu_capability() = {torch.backends.cpu.get_cpu_capability()}")
    print(
        f"int8 dot-product instructions: {', '.join(f for f in INT8_FLAGS if f in flags) or 'none (AVX2 only)'}"
    )
    print(f"native bfloat16: {', '.join(f for f in BF16_FLAGS if f in flags) or 'none'}; threads: {threads}")

    torch.manual_seed(0)
    model = BEATs(BEATsConfig.base()).eval()
    CACHE.mkdir(parents=True, exist_ok=True)
    float_path, int8_path = CACHE / "base_float32.onnx", CACHE / "base_int8.onnx"
    if not (args.reuse and float_path.is_file() and int8_path.is_file()):
        start = time.perf_counter()
        export_onnx(model, float_path)
        exported = time.perf_counter()
        quantize_onnx(float_path, int8_path)
        print(
            f"export: {exported - start:.0f} s float32 (trace, convert, check), "
            f"{time.perf_counter() - exported:.0f} s int8 quantization"
        )
    torch_size = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    print(
        f"sizes: torch state dict {torch_size / 1e6:.0f} MB, float32 ONNX {float_path.stat().st_size / 1e6:.0f} MB, "
        f"int8 ONNX {int8_path.stat().st_size / 1e6:.0f} MB"
    )

    num_samples = round(args.seconds * 16000)
    rng = np.random.default_rng(0)
    waveforms = (0.1 * rng.standard_normal((args.batch, num_samples))).astype(np.float32)
    lengths = np.full(args.batch, num_samples, dtype=np.int64)
    lengths[-1] = num_samples * 6 // 10
    waveforms[-1, lengths[-1] :] = 0.0
    forward = ExportedForward(model, get_pooling("mean"))
    sessions = {
        "onnxruntime float32": OnnxModel(float_path, threads=threads),
        "onnxruntime int8": OnnxModel(int8_path, threads=threads),
    }

    def run_torch(dtype: torch.dtype) -> np.ndarray:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
        with torch.inference_mode(), model.in_place_inference(), autocast:
            return forward(torch.from_numpy(waveforms), torch.from_numpy(lengths)).float().numpy()

    runs = {"torch float32": lambda: run_torch(torch.float32)}
    runs.update({label: (lambda s=session: s(waveforms, lengths)) for label, session in sessions.items()})
    bfloat16 = has_native_bfloat16("cpu")
    if bfloat16:
        runs["torch bfloat16 autocast"] = lambda: run_torch(torch.bfloat16)
    outputs = {label: run() for label, run in runs.items()}  # warm-up
    times: dict[str, float] = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):
        for label, run in runs.items():
            start = time.perf_counter()
            run()
            times[label] = min(times[label], time.perf_counter() - start)

    reference = outputs["torch float32"]
    print(
        f"\n{args.batch} clips x {args.seconds:g} s (one padded to {lengths[-1] / 16000:g} s), best of {args.repeats}"
    )
    print(f"{'path':<26}{'s/batch':>9}{'clips/s':>9}{'vs torch f32':>14}  accuracy")
    for label, seconds in times.items():
        output = outputs[label]
        cosine = np.sum(output * reference, 1) / (
            np.linalg.norm(output, axis=1) * np.linalg.norm(reference, axis=1)
        )
        accuracy = (
            ""
            if label == "torch float32"
            else (f"max |diff| {np.abs(output - reference).max():.2e}, min cosine {cosine.min():.6f}")
        )
        speed = times["torch float32"] / seconds
        print(f"{label:<26}{seconds:>9.3f}{args.batch / seconds:>9.2f}{speed:>13.2f}x  {accuracy}")
    if not bfloat16:
        print(f"{'torch bfloat16 autocast':<26}  skipped: emulated on this CPU (no AMX or AVX512-BF16)")


if __name__ == "__main__":
    main()
