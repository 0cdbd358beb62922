"""A linear probe on stored embeddings: the head of a frozen encoder trained in seconds.

``TrainingConfig(freeze_backbone=True, embeddings=STORE)`` (``beats train DATA
--freeze-backbone --embeddings STORE``) trains what ``freeze_backbone`` alone trains, the
classifier head (and the layer weights of ``weighted_layer_sum``), without running the
encoder in every epoch: every clip is embedded once into the store
(:mod:`beats_train.stored`; a second run, another fold or a labelled subset of an embedded
archive embeds nothing), then the head trains on the embeddings in memory with plain
torch. The head is linear, so the head applied to a clip's mean-pooled embedding gives the
logits the model gives the clip (:meth:`~beats_train.model.BEATsClassifier.head_logits`).

Everything else is the training loop's: the same initial head (same seed), optimiser and
parameter groups, learning-rate schedule (as many optimiser steps per epoch: mini-batches
of the run's batch size in the order of the loop's length-grouped batches of the same seed,
or its balanced sampler), loss (class
weights, label smoothing, multi-label), gradient accumulation and clipping, validation
metric, best epoch and early stopping; a clip longer than ``max_duration`` trains on one of
its windows drawn in every epoch (a random crop) and is evaluated on the mean of its
windows' logits. The run folder holds the same files (``config.yaml``, ``splits.csv``,
``metrics.csv``, ``best_model.pt``, the reports, the plots, ``results.json``) except
``state.pt``: a probe takes seconds and is run again rather than resumed.
``best_model.pt`` is an official fine-tuned checkpoint: the encoder that made the
embeddings, with the trained head.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from beats_core.atomic import atomic_write_text
from beats_core.errors import ConfigError, TrainingError
from beats_core.factory import create_model
from beats_data.frame import CATEGORY
from beats_data.samplers import LengthGroupedSampler
from beats_train.config import DataConfig, TrainingConfig, resolve_batch_size
from beats_train.data import BalancedSampler, PreparedData, build_dataset, class_weights
from beats_train.evaluation import Evaluation, clip_evaluation
from beats_train.log_lines import epoch_line, flat_hyperparameters, metrics_line, metrics_summary
from beats_train.model import BEATsClassifier, build_classifier
from beats_train.objective import TrainingObjective
from beats_train.optim import build_optimizer, build_scheduler
from beats_train.precision import MixedPrecision, resolve_mixed_precision
from beats_train.processes import make_accelerator, process_state, training_device
from beats_train.reports import write_run_inputs, write_run_reports
from beats_train.results import TrainingResults
from beats_train.run_folder import BEST_MODEL_FILE, CONFIG_FILE, METRICS_FILE, SPLITS_FILE, RunFolder
from beats_train.state import EpochState
from beats_train.stats import compute_fbank_stats
from beats_train.stored import ClipEmbeddings, embed_dataset, store_extractor

__all__ = ["ProbeRun", "refuse_resuming"]

logger = logging.getLogger(__name__)

#: At most about this many learning-rate samples are kept per run (every step in short runs).
_LEARNING_RATE_SAMPLES = 1000


def refuse_resuming(config: TrainingConfig, resume_from: str | Path | None, stop_after: int | None) -> None:
    """Stop a probe on stored embeddings that is asked to resume or to stop early: it takes seconds, run it again.

    Args:
        config: the training configuration.
        resume_from: the run to continue, or None.
        stop_after: the epochs to stop after, or None.

    Raises:
        ConfigError: :attr:`TrainingConfig.embeddings` is set and ``resume_from`` or ``stop_after`` is given.
    """
    if config.embeddings is not None and (resume_from is not None or stop_after is not None):
        raise ConfigError(
            "a linear probe on stored embeddings (TrainingConfig.embeddings) takes seconds and is not resumed: "
            "leave out resume_from / stop_after (--resume), and run it again with overwrite=True (--overwrite)"
        )


class ProbeRun:
    """A linear probe on stored embeddings, set up and ready to train.

    Making it prepares the run folder (checked; an earlier run's files cleared, which takes
    ``overwrite``), writes the run's inputs, builds the model as the training loop would
    (same seed, same head), embeds the clips the store lacks and reads every clip's
    embeddings. :meth:`run` trains.

    Args:
        data: the split, labelled data.
        data_config: ``max_duration``, ``num_workers`` and batching.
        config: the training configuration (:attr:`~TrainingConfig.embeddings` is the store).
        overwrite: replace an earlier run in ``config.output_dir``.

    Raises:
        ConfigError: no store is given, several processes were launched, or the run folder
            cannot be written or holds an earlier run.
        StoreError: the store holds other embeddings than this run trains on (the message
            names each difference), or cannot be written.
        CheckpointError: the model cannot be loaded.

    Attributes:
        classifier: the model whose head is trained (the best head after :meth:`run`).
        embeddings: every split's :class:`~beats_train.stored.ClipEmbeddings`.
        embedding_run: what embedding the clips did (:class:`~beats_train.stored.EmbeddingRun`).
        epochs: where the run stands (:class:`~beats_train.state.EpochState`).
    """

    def __init__(
        self, data: PreparedData, data_config: DataConfig, config: TrainingConfig, *, overwrite: bool = False
    ) -> None:
        if config.embeddings is None:
            raise ConfigError(
                "a linear probe on stored embeddings needs TrainingConfig.embeddings (a store folder)"
            )
        if process_state(config).num_processes > 1:
            raise ConfigError(
                "a linear probe on stored embeddings (TrainingConfig.embeddings) runs in one process: run beats "
                "train without accelerate launch (the probe takes seconds; a store is filled by several processes "
                "with accelerate launch -m beats_extract)"
            )
        self.data = data
        self.config = config
        self.folder = RunFolder(config.output_dir)
        self.monitor = config.monitored_metric
        self.labels = data.labels
        self.batch_size = resolve_batch_size(data_config, config)
        self.device = training_device(config)
        self.precision = resolve_mixed_precision(config.mixed_precision, self.device)
        self.folder.prepare(overwrite=overwrite)
        set_seed(config.seed)  # the model and head the training loop would start from
        write_run_inputs(self.folder, config, data_config, data)
        self.classifier = self._build_classifier(data_config)
        extractor, _ = store_extractor(
            self.classifier.backbone,
            config,
            data_config,
            precision=self.precision,
            batch_size=self.batch_size,
            device=self.device,
        )
        stacked = self.classifier.layer_weights is not None
        embeddings, self.embedding_run = embed_dataset(data, extractor, config, data_config, stacked=stacked)
        self.embeddings = {name: split.to(self.device) for name, split in embeddings.items()}
        if "train" not in self.embeddings:
            raise TrainingError(
                "no training clip could be embedded (see the warnings naming them): fix or replace those files"
            )
        self.frames = {name: data.split(name) for name in ("train", "val", "test")}
        self.targets = {name: self._targets(name) for name in self.embeddings}
        self.train_clips = self.embeddings["train"].clips()
        self.batches_per_epoch = math.ceil(len(self.train_clips) / self.batch_size)
        steps_per_epoch = math.ceil(self.batches_per_epoch / config.gradient_accumulation_steps)
        total_steps = steps_per_epoch * config.max_epochs
        self.learning_rate_stride = max(1, total_steps // _LEARNING_RATE_SAMPLES)
        self.optimizer = build_optimizer(self.classifier, config)
        self.scheduler = build_scheduler(self.optimizer, config, total_steps)
        weights = None
        if config.class_balance == "loss":
            targets = self.labels.encode(self.frames["train"][CATEGORY])
            weights = class_weights(targets, len(self.labels)).to(self.device)
        self.objective = TrainingObjective(
            config, len(self.labels), weights, MixedPrecision("no", self.device)
        )
        # the order of the training loop's batches: its balanced sampler, or its length-grouped
        # batches of the same seed (the same mini-batches, epoch for epoch, as a run of the encoder)
        self.sampler: BalancedSampler | LengthGroupedSampler
        if config.class_balance == "sampler":
            self.sampler = BalancedSampler(
                self.targets["train"][self.train_clips].cpu().numpy(), seed=config.seed
            )
        else:
            lengths = build_dataset(self.frames["train"], self.labels, data_config, train=True).lengths()
            self.sampler = LengthGroupedSampler(
                lengths[self.train_clips.cpu().numpy()], self.batch_size, shuffle=True, seed=config.seed
            )
        self.epochs = EpochState()
        self.best_head: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ set-up
    def _build_classifier(self, data_config: DataConfig) -> BEATsClassifier:
        config = self.config
        backbone = create_model(config.model, map_location=self.device)
        fbank_stats = None
        if config.dataset_fbank_stats:
            fbank_stats = compute_fbank_stats(
                self.data.split("train"),
                max_duration=data_config.max_duration,
                batch_size=self.batch_size,
                num_workers=data_config.num_workers,
                seed=config.seed,
                progress=config.progress,
            )
            logger.info("fbank statistics of the training clips: mean %.5f, std %.5f", *fbank_stats)
        classifier = build_classifier(
            backbone,
            config,
            self.labels.to_label_dict(),
            fbank_stats=fbank_stats,
            clip_seconds=data_config.max_duration,
        )
        return classifier.to(self.device)

    def _targets(self, split: str) -> torch.Tensor:
        targets = torch.as_tensor(self.labels.encode(self.frames[split][CATEGORY]))
        return (targets.float() if self.config.multi_label else targets.long()).to(self.device)

    # ------------------------------------------------------------------ the loop
    def run(self) -> tuple[BEATsClassifier, TrainingResults]:
        """Train until the last epoch or early stopping; test; write the reports and the best model.

        Returns:
            ``(model with the best head, results)``; ``results.embeddings`` says what the
            store gave and what was embedded.

        Raises:
            TrainingError: the loss is not finite.
        """
        config = self.config
        started = time.perf_counter()
        tracker = make_accelerator(config) if config.tracker is not None else None
        if tracker is not None:
            tracker.init_trackers(self.folder.path.name or "beats", config=flat_hyperparameters(config))
        stopped_early = False
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the head's small products: more threads only wait for each other
        try:
            bar = tqdm(
                range(config.max_epochs), desc="linear probe", disable=not config.progress, leave=False
            )
            for epoch in bar:
                row, stop = self._run_epoch(epoch)
                bar.set_postfix({key: f"{value:.4f}" for key, value in row.items() if key.startswith("val_")})
                if tracker is not None:
                    tracker.log({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
                if stop:
                    stopped_early = True
                    logger.info(
                        "early stopping: no better validation %s for %d epochs; best epoch %d",
                        self.monitor,
                        config.patience,
                        self.epochs.best_epoch,
                    )
                    break
            bar.close()
        finally:
            torch.set_num_threads(threads)
            for run_tracker in tracker.trackers if tracker is not None else []:
                run_tracker.finish()
        if self.best_head is not None:
            self.classifier.load_state_dict(self.best_head, strict=False)
        logger.info(
            "trained the head in %.1f s (%d epochs); embeddings: %d recordings reused, %d embedded, %d clips cut "
            "from audio, in %.1f s",
            time.perf_counter() - started,
            self.epochs.epoch,
            self.embedding_run.reused,
            self.embedding_run.embedded,
            self.embedding_run.cut,
            self.embedding_run.seconds,
        )
        return self.classifier, self._finish(stopped_early)

    def _run_epoch(self, epoch: int) -> tuple[dict[str, Any], bool]:
        """Train and validate one epoch and keep the best head; return its metrics row and whether to stop."""
        started = time.perf_counter()
        row: dict[str, Any] = {"epoch": epoch + 1, **self._train_epoch(epoch)}
        validation = self._evaluate("val") if "val" in self.embeddings else None
        if validation is not None:
            row.update({f"val_{key}": value for key, value in metrics_summary(validation.metrics).items()})
        row["learning_rate"] = self.scheduler.get_last_lr()[-1]
        row["seconds"] = round(time.perf_counter() - started, 3)
        score = row.get(f"val_{self.monitor}", math.nan) if validation is not None else None
        improved = self.epochs.finish_epoch(row, score, self.monitor)
        if improved:
            self.best_head = {
                name: value.detach().clone()
                for name, value in self.classifier.named_parameters()
                if value.requires_grad
            }
        logger.info(
            epoch_line(row, self.config.max_epochs, self.monitor, improved and validation is not None)
        )
        patience = self.config.patience
        stop = patience is not None and validation is not None and self.epochs.bad_epochs >= patience
        return row, stop

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training clips in mini-batches; the mean loss (and accuracy, single-label)."""
        config = self.config
        split = self.embeddings["train"]
        generator = torch.Generator().manual_seed(config.seed + epoch)
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler), dtype=torch.int64)
        window = split.draw(generator).to(self.device)  # one window per clip: a random crop of a long clip
        targets = self.targets["train"][self.train_clips]
        self.classifier.train()
        accumulation = config.gradient_accumulation_steps
        total = torch.zeros(3, dtype=torch.float64)  # loss sum, clips, correct
        for position, batch in enumerate(order.to(self.device).split(self.batch_size), start=1):
            logits = self.classifier.head_logits(split.features[window[batch]]).float()
            loss = self.objective.loss(logits, targets[batch])
            (loss / accumulation).backward()
            if position % accumulation == 0 or position == self.batches_per_epoch:
                self._optimizer_step(epoch + (position - 1) / self.batches_per_epoch)
            clips = len(batch)
            correct = 0 if config.multi_label else int((logits.argmax(dim=1) == targets[batch]).sum())
            total += torch.tensor([loss.item() * clips, clips, correct], dtype=torch.float64)
        mean = float(total[0] / total[1])
        if not math.isfinite(mean):
            raise TrainingError(
                f"the training loss of epoch {epoch + 1} is {mean}: lower the learning rate "
                f"({config.learning_rate}) or set gradient_clipping"
            )
        if config.multi_label:
            return {"train_loss": mean}
        return {"train_loss": mean, "train_accuracy": float(total[2] / total[1])}

    def _optimizer_step(self, position: float) -> None:
        """Clip, update the head, zero its gradients, and advance the schedule, recording the rate used."""
        if self.config.gradient_clipping is not None:
            parameters = [p for p in self.classifier.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(parameters, self.config.gradient_clipping)
        learning_rate = self.scheduler.get_last_lr()[-1]
        if self.scheduler.last_epoch % self.learning_rate_stride == 0:
            self.epochs.learning_rates.append([position, learning_rate])
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()

    def _evaluate(self, split: str) -> Evaluation:
        """Every clip of a split: the mean of its windows' logits, scored."""
        embeddings: ClipEmbeddings = self.embeddings[split]
        self.classifier.eval()
        with torch.no_grad():
            logits = self.classifier.head_logits(embeddings.features).float()
        return clip_evaluation(
            embeddings.rows.cpu().numpy(),
            logits.cpu().numpy(),
            self.labels.encode(self.frames[split][CATEGORY]),
            list(self.labels.labels),
            self.config.multi_label,
        )

    # ------------------------------------------------------------------ the end
    def _finish(self, stopped_early: bool) -> TrainingResults:
        validation = self._evaluate("val") if "val" in self.embeddings else None
        test = self._evaluate("test") if "test" in self.embeddings else None
        names = {
            "config": CONFIG_FILE,
            "metrics": METRICS_FILE,
            "splits": SPLITS_FILE,
            "best_model": BEST_MODEL_FILE,
        }
        results = TrainingResults.of_run(
            self.epochs,
            monitor=self.monitor,
            validation=validation,
            test=test,
            folder=self.folder,
            files=names,
            stopped_early=stopped_early,
            mixed_precision=self.precision,
            embeddings=self.embedding_run.to_dict(),
        )
        atomic_write_text(self.folder.file(METRICS_FILE), results.history.to_csv(index=False))
        self.classifier.save(self.folder.file(BEST_MODEL_FILE))
        evaluation, split = (test, "test") if test is not None else (validation, "val")
        write_run_reports(
            self.folder,
            results,
            evaluation,
            split,
            self.frames[split],
            self.labels,
            self.epochs.learning_rates,
        )
        if test is not None:
            logger.info("test %s", metrics_line(test.metrics))
        return results
