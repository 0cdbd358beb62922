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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beats_core.errors import ConfigError
from beats_data.labels import LabelEncoder
from beats_train.config import DataConfig, TrainingConfig, resolve_batch_size
from beats_train.cross_validation import CrossValidationResults, check_cross_validation_folder, cross_validate
from beats_train.data import PreparedData, load_labelled, prepare_data
from beats_train.evaluation import evaluate_frame, prediction_frame
from beats_train.loop import run_training
from beats_train.model import BEATsClassifier
from beats_train.probe import refuse_resuming
from beats_train.processes import on_main_process, process_state
from beats_train.reports import write_evaluation_reports
from beats_train.results import TrainingResults
from beats_train.run_folder import CONFUSION_MATRIX_FILE, REPORT_FILE, RunFolder, check_output_folder

__all__ = ["BEATsTrainer", "CrossValidationResults"]

#: The per-clip predictions that :meth:`BEATsTrainer.evaluate` writes into its ``output_dir``.
EVALUATION_PREDICTIONS_FILE = "predictions.csv"


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
        # the main process decodes every file once, then shares the result
        return on_main_process(lambda: self._prepare(split), process_state(self.training_config))

    def _prepare(self, split: bool) -> PreparedData:
        return prepare_data(
            self.data_config,
            frame=self._data,
            multi_label=self.training_config.multi_label,
            progress=self.training_config.progress,
            split=split,
        )

    # ------------------------------------------------------------------ training
    def train(
        self,
        *,
        resume_from: str | Path | None = None,
        stop_after: int | None = None,
        overwrite: bool = False,
    ) -> TrainingResults:
        """Fine-tune, keep the best epoch's model, test it, and write the run folder.

        The run folder (:attr:`TrainingConfig.output_dir`) gets ``config.yaml``,
        ``splits.csv``, ``validation_report.txt``, ``metrics.csv`` (one row per epoch),
        ``best_model.pt`` (official fine-tuned BEATs checkpoint), ``state.pt`` (the last
        state, to resume), ``classification_report.txt``, ``confusion_matrix.png``,
        ``training_curves.png``, ``test_predictions.csv`` and ``results.json``.

        With :attr:`TrainingConfig.embeddings` (and ``freeze_backbone``), the clips are
        embedded once into that store and the head trains on the stored embeddings in
        seconds (:mod:`beats_train.probe`): the same files but ``state.pt``; a table of clips
        of recordings (``DataConfig.start_column``) trains only this way.

        Before a single file is decoded, the run folder is checked: it must be writable,
        and a folder that holds an earlier run (its ``best_model.pt``, ``state.pt``,
        ``metrics.csv`` or ``results.json``) is only continued (``resume_from``) or
        replaced (``overwrite=True``), never silently overwritten.

        Args:
            resume_from: a run folder (or its ``state.pt``) to continue from; the result is
                the one an uninterrupted run would have reached.
            stop_after: end this call after that many epochs in total, leaving the state to
                resume from later (e.g. to fit a job's time limit).
            overwrite: replace an earlier run in the run folder (its files are removed before
                the data is read).

        Returns:
            The :class:`~beats_train.results.TrainingResults`: best epoch, validation and
            test metrics, the history, the precision used and the paths.

        Raises:
            ConfigError: an invalid setting for this machine or data, a run folder that
                cannot be written, or one that holds an earlier run.
            DatasetError: the data cannot be trained on (with the validation report).
            CheckpointError: the starting model cannot be loaded.
            TrainingError: the loss diverged, or the state to resume does not fit.
            DiskFullError: the disk filled up (the last finished epoch's state is kept).
            StoreError: the store of :attr:`TrainingConfig.embeddings` holds other embeddings
                than this run trains on (the message names each difference).
        """
        refuse_resuming(self.training_config, resume_from, stop_after)
        folder = RunFolder(self.training_config.output_dir)

        def check_and_prepare() -> PreparedData:
            folder.prepare(resume_from=resume_from, overwrite=overwrite)
            return self._prepare(split=True)

        prepared = on_main_process(check_and_prepare, process_state(self.training_config))
        model, results = run_training(
            prepared,
            self.data_config,
            self.training_config,
            resume_from=resume_from,
            stop_after=stop_after,
            overwrite=overwrite,
        )
        self.model, self.results, self.label_encoder = model, results, prepared.labels
        return results

    def cross_validate(
        self, folds: Sequence[int] | None = None, *, overwrite: bool = False
    ) -> CrossValidationResults:
        """The fold protocol of ESC-50 (5 folds) or UrbanSound8K (10 folds): train once per test fold.

        Each run tests on one fold and trains on the others; its validation set (model
        selection, early stopping) comes from the training folds, never from the test
        fold. Runs go to ``output_dir/fold-K/``; ``cross_validation.csv`` and
        ``cross_validation.json`` summarise them.

        Args:
            folds: the test folds to run (default: every fold of the data).
            overwrite: replace earlier runs in the ``fold-K`` folders.

        Returns:
            The :class:`CrossValidationResults`, with the mean and standard deviation of
            the test accuracy over folds.

        Raises:
            DatasetError: the data has no ``fold`` column, or a fold does not exist.
            ConfigError: the output folder cannot be written, or holds earlier fold runs
                (and ``overwrite`` is False); checked before the data is read.
        """
        root = self.training_config.output_dir

        def check_and_prepare() -> PreparedData:
            check_cross_validation_folder(root, folds, overwrite=overwrite)
            return self._prepare(split=False)  # validated once for every fold

        frame = on_main_process(check_and_prepare, process_state(self.training_config)).frame

        def train_fold(data_config: DataConfig, training_config: TrainingConfig) -> TrainingResults:
            return BEATsTrainer(data_config, training_config, data=frame).train(overwrite=overwrite)

        return cross_validate(
            frame,
            self.data_config,
            self.training_config,
            train_fold,
            folds=folds,
            is_main_process=process_state(self.training_config).is_main_process,
        )

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

    @property
    def batch_size(self) -> int:
        """Clips per batch in evaluation, prediction and extraction (:func:`~beats_train.config.resolve_batch_size`)."""
        return resolve_batch_size(self.data_config, self.training_config)

    def evaluate(
        self,
        data: pd.DataFrame | str | Path,
        *,
        output_dir: str | Path | None = None,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Score the fine-tuned model on labelled clips, and write the reports a training run writes.

        Args:
            data: a DataFrame (its ``audio_column`` / ``label_column`` as in the
                :class:`DataConfig`), a folder with one sub-folder per class, a CSV, or
                ``NAME:PATH`` of a registered loader. Every clip is used (no split).
            output_dir: a folder for ``classification_report.txt``, ``confusion_matrix.png``
                (single-label) and ``predictions.csv`` (one row per clip); it is checked
                before any file is decoded. None writes nothing.
            overwrite: replace those files if the folder holds them already.

        Returns:
            Metrics: ``accuracy``, ``macro_f1``, ``per_class`` (precision, recall, F1,
            support), ``confusion_matrix``, ``loss`` (multi-label: ``map`` and F1s instead),
            and ``predictions``, a DataFrame as :meth:`predict` returns, with the true
            ``category``.

        Raises:
            DatasetError: a label is not one of the model's classes, or the data cannot be read.
            ConfigError: ``output_dir`` cannot be written, or holds reports and ``overwrite`` is
                False; or the rows are clips of recordings (``DataConfig.start_column``):
                evaluation reads whole files.
        """
        model, labels = self._require_model(), self._labels()
        if output_dir is not None:
            reports = (REPORT_FILE, CONFUSION_MATRIX_FILE, EVALUATION_PREDICTIONS_FILE)
            check_output_folder(output_dir, reports, overwrite=overwrite)
        frame = load_labelled(data, self.data_config)
        evaluation = evaluate_frame(
            model,
            labels,
            frame,
            self.data_config,
            batch_size=self.batch_size,
            progress=self.training_config.progress,
        )
        if output_dir is not None:
            source = "the DataFrame" if isinstance(data, pd.DataFrame) else str(data)
            write_evaluation_reports(
                output_dir,
                evaluation,
                frame,
                labels,
                heading=f"{len(evaluation.indices)} clips of {source}",
                title=Path(source).name or source,
                predictions_name=EVALUATION_PREDICTIONS_FILE,
            )
        metrics = dict(evaluation.metrics)
        metrics["predictions"] = prediction_frame(
            frame.iloc[evaluation.indices], evaluation.logits, labels, multi_label=model.multi_label
        )
        return metrics

    def predict(self, files: Sequence[str | Path] | str | Path) -> pd.DataFrame:
        """Classify audio files with the fine-tuned model, as ``beats predict`` does with its checkpoint.

        Long files are cut into windows of ``DataConfig.max_duration`` seconds whose logits are
        averaged (:meth:`beats_extract.ClipClassifier.predict`, in float32).

        Args:
            files: audio file paths (any format beats-core decodes).

        Returns:
            One row per file, in order: ``filename``, ``label`` (the most likely class; for a
            multi-label model every class with probability >= 0.5, joined by the
            delimiter), ``probability``, and ``prob_<label>`` for every class (softmax, or
            independent sigmoids for a multi-label model). A file that cannot be decoded
            gets an empty label and NaN probabilities (and a warning naming it).
        """
        from beats_extract.classify import ClipClassifier

        model = self._require_model()
        model.eval()
        classifier = ClipClassifier(
            model.backbone,
            multi_label=model.multi_label,
            layer_weights=model.checkpoint_extras()["layer_weights"],
            clip_seconds=self.data_config.max_duration,
        )
        return classifier.predict(
            [files] if isinstance(files, str | Path) else files,
            dtype=None,
            batch_size=self.batch_size,
            num_workers=self.data_config.num_workers,
            delimiter=self._labels().delimiter,
            progress=self.training_config.progress,
        )

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
            batch_size: clips per batch (default: :attr:`batch_size`).

        Returns:
            float32 (N, D) embeddings, one row per file.

        Raises:
            ConfigError: there is no fine-tuned model.
        """
        from beats_extract import BEATsFeatureExtractor

        model = self._require_model()
        model.eval()
        device = next(model.parameters()).device
        extractor = BEATsFeatureExtractor(
            model=model.backbone,
            pooling=pooling,
            layer=layer,
            device=str(device),
            batch_size=batch_size or self.batch_size,
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
        options.setdefault("batch_size", self.batch_size)
        options.setdefault("progress", self.training_config.progress)
        return compute_fbank_stats(prepared.split("train"), **options)
