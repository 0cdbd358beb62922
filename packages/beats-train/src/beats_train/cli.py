"""``beats train`` and ``beats evaluate`` (``beats predict`` comes with beats-extract).

Each wraps a public method of :class:`~beats_train.trainer.BEATsTrainer`. Several processes:
``accelerate launch [options] -m beats_train DATA ...`` takes the same arguments as
``beats train``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from beats_core.hookspecs import SubParsers

__all__ = ["add_commands", "add_train_arguments", "hits_table_columns", "run_evaluate", "run_train"]


def add_commands(subparsers: SubParsers) -> None:
    """Add ``train`` and ``evaluate`` to the ``beats`` command.

    Args:
        subparsers: the ``beats`` parser's sub-parsers object.
    """
    train = subparsers.add_parser(
        "train",
        help="fine-tune BEATs on a labelled dataset",
        description="Fine-tune BEATs on a dataset and write a run folder (configs, metrics.csv, best_model.pt, "
        "plots, report). Several processes or GPUs: accelerate launch [options] -m beats_train DATA ...",
    )
    add_train_arguments(train)
    train.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="score a fine-tuned checkpoint on labelled clips",
        description="Score a fine-tuned checkpoint on every clip of a labelled dataset and print the classification "
        "report (accuracy, macro-F1, per-class precision and recall); with --output-dir, also write it with the "
        "confusion matrix (PNG) and the per-clip predictions (CSV).",
    )
    evaluate.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a fine-tuned .pt file, a model name or hf-hub:owner/name"
    )
    _add_data_argument(evaluate)
    evaluate.add_argument("--audio-column", default="filename", help="CSV column with the audio paths")
    evaluate.add_argument("--label-column", default="category", help="CSV column with the labels")
    _add_batching_arguments(evaluate)
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(
        "--output-dir",
        help="write classification_report.txt, confusion_matrix.png and predictions.csv into this folder",
    )
    evaluate.add_argument(
        "--overwrite", action="store_true", help="replace those files if the folder holds them already"
    )
    evaluate.set_defaults(func=run_evaluate)


def _add_batching_arguments(parser: argparse.ArgumentParser) -> None:
    """``--batch-size`` and ``--max-duration``; left out, DataConfig's defaults apply."""
    parser.add_argument("--batch-size", type=int, help="clips per batch (default: DataConfig's, 16)")
    parser.add_argument(
        "--max-duration",
        type=float,
        help="window length in seconds for long clips (default: DataConfig's, 10)",
    )


def _data_config(args: argparse.Namespace, **fields: Any) -> Any:
    """A DataConfig of ``fields`` and the batching flags that were given."""
    from beats_train.config import DataConfig

    flags = {"batch_size": args.batch_size, "max_duration": args.max_duration}
    return DataConfig(**fields, **{key: value for key, value in flags.items() if value is not None})


