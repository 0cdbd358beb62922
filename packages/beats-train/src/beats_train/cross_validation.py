"""Cross-validation over the folds of a dataset: one training run per test fold, and their summary.

The fold protocol of ESC-50 (5 folds) and UrbanSound8K (10 folds): each run tests on one
fold and trains on the others; its validation set (model selection, early stopping) comes
from the training folds, never from the test fold.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beats_core.atomic import atomic_write_text
from beats_core.errors import ConfigError, DatasetError
from beats_data.frame import CATEGORY, FILENAME, FOLD
from beats_train.config import DataConfig, TrainingConfig
from beats_train.data import CLIP_END, CLIP_START
from beats_train.results import TrainingResults, plain_json
from beats_train.run_folder import RunFolder, check_output_folder

__all__ = ["CrossValidationResults", "check_cross_validation_folder", "cross_validate"]

logger = logging.getLogger(__name__)


@dataclass
class CrossValidationResults:
    """What :meth:`BEATsTrainer.cross_validate` returns.

    Attributes:
        folds: the test fold of each run, in order.
        accuracies: the test accuracy of each fold's best model.
        mean_accuracy: their mean.
        std_accuracy: their sample standard deviation (ddof=1; 0 for one fold).
        runs: each fold's :class:`~beats_train.results.TrainingResults`.
        table: one row per fold: ``fold``, ``test_accuracy``, ``test_macro_f1``,
            ``best_epoch``, ``output_dir``.
        output_dir: the folder holding ``fold-K/`` run folders and ``cross_validation.csv``.
    """

    folds: list[int]
    accuracies: list[float]
    mean_accuracy: float
    std_accuracy: float
    runs: list[TrainingResults] = field(repr=False)
    table: pd.DataFrame = field(repr=False)
    output_dir: Path = Path(".")

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain data (JSON-serialisable)."""
        return {
            "folds": self.folds,
            "accuracies": self.accuracies,
            "mean_accuracy": self.mean_accuracy,
            "std_accuracy": self.std_accuracy,
            "output_dir": str(self.output_dir),
            "runs": [run.to_dict() for run in self.runs],
        }


def check_cross_validation_folder(
    root: str | Path, folds: Sequence[int] | None = None, *, overwrite: bool = False
) -> None:
    """Before any work: the folder of the ``fold-K`` runs is writable and holds none of the runs to replace.

    Args:
        root: :attr:`TrainingConfig.output_dir` of the cross-validation.
        folds: the test folds to run (None: every ``fold-K`` folder counts).
        overwrite: earlier fold runs will be replaced.

    Raises:
        ConfigError: the folder cannot be written, or a ``fold-K`` folder of the folds to run
            holds a run and ``overwrite`` is False.
        DiskFullError: the disk is full.
    """
    root = Path(root)
    check_output_folder(root)
    folders = sorted(root.glob("fold-*")) if folds is None else [root / f"fold-{fold}" for fold in folds]
    earlier = [f"{folder.name}/{name}" for folder in folders for name in RunFolder(folder).earlier_results()]
    if earlier and not overwrite:
        shown = ", ".join(earlier[:4]) + (", ..." if len(earlier) > 4 else "")
        raise ConfigError(
            f"{str(root)!r} already holds the runs of a cross-validation ({shown}); replace them with "
            "--overwrite (overwrite=True) or choose another output folder (--output-dir)"
        )


def cross_validate(
    frame: pd.DataFrame,
    data_config: DataConfig,
    training_config: TrainingConfig,
    train: Callable[[DataConfig, TrainingConfig], TrainingResults],
    *,
    folds: Sequence[int] | None = None,
    is_main_process: bool = True,
) -> CrossValidationResults:
    """Train once per test fold and summarise the test accuracies.

    Runs go to ``output_dir/fold-K/``; ``cross_validation.csv`` and ``cross_validation.json``
    in ``output_dir`` summarise them (written by the main process).

    Args:
        frame: the loaded, validated dataset (absolute paths in ``filename``, labels in
            ``category``, a ``fold`` column).
        data_config: the split and batching settings (``test_fold`` is set per run).
        training_config: the training configuration (``output_dir`` is the root).
        train: trains one fold's configurations on ``frame`` and returns its results.
        folds: the test folds to run (default: every fold of the data).
        is_main_process: whether this process writes the summary files.

    Returns:
        The :class:`CrossValidationResults`.

    Raises:
        DatasetError: the data has no ``fold`` column, or a fold does not exist.
    """
    if FOLD not in frame.columns:
        raise DatasetError(
            "cross_validate needs a 'fold' column (ESC-50, UrbanSound8K, or your own); this dataset's columns "
            f"are {list(frame.columns)}"
        )
    available = sorted(int(f) for f in frame[FOLD].unique())
    chosen = list(folds) if folds is not None else available
    missing = [f for f in chosen if f not in available]
    if missing:
        raise DatasetError(f"folds {missing} are not in the data; its folds are {available}")
    root = Path(training_config.output_dir)
    runs, rows = [], []
    for fold in chosen:
        # the frame is loaded and validated: absolute paths in filename, labels in category, clips in clip_start/end
        clips = {"start_column": CLIP_START, "end_column": CLIP_END} if data_config.clips else {}
        fold_data = data_config.replace(
            test_fold=fold,
            val_fold=None,
            validate=False,
            audio_column=FILENAME,
            label_column=CATEGORY,
            **clips,
        )
        results = train(fold_data, training_config.replace(output_dir=str(root / f"fold-{fold}")))
        test = results.test_metrics or {}
        runs.append(results)
        rows.append(
            {
                "fold": fold,
                "test_accuracy": test.get("accuracy", math.nan),
                "test_macro_f1": test.get("macro_f1", math.nan),
                "best_epoch": results.best_epoch,
                "output_dir": str(results.paths["output_dir"]),
            }
        )
        logger.info("fold %d: test accuracy %.4f", fold, rows[-1]["test_accuracy"])
    table = pd.DataFrame(rows)
    accuracies = [float(a) for a in table["test_accuracy"]]
    summary = CrossValidationResults(
        folds=chosen,
        accuracies=accuracies,
        mean_accuracy=float(np.mean(accuracies)),
        std_accuracy=float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0,
        runs=runs,
        table=table,
        output_dir=root,
    )
    if is_main_process:
        atomic_write_text(root / "cross_validation.csv", table.to_csv(index=False))
        brief = {key: value for key, value in summary.to_dict().items() if key != "runs"}
        atomic_write_text(root / "cross_validation.json", json.dumps(plain_json(brief), indent=2) + "\n")
        logger.info(
            "cross-validation over %d folds: accuracy %.4f +- %.4f",
            len(chosen),
            summary.mean_accuracy,
            summary.std_accuracy,
        )
    return summary
