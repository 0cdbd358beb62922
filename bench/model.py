"""Benchmark: BEATs base (random weights) on CPU, ours against the official implementation.

Both models run side by side in this process on the same weights (ours are
copied into the official model with a strict ``load_state_dict``) and the same
batch of random 10 s clips, in eval mode under ``torch.inference_mode()``. Each
timing is the best of several interleaved repeats, because the machine is shared.
GFLOP/s counts the multiply-adds of every matmul and convolution (2 FLOP each),
so it compares with the matmul throughput measured here too. The "floor" row is the
transformer layers' matmuls alone at that throughput in float32: no implementation
goes below it, so it bounds the speed-up over the official float32 model.

The official code is not part of this repository: pass the folder holding
``BEATs.py``, ``backbone.py`` and ``modules.py`` of microsoft/unilm's ``beats/``
(see bench/README.md). Without it, only our model is timed.

    python3 -m hatch run python bench/model.py --official-dir bench/_cache/unilm_beats
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _flops import layers_gflop, matmul_gflops, model_gflop
from _official import best_of, official_beats

from beats_core import BEATs, BEATsConfig

# Parity tolerance for encoder features (tests/reference/README.md, section 7).
FEATURE_ATOL = 1e-4


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--official-dir", help="folder with the official BEATs.py, backbone.py, modules.py")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed repeats of our model (official: --official-repeats)"
    )
    parser.add_argument("--official-repeats", type=int, default=2)
    args = parser.parse_args()
    print(
        f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}, dtype float32 unless a row says otherwise"
    )

    torch.manual_seed(0)
    config = BEATsConfig.base()
    ours = BEATs(config).eval()
    num_samples = int(args.seconds * 16000)
    waves = 0.1 * torch.randn(args.batch, num_samples, generator=torch.Generator().manual_seed(1))
    official = None
    if args.official_dir:
        module = official_beats(args.official_dir)
        official = module.BEATs(module.BEATsConfig(config.to_dict())).eval()
        official.load_state_dict(ours.state_dict(), strict=True)

    gflop = model_gflop(config, args.batch, num_samples)
    f32, bf16 = matmul_gflops(None, 5), matmul_gflops(torch.bfloat16, 5)
    rows: dict[str, tuple[float, torch.Tensor]] = {}
    with torch.inference_mode():

        def run_ours_f32() -> torch.Tensor:
            return ours.extract_features(waves)[0]

        def run_ours_bf16() -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return ours.extract_features(waves)[0].float()

        def run_official() -> torch.Tensor:
            return official.extract_features(waves)[0]

        runs = [
            ("ours float32", run_ours_f32, args.repeats),
            ("ours bfloat16 autocast", run_ours_bf16, args.repeats),
        ]
        if official is not None:
            runs.insert(0, ("official float32", run_official, args.official_repeats))
        for name, fn, _ in runs:  # warm-up
            start = time.perf_counter()
            rows[name] = (float("inf"), fn())
            print(f"warm-up {name}: {time.perf_counter() - start:.1f} s", flush=True)
        for round_ in range(max(repeats for _, _, repeats in runs)):  # interleaved
            for name, fn, repeats in runs:
                if round_ < repeats:
                    seconds, output = best_of(fn, 1)
                    rows[name] = (min(rows[name][0], seconds), output)

    f32, bf16 = (
        max(f32, matmul_gflops(None, 5)),
        max(bf16, matmul_gflops(torch.bfloat16, 5)),
    )  # best of before/after
    reference_name = "official float32" if official is not None else "ours float32"
    reference_time, reference_out = rows[reference_name]
    ours_f32 = rows["ours float32"][1]
    print()
    print(
        f"BEATs base (12 x 768, random weights), {args.batch} clips x {args.seconds:g} s, eval, "
        f"{torch.get_num_threads()} threads; {gflop:.0f} GFLOP per batch; best of interleaved repeats"
    )
    print(
        f"matmul 4096x4096 here (best of 10): float32 {f32:.0f} GFLOP/s, bfloat16 autocast {bf16:.0f} GFLOP/s"
    )
    print(
        f"{'implementation':24s} {'s/batch':>8s} {'clips/s':>8s} {'GFLOP/s':>8s} {'speed-up':>9s}  output check"
    )
    for name, (seconds, output) in rows.items():
        if name == "official float32":
            check = "reference"
        elif name == "ours float32" and official is not None:
            diff = (output - reference_out).abs().max().item()
            verdict = "within" if diff <= FEATURE_ATOL else "OUTSIDE"
            check = f"max|diff| vs official {diff:.1e} ({verdict} atol {FEATURE_ATOL:g})"
        elif name == "ours bfloat16 autocast":
            cosine = F.cosine_similarity(output.mean(dim=1), ours_f32.mean(dim=1), dim=-1).min().item()
            check = f"pooled cosine vs float32 >= {cosine:.5f}"
        else:
            check = ""
        print(
            f"{name:24s} {seconds:8.2f} {args.batch / seconds:8.2f} {gflop / seconds:8.0f} "
            f"{reference_time / seconds:8.2f}x  {check}"
        )
    floor = layers_gflop(config, args.batch, num_samples) / f32
    print(
        f"{'floor (layers at matmul)':24s} {floor:8.2f} {args.batch / floor:8.2f} {f32:8.0f} "
        f"{reference_time / floor:8.2f}x  the most any float32 implementation can reach here"
    )


if __name__ == "__main__":
    main()
