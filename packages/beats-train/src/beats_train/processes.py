"""The processes of a run: where it trains, Accelerate's process state and Accelerator, and work done once.

One process, or several started with ``accelerate launch``: the main process decodes and
checks the data and writes the files; :func:`on_main_process` hands its result (or its
error) to the others, so that every process goes on, or stops, together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedDataParallelKwargs, broadcast_object_list

from beats_core.devices import resolve_device
from beats_core.errors import ConfigError
from beats_train.config import TrainingConfig

__all__ = ["make_accelerator", "on_main_process", "process_state", "training_device"]

_Result = TypeVar("_Result")


def training_device(config: TrainingConfig) -> torch.device:
    """The kind of device a run trains on: the CPU for ``device="cpu"``, else CUDA, MPS or the CPU.

    Args:
        config: :attr:`TrainingConfig.device`.

    Returns:
        The device (``cuda`` without an index: each process of a launch takes its own GPU).
    """
    return resolve_device("cpu" if config.device == "cpu" else "auto")


def process_state(config: TrainingConfig) -> PartialState:
    """Accelerate's state of this process (CPU processes when the run trains on the CPU)."""
    return PartialState(cpu=training_device(config).type == "cpu")


def make_accelerator(config: TrainingConfig, *, find_unused_parameters: bool = False) -> Accelerator:
    """The Accelerator of a run: processes, gradient accumulation, tracker.

    Its mixed precision is always ``"no"``: the run applies its precision itself (see
    :mod:`beats_train.precision`), so runs in one process may use different precisions.
    ``device="auto"`` uses the GPUs when there are any, else the CPU (with ``cpu=True``,
    so that ``accelerate launch`` starts synchronised CPU processes).

    Args:
        config: gradient accumulation, device, tracker, output folder.
        find_unused_parameters: tell DDP that some parameters may get no gradient in a
            step (layer drop, a frozen encoder that is unfrozen later).

    Returns:
        The Accelerator.

    Raises:
        ConfigError: a tracker that is not installed, or an Accelerate state this process
            set up differently before.
    """
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)]
    try:
        return Accelerator(
            cpu=training_device(config).type == "cpu",
            mixed_precision="no",
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


def on_main_process(work: Callable[[], _Result], state: PartialState) -> _Result:
    """Run ``work`` on the main process only, and give its result to every process.

    Args:
        work: what to do (it may raise).
        state: this process's Accelerate state.

    Returns:
        ``work()``'s result, on every process.

    Raises:
        Exception: whatever ``work`` raised on the main process, raised on every process.
    """
    outcome: list[Any] = [None]
    if state.is_main_process:
        try:
            outcome[0] = (True, work())
        except Exception as e:  # the other processes must stop too
            outcome[0] = (False, e)
    if state.num_processes > 1:
        broadcast_object_list(outcome)
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value
