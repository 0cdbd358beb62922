"""Benchmark: training steps of BEATs base (random weights) on CPU, beats-train against a plain loop over the official model.

One training step is a forward pass, the loss, the backward pass and an AdamW step on a
batch of 8 clips of 5 s (the batch and clip length of the BEATs paper's ESC-50
fine-tuning). Ours is the step beats-train's training loop runs: a ``BEATsClassifier``
prepared by an Accelerate ``Accelerator``, the run's ``MixedPrecision`` (autocast around
the forward pass), the optimiser of ``build_optimizer`` (AdamW, parameter groups),
``accelerator.backward``; cross-entropy on the logits. ``--precision auto`` takes what a
run with ``mixed_precision="auto"`` takes on this CPU (bfloat16 only with AMX or
AVX512-BF16); the CPU capability and the precision used are printed. The official side is a plain PyTorch loop over microsoft/unilm's ``BEATs``
with the same weights, the same batch and ``torch.optim.AdamW``; its fine-tuned output is
a sigmoid, so its loss is binary cross-entropy, as in the official fine-tuning. bfloat16
runs wrap the official forward pass in ``torch.autocast("cpu", torch.bfloat16)``, which is
what beats-train does for ours. Layer drop is off on both sides (it skips layers at random,
which would make the timings random too).

Each figure is the best of several steps; ours and the official steps alternate, so both
see the same load on a shared machine, and the speed-up is also given as the median of the
ratios of adjacent pairs of steps, which a load that comes and goes disturbs less. It
prints seconds per step, training samples per second, GFLOP/s (three times the matmuls and
convolutions of the forward pass), the speed-ups, and the peak resident memory of the
process. It also measures what a large matmul reaches here in each precision used: a step
cannot take less than its transformer layers' matmuls (forward and backward) at that rate,
which bounds the speed-up any implementation can have over the official one (the "floor"
row).

Each precision runs in a process of its own. With glibc's default settings, part of every
step goes to page faults on freshly allocated activations, the official loop's more than
ours; prefix the command with ``MALLOC_MMAP_THRESHOLD_=1073741824
MALLOC_TRIM_THRESHOLD_=4294967296`` to compare the two without them.

    python3 -m hatch run python bench/train.py --official-dir bench/_cache/unilm_beats
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from _flops import matmul_gflops, training_gflop
from _official import official_beats

from beats_core import BEATs, BEATsConfig
from beats_train.config import TrainingConfig
from beats_train.model import BEATsClassifier
from beats_train.optim import build_optimizer
from beats_train.precision import MixedPrecision, resolve_mixed_precision

CPU = torch.device("cpu")
_NAMES = {"no": "float32", "bf16": "bfloat16"}


def our_step(precision: str, config: BEATsConfig, waveforms: torch.Tensor, targets: torch.Tensor):
    """A step function of beats-train's loop, and the model it trains."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True, mixed_precision="no")  # beats-train applies the precision itself
    mixed = MixedPrecision(precision, CPU)
    backbone = BEATs(config)
    backbone.label_dict = {i: str(i) for i in range(config.predictor_class)}
    classifier = BEATsClassifier(backbone)
    optimizer = build_optimizer(classifier, TrainingConfig(learning_rate=1e-5, betas=(0.9, 0.98)))
    model, optimizer = accelerator.prepare(classifier, optimizer)
    model.train()

    def step() -> None:
        with accelerator.accumulate(model):
            with mixed.autocast():
                logits = model(waveforms, None)
            loss = F.cross_entropy(logits.float(), targets)
            accelerator.backward(mixed.scale(loss))
            mixed.step(optimizer)
            optimizer.zero_grad()

    return step, classifier


