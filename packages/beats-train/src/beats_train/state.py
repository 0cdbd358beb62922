"""The last state of a run, for ``resume_from=``: one file written by the main process.

``state.pt`` holds plain data only (it is read with ``torch.load(weights_only=True)``):
the model's weights, the optimiser's and the scheduler's states, the :class:`EpochState`
(finished epochs, the history so far, the learning rate per step, the early-stopping
bookkeeping), and the random-number states of every process (Python, numpy, torch,
CUDA), gathered to the main process so that no other process writes files. It is written
atomically at the end of every epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import pickle
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from beats_core.atomic import atomic_path
from beats_core.errors import TrainingError
from beats_train.model import BEATsClassifier
from beats_train.run_folder import BEST_MODEL_FILE, STATE_FILE

__all__ = [
    "STATE_FILE",
    "STATE_VERSION",
    "EpochState",
    "RunState",
    "load_state",
    "rng_state",
    "save_state",
    "set_rng_state",
]

logger = logging.getLogger(__name__)

#: The layout version of the state file.
STATE_VERSION = 1


@dataclass
class EpochState:
    """Where a run stands after its last finished epoch: what a resumed run continues from.

    Attributes:
        epoch: the epochs finished.
        history: one metrics row per finished epoch (the rows of ``metrics.csv``).
        learning_rates: ``[position in epochs, learning rate]`` of optimiser steps (every
            step, or every few steps in long runs), for the training curves.
        best_score: the monitored validation metric of the best epoch (``nan`` before the
            first epoch, and without a validation set).
        best_epoch: the best epoch (1-based; 0 before the first).
        bad_epochs: epochs since the best one (early stopping).
    """

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    learning_rates: list[list[float]] = field(default_factory=list)
    best_score: float = math.nan
    best_epoch: int = 0
    bad_epochs: int = 0

    def finish_epoch(self, row: dict[str, Any], score: float | None, monitor: str) -> bool:
        """Add a finished epoch's row and update the best epoch.

        Args:
            row: the epoch's metrics (``epoch`` is its 1-based number).
            score: the monitored validation metric, or None without a validation set
                (every epoch is then the best so far: the last one is kept).
            monitor: the metric's name (``loss`` is lower-is-better, the others higher).

        Returns:
            Whether this epoch is the best so far.
        """
        improved = score is None or _better(score, self.best_score, monitor)
        if improved:
            self.best_score = math.nan if score is None else float(score)
            self.best_epoch = int(row["epoch"])
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self.epoch = int(row["epoch"])
        self.history.append(row)
        return improved

    def to_state(self) -> dict[str, Any]:
        """The fields as plain data, for :func:`save_state`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EpochState:
        """Read the fields back from a loaded state (a state without learning rates gets none)."""
        return cls(
            epoch=int(state["epoch"]),
            history=list(state["history"]),
            learning_rates=[list(pair) for pair in state.get("learning_rates", [])],
            best_score=float(state["best_score"]),
            best_epoch=int(state["best_epoch"]),
            bad_epochs=int(state["bad_epochs"]),
        )


class RunState:
    """A run's state on disk: saved after every epoch, restored to resume.

    Args:
        path: the run's ``state.pt``.
        classifier: the model being trained (its weights).
        optimizer: its optimiser.
        scheduler: its learning-rate schedule.
        accelerator: the run's processes: each one's random states are saved, the main
            process writes.
        labels: the class labels (a run resumes only on the same classes).
    """

    def __init__(
        self,
        path: Path,
        classifier: BEATsClassifier,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        accelerator: Accelerator,
        labels: list[str],
    ) -> None:
        self.path = path
        self.classifier = classifier
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.accelerator = accelerator
        self.labels = labels

    def save(self, epochs: EpochState) -> None:
        """Write the state after a finished epoch (every process takes part; the main one writes)."""
        several = self.accelerator.num_processes > 1
        rngs = gather_object([rng_state()]) if several else [rng_state()]
        if not self.accelerator.is_main_process:
            return
        save_state(
            self.path,
            {
                **epochs.to_state(),
                "model": {key: value.detach().cpu() for key, value in self.classifier.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "labels": list(self.labels),
                "rng": rngs,
            },
        )

    def restore(self, source: Path) -> tuple[EpochState, dict[str, torch.Tensor] | None]:
        """Load an earlier run's last state into the model, optimiser, schedule and random generators.

        Args:
            source: the earlier run's folder, or its ``state.pt``.

        Returns:
            ``(where it stood, the weights of its best model)``; the weights are None when
            its folder holds no ``best_model.pt``.

        Raises:
            TrainingError: there is no state, it cannot be read, or it was trained on other classes.
        """
        state = load_state(source)
        if state["labels"] != list(self.labels):
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
        if not best_file.is_file():
            return EpochState.from_state(state), None
        best = BEATsClassifier.load(best_file)
        weights = {f"backbone.{key}": value for key, value in best.backbone.state_dict().items()}
        if best.layer_weights is not None:
            weights["layer_weights"] = best.layer_weights.detach()
        return EpochState.from_state(state), {k: v.to(self.accelerator.device) for k, v in weights.items()}


def _better(score: float, best: float, monitor: str) -> bool:
    if math.isnan(score):
        return math.isnan(best)
    if math.isnan(best):
        return True
    return score < best if monitor == "loss" else score > best


def rng_state() -> dict[str, Any]:
    """This process's random-number states, as plain data (tensors, ints, tuples)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a run's state atomically (``torch.save`` to a temporary file, then rename).

    Args:
        path: the ``state.pt`` file.
        state: plain data and tensors.

    Returns:
        The path written.

    Raises:
        DiskFullError: the disk is full (the previous state is kept).
    """
    with atomic_path(path) as temporary, temporary.open("wb") as f:
        torch.save({"version": STATE_VERSION, **state}, f)
    return Path(path)


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state`.

    Args:
        path: a ``state.pt`` file, or the run folder that holds it.

    Returns:
        The state dict.

    Raises:
        TrainingError: there is no state, or the file is not a beats-train state (or is
            damaged); the message says which and what to do.
    """
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise TrainingError(
            f"cannot resume: {str(path)!r} does not exist; pass the run folder of an earlier run (its "
            f"output_dir, which holds {STATE_FILE}) or the {STATE_FILE} file itself"
        )
    advice = (
        f"pass the run folder (or the {STATE_FILE}) of a beats-train run; a damaged state cannot be "
        "continued: start the run again with --overwrite (overwrite=True)"
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # damaged or foreign files fail in many ways; torch's advice does not apply
        raise TrainingError(f"cannot resume from {str(path)!r}: {_why_unreadable(path, e)}; {advice}") from e
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise TrainingError(
            f"cannot resume from {str(path)!r}: it is a PyTorch file but not a beats-train state "
            f"(version {STATE_VERSION}); {advice}"
        )
    return state


def _why_unreadable(path: Path, error: Exception) -> str:
    if not zipfile.is_zipfile(path):
        return "it is not a PyTorch file, or it was cut short (a full disk or an interrupted copy)"
    if isinstance(error, pickle.UnpicklingError):
        return "it holds Python objects that a beats-train state never holds (other code wrote it)"
    return "it is damaged (a full disk or an interrupted copy can cut a file short)"
