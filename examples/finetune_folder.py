"""Fine-tune BEATs on a folder with one sub-folder per class, then classify new recordings.

What it shows:

1. ``BEATsTrainer.from_directory`` with a preset (``fast``: the settings BEATs needs,
   early stopping): the data is validated, split (80/10/10 per class, or your own
   ``train/``, ``val/``, ``test/`` folders), and the best epoch's model is kept;
2. the test metrics: accuracy, macro-F1, and precision / recall / F1 per class;
3. ``trainer.predict``: the label and class probabilities of new files;
4. the run folder: the classification report, the confusion matrix and the training
   curves as PNG files, the model as an official BEATs checkpoint.

Run it::

    python examples/finetune_folder.py                       # on generated sounds (6 classes)
    python examples/finetune_folder.py --data /path/to/birds --epochs 30 --predict new1.wav new2.flac

``--data`` is a folder laid out as ``birds/<class>/<file>`` (any depth below the class
folder, any audio format), or ``birds/train|val|test/<class>/<file>`` to fix the split
yourself. Other options: ``--model`` (default BEATs_iter3_plus_AS2M, downloaded on first
use), ``--preset`` (``fast`` or ``esc50-paper``), ``--epochs``, ``--batch-size``,
``--output-dir`` (default ``examples-output/finetune_folder``; the run folder is ``run/``
inside it). Without ``--predict``, the script classifies a few newly generated clips (or,
with your own data, a few clips of the test split).

The same on the command line::

    beats train /path/to/birds --preset fast --epochs 30 --output-dir runs/birds
    beats predict runs/birds/best_model.pt new1.wav new2.flac

On a CPU the default model trains at a few clips per second; a GPU is used when there is one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from beats_trainer import DEFAULT_MODEL, BeatsError, BEATsTrainer
from beats_trainer.config import TrainingConfig
from beats_trainer.datasets import make_synthetic_dataset


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fine-tune BEATs on a folder with one sub-folder per class.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data", type=Path, help="folder with one sub-folder per class (default: generate one)"
    )
    parser.add_argument("--predict", type=Path, nargs="+", help="audio files to classify after training")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"starting model (default {DEFAULT_MODEL})")
    parser.add_argument("--preset", default="fast", help="training recipe: fast (default) or esc50-paper")
    parser.add_argument("--epochs", type=int, default=10, help="most epochs to train (default 10)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per batch (default 8)")
    parser.add_argument(
        "--output-dir", type=Path, default=Path("examples-output/finetune_folder"), help="where results go"
    )
    parser.add_argument(
        "--clips-per-class", type=int, default=20, help="generated clips per class (default 20)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    output = args.output_dir
    new_clips = list(args.predict or [])

    # 1. The data: your folder, or generated sounds in the same layout (data/<class>/<file>.wav),
    #    plus a few new clips (another seed) that training never sees, to classify at the end.
    if args.data is None:
        data = output / "data"
        print(f"No --data given: generating {args.clips_per_class} clips per class in {data}")
        make_synthetic_dataset(data, clips_per_class=args.clips_per_class)
        if not new_clips:
            fresh = make_synthetic_dataset(
                output / "new-recordings", clips_per_class=1, seed=1, progress=False
            )
            new_clips = [Path(f) for f in fresh["filename"]]
    else:
        data = args.data

    # 2. The recipe. A preset is a TrainingConfig; any field can be changed on top of it.
    config = TrainingConfig.preset(
        args.preset, model=args.model, max_epochs=args.epochs, output_dir=str(output / "run")
    )
    print(f"training: preset {args.preset!r}, model {config.model}, up to {config.max_epochs} epochs")

    # 3. Train. Extra keywords of from_directory are DataConfig fields: batch_size,
    #    max_duration (longer clips are cropped at random while training), split ratios, ...
    trainer = BEATsTrainer.from_directory(data, config=config, batch_size=args.batch_size)
    results = trainer.train(overwrite=True)  # running the example again replaces its earlier run

    # 4. The numbers: the best epoch (chosen on the validation set) scored on the test set.
    print(
        f"\nbest epoch {results.best_epoch} of {results.epochs} (validation {results.monitor} {results.best_score:.4f})"
    )
    test = (
        results.test_metrics or results.val_metrics
    )  # a dataset without a test split is scored on validation
    print(f"test accuracy: {test['accuracy']:.4f}")
    print(f"test macro-F1: {test['macro_f1']:.4f}")
    per_class = pd.DataFrame(test["per_class"]).T  # one row per class: precision, recall, f1, support
    print(per_class.to_string(float_format=lambda value: f"{value:.3f}"))

    # 5. Classify new recordings with the fine-tuned model. Long files are cut into windows
    #    whose predictions are averaged; a file that cannot be decoded gets an empty label.
    if not new_clips:  # your own data and no --predict: a few clips of the test split
        splits = pd.read_csv(results.paths["output_dir"] / "splits.csv")
        new_clips = [Path(f) for f in splits.loc[splits["split"] == "test", "filename"].head(5)]
    predictions = trainer.predict(new_clips)
    predictions.to_csv(output / "predictions.csv", index=False)
    print("\npredictions:")
    for row in predictions.itertuples():
        print(f"  {Path(row.filename).name:<28} {row.label:<16} p={row.probability:.3f}")

    # 6. Everything the run wrote: open the PNG files to see how training went.
    paths = results.paths
    print(f"\nrun folder: {paths['output_dir']}")
    for key in ("classification_report", "confusion_matrix", "training_curves", "results", "best_model"):
        print(f"  {key:<22} {paths[key]}")
    print(f"predictions: {output / 'predictions.csv'}")
    print("Load the model later with BEATsTrainer.from_checkpoint(best_model), or share it with push_to_hub.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BeatsError as error:  # bad data or settings: one clear line, no traceback
        sys.exit(f"error: {error}")
