"""The files people read after a run or an evaluation: inputs, reports, plots, predictions, results.

A training run writes the classification report, the confusion matrix and the per-clip
predictions for its test split (its validation split without one), and ``beats evaluate
--output-dir`` for the clips it scored, with the same code (:func:`write_evaluation_reports`);
a run adds its training curves and ``results.json`` (:func:`write_run_reports`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from beats_core.atomic import atomic_write_text
from beats_data.frame import CATEGORY, FILENAME, SPLIT
from beats_data.labels import LabelEncoder
from beats_data.validation import format_report
from beats_train.config import DataConfig, TrainingConfig, save_config
from beats_train.data import CLIP_END, CLIP_START, PreparedData
from beats_train.evaluation import Evaluation, prediction_frame
from beats_train.metrics import format_classification_report
from beats_train.plots import plot_confusion_matrix, plot_training_curves
from beats_train.results import TrainingResults, plain_json
from beats_train.run_folder import (
    CONFIG_FILE,
    CONFUSION_MATRIX_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    SPLITS_FILE,
    TRAINING_CURVES_FILE,
    VALIDATION_REPORT_FILE,
    RunFolder,
    predictions_file,
)

__all__ = ["write_evaluation_reports", "write_results", "write_run_inputs", "write_run_reports"]


def write_run_inputs(
    folder: RunFolder, config: TrainingConfig, data_config: DataConfig, data: PreparedData
) -> None:
    """Write what a run starts from: ``config.yaml``, ``splits.csv`` and the validation report (if any).

    Args:
        folder: the run folder.
        config: the training configuration.
        data_config: the data configuration.
        data: the split data (every clip with its split; clips of recordings with their bounds).
    """
    save_config(folder.file(CONFIG_FILE), config, data_config)
    columns = [FILENAME, CLIP_START, CLIP_END, CATEGORY, SPLIT, "fold", "duration"]
    columns = [column for column in columns if column in data.frame]
    atomic_write_text(folder.file(SPLITS_FILE), data.frame[columns].to_csv(index=False))
    if data.report is not None:
        atomic_write_text(folder.file(VALIDATION_REPORT_FILE), format_report(data.report))


def write_evaluation_reports(
    folder: str | Path,
    evaluation: Evaluation,
    rows: pd.DataFrame,
    labels: LabelEncoder,
    *,
    heading: str,
    title: str,
    predictions_name: str,
) -> dict[str, Path]:
    """Write the classification report, the confusion matrix (single-label) and the per-clip predictions.

    Args:
        folder: the output folder (it exists and is writable).
        evaluation: the scored predictions (with metrics).
        rows: the frame the evaluation's ``indices`` point into (``filename``, ``category``).
        labels: the label mapping.
        heading: the report's first line (which clips, which model).
        title: the confusion matrix's title.
        predictions_name: the predictions CSV's file name.

    Returns:
        The files written: ``classification_report``, ``confusion_matrix`` (single-label
        only) and ``predictions``.
    """
    folder = Path(folder)
    report = f"{heading}\n\n{format_classification_report(evaluation.metrics)}"
    paths = {"classification_report": atomic_write_text(folder / REPORT_FILE, report)}
    if not labels.multi_label:
        paths["confusion_matrix"] = plot_confusion_matrix(
            evaluation.metrics["confusion_matrix"], labels.labels, folder / CONFUSION_MATRIX_FILE, title=title
        )
    predictions = prediction_frame(
        rows.iloc[evaluation.indices], evaluation.logits, labels, multi_label=labels.multi_label
    )
    paths["predictions"] = atomic_write_text(folder / predictions_name, predictions.to_csv(index=False))
    return paths


def write_results(path: str | Path, results: TrainingResults) -> Path:
    """Write :meth:`TrainingResults.to_dict` as strict JSON (NaN as null)."""
    return atomic_write_text(path, json.dumps(plain_json(results.to_dict()), indent=2) + "\n")


def write_run_reports(
    folder: RunFolder,
    results: TrainingResults,
    evaluation: Evaluation | None,
    split: str,
    rows: pd.DataFrame,
    labels: LabelEncoder,
    learning_rates: list[list[float]],
) -> None:
    """Write the end of a run: training curves, the evaluation reports of a split, ``results.json``.

    The paths written are added to ``results.paths`` (``training_curves``,
    ``classification_report``, ``confusion_matrix``, ``predictions``, ``results``).

    Args:
        folder: the run folder.
        results: the run's results (its history and best epoch).
        evaluation: the best model's evaluation of ``split``, or None without one.
        split: ``test``, or ``val`` for a run without a test set.
        rows: the split's rows.
        labels: the label mapping.
        learning_rates: ``[position in epochs, learning rate]`` per optimiser step.
    """
    paths = results.paths
    if len(results.history):
        paths["training_curves"] = plot_training_curves(
            results.history,
            folder.file(TRAINING_CURVES_FILE),
            metric=results.monitor,
            learning_rates=learning_rates,
        )
    if evaluation is not None:
        name = "test" if split == "test" else "validation"
        paths.update(
            write_evaluation_reports(
                folder.path,
                evaluation,
                rows,
                labels,
                heading=f"{name} set, best epoch {results.best_epoch}",
                title=f"{split} set",
                predictions_name=predictions_file(split),
            )
        )
    paths["results"] = folder.file(RESULTS_FILE)
    write_results(paths["results"], results)
