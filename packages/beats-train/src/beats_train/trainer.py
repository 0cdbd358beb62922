"""BEATsTrainer: fine-tune BEATs on your own audio, then evaluate, predict, embed and share the model.

::

    from beats_train import BEATsTrainer, TrainingConfig

    trainer = BEATsTrainer.from_directory("/data/birds", config=TrainingConfig.preset("fast"))
    results = trainer.train()  # writes the run folder, returns the metrics
    trainer.predict(["new.wav"])  # a DataFrame: label and probabilities
    trainer.extract_features(["new.wav"])  # (N, D) embeddings of the fine-tuned encoder
    trainer.push_to_hub("me/beats-birds")  # then load_checkpoint("hf-hub:me/beats-birds")

Training runs on Hugging Face Accelerate: the same script runs on a CPU, a GPU, or several
GPUs or machines with ``accelerate launch`` (see :mod:`beats_train.loop`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beats_core.atomic import atomic_write_text
from beats_core.errors import ConfigError, DatasetError
from beats_data.frame import CATEGORY, FILENAME, FOLD
from beats_data.labels import LabelEncoder
from beats_train.config import DataConfig, TrainingConfig
from beats_train.data import PreparedData, build_dataset, build_loader, files_frame, load_frame, prepare_data
from beats_train.loop import (
    TrainingResults,
    evaluate_model,
    plain_json,
    prediction_frame,
    run_training,
    uses_cpu,
)
from beats_train.model import BEATsClassifier

__all__ = ["BEATsTrainer", "CrossValidationResults"]

logger = logging.getLogger(__name__)


@dataclass
class CrossValidationResults:
    """What :meth:`BEATsTrainer.cross_validate` returns.

    Attributes:
        folds: the test fold of each run, in order.
        accuracies: the test accuracy of each fold's best model.
        mean_accuracy: their mean.
        std_accuracy: their sample standard deviation (ddof=1; 0 for one fold).
        runs: each fold's :class:`~beats_train.loop.TrainingResults`.
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


