"""Five-fold cross-validation on ESC-50, the benchmark BEATs is best known for.

ESC-50 (Piczak, 2015) holds 2000 five-second clips of 50 environmental sound classes in
five predefined folds. Its protocol: train on four folds, test on the fifth, once per fold,
and report the mean accuracy. The BEATs paper (Chen et al., "BEATs: Audio Pre-Training
with Acoustic Tokenizers", ICML 2023, arXiv 2212.09058) reports 98.1 % for BEATs iter3+
pre-trained on AudioSet-2M, the default model here, fine-tuned with the recipe of the
``esc50-paper`` preset.

What it shows:

1. the ``esc50:`` dataset loader, which reads the ESC-50-master folder as it comes from
   https://github.com/karolpiczak/ESC-50 (``meta/esc50.csv`` and ``audio/*.wav``);
2. ``BEATsTrainer.cross_validate``: one run per test fold (validation always comes from the
   training folds, never from the test fold), one run folder per fold;
3. per-fold and mean +- standard deviation accuracy, and a bar chart of the folds
   (``fold_accuracies.png``).

Run it::

    python examples/esc50_cross_validation.py --data /data/ESC-50-master --preset esc50-paper --epochs 100

Without ``--data`` the script writes a miniature ESC-50 (a few generated clips of six
classes, laid out and named exactly like the real dataset: ``audio/{fold}-{clip}-{take}-{target}.wav``
and ``meta/esc50.csv`` with its columns). That only proves that the pipeline runs: its
accuracy says nothing about BEATs. To reproduce the paper's figure, run on the real
dataset with ``--preset esc50-paper`` on a GPU (the preset trains for 80 000 steps; fewer
``--epochs`` already come close). Other options: ``--model``, ``--folds 1 2``,
``--batch-size``, ``--output-dir`` (default ``examples-output/esc50_cross_validation``).

The same on the command line::

    beats train esc50:/data/ESC-50-master --preset esc50-paper --cross-validate --output-dir runs/esc50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write PNG files; no window needed
import matplotlib.pyplot as plt
import pandas as pd
import soundfile
from tqdm.auto import tqdm

from beats_data.synthetic import synthesize_clip
from beats_trainer import DEFAULT_MODEL, BeatsError, BEATsTrainer
from beats_trainer.config import TrainingConfig

#: BEATs iter3+ AS2M on ESC-50, five-fold accuracy in percent (arXiv 2212.09058).
PAPER_ACCURACY = 98.1

#: The generated sound classes, as the ESC-50 class (target, category, in ESC-10) they stand for.
MINI_CLASSES = {
    "rain": (10, "rain", True),
    "birdsong": (14, "chirping_birds", False),
    "knocking": (30, "door_wood_knock", False),
    "whistle": (37, "clock_alarm", False),
    "siren": (42, "siren", False),
    "engine": (44, "engine", False),
}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Five-fold cross-validation of BEATs on ESC-50.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, help="the ESC-50-master folder (default: generate a miniature)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"starting model (default {DEFAULT_MODEL})")
    parser.add_argument("--preset", default="fast", help="training recipe: fast (default) or esc50-paper")
    parser.add_argument("--epochs", type=int, default=10, help="most epochs per fold (default 10)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per batch (default 8)")
    parser.add_argument("--folds", type=int, nargs="+", help="test folds to run (default: all five)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("examples-output/esc50_cross_validation"),
        help="where results go",
    )
    parser.add_argument(
        "--clips-per-class",
        type=int,
        default=10,
        help="miniature: clips per class, a multiple of 5 (default 10)",
    )
    parser.add_argument(
        "--clip-seconds", type=float, default=5.0, help="miniature: clip length (default 5 s)"
    )
    args = parser.parse_args(argv)
    if args.clips_per_class < 5 or args.clips_per_class % 5:
        parser.error("--clips-per-class must be a multiple of 5 (the same number of clips in each fold)")
    return args


def make_mini_esc50(root: Path, clips_per_class: int, seconds: float) -> Path:
    """Write a miniature ESC-50-master folder: ``audio/*.wav`` (44.1 kHz mono 16-bit) and ``meta/esc50.csv``.

    File names follow ESC-50: ``{fold}-{source clip id}-{take}-{target}.wav``, where the
    takes A, B, ... are cuts of one source recording (all in the same fold, as in ESC-50).
    """
    sample_rate = 44100  # the real dataset's rate; beats resamples to 16 kHz when it loads
    rows = []
    jobs = [
        (name, fold, clip)
        for name in MINI_CLASSES
        for fold in range(1, 6)
        for clip in range(clips_per_class // 5)
    ]
    for name, fold, clip in tqdm(jobs, desc="Writing mini ESC-50", unit="clip"):
        target, category, esc10 = MINI_CLASSES[name]
        source_id = 100000 + 1000 * target + 10 * fold + clip  # stands for the Freesound clip id
        take = "A"
        filename = f"{fold}-{source_id}-{take}-{target}.wav"
        sound = synthesize_clip(name, seconds, sample_rate=sample_rate, seed=source_id)
        (root / "audio").mkdir(parents=True, exist_ok=True)
        soundfile.write(root / "audio" / filename, sound, sample_rate, subtype="PCM_16")
        rows.append((filename, fold, target, category, esc10, source_id, take))
    columns = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    (root / "meta").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=columns).sort_values("filename").to_csv(
        root / "meta" / "esc50.csv", index=False
    )
    return root


def plot_folds(folds: list[int], accuracies: list[float], mean: float, std: float, path: Path) -> None:
    """A bar per fold, the mean as a line and mean +- std as a band; the paper's figure for reference."""
    figure, axes = plt.subplots(figsize=(6, 4.5), layout="constrained")
    percent = [100 * a for a in accuracies]
    bars = axes.bar([str(f) for f in folds], percent, color="tab:blue", alpha=0.8)
    axes.bar_label(bars, fmt="%.1f", label_type="center", color="white")
    axes.axhspan(100 * (mean - std), 100 * (mean + std), color="tab:orange", alpha=0.2)
    axes.axhline(100 * mean, color="tab:orange", label=f"mean {100 * mean:.1f} ± {100 * std:.1f} %")
    axes.axhline(PAPER_ACCURACY, color="black", linestyle="--", label=f"BEATs paper {PAPER_ACCURACY} %")
    axes.set_ylim(0, 105)
    axes.set_xlabel("test fold")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("ESC-50 five-fold cross-validation")
    figure.legend(loc="outside lower center", ncols=2)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = args.output_dir

    # 1. The dataset folder: the real ESC-50-master, or a generated miniature laid out the same way.
    if args.data is None:
        data = output / "ESC-50-master"
        print(
            f"No --data given: writing a miniature ESC-50 to {data} (it proves the pipeline, not the model)"
        )
        make_mini_esc50(data, args.clips_per_class, args.clip_seconds)
    else:
        data = args.data

    # 2. The recipe; every fold trains from the same starting model with the same settings.
    config = TrainingConfig.preset(
        args.preset, model=args.model, max_epochs=args.epochs, output_dir=str(output / "runs")
    )
    # "esc50:PATH" picks the ESC-50 loader: its fold column drives the cross-validation.
    trainer = BEATsTrainer.from_directory(f"esc50:{data}", config=config, batch_size=args.batch_size)

    # 3. One training run per test fold (runs/fold-1, runs/fold-2, ...); running the example
    #    again replaces them.
    summary = trainer.cross_validate(folds=args.folds, overwrite=True)

    # 4. The result, as the ESC-50 protocol reports it.
    print()
    for fold, accuracy in zip(summary.folds, summary.accuracies, strict=True):
        print(f"fold {fold}: test accuracy {accuracy:.4f}")
    print(
        f"mean accuracy over {len(summary.folds)} folds: {summary.mean_accuracy:.4f} +- {summary.std_accuracy:.4f}"
    )
    print(f"BEATs iter3+ AS2M in the paper (arXiv 2212.09058): {PAPER_ACCURACY / 100:.3f}")
    if args.data is None:
        print(
            "(the miniature ESC-50 only shows that the pipeline runs; use the real dataset for a real figure)"
        )
    chart = output / "fold_accuracies.png"
    plot_folds(summary.folds, summary.accuracies, summary.mean_accuracy, summary.std_accuracy, chart)
    print(f"bar chart: {chart}")
    print(
        f"summary: {summary.output_dir / 'cross_validation.csv'}; one run folder per fold in {summary.output_dir}"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BeatsError as error:  # bad data or settings: one clear line, no traceback
        sys.exit(f"error: {error}")
