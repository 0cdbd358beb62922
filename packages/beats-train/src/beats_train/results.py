"""What a training run returns, and results as strict JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from beats_train.evaluation import Evaluation
    from beats_train.run_folder import RunFolder
    from beats_train.state import EpochState

__all__ = ["TrainingResults", "plain_json"]


@dataclass
class TrainingResults:
    """What :meth:`BEATsTrainer.train` returns.

    Attributes:
        best_epoch: the epoch (1-based) whose model was kept.
        monitor: the validation metric that chose it.
        best_score: its value at the best epoch (``nan`` without a validation set).
        val_metrics: validation metrics of the best model (empty without a validation set).
        test_metrics: test metrics of the best model, or None without a test set.
        history: one row per epoch (the content of ``metrics.csv``).
        paths: the files of the run folder by name (``output_dir``, ``best_model``,
            ``state``, ``config``, ``metrics``, ``splits``, ``classification_report``,
            ``confusion_matrix``, ``training_curves``, ``predictions``, ``results``).
        stopped_early: whether early stopping ended the run.
        epochs: the epochs finished.
        mixed_precision: the precision the run trained in (``no``, ``bf16`` or ``fp16``;
            what ``auto`` chose on this hardware).
        embeddings: for a linear probe on stored embeddings, what the store gave: ``store``,
            ``recordings_reused``, ``recordings_embedded``, ``clips_cut_from_audio``,
            ``clips_left_out`` and ``seconds`` (see :class:`~beats_train.stored.EmbeddingRun`);
            None for a run of the encoder.
    """

    best_epoch: int
    monitor: str
    best_score: float
    val_metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None
    history: pd.DataFrame
    paths: dict[str, Path] = field(default_factory=dict)
    stopped_early: bool = False
    epochs: int = 0
    mixed_precision: str = "no"
    embeddings: dict[str, Any] | None = None

    @classmethod
    def of_run(
        cls,
        epochs: EpochState,
        *,
        monitor: str,
        validation: Evaluation | None,
        test: Evaluation | None,
        folder: RunFolder,
        files: Mapping[str, str],
        stopped_early: bool,
        mixed_precision: str,
        embeddings: dict[str, Any] | None = None,
    ) -> TrainingResults:
        """The results of a finished run: its epochs, the best model's evaluations and its files.

        Args:
            epochs: where the run stands (history, best epoch and score, epochs finished).
            monitor: the validation metric that chose the best epoch.
            validation: the best model on the validation set, or None without one.
            test: the best model on the test set, or None without one.
            folder: the run folder.
            files: the run's files by name (``best_model``, ``config``, ...), names inside the folder.
            stopped_early: whether early stopping ended the run.
            mixed_precision: the precision the run trained in.
            embeddings: what a store gave a linear probe, or None.

        Returns:
            The results; ``paths`` holds ``output_dir`` and every file of ``files``.
        """
        return cls(
            best_epoch=epochs.best_epoch,
            monitor=monitor,
            best_score=epochs.best_score,
            val_metrics=validation.metrics if validation is not None else {},
            test_metrics=test.metrics if test is not None else None,
            history=pd.DataFrame(epochs.history),
            paths={"output_dir": folder.path, **{key: folder.file(name) for key, name in files.items()}},
            stopped_early=stopped_early,
            epochs=epochs.epoch,
            mixed_precision=mixed_precision,
            embeddings=embeddings,
        )

    def to_dict(self) -> dict[str, Any]:
        """The results as plain data (JSON-serialisable); ``history`` as a list of rows."""
        return {
            "best_epoch": self.best_epoch,
            "monitor": self.monitor,
            "best_score": None if math.isnan(self.best_score) else self.best_score,
            "val_metrics": self.val_metrics,
            "test_metrics": self.test_metrics,
            "history": self.history.to_dict(orient="records"),
            "paths": {key: str(value) for key, value in self.paths.items()},
            "stopped_early": self.stopped_early,
            "epochs": self.epochs,
            "mixed_precision": self.mixed_precision,
            "embeddings": self.embeddings,
        }


def plain_json(value: Any) -> Any:
    """``value`` with NaN and infinities as None, paths and numpy scalars as plain values (strict JSON)."""
    if isinstance(value, dict):
        return {str(key): plain_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