class BEATsTrainer:
    """Fine-tune a BEATs model on labelled audio, and use the result.

    Build it from a folder (:meth:`from_directory`), a CSV (:meth:`from_csv`), a DataFrame
    (:meth:`from_dataframe`), configurations, or a fine-tuned checkpoint
    (:meth:`from_checkpoint`, to evaluate, predict or embed without training).

    Args:
        data_config: where the data is and how to split and batch it.
        training_config: how to train (see :class:`~beats_train.config.TrainingConfig`
            and its presets).
        data: a dataset DataFrame to use instead of reading ``data_config``'s files;
            ``data_config.audio_column`` / ``label_column`` name its columns.

    Attributes:
        model: the fine-tuned :class:`~beats_train.model.BEATsClassifier` (after
            :meth:`train`, or from :meth:`from_checkpoint`), else None.
        results: the :class:`~beats_train.loop.TrainingResults` of the last :meth:`train`.
        label_encoder: the label mapping of the model.
    """

    def __init__(
        self,
        data_config: DataConfig | None = None,
        training_config: TrainingConfig | None = None,
        *,
        data: pd.DataFrame | None = None,
    ) -> None:
        if data_config is not None and not isinstance(data_config, DataConfig):
            raise ConfigError(f"data_config must be a DataConfig, got {type(data_config).__name__}")
        if training_config is not None and not isinstance(training_config, TrainingConfig):
            raise ConfigError(
                f"training_config must be a TrainingConfig, got {type(training_config).__name__}"
            )
        self.data_config = data_config or DataConfig()
        self.training_config = training_config or TrainingConfig()
        self._data = data
        self.model: BEATsClassifier | None = None
        self.results: TrainingResults | None = None
        self.label_encoder: LabelEncoder | None = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_directory(
        cls, path: str | Path, *, config: TrainingConfig | None = None, **data_options: Any
    ) -> BEATsTrainer:
        """A trainer for a folder with one sub-folder per class (or ``NAME:PATH`` of a registered loader).

        Args:
            path: the dataset folder (``root/<class>/<file>``, or ``root/<split>/<class>/<file>``),
                or e.g. ``"esc50:/data/ESC-50-master"``.
            config: the training configuration (default: :class:`TrainingConfig`'s defaults).
            **data_options: :class:`~beats_train.config.DataConfig` fields (``batch_size``,
                ``test_fold``, ``max_duration``, ...).

        Returns:
            The trainer.
        """
        return cls(DataConfig(data_dir=str(path), **data_options), config)

    @classmethod
    def from_csv(
        cls,
        csv_path: str | Path,
        audio_column: str = "filename",
        label_column: str = "category",
        *,
        config: TrainingConfig | None = None,
        **data_options: Any,
    ) -> BEATsTrainer:
        """A trainer for a CSV file with one row per clip.

        Args:
            csv_path: the CSV; relative audio paths start at its folder (or ``data_dir``).
            audio_column: the column with the audio paths.
            label_column: the column with the labels.
            config: the training configuration.
            **data_options: more :class:`~beats_train.config.DataConfig` fields.

        Returns:
            The trainer.
        """
        data_config = DataConfig(
            metadata_file=str(csv_path), audio_column=audio_column, label_column=label_column, **data_options
        )
        return cls(data_config, config)

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        audio_column: str = "filename",
        label_column: str = "category",
        *,
        config: TrainingConfig | None = None,
        **data_options: Any,
    ) -> BEATsTrainer:
        """A trainer for a DataFrame with one row per clip.

        Args:
            df: the clips; other columns (``fold``, ``split``) are used when present.
            audio_column: the column with the audio paths (relative ones start at ``data_dir``).
            label_column: the column with the labels.
            config: the training configuration.
            **data_options: more :class:`~beats_train.config.DataConfig` fields.

        Returns:
            The trainer.
        """
        if not isinstance(df, pd.DataFrame):
            raise ConfigError(f"from_dataframe needs a pandas DataFrame, got {type(df).__name__}")
        data_config = DataConfig(audio_column=audio_column, label_column=label_column, **data_options)
        return cls(data_config, config, data=df)

    @classmethod
    def from_checkpoint(
        cls,
        name_or_path: str | Path,
        *,
        data_config: DataConfig | None = None,
        training_config: TrainingConfig | None = None,
    ) -> BEATsTrainer:
        """A trainer holding a fine-tuned model, to evaluate, predict, embed or push it.

        Args:
            name_or_path: a fine-tuned checkpoint: a file (e.g. a run's ``best_model.pt``), a
                registered name, or ``hf-hub:owner/name``.
            data_config: batching settings for evaluation and prediction.
            training_config: kept for :meth:`train` (which would start from this checkpoint).

        Returns:
            The trainer, with :attr:`model` loaded (on the CPU, in eval mode).

        Raises:
            CheckpointError: the checkpoint is missing or invalid.
            ConfigError: it has no classifier head.
        """
        model = BEATsClassifier.load(name_or_path)
        config = training_config or TrainingConfig(model=str(name_or_path), multi_label=model.multi_label)
        trainer = cls(data_config, config)
        trainer.model = model
        trainer.label_encoder = LabelEncoder.from_label_dict(
            model.label_dict, multi_label=model.multi_label, delimiter=trainer.data_config.label_delimiter
        )
        return trainer

    # ------------------------------------------------------------------ data
    def prepare_data(self, *, split: bool = True) -> PreparedData:
        """Load, validate and split the dataset as :meth:`train` does (useful to inspect it first).

        Args:
            split: add the ``split`` column; ``False`` only loads, validates and labels.

        Returns:
            The :class:`~beats_train.data.PreparedData`: the split frame, labels, report.

        Raises:
            ConfigError, DatasetError: the data cannot be found, read or trained on; a
                dataset that fails validation raises with the validation report.
        """
        from accelerate import PartialState
        from accelerate.utils import broadcast_object_list

        state = PartialState(cpu=uses_cpu(self.training_config))
        prepared: list[Any] = [None]
        if state.is_main_process:  # decodes every file once, then shares the result
            try:
                prepared[0] = prepare_data(
                    self.data_config,
                    frame=self._data,
                    multi_label=self.training_config.multi_label,
                    progress=self.training_config.progress,
                    split=split,
                )
            except Exception as e:  # the other processes must hear about it too
                prepared[0] = e
        if state.num_processes > 1:
            broadcast_object_list(prepared)
        if isinstance(prepared[0], Exception):
            raise prepared[0]
        return prepared[0]

    # ------------------------------------------------------------------ training
    def train(
        self, *, resume_from: str | Path | None = None, stop_after: int | None = None
    ) -> TrainingResults:
        """Fine-tune, keep the best epoch's model, test it, and write the run folder.

        The run folder (:attr:`TrainingConfig.output_dir`) gets ``config.yaml``,
        ``splits.csv``, ``validation_report.txt``, ``metrics.csv`` (one row per epoch),
        ``best_model.pt`` (official fine-tuned BEATs checkpoint), ``state.pt`` (the last
        state, to resume), ``classification_report.txt``, ``confusion_matrix.png``,
        ``training_curves.png``, ``test_predictions.csv`` and ``results.json``.

        Args:
            resume_from: a run folder (or its ``state.pt``) to continue from; the result is
                the one an uninterrupted run would have reached.
            stop_after: end this call after that many epochs in total, leaving the state to
                resume from later (e.g. to fit a job's time limit).

        Returns:
            The :class:`~beats_train.loop.TrainingResults`: best epoch, validation and test
            metrics, the history and the paths.

        Raises:
            ConfigError: an invalid setting for this machine or data.
            DatasetError: the data cannot be trained on (with the validation report).
            CheckpointError: the starting model cannot be loaded.
            TrainingError: the loss diverged, or the state to resume does not fit.
        """
        prepared = self.prepare_data()
        model, results = run_training(
            prepared, self.data_config, self.training_config, resume_from=resume_from, stop_after=stop_after
        )
        self.model, self.results, self.label_encoder = model, results, prepared.labels
        return results

    def cross_validate(self, folds: Sequence[int] | None = None) -> CrossValidationResults:
        """The fold protocol of ESC-50 (5 folds) or UrbanSound8K (10 folds): train once per test fold.

        Each run tests on one fold and trains on the others; its validation set (model
        selection, early stopping) comes from the training folds, never from the test
        fold. Runs go to ``output_dir/fold-K/``; ``cross_validation.csv`` and
        ``cross_validation.json`` summarise them.

        Args:
            folds: the test folds to run (default: every fold of the data).

        Returns:
            The :class:`CrossValidationResults`, with the mean and standard deviation of
            the test accuracy over folds.

        Raises:
            DatasetError: the data has no ``fold`` column, or a fold does not exist.
        """
        frame = self.prepare_data(split=False).frame  # validated once for every fold
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
        root = Path(self.training_config.output_dir)
        runs, rows = [], []
        for fold in chosen:
            # the frame is loaded and validated: absolute paths in filename, labels in category
            data_config = self.data_config.replace(
                test_fold=fold, val_fold=None, validate=False, audio_column=FILENAME, label_column=CATEGORY
            )
            fold_config = self.training_config.replace(output_dir=str(root / f"fold-{fold}"))
            results = BEATsTrainer(data_config, fold_config, data=frame).train()
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
        std = float(np.std(accuracies, ddof=1)) if len(accuracies) > 1 else 0.0
        summary = CrossValidationResults(
            folds=chosen,
            accuracies=accuracies,
            mean_accuracy=float(np.mean(accuracies)),
            std_accuracy=std,
            runs=runs,
            table=table,
            output_dir=root,
        )
        from accelerate import PartialState

        if PartialState().is_main_process:
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

    # ------------------------------------------------------------------ using the model
    def _require_model(self) -> BEATsClassifier:
        if self.model is None:
            raise ConfigError(
                "no fine-tuned model yet: call train() first, or use BEATsTrainer.from_checkpoint(path)"
            )
        return self.model

    def _labels(self) -> LabelEncoder:
        model = self._require_model()
        if self.label_encoder is None:
            self.label_encoder = LabelEncoder.from_label_dict(
                model.label_dict, multi_label=model.multi_label, delimiter=self.data_config.label_delimiter
            )
        return self.label_encoder

    def evaluate(self, data: pd.DataFrame | str | Path) -> dict[str, Any]:
        """Score the fine-tuned model on labelled clips.

        Args:
            data: a DataFrame (its ``audio_column`` / ``label_column`` as in the
                :class:`DataConfig`), a folder with one sub-folder per class, a CSV, or
                ``NAME:PATH`` of a registered loader. Every clip is used (no split).

        Returns:
            Metrics: ``accuracy``, ``macro_f1``, ``per_class`` (precision, recall, F1,
            support), ``confusion_matrix``, ``loss`` (multi-label: ``map`` and F1s instead),
            and ``predictions``, a DataFrame as :meth:`predict` returns, with the true
            ``category``.

        Raises:
            DatasetError: a label is not one of the model's classes, or the data cannot be read.
        """
        model, labels = self._require_model(), self._labels()
        config = self.data_config
        if isinstance(data, pd.DataFrame):
            frame = load_frame(config, data)
        else:
            spec = str(data)
            csv = spec.lower().endswith(".csv")
            frame = load_frame(
                config.replace(data_dir=None if csv else spec, metadata_file=spec if csv else None)
            )
        targets = labels.encode(frame[CATEGORY])
        dataset = build_dataset(frame, labels, config, train=False)
        loader = build_loader(dataset, config.batch_size, config, shuffle=False)
        evaluation = evaluate_model(
            model,
            loader,
            targets=targets,
            labels=list(labels.labels),
            multi_label=model.multi_label,
            progress=self.training_config.progress,
        )
        metrics = dict(evaluation.metrics)
        metrics["predictions"] = prediction_frame(
            frame.iloc[evaluation.indices], evaluation.logits, labels, multi_label=model.multi_label
        )
        return metrics

    def predict(self, files: Sequence[str | Path] | str | Path) -> pd.DataFrame:
        """Classify audio files with the fine-tuned model.

        Long files are cut into windows of ``DataConfig.max_duration`` seconds whose
        logits are averaged.

        Args:
            files: audio file paths (any format beats-core decodes).

        Returns:
            One row per file, in order: ``filename``, ``label`` (the most likely class; for a
            multi-label model every class with probability >= 0.5, joined by the
            delimiter), ``probability``, and ``prob_<label>`` for every class (softmax, or
            independent sigmoids for a multi-label model). A file that cannot be decoded
            gets an empty label and NaN probabilities (and a logged warning).
        """
        model, labels = self._require_model(), self._labels()
        frame = files_frame([files] if isinstance(files, str | Path) else files)
        dataset = build_dataset(frame, None, self.data_config, train=False)
        loader = build_loader(dataset, self.data_config.batch_size, self.data_config, shuffle=False)
        evaluation = evaluate_model(
            model,
            loader,
            targets=None,
            labels=list(labels.labels),
            multi_label=model.multi_label,
            progress=self.training_config.progress,
        )
        decoded = prediction_frame(
            frame.iloc[evaluation.indices], evaluation.logits, labels, multi_label=model.multi_label
        )
        decoded.index = evaluation.indices
        result = decoded.reindex(range(len(frame)))
        result["filename"] = frame["filename"].to_numpy()
        result["label"] = result["label"].fillna("")
        return result.reset_index(drop=True)

    def extract_features(
        self,
        files: Sequence[str | Path],
        *,
        pooling: str = "mean",
        layer: int = -1,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embeddings of audio files from the fine-tuned encoder, through beats-extract.

        Args:
            files: audio file paths.
            pooling: a pooling registered with beats-extract (``mean``, ``max``, ...).
            layer: the hidden state to pool (-1: the last layer).
            batch_size: clips per batch (default: ``DataConfig.batch_size``).

        Returns:
            float32 (N, D) embeddings, one row per file.

        Raises:
            ConfigError: there is no fine-tuned model, or beats-extract is not installed.
        """
        model = self._require_model()
        try:
            from beats_extract import BEATsFeatureExtractor
        except ImportError as e:
            raise ConfigError(
                "extract_features needs beats-extract: install it from this repository (pip install packages/beats-extract)"
            ) from e
        model.eval()
        device = next(model.parameters()).device
        extractor = BEATsFeatureExtractor(
            model=model.backbone,
            pooling=pooling,
            layer=layer,
            device=str(device),
            batch_size=batch_size or self.data_config.batch_size,
        )
        return np.asarray(extractor.extract_from_files([str(f) for f in files]))

    def save_model(self, path: str | Path) -> Path:
        """Write the fine-tuned model as an official BEATs checkpoint (``finetuned_model=True``, ``label_dict``).

        Args:
            path: the ``.pt`` file.

        Returns:
            The path written.
        """
        return self._require_model().save(path)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str | None = None,
        revision: str = "main",
    ) -> str:
        """Upload the fine-tuned model to a Hugging Face Hub model repository, with a model card.

        The repository gets ``beats_checkpoint.pt`` (the official checkpoint layout),
        ``README.md`` (labels, metrics, configuration, fbank statistics, base checkpoint,
        how to load it) and ``config.yaml``. Anyone can then load it by repo id:
        ``beats_core.load_checkpoint("hf-hub:owner/name")`` or
        ``BEATsTrainer.from_checkpoint("hf-hub:owner/name")``. Under ``accelerate launch``
        only the main process uploads.

        Args:
            repo_id: ``owner/name``; created if it does not exist.
            private: create the repository private (``None``: the Hub's default).
            token: a Hub token with write access (default: ``HF_TOKEN`` or the saved login).
            commit_message: the commit message.
            revision: the branch to commit to.

        Returns:
            The URL of the commit.

        Raises:
            ConfigError: no fine-tuned model, or an invalid repo id.
            HubError: the upload failed (the message says why and what to do).
        """
        from beats_train.hub import push_to_hub

        return push_to_hub(
            self._require_model(),
            repo_id,
            results=self.results,
            training_config=self.training_config,
            data_config=self.data_config,
            private=private,
            token=token,
            commit_message=commit_message,
            revision=revision,
        )

    def compute_fbank_stats(self, **options: Any) -> tuple[float, float]:
        """The fbank mean and standard deviation of the training split (see :func:`beats_train.stats.compute_fbank_stats`).

        Returns:
            ``(mean, std)``: pass them as ``TrainingConfig(fbank_mean=..., fbank_std=...)``.
        """
        from beats_train.stats import compute_fbank_stats

        prepared = self.prepare_data()
        options.setdefault("max_duration", self.data_config.max_duration)
        options.setdefault("progress", self.training_config.progress)
        return compute_fbank_stats(prepared.split("train"), **options)