def _add_data_argument(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    parser.add_argument(
        "data",
        metavar="DATA",
        nargs="?" if optional else None,
        help="a folder with one sub-folder per class, a .csv file, or NAME:PATH of a registered loader "
        "(esc50:/data/ESC-50-master, urbansound8k:/data/UrbanSound8K, ...)",
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``beats train`` (and of ``python -m beats_train``).

    Args:
        parser: the parser to add them to.
    """
    _add_data_argument(parser, optional=True)
    parser.add_argument("--config", help="a YAML or JSON file with 'data' and 'training' sections")
    parser.add_argument("--preset", help="a named recipe: esc50-paper or fast")
    parser.add_argument(
        "--model", help="model name, checkpoint file, hf-hub:owner/name, or random:tiny|base|large"
    )
    parser.add_argument("--epochs", type=int, help="maximum number of epochs")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, help="clips per batch and process")
    parser.add_argument("--output-dir", help="the run folder")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        metavar="RUN",
        help="continue an interrupted run: from the output folder, or from the run folder / state.pt given",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in the output folder (without it, a folder holding one is refused)",
    )
    parser.add_argument("--test-fold", type=int, help="the test fold (ESC-50, UrbanSound8K)")
    parser.add_argument(
        "--val-fold", type=int, help="a validation fold (default: part of the training folds)"
    )
    parser.add_argument(
        "--cross-validate", action="store_true", help="run every fold as test fold, report mean +- std"
    )
    parser.add_argument("--audio-column", help="CSV column with the audio paths (default filename)")
    parser.add_argument("--label-column", help="CSV column with the labels (default category)")
    parser.add_argument(
        "--multi-label", action="store_true", help="several labels per clip (sigmoid outputs)"
    )
    parser.add_argument("--label-delimiter", help="separator of the labels of a clip (default ',')")
    parser.add_argument("--max-duration", type=float, help="crop / window length in seconds (default 10)")
    parser.add_argument("--num-workers", type=int, help="audio decoding processes per training process")
    parser.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16", "fp16"],
        help="auto (default): bf16 where the GPU or CPU computes it natively, else no",
    )
    parser.add_argument("--freeze-backbone", action="store_true", help="train the head only (linear probe)")
    parser.add_argument(
        "--embeddings",
        metavar="STORE",
        help="with --freeze-backbone: embed every clip once into this store of embeddings (a folder; clips it "
        "holds are reused) and train the head on the stored embeddings, in seconds",
    )
    parser.add_argument(
        "--start-column",
        help="CSV column of where each clip starts in its recording, in seconds (with --end-column; a hits table "
        "of `beats search -o hits.csv` is recognised without them)",
    )
    parser.add_argument("--end-column", help="CSV column of where each clip ends, in seconds")
    parser.add_argument("--patience", type=int, help="epochs without improvement before stopping")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--tracker", help="experiment tracker (tensorboard, wandb, mlflow, ...)")
    parser.add_argument("--no-validate", action="store_true", help="skip decoding every file before training")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    """The DataConfig and TrainingConfig of parsed ``beats train`` arguments.

    Precedence: the defaults (or ``--preset``), then ``--config``, then the other flags.

    Returns:
        ``(data_config, training_config)``.

    Raises:
        ConfigError: an invalid combination or value.
    """
    from beats_core.errors import ConfigError
    from beats_train.config import DataConfig, TrainingConfig, load_config

    data_config, training_config = DataConfig(), TrainingConfig()
    if args.config:
        if args.preset:
            raise ConfigError(
                "give the preset inside the config file (training: {preset: NAME}) or with --preset, not both"
            )
        loaded_data, loaded_training = load_config(args.config)
        data_config = loaded_data or data_config
        training_config = loaded_training or training_config
    elif args.preset:
        training_config = TrainingConfig.preset(args.preset)
    data: dict[str, Any] = {}
    if args.data:
        is_csv = args.data.lower().endswith(".csv") and Path(args.data).is_file()
        data = (
            {"metadata_file": args.data, "data_dir": None}
            if is_csv
            else {"data_dir": args.data, "metadata_file": None}
        )
        columns = (args.audio_column, args.label_column, args.start_column, args.end_column)
        if is_csv and all(column is None for column in columns):
            data.update(hits_table_columns(Path(args.data)))
    flags = {
        "audio_column": args.audio_column,
        "label_column": args.label_column,
        "start_column": args.start_column,
        "end_column": args.end_column,
        "label_delimiter": args.label_delimiter,
        "test_fold": args.test_fold,
        "val_fold": args.val_fold,
        "batch_size": args.batch_size,
        "max_duration": args.max_duration,
        "num_workers": args.num_workers,
    }
    data.update({key: value for key, value in flags.items() if value is not None})
    if args.no_validate:
        data["validate"] = False
    data_config = data_config.replace(**data)
    training = {
        "model": args.model,
        "max_epochs": args.epochs,
        "learning_rate": args.lr,
        "output_dir": args.output_dir,
        "mixed_precision": args.mixed_precision,
        "patience": args.patience,
        "seed": args.seed,
        "tracker": args.tracker,
    }
    training = {key: value for key, value in training.items() if value is not None}
    if args.batch_size is not None:
        training["batch_size"] = args.batch_size
    if args.multi_label:
        training["multi_label"] = True
    if args.freeze_backbone:
        training["freeze_backbone"] = True
    if args.embeddings is not None:
        training["embeddings"] = args.embeddings
    if args.no_progress:
        training["progress"] = False
    training_config = training_config.replace(**training)
    if data_config.data_dir is None and data_config.metadata_file is None:
        raise ConfigError(
            "no data: pass DATA (a folder, a .csv file or NAME:PATH) or a config file with a data section"
        )
    return data_config, training_config


def hits_table_columns(path: Path) -> dict[str, str]:
    """The columns of a hits table of ``beats search -o`` (``path``, ``start``, ``end``, ``label``), if ``path`` is one.

    Args:
        path: a CSV file.

    Returns:
        ``audio_column``, ``label_column``, ``start_column`` and ``end_column`` of a
        :class:`~beats_train.config.DataConfig` for a hits table; empty for any other CSV
        (one with a ``filename`` column, or without those columns) or one that cannot be read.
    """
    import pandas as pd

    try:
        header = set(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        return {}  # the loader reports it
    if "filename" in header or not {"path", "start", "end", "label"} <= header:
        return {}
    return {"audio_column": "path", "label_column": "label", "start_column": "start", "end_column": "end"}


def run_train(args: argparse.Namespace) -> int:
    """Run ``beats train``: train (or cross-validate) and print the results.

    Returns:
        0 on success, 130 when interrupted (the message says how to continue).

    Raises:
        ConfigError: ``--resume`` with ``--cross-validate``, or a bad setting.
        DiskFullError: the disk filled up (the message says how to continue).
    """
    from beats_core.errors import ConfigError, DiskFullError
    from beats_train.processes import process_state
    from beats_train.run_folder import RunFolder
    from beats_train.trainer import BEATsTrainer

    data_config, training_config = build_configs(args)
    trainer = BEATsTrainer(data_config, training_config)
    is_main = process_state(training_config).is_main_process
    folder = RunFolder(training_config.output_dir)
    if args.cross_validate:
        if args.resume:
            raise ConfigError(
                "--resume continues one run; a cross-validation starts again: leave out --resume (add "
                "--overwrite to replace the earlier folds)"
            )
        try:
            summary = trainer.cross_validate(overwrite=args.overwrite)
        except KeyboardInterrupt:
            if is_main:
                print(
                    "beats: interrupted; a cross-validation does not resume: run the same command with "
                    "--overwrite to start it again",
                    file=sys.stderr,
                )
            return 130
        if is_main:
            for fold, accuracy in zip(summary.folds, summary.accuracies, strict=True):
                print(f"fold {fold}: test accuracy {accuracy:.4f}")
            print(
                f"accuracy over {len(summary.folds)} folds: {summary.mean_accuracy:.4f} +- {summary.std_accuracy:.4f}"
            )
            print(f"runs: {summary.output_dir}")
        return 0
    resume = training_config.output_dir if args.resume is True else args.resume
    try:
        results = trainer.train(resume_from=resume, overwrite=args.overwrite)
    except KeyboardInterrupt:
        if is_main:
            print(_interrupted(folder), file=sys.stderr)
        return 130
    except DiskFullError as e:
        command = folder.resume_command()
        if command is None:
            raise
        raise DiskFullError(f"{e}; then continue the run with: {command}") from e
    if is_main:
        selection = (
            f"validation {results.monitor} {results.best_score:.4f}"
            if results.val_metrics
            else "no validation set: the last epoch"
        )
        print(
            f"best epoch {results.best_epoch} of {results.epochs} ({selection}; "
            f"mixed precision {results.mixed_precision})"
        )
        for split, metrics in (("validation", results.val_metrics), ("test", results.test_metrics or {})):
            shown = [f"{key} {metrics[key]:.4f}" for key in ("accuracy", "macro_f1", "map") if key in metrics]
            if shown:
                print(f"{split}: " + ", ".join(shown))
        if results.embeddings is not None:
            stored = results.embeddings
            print(
                f"embeddings from {stored['store']}: {stored['recordings_reused']} recordings reused, "
                f"{stored['recordings_embedded']} embedded, {stored['clips_cut_from_audio']} clips cut from their "
                f"audio ({stored['seconds']:.1f} s)"
            )
        print(f"run folder: {results.paths['output_dir']}")
        print(f"model: {results.paths['best_model']}")
    return 0


def _interrupted(folder: Any) -> str:
    """The message of an interrupted ``beats train``: how to continue, or that there is nothing to continue."""
    command = folder.resume_command()
    if command is None:
        return (
            "beats: interrupted before the first epoch ended: there is nothing to continue; run the same "
            "command again to start over"
        )
    return f"beats: interrupted; the last finished epoch is saved: continue with: {command}"


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``beats evaluate``: print the classification report (or JSON) of a checkpoint on a dataset.

    With ``--output-dir`` the report, the confusion matrix and the per-clip predictions are
    written there too (the files a training run writes for its test split).

    Returns:
        0 on success.
    """
    from beats_train.metrics import format_classification_report
    from beats_train.trainer import BEATsTrainer

    data_config = _data_config(args, audio_column=args.audio_column, label_column=args.label_column)
    trainer = BEATsTrainer.from_checkpoint(args.checkpoint, data_config=data_config)
    metrics = trainer.evaluate(args.data, output_dir=args.output_dir, overwrite=args.overwrite)
    metrics.pop("predictions")
    if args.json:
        from beats_train.results import plain_json

        print(json.dumps(plain_json(metrics), indent=2))
    else:
        print(format_classification_report(metrics), end="")
    if args.output_dir:
        print(f"reports written to {args.output_dir}", file=sys.stderr if args.json else sys.stdout)
    return 0
