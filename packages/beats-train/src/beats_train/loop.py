"""One training run on Hugging Face Accelerate: the epoch loop, evaluation, early stopping and the run folder.

The same code runs on a CPU, one GPU, or several processes started with
``accelerate launch``. The order follows Accelerate's examples: the process state, the
seed, the model (downloads on the main process first), the data, the optimiser, one
``prepare``, then the loop with ``accumulate``. Evaluation gathers every process's
predictions with their row index and drops the duplicates that even sharding adds, so
metrics cover each clip exactly once even when a bad file makes batch sizes differ.
Early stopping is decided on the gathered metrics and broadcast from the main process, so
every process stops at the same epoch. Only the main process writes files.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedDataParallelKwargs, broadcast_object_list, gather_object, set_seed
from tqdm.auto import tqdm

from beats_core.atomic import atomic_write_text
from beats_core.errors import ConfigError, TrainingError
from beats_core.factory import create_model
from beats_data.frame import CATEGORY, FILENAME, SPLIT
from beats_data.labels import LabelEncoder
from beats_train.augment import FbankMasking, augment_waveforms, mixup
from beats_train.config import DataConfig, TrainingConfig, save_config
from beats_train.data import BalancedSampler, PreparedData, build_dataset, build_loader, class_weights
from beats_train.metrics import classification_metrics, format_classification_report, multilabel_metrics
from beats_train.model import BEATsClassifier, prepare_backbone
from beats_train.optim import build_optimizer, build_scheduler
from beats_train.plots import plot_confusion_matrix, plot_training_curves
from beats_train.state import STATE_FILE, load_state, rng_state, save_state, set_rng_state
from beats_train.stats import compute_fbank_stats

__all__ = [
    "BEST_MODEL_FILE",
    "Evaluation",
    "TrainingResults",
    "evaluate_model",
    "make_accelerator",
    "plain_json",
    "prediction_frame",
    "run_training",
    "uses_cpu",
]

logger = logging.getLogger(__name__)

#: The file name of the best model (official fine-tuned checkpoint layout) in a run folder.
BEST_MODEL_FILE = "best_model.pt"


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
            ``state``, ``config``, ``metrics``, ``classification_report``,
            ``confusion_matrix``, ``training_curves``, ``predictions``, ``results``).
        stopped_early: whether early stopping ended the run.
        epochs: the epochs finished.
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
        }


@dataclass
class Evaluation:
    """Clip-level predictions of a split and their metrics.

    Attributes:
        indices: int (M,) row positions in the split's frame, sorted (each clip once).
        logits: float32 (M, K), averaged over a clip's windows.
        metrics: accuracy etc. (see :mod:`beats_train.metrics`) plus ``loss``; empty
            without targets.
    """

    indices: np.ndarray
    logits: np.ndarray
    metrics: dict[str, Any]


def make_accelerator(config: TrainingConfig, *, find_unused_parameters: bool = False) -> Accelerator:
    """The Accelerator of a run, checked against the machine.

    ``device="auto"`` uses the GPUs when there are any, else the CPU (with ``cpu=True``,
    so that ``accelerate launch`` starts synchronised CPU processes).

    Args:
        config: mixed precision, gradient accumulation, device, tracker, output folder.
        find_unused_parameters: tell DDP that some parameters may get no gradient in a
            step (layer drop, a frozen encoder that is unfrozen later).

    Returns:
        The Accelerator.

    Raises:
        ConfigError: fp16 without a GPU, or a tracker that is not installed.
    """
    on_cpu = uses_cpu(config)
    if config.mixed_precision == "fp16" and on_cpu:
        raise ConfigError(
            "TrainingConfig.mixed_precision='fp16' needs a GPU; on the CPU use 'bf16' (or 'no')"
        )
    _release_other_precision(config.mixed_precision)
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)]
    try:
        return Accelerator(
            cpu=on_cpu,
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            log_with=config.tracker,
            project_dir=config.output_dir,
            kwargs_handlers=handlers,
        )
    except ValueError as e:
        if config.tracker is not None and config.tracker in str(e):
            raise ConfigError(
                f"TrainingConfig.tracker={config.tracker!r} cannot be used: {e}. Install it (e.g. "
                f"`pip install {config.tracker}`) or set tracker to None"
            ) from e
        raise ConfigError(f"cannot set up training: {e}") from e


def _release_other_precision(mixed_precision: str) -> None:
    """Let a single process train again with another mixed precision (Accelerate keeps the first one).

    Accelerate's state is process-wide and refuses a second precision; in a single process
    nothing else depends on it between two runs, so it is cleared. Several processes share
    one precision for their whole life (set it with ``accelerate launch --mixed_precision``).
    """
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared.get("_mixed_precision", mixed_precision) == mixed_precision:
        return
    if PartialState().num_processes > 1:
        raise ConfigError(
            f"TrainingConfig.mixed_precision={mixed_precision!r} differs from the {shared['_mixed_precision']!r} "
            "this process already trained with; processes started by accelerate launch keep one precision"
        )
    AcceleratorState._reset_state()


def uses_cpu(config: TrainingConfig) -> bool:
    """Whether a run with this configuration trains on the CPU (``device="cpu"``, or no GPU here)."""
    mps = getattr(torch.backends, "mps", None)
    has_gpu = torch.cuda.is_available() or bool(mps is not None and mps.is_available())
    return config.device == "cpu" or not has_gpu


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def run_training(
    data: PreparedData,
    data_config: DataConfig,
    config: TrainingConfig,
    *,
    resume_from: str | Path | None = None,
    stop_after: int | None = None,
) -> tuple[BEATsClassifier, TrainingResults]:
    """Fine-tune a model on prepared data and write the run folder.

    Args:
        data: the split, labelled data (the same on every process).
        data_config: batch size and decoding settings.
        config: the training configuration.
        resume_from: a run folder (or its ``state.pt``) to continue from.
        stop_after: end this call after that many epochs (counting resumed ones as done),
            leaving the state to resume later (e.g. to fit a job's time limit).

    Returns:
        ``(model with the best weights, results)``.

    Raises:
        ConfigError, DatasetError, CheckpointError, TrainingError: see the messages.
    """
    return _Run(data, data_config, config, resume_from=resume_from, stop_after=stop_after).run()


class _Run:
    def __init__(
        self,
        data: PreparedData,
        data_config: DataConfig,
        config: TrainingConfig,
        *,
        resume_from: str | Path | None,
        stop_after: int | None,
    ) -> None:
        self.data = data
        self.data_config = data_config
        self.config = config
        self.resume_from = resume_from
        self.stop_after = stop_after
        self.output_dir = Path(config.output_dir)
        self.monitor = config.monitored_metric
        self.labels = list(data.labels.labels)

    # ------------------------------------------------------------------ set-up
    def run(self) -> tuple[BEATsClassifier, TrainingResults]:
        config = self.config
        state = PartialState(cpu=uses_cpu(config))
        self.is_main = state.is_main_process
        set_seed(config.seed)  # the same on every process: the same initial model
        if self.is_main:
            self._write_inputs()
        classifier = self._build_model(state)
        layerdrop = classifier.backbone.cfg.encoder_layerdrop > 0
        accelerator = make_accelerator(
            config, find_unused_parameters=layerdrop or config.unfreeze_after is not None
        )
        self.accelerator = accelerator
        set_seed(config.seed, device_specific=True)  # augmentation and dropout differ between processes
        self.frames = {name: self.data.split(name) for name in ("train", "val", "test")}
        train_loader, eval_loaders = self._build_loaders()
        optimizer = build_optimizer(classifier, config)
        model, optimizer, train_loader, *prepared = accelerator.prepare(
            classifier, optimizer, train_loader, *eval_loaders.values()
        )
        self.eval_loaders = dict(zip(eval_loaders, prepared, strict=True))
        self.model, self.optimizer, self.train_loader = model, optimizer, train_loader
        self.classifier = classifier
        steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
        frozen_steps = steps_per_epoch * (config.unfreeze_after or 0)
        self.scheduler = build_scheduler(optimizer, config, steps_per_epoch * config.max_epochs, frozen_steps)
        self.weights = None
        if config.class_balance == "loss":
            targets = self.data.labels.encode(self.frames["train"][CATEGORY])
            self.weights = class_weights(targets, len(self.labels)).to(accelerator.device)
        if config.tracker is not None:
            accelerator.init_trackers(self.output_dir.name or "beats", config=_flat_hyperparameters(config))
        try:
            return self._loop()
        finally:
            # not end_training(): that also ends the process group, which what follows still needs
            for tracker in accelerator.trackers:
                tracker.finish()

    def _build_model(self, state: PartialState) -> BEATsClassifier:
        config = self.config
        with state.main_process_first():  # the main process downloads, the others read the cache
            backbone = create_model(config.model)
        fbank_stats = self._fbank_stats(state)
        backbone = prepare_backbone(
            backbone, config, self.data.labels.to_label_dict(), fbank_stats=fbank_stats
        )
        classifier = BEATsClassifier(
            backbone,
            weighted_layer_sum=config.weighted_layer_sum,
            fbank_masking=FbankMasking(config.augmentation),
            multi_label=config.multi_label,
        )
        if config.freeze_backbone:
            classifier.freeze_backbone(True)
            if config.unfreeze_after is None:  # never trained: out of the optimiser and of DDP
                for parameter in classifier.encoder_parameters():
                    parameter.requires_grad_(False)
        return classifier

    def _build_loaders(self) -> tuple[Any, dict[str, Any]]:
        config, data_config = self.config, self.data_config
        train_set = build_dataset(self.frames["train"], self.data.labels, data_config, train=True)
        sampler = (
            BalancedSampler(train_set.targets, seed=config.seed)
            if config.class_balance == "sampler"
            else None
        )
        train_loader = build_loader(
            train_set,
            config.batch_size or data_config.batch_size,
            data_config,
            shuffle=True,
            seed=config.seed,
            sampler=sampler,
        )
        eval_loaders = {
            name: build_loader(
                build_dataset(frame, self.data.labels, data_config, train=False),
                data_config.batch_size,
                data_config,
                shuffle=False,
            )
            for name, frame in self.frames.items()
            if name != "train" and len(frame)
        }
        return train_loader, eval_loaders

    def _write_inputs(self) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.output_dir / "config.yaml", self.config, self.data_config)
        columns = [c for c in (FILENAME, CATEGORY, SPLIT, "fold", "duration") if c in self.data.frame]
        atomic_write_text(self.output_dir / "splits.csv", self.data.frame[columns].to_csv(index=False))
        if self.data.report is not None:
            from beats_data.validation import format_report

            atomic_write_text(self.output_dir / "validation_report.txt", format_report(self.data.report))

    def _fbank_stats(self, state: PartialState) -> tuple[float, float] | None:
        if not self.config.dataset_fbank_stats:
            return None
        stats: list[Any] = [None]
        if state.is_main_process:
            stats[0] = compute_fbank_stats(
                self.data.split("train"),
                max_duration=self.data_config.max_duration,
                batch_size=self.data_config.batch_size,
                num_workers=self.data_config.num_workers,
                seed=self.config.seed,
                progress=self.config.progress,
            )
            logger.info("fbank statistics of the training clips: mean %.5f, std %.5f", *stats[0])
        if state.num_processes > 1:
            broadcast_object_list(stats)
        return stats[0]

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> tuple[BEATsClassifier, TrainingResults]:
        config, accelerator = self.config, self.accelerator
        history: list[dict[str, Any]] = []
        best_score, best_epoch, bad_epochs, start_epoch = math.nan, 0, 0, 0
        best_state: dict[str, torch.Tensor] | None = None
        if self.resume_from is not None:
            start_epoch, history, best_score, best_epoch, bad_epochs, best_state = self._resume()
        stopped_early = False
        last_epoch = start_epoch
        for epoch in range(start_epoch, config.max_epochs):
            if self.stop_after is not None and epoch >= self.stop_after:
                break
            started = time.perf_counter()
            if config.unfreeze_after is not None:
                self.classifier.freeze_backbone(epoch < config.unfreeze_after)
            bar = tqdm(
                total=len(self.train_loader),
                desc=f"epoch {epoch + 1}/{config.max_epochs}",
                disable=not (config.progress and self.is_main),
                dynamic_ncols=True,
            )
            train_loss = self._train_epoch(epoch, bar)
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss}
            validation = (
                self._evaluate("val", f"validation {epoch + 1}") if "val" in self.eval_loaders else None
            )
            if validation is not None:
                row.update({f"val_{key}": value for key, value in _summary(validation.metrics).items()})
            row["learning_rate"] = self.scheduler.get_last_lr()[-1]
            row["seconds"] = round(time.perf_counter() - started, 3)
            score = row.get(f"val_{self.monitor}", math.nan)
            improved = validation is None or _better(score, best_score, self.monitor)
            if improved:
                best_score, best_epoch, bad_epochs = score, epoch + 1, 0
                best_state = self._copy_weights()
                if self.is_main:
                    self.classifier.save(self.output_dir / BEST_MODEL_FILE)
            else:
                bad_epochs += 1
            history.append(row)
            stop = config.patience is not None and validation is not None and bad_epochs >= config.patience
            stop = self._agree(stop)
            self._save_state(epoch + 1, history, best_score, best_epoch, bad_epochs)
            if self.is_main:
                atomic_write_text(self.output_dir / "metrics.csv", pd.DataFrame(history).to_csv(index=False))
                logger.info(
                    _epoch_line(row, config.max_epochs, self.monitor, improved and validation is not None)
                )
            # the finished bar stays on screen as the epoch's one-line summary
            bar.set_postfix(
                {key: f"{value:.4f}" for key, value in row.items() if key.startswith(("train_", "val_"))}
            )
            bar.close()
            if config.tracker is not None:
                accelerator.log({k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)
            last_epoch = epoch + 1
            if stop:
                stopped_early = True
                if self.is_main:
                    logger.info(
                        "early stopping: no better validation %s for %d epochs; best epoch %d",
                        self.monitor,
                        config.patience,
                        best_epoch,
                    )
                break
        if best_state is not None:
            self.classifier.load_state_dict(best_state)
        accelerator.wait_for_everyone()
        return self.classifier, self._finish(history, best_epoch, best_score, stopped_early, last_epoch)

    def _train_epoch(self, epoch: int, bar: tqdm) -> float:
        config, accelerator = self.config, self.accelerator
        self.train_loader.set_epoch(epoch)
        self.model.train()
        total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)  # loss sum, clips
        for batch in self.train_loader:
            with accelerator.accumulate(self.model):
                loss = self._loss_of(batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.gradient_clipping is not None:
                    accelerator.clip_grad_norm_(self.model.parameters(), config.gradient_clipping)
                self.optimizer.step()
                if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                    self.scheduler.step()
                self.optimizer.zero_grad()
            clips = batch["waveform"].shape[0]
            total += torch.tensor([loss.item() * clips, clips], dtype=torch.float64, device=total.device)
            bar.update()
            bar.set_postfix(loss=f"{total[0].item() / total[1].item():.4f}")
        total = accelerator.reduce(total, reduction="sum")
        mean = float(total[0] / total[1])
        if not math.isfinite(mean):
            bar.close()
            raise TrainingError(
                f"the training loss of epoch {epoch + 1} is {mean}: lower the learning rate "
                f"({config.learning_rate}), set gradient_clipping, or use mixed_precision='no'"
            )
        return mean

    def _loss_of(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        augmentation = self.config.augmentation
        waveforms, mask, targets = batch["waveform"], batch["padding_mask"], batch["target"]
        waveforms = augment_waveforms(waveforms, mask, augmentation)
        soft = None
        if augmentation.mixup > 0:
            waveforms, mask, soft = mixup(waveforms, mask, self._target_matrix(targets), augmentation.mixup)
        logits = self.model(waveforms, mask).float()
        if soft is not None or self.config.multi_label:
            soft = soft if soft is not None else self._target_matrix(targets)
            return F.binary_cross_entropy_with_logits(logits, soft, weight=self.weights)
        return F.cross_entropy(
            logits, targets, weight=self.weights, label_smoothing=self.config.label_smoothing
        )

    def _target_matrix(self, targets: torch.Tensor) -> torch.Tensor:
        """Smoothed float (B, K) targets for BCE: one-hot (single-label) or multi-hot."""
        smoothing = self.config.label_smoothing
        if self.config.multi_label:
            return targets.float() * (1.0 - smoothing) + smoothing / 2.0
        one_hot = F.one_hot(targets, len(self.labels)).float()
        return one_hot * (1.0 - smoothing) + smoothing / len(self.labels)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, split: str, description: str) -> Evaluation:
        loader = self.eval_loaders[split]
        targets = self._split_targets(split)
        return evaluate_model(
            self.model,
            loader,
            targets=targets,
            labels=self.labels,
            multi_label=self.config.multi_label,
            gather=gather_object if self.accelerator.num_processes > 1 else None,
            description=description,
            progress=self.config.progress and self.is_main,
        )

    def _split_targets(self, split: str) -> np.ndarray:
        return self.data.labels.encode(self.frames[split][CATEGORY])

    def _agree(self, stop: bool) -> bool:
        """The main process's decision, on every process."""
        if self.accelerator.num_processes == 1:
            return stop
        decision = [stop]
        broadcast_object_list(decision)
        return bool(decision[0])

    # ------------------------------------------------------------------ state
    def _copy_weights(self) -> dict[str, torch.Tensor]:
        return {key: value.detach().clone() for key, value in self.classifier.state_dict().items()}

    def _save_state(
        self, epoch: int, history: list[dict[str, Any]], best: float, best_epoch: int, bad: int
    ) -> None:
        rngs = gather_object([rng_state()]) if self.accelerator.num_processes > 1 else [rng_state()]
        if not self.is_main:
            return
        save_state(
            self.output_dir / STATE_FILE,
            {
                "epoch": epoch,
                "model": {key: value.detach().cpu() for key, value in self.classifier.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "history": history,
                "best_score": best,
                "best_epoch": best_epoch,
                "bad_epochs": bad,
                "labels": list(self.labels),
                "rng": rngs,
            },
        )

    def _resume(self) -> tuple[int, list[dict[str, Any]], float, int, int, dict[str, torch.Tensor] | None]:
        """Load the last state of a run; also return the weights of its best model (if it saved one)."""
        source = Path(self.resume_from)  # type: ignore[arg-type]
        state = load_state(source)
        if state["labels"] != self.labels:
            raise TrainingError(
                f"cannot resume from {str(source)!r}: it was trained on other classes "
                f"({', '.join(state['labels'][:5])}, ...); resume with the same data"
            )
        self.classifier.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rngs = state["rng"]
        if len(rngs) == self.accelerator.num_processes:
            set_rng_state(rngs[self.accelerator.process_index])
        else:
            logger.warning(
                "the state was saved by %d processes and this run has %d: random draws will differ from the "
                "original run's",
                len(rngs),
                self.accelerator.num_processes,
            )
        best_file = (source if source.is_dir() else source.parent) / BEST_MODEL_FILE
        best_state = None
        if best_file.is_file():
            best = BEATsClassifier.load(best_file)
            best_state = {f"backbone.{key}": value for key, value in best.backbone.state_dict().items()}
            if best.layer_weights is not None:
                best_state["layer_weights"] = best.layer_weights.detach()
            best_state = {key: value.to(self.accelerator.device) for key, value in best_state.items()}
        if self.is_main:
            logger.info("resuming after epoch %d from %s", state["epoch"], source)
        return (
            int(state["epoch"]),
            list(state["history"]),
            float(state["best_score"]),
            int(state["best_epoch"]),
            int(state["bad_epochs"]),
            best_state,
        )

    # ------------------------------------------------------------------ the end
    def _finish(
        self,
        history: list[dict[str, Any]],
        best_epoch: int,
        best_score: float,
        stopped_early: bool,
        epochs: int,
    ) -> TrainingResults:
        frame = pd.DataFrame(history)
        validation = self._evaluate("val", "validation (best)") if "val" in self.eval_loaders else None
        test = self._evaluate("test", "test") if "test" in self.eval_loaders else None
        paths = {
            "output_dir": self.output_dir,
            "best_model": self.output_dir / BEST_MODEL_FILE,
            "state": self.output_dir / STATE_FILE,
            "config": self.output_dir / "config.yaml",
            "metrics": self.output_dir / "metrics.csv",
            "splits": self.output_dir / "splits.csv",
        }
        results = TrainingResults(
            best_epoch=best_epoch,
            monitor=self.monitor,
            best_score=float(best_score),
            val_metrics=validation.metrics if validation is not None else {},
            test_metrics=test.metrics if test is not None else None,
            history=frame,
            paths=paths,
            stopped_early=stopped_early,
            epochs=epochs,
        )
        if self.is_main:
            if not (self.output_dir / BEST_MODEL_FILE).is_file():  # no epoch was run in this call
                self.classifier.save(self.output_dir / BEST_MODEL_FILE)
            self._write_reports(
                results, test if test is not None else validation, "test" if test is not None else "val"
            )
        self.accelerator.wait_for_everyone()
        if self.is_main and test is not None:
            logger.info("test %s", _metrics_line(test.metrics))
        return results

    def _write_reports(self, results: TrainingResults, evaluation: Evaluation | None, split: str) -> None:
        out, paths = self.output_dir, results.paths
        if len(results.history):
            paths["training_curves"] = plot_training_curves(
                results.history, out / "training_curves.png", metric=self.monitor
            )
        if evaluation is not None:
            report = f"{'test' if split == 'test' else 'validation'} set, best epoch {results.best_epoch}\n\n"
            report += format_classification_report(evaluation.metrics)
            paths["classification_report"] = atomic_write_text(out / "classification_report.txt", report)
            if not self.config.multi_label:
                paths["confusion_matrix"] = plot_confusion_matrix(
                    evaluation.metrics["confusion_matrix"],
                    self.labels,
                    out / "confusion_matrix.png",
                    title=f"{split} set",
                )
            predictions = prediction_frame(
                self.frames[split].iloc[evaluation.indices],
                evaluation.logits,
                self.data.labels,
                multi_label=self.config.multi_label,
            )
            paths["predictions"] = atomic_write_text(
                out / f"{split}_predictions.csv", predictions.to_csv(index=False)
            )
        paths["results"] = out / "results.json"
        atomic_write_text(paths["results"], json.dumps(plain_json(results.to_dict()), indent=2) + "\n")


# ---------------------------------------------------------------------------
# Evaluation, shared with BEATsTrainer.evaluate / predict
# ---------------------------------------------------------------------------


def evaluate_model(
    model: torch.nn.Module,
    loader: Any,
    *,
    targets: np.ndarray | None,
    labels: list[str],
    multi_label: bool,
    gather: Callable[[list[Any]], list[Any]] | None = None,
    description: str = "evaluation",
    progress: bool = True,
) -> Evaluation:
    """Run a model over a loader and score its clip-level predictions.

    Each batch item carries its row ``index`` (and ``window`` for long clips): logits are
    collected per (row, window), gathered from every process when ``gather`` is given,
    de-duplicated (even sharding repeats items to fill the last batches), and averaged over
    each clip's windows.

    Args:
        model: returns logits (B, K) for ``(waveform, padding_mask)``; put in eval mode here.
        loader: yields batches of :class:`~beats_data.AudioCollator`.
        targets: the split's targets by row (int (N,) or multi-hot (N, K)), or None.
        labels: the K class names.
        multi_label: score with multi-label metrics.
        gather: ``accelerate.utils.gather_object`` in a multi-process run.
        description: the progress bar's label.
        progress: show a progress bar.

    Returns:
        The :class:`Evaluation`.
    """
    model.eval()
    keys: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for batch in tqdm(loader, desc=description, disable=not progress, leave=False, dynamic_ncols=True):
            logits = model(batch["waveform"].to(device), batch["padding_mask"].to(device)).float()
            window = batch.get("window", torch.zeros_like(batch["index"]))
            keys.append(torch.stack([batch["index"], window], dim=1).cpu().numpy())
            outputs.append(logits.cpu().numpy())
    local = (
        np.concatenate(keys) if keys else np.zeros((0, 2), dtype=np.int64),
        np.concatenate(outputs) if outputs else np.zeros((0, len(labels)), dtype=np.float32),
    )
    parts = gather([local]) if gather is not None else [local]
    all_keys = np.concatenate([part[0] for part in parts])
    all_logits = np.concatenate([part[1] for part in parts])
    _, first = np.unique(all_keys, axis=0, return_index=True)  # drop repeated (row, window) items
    all_keys, all_logits = all_keys[first], all_logits[first]
    indices, inverse = np.unique(all_keys[:, 0], return_inverse=True)
    summed = np.zeros((len(indices), all_logits.shape[1]), dtype=np.float64)
    np.add.at(summed, inverse, all_logits)
    clip_logits = (summed / np.bincount(inverse, minlength=len(indices))[:, None]).astype(np.float32)
    metrics: dict[str, Any] = {}
    if targets is not None and len(indices):
        metrics = _score(clip_logits, np.asarray(targets)[indices], labels, multi_label)
    return Evaluation(indices=indices, logits=clip_logits, metrics=metrics)


def _score(logits: np.ndarray, targets: np.ndarray, labels: list[str], multi_label: bool) -> dict[str, Any]:
    tensor = torch.from_numpy(logits)
    if multi_label:
        metrics = multilabel_metrics(targets, torch.sigmoid(tensor).numpy(), labels)
        loss = F.binary_cross_entropy_with_logits(tensor, torch.from_numpy(targets).float())
    else:
        metrics = classification_metrics(targets, logits, labels)
        loss = F.cross_entropy(tensor, torch.from_numpy(targets).long())
    return {"loss": float(loss), **metrics}


def prediction_frame(
    rows: pd.DataFrame, logits: np.ndarray, labels: LabelEncoder, *, multi_label: bool, threshold: float = 0.5
) -> pd.DataFrame:
    """Predictions as a table: the clip, the predicted label(s), its probability, every class's probability.

    Args:
        rows: the clips' rows (``filename``, and ``category`` when known), one per logit row.
        logits: float (M, K).
        labels: the label mapping.
        multi_label: sigmoid probabilities and every label at or above ``threshold``
            (joined with the delimiter); otherwise softmax and the most likely label.
        threshold: the multi-label decision threshold.

    Returns:
        Columns ``filename``, ``category`` (if known), ``label``, ``probability``, then
        ``prob_<label>`` per class.
    """
    tensor = torch.from_numpy(np.asarray(logits, dtype=np.float32))
    probabilities = (torch.sigmoid(tensor) if multi_label else torch.softmax(tensor, dim=-1)).numpy()
    frame = pd.DataFrame({FILENAME: rows[FILENAME].to_numpy()})
    if CATEGORY in rows:
        frame[CATEGORY] = rows[CATEGORY].to_numpy()
    if multi_label:
        frame["label"] = [
            labels.delimiter.join(labels.labels[k] for k in np.flatnonzero(row >= threshold))
            for row in probabilities
        ]
    else:
        frame["label"] = (
            [labels.labels[k] for k in probabilities.argmax(axis=1)] if len(probabilities) else []
        )
    frame["probability"] = probabilities.max(axis=1) if len(probabilities) else []
    for k, label in enumerate(labels.labels):
        frame[f"prob_{label}"] = probabilities[:, k]
    return frame


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _better(score: float, best: float, monitor: str) -> bool:
    if math.isnan(score):
        return math.isnan(best)
    if math.isnan(best):
        return True
    return score < best if monitor == "loss" else score > best


def _summary(metrics: dict[str, Any]) -> dict[str, float]:
    keys = ("loss", "accuracy", "macro_f1", "map", "micro_f1")
    return {key: float(metrics[key]) for key in keys if key in metrics}


def _epoch_line(row: dict[str, Any], max_epochs: int, monitor: str, best: bool) -> str:
    parts = [f"epoch {row['epoch']}/{max_epochs}", f"train_loss {row['train_loss']:.4f}"]
    parts += [f"{key} {value:.4f}" for key, value in row.items() if key.startswith("val_")]
    parts.append(f"lr {row['learning_rate']:.2e}")
    parts.append(f"{row['seconds']:.1f}s")
    if best:
        parts.append(f"best {monitor}")
    return "  ".join(parts)


def _metrics_line(metrics: dict[str, Any]) -> str:
    return "  ".join(f"{key} {value:.4f}" for key, value in _summary(metrics).items())


def _flat_hyperparameters(config: TrainingConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            flat[key] = str(value)
        else:
            flat[key] = value
    return {key: ("none" if value is None else value) for key, value in flat.items()}


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