def official_step(module, state: dict, config: BEATsConfig, precision: str, waveforms, targets):
    """A plain PyTorch training step over the official model with the same weights."""
    model = module.BEATs(module.BEATsConfig(config.to_dict()))
    model.load_state_dict(state)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98))
    one_hot = F.one_hot(targets, config.predictor_class).float()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            probabilities, _ = model.extract_features(waveforms)
        loss = F.binary_cross_entropy(probabilities.float().clamp(1e-7, 1 - 1e-7), one_hot)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def best(step, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--official-dir", help="folder with the official BEATs.py, backbone.py, modules.py")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed steps per side and precision (after one warm-up)"
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["no", "bf16"],
        choices=["auto", "no", "bf16"],
        help="TrainingConfig.mixed_precision values; auto: bf16 where the CPU has it natively, else no",
    )
    args = parser.parse_args()
    if len(args.precision) > 1:
        # One process per precision: glibc sizes its free-memory thresholds from the largest
        # blocks freed so far, so a float32 run would change the page faults of a bfloat16 run
        # after it in the same process (the official loop's most).
        for precision in args.precision:
            child = [sys.executable, __file__, "--batch", str(args.batch), "--seconds", str(args.seconds)]
            child += ["--repeats", str(args.repeats), "--precision", precision]
            child += ["--official-dir", args.official_dir] if args.official_dir else []
            subprocess.run(child, check=True)
        return

    torch.manual_seed(0)
    config = BEATsConfig.base(
        finetuned_model=True, predictor_class=50, encoder_layerdrop=0.0, predictor_dropout=0.0
    )
    waveforms = 0.1 * torch.randn(
        args.batch, int(args.seconds * 16000), generator=torch.Generator().manual_seed(1)
    )
    targets = torch.randint(
        0, config.predictor_class, (args.batch,), generator=torch.Generator().manual_seed(2)
    )
    module = official_beats(args.official_dir) if args.official_dir else None
    gflop = training_gflop(config, args.batch, waveforms.shape[1])
    floor_gflop = training_gflop(config, args.batch, waveforms.shape[1], layers_only=True)
    used = {asked: resolve_mixed_precision(asked, CPU) for asked in args.precision}
    # only the precisions used: an emulated bfloat16 matmul takes minutes on CPUs without AMX/AVX512-BF16
    ceilings = {
        precision: matmul_gflops(torch.bfloat16 if precision == "bf16" else None)
        for precision in used.values()
    }
    print(
        f"BEATs base, {sum(p.numel() for p in BEATs(config).parameters()) / 1e6:.1f} M parameters; batch of "
        f"{args.batch} clips of {args.seconds:g} s; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"best of {args.repeats} steps, ours and official alternating"
    )
    print(
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}; mixed precision "
        + ", ".join(
            f"{asked} -> {precision}" if asked == "auto" else precision for asked, precision in used.items()
        )
    )
    print(
        f"{gflop:.0f} GFLOP per step; 4096 x 4096 matmul here: "
        + ", ".join(f"{_NAMES[precision]} {ceiling:.0f} GFLOP/s" for precision, ceiling in ceilings.items())
    )
    print(
        f"{'precision':<10}{'implementation':<16}{'s/step':>9}{'samples/s':>11}{'GFLOP/s':>9}"
        f"{'speed-up':>10}{'paired':>8}"
    )
    for precision in used.values():
        torch.manual_seed(0)
        ours, classifier = our_step(precision, config, waveforms, targets)
        official = None
        if module is not None:
            state = {k.removeprefix("backbone."): v for k, v in classifier.state_dict().items()}
            official = official_step(module, state, config, precision, waveforms, targets)
        ours()  # warm-up (allocations, first-call work)
        if official is not None:
            official()
        our_times, official_times = [], []
        for _ in range(args.repeats):
            our_times.append(best(ours, 1))
            if official is not None:
                official_times.append(best(official, 1))
        name = _NAMES[precision]
        ours_best = min(our_times)
        speedup = paired = "-"
        if official_times:
            speedup = f"{min(official_times) / ours_best:.2f}x"
            paired = (
                f"{statistics.median(o / u for o, u in zip(official_times, our_times, strict=True)):.2f}x"
            )
        print(
            f"{name:<10}{'beats-train':<16}{ours_best:>9.2f}{args.batch / ours_best:>11.3f}"
            f"{gflop / ours_best:>9.0f}{speedup:>10}{paired:>8}"
        )
        floor = floor_gflop / ceilings[precision]
        bound = ""
        if official_times:
            best_official = min(official_times)
            print(
                f"{name:<10}{'official':<16}{best_official:>9.2f}{args.batch / best_official:>11.3f}"
                f"{gflop / best_official:>9.0f}{'1.00x':>10}"
            )
            bound = f" = {best_official / floor:.2f}x the official step"
        print(
            f"{name:<10}{'floor':<16}{floor:>9.2f}{args.batch / floor:>11.3f}{ceilings[precision]:>9.0f}{bound}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
