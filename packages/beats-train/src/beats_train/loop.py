"""One training run on Hugging Face Accelerate: set-up, the epoch loop, early stopping and the run folder.

The same code runs on a CPU, one GPU, or several processes started with
``accelerate launch``. The order follows Accelerate's examples: the process state, the
seed, the model (downloads on the main process first), the data, the optimiser, one
``prepare``, then the loop with ``accumulate``. Evaluation gathers every process's
predictions with their row index and drops the duplicates that even sharding adds, so
metrics cover each clip exactly once even when a bad file makes batch sizes differ.
Early stopping is decided on the gathered metrics and broadcast from the main process, so
every process stops at the same epoch. Only the main process writes files.

The pieces live in their own modules: the objective (:mod:`beats_train.objective`), the
precision (:mod:`beats_train.precision`), the evaluation (:mod:`beats_train.evaluation`),
what is resumed (:class:`~beats_train.state.EpochState`), the folder and its files
(:mod:`beats_train.run_folder`, :mod:`beats_train.reports`).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from accelerate.utils import gather_object, set_seed
from tqdm.auto import tqdm

from beats_core.atomic import atomic_write_text
from beats_core.errors import TrainingError
from beats_core.factory import create_model
from beats_data.frame import CATEGORY
from beats_train.config import DataConfig, TrainingConfig, resolve_batch_size
from beats_train.data import PreparedData, build_loaders, class_weights, refuse_clips
from beats_train.evaluation import Evaluation, evaluate_model
from beats_train.log_lines import epoch_line, flat_hyperparameters, metrics_line, metrics_summary
from beats_train.model import BEATsClassifier, build_classifier
from beats_train.objective import TrainingObjective
from beats_train.optim import build_optimizer, build_scheduler
from beats_train.precision import MixedPrecision, resolve_mixed_precision
from beats_train.probe import ProbeRun, refuse_resuming
from beats_train.processes import make_accelerator, on_main_process, process_state, training_device
from beats_train.reports import write_run_inputs, write_run_reports
from beats_train.results import TrainingResults
from beats_train.run_folder import (
    BEST_MODEL_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    SPLITS_FILE,
    STATE_FILE,
    RunFolder,
)
from beats_train.state import EpochState, RunState
from beats_train.stats import compute_fbank_stats

__all__ = ["TrainingRun", "run_training"]

logger = logging.getLogger(__name__)

#: At most about this many learning-rate samples are kept per run (every step in short runs).
_LEARNING_RATE_SAMPLES = 1000


def run_training(
    data: PreparedData,
    data_config: DataConfig,
    config: TrainingConfig,
    *,
    resume_from: str | Path | None = None,
    stop_after: int | None = None,
    overwrite: bool = False,
) -> tuple[BEATsClassifier, TrainingResults]:
    """Fine-tune a model on prepared data and write the run folder.

    :meth:`BEATsTrainer.train` checks the run folder before it decodes the data, then
    calls this (which checks it again: calling it directly is just as safe).

    Args:
        data: the split, labelled data (the same on every process).
        data_config: decoding and batching settings.
        config: the training configuration.
        resume_from: a run folder (or its ``state.pt``) to continue from.
        stop_after: end this call after that many epochs (counting resumed ones as done),
            leaving the state to resume later (e.g. to fit a job's time limit).
        overwrite: replace an earlier run in ``config.output_dir``.

    With :attr:`TrainingConfig.embeddings`, the head trains on stored embeddings instead
    (:class:`~beats_train.probe.ProbeRun`: seconds, nothing to resume).

    Returns:
        ``(model with the best weights, results)``.

    Raises:
        ConfigError, DatasetError, CheckpointError, TrainingError, DiskFullError, StoreError:
            see the messages; ``resume_from`` and ``stop_after`` are refused for a probe on
            stored embeddings.
    """
    if config.embeddings is not None:
        refuse_resuming(config, resume_from, stop_after)
        return ProbeRun(data, data_config, config, overwrite=overwrite).run()
    run = TrainingRun(data, data_config, config, resume_from=resume_from, overwrite=overwrite)
    return run.run(stop_after=stop_after)


class TrainingRun:
    """One fine-tuning run, set up and ready to train.

    Making it sets everything up: the process state, the run folder (prepared: checked,
    and an earlier run's files cleared for a new run, which takes ``overwrite``) and its
    inputs (main process), the model, the Accelerator, the loaders, the optimiser and schedule, and,
    with ``resume_from``, the state of an earlier run. :meth:`run` trains.

    Args:
        data: the split, labelled data (the same on every process).
        data_config: decoding and batching settings.
        config: the training configuration.
        resume_from: a run folder (or its ``state.pt``) to continue from.
        overwrite: replace an earlier run in ``config.output_dir``.

    Raises:
        ConfigError: the run folder cannot be written or holds an earlier run (see
            :meth:`~beats_train.run_folder.RunFolder.prepare`), a setting does not fit
            this machine, or the rows are clips of recordings (they train from stored
            embeddings, :mod:`beats_train.probe`).

    Attributes:
        classifier: the model being trained (the best weights after :meth:`run`).
        precision: the mixed precision in use.
        epochs: where the run stands (:class:`~beats_train.state.EpochState`).
    """

    def __init__(
        self,
        data: PreparedData,
        data_config: DataConfig,
        config: TrainingConfig,
        *,
        resume_from: str | Path | None = None,
        overwrite: bool = False,
    ) -> None:
        refuse_clips(data.frame, "training with the encoder running in every epoch")
        self.data = data
        self.config = config
        self.folder = RunFolder(config.output_dir)
        self.monitor = config.monitored_metric
        self.labels = data.labels
        self.batch_size = resolve_batch_size(data_config, config)
        device = training_device(config)
        self.precision = MixedPrecision(resolve_mixed_precision(config.mixed_precision, device), device)
        self.process = process_state(config)
        self.is_main = self.process.is_main_process
        on_main_process(
            lambda: self.folder.prepare(resume_from=resume_from, overwrite=overwrite), self.process
        )
        set_seed(config.seed)  # the same on every process: the same initial model
        if self.is_main:
            write_run_inputs(self.folder, config, data_config, data)
        self.classifier = self._build_classifier(data_config)
        layerdrop = self.classifier.backbone.cfg.encoder_layerdrop > 0
        self.accelerator = make_accelerator(
            config, find_unused_parameters=layerdrop or config.unfreeze_after is not None
        )
        set_seed(config.seed, device_specific=True)  # augmentation and dropout differ between processes
        self.frames = {name: data.split(name) for name in ("train", "val", "test")}
        train_loader, eval_loaders = build_loaders(
            self.frames, self.labels, data_config, config, self.batch_size
        )
        optimizer = build_optimizer(self.classifier, config)
        self.model, self.optimizer, self.train_loader, *prepared = self.accelerator.prepare(
            self.classifier, optimizer, train_loader, *eval_loaders.values()
        )
        self.eval_loaders = dict(zip(eval_loaders, prepared, strict=True))
        steps_per_epoch = math.ceil(len(self.train_loader) / config.gradient_accumulation_steps)
        total_steps = steps_per_epoch * config.max_epochs
        frozen_steps = steps_per_epoch * (config.unfreeze_after or 0)
        self.scheduler = build_scheduler(self.optimizer, config, total_steps, frozen_steps)
        self.learning_rate_stride = max(1, total_steps // _LEARNING_RATE_SAMPLES)
        weights = None
        if config.class_balance == "loss":
            targets = self.labels.encode(self.frames["train"][CATEGORY])
            weights = class_weights(targets, len(self.labels)).to(self.accelerator.device)
        self.objective = TrainingObjective(config, len(self.labels), weights, self.precision)
        self.state = RunState(
            self.folder.file(STATE_FILE),
            self.classifier,
            self.optimizer,
            self.scheduler,
            self.accelerator,
            list(self.labels.labels),
        )
        self.epochs = EpochState()
        self.best_weights: dict[str, torch.Tensor] | None = None
        if resume_from is not None:
            self.epochs, self.best_weights = self.state.restore(Path(resume_from))
            if self.is_main:
                logger.info("resuming after epoch %d from %s", self.epochs.epoch, resume_from)

    # ------------------------------------------------------------------ set-up
    def _build_classifier(self, data_config: DataConfig) -> BEATsClassifier:
        config = self.config
        with self.process.main_process_first():  # the main process downloads, the others read the cache
            backbone = create_model(config.model)
        fbank_stats = self._fbank_stats(data_config) if config.dataset_fbank_stats else None
        return build_classifier(
            backbone,
            config,
            self.labels.to_label_dict(),
            fbank_stats=fbank_stats,
            clip_seconds=data_config.max_duration,
        )

    def _fbank_stats(self, data_config: DataConfig) -> tuple[float, float]:
        def measure() -> tuple[float, float]:
            stats = compute_fbank_stats(
                self.data.split("train"),
                max_duration=data_config.max_duration,
                batch_size=self.batch_size,
                num_workers=data_config.num_workers,
                seed=self.config.seed,
                progress=self.config.progress,
            )
            logger.info("fbank statistics of the training clips: mean %.5f, std %.5f", *stats)
            return stats

        return on_main_process(measure, self.process)

    # ------------------------------------------------------------------ the loop
    def run(self, *, stop_after: int | None = None) -> tuple[BEATsClassifier, TrainingResults]:
        """Train until the last epoch, early stopping or ``stop_after`` epochs; test; write the reports.

        Args:
            stop_after: end after that many epochs in total (resumed ones included).

        Returns:
            ``(model with the best weights, results)``.

        Raises:
            TrainingError: the loss is not finite.
            DiskFullError: the disk filled up (the last finished epoch's state is kept).
        """
        config = self.config
        if config.tracker is not None:
            self.accelerator.init_trackers(
                self.folder.path.name or "beats", config=flat_hyperparameters(config)
            )
        try:
            last = config.max_epochs if stop_after is None else min(stop_after, config.max_epochs)
            stopped_early = False
            for epoch in range(self.epochs.epoch, last):
                if self._run_epoch(epoch):
                    stopped_early = True
                    break
            if self.best_weights is not None:
                self.classifier.load_state_dict(self.best_weights)
            self.accelerator.wait_for_everyone()
            return self.classifier, self._finish(stopped_early)
        finally:
            # not end_training(): that also ends the process group, which what follows still needs
            for tracker in self.accelerator.trackers:
                tracker.finish()

    def _run_epoch(self, epoch: int) -> bool:
        """Train and validate one epoch, keep the best model, save the state; return whether to stop early."""
        config = self.config
        started = time.perf_counter()
        if config.unfreeze_after is not None:
            self.classifier.freeze_backbone(epoch < config.unfreeze_after)
        bar = tqdm(
            total=len(self.train_loader),
            desc=f"epoch {epoch + 1}/{config.max_epochs}",
            disable=not (config.progress and self.is_main),
            dynamic_ncols=True,
        )
        row: dict[str, Any] = {"epoch": epoch + 1, **self._train_epoch(epoch, bar)}
        validation = self._evaluate("val", f"validation {epoch + 1}") if "val" in self.eval_loaders else None
        if validation is not None:
            row.update({f"val_{key}": value for key, value in metrics_summary(validation.metrics).items()})
        row["learning_rate"] = self.scheduler.get_last_lr()[-1]
        row["seconds"] = round(time.perf_counter() - started, 3)
        score = row.get(f"val_{self.monitor}", math.nan) if validation is not None else None
        improved = self.epochs.finish_epoch(row, score, self.monitor)
        if improved:
            self.best_weights = {k: v.detach().clone() for k, v in self.classifier.state_dict().items()}
            if self.is_main:
                self.classifier.save(self.folder.file(BEST_MODEL_FILE))
        patience = config.patience
        stop = on_main_process(
            lambda: patience is not None and validation is not None and self.epochs.bad_epochs >= patience,
            self.process,
        )
        self.state.save(self.epochs)
        if self.is_main:
            frame = pd.DataFrame(self.epochs.history)
            atomic_write_text(self.folder.file(METRICS_FILE), frame.to_csv(index=False))
            logger.info(epoch_line(row, config.max_epochs, self.monitor, improved and validation is not None))
        # the finished bar stays on screen as the epoch's one-line summary
        bar.set_postfix(
            {key: f"{value:.4f}" for key, value in row.items() if key.startswith(("train_", "val_"))}
        )
        bar.close()
        if config.tracker is not None:
            self.accelerator.log({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
        if stop and self.is_main:
            logger.info(
                "early stopping: no better validation %s for %d epochs; best epoch %d",
                self.monitor,
                patience,
                self.epochs.best_epoch,
            )
        return stop

    def _train_epoch(self, epoch: int, bar: tqdm) -> dict[str, float]:
        """One pass over the training clips; the mean loss (and accuracy, single-label) over every process."""
        accelerator = self.accelerator
        self.train_loader.set_epoch(epoch)
        self.model.train()
        total = torch.zeros(3, dtype=torch.float64, device=accelerator.device)  # loss sum, clips, correct
        for position, batch in enumerate(self.train_loader, start=1):
            with accelerator.accumulate(self.model):
                loss, logits = self.objective(self.model, batch)
                accelerator.backward(self.precision.scale(loss))
                if accelerator.sync_gradients:
                    self._optimizer_step(epoch + (position - 1) / len(self.train_loader))
                self.optimizer.zero_grad()
            clips = batch["waveform"].shape[0]
            correct = 0 if self.config.multi_label else int((logits.argmax(dim=1) == batch["target"]).sum())
            total += torch.tensor(
                [loss.item() * clips, clips, correct], dtype=torch.float64, device=total.device
            )
            bar.update()
            bar.set_postfix(loss=f"{total[0].item() / total[1].item():.4f}")
        total = accelerator.reduce(total, reduction="sum")
        mean = float(total[0] / total[1])
        if not math.isfinite(mean):
            bar.close()
            raise TrainingError(
                f"the training loss of epoch {epoch + 1} is {mean}: lower the learning rate "
                f"({self.config.learning_rate}), set gradient_clipping, or use mixed_precision='no'"
            )
        if self.config.multi_label:
            return {"train_loss": mean}
        return {"train_loss": mean, "train_accuracy": float(total[2] / total[1])}

    def _optimizer_step(self, position: float) -> None:
        """Clip, update the weights, and advance the schedule, recording the rate used at ``position`` (epochs)."""
        self.precision.unscale(self.optimizer)
        if self.config.gradient_clipping is not None:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.gradient_clipping)
        learning_rate = self.scheduler.get_last_lr()[-1]
        step = self.scheduler.last_epoch
        if self.precision.step(self.optimizer):
            if step % self.learning_rate_stride == 0:
                self.epochs.learning_rates.append([position, learning_rate])
            self.scheduler.step()

    def _evaluate(self, split: str, description: str) -> Evaluation:
        return evaluate_model(
            self.classifier,
            self.eval_loaders[split],
            targets=self.labels.encode(self.frames[split][CATEGORY]),
            labels=list(self.labels.labels),
            multi_label=self.config.multi_label,
            gather=gather_object if self.accelerator.num_processes > 1 else None,
            description=description,
            progress=self.config.progress and self.is_main,
            precision=self.precision,
        )

    # ------------------------------------------------------------------ the end
    def _finish(self, stopped_early: bool) -> TrainingResults:
        validation = self._evaluate("val", "validation (best)") if "val" in self.eval_loaders else None
        test = self._evaluate("test", "test") if "test" in self.eval_loaders else None
        names = {
            "best_model": BEST_MODEL_FILE,
            "state": STATE_FILE,
            "config": CONFIG_FILE,
            "metrics": METRICS_FILE,
            "splits": SPLITS_FILE,
        }
        results = TrainingResults.of_run(
            self.epochs,
            monitor=self.monitor,
            validation=validation,
            test=test,
            folder=self.folder,
            files=names,
            stopped_early=stopped_early,
            mixed_precision=self.precision.precision,
        )
        if self.is_main:
            if not self.folder.file(BEST_MODEL_FILE).is_file():  # no epoch was run in this call
                self.classifier.save(self.folder.file(BEST_MODEL_FILE))
            evaluation, split = (test, "test") if test is not None else (validation, "val")
            rows = self.frames[split]
            write_run_reports(
                self.folder, results, evaluation, split, rows, self.labels, self.epochs.learning_rates
            )
        self.accelerator.wait_for_everyone()
        if self.is_main and test is not None:
            logger.info("test %s", metrics_line(test.metrics))
        return results
