"""The last state of a run, for ``resume_from=``: one file written by the main process.

``state.pt`` holds plain data only (it is read with ``torch.load(weights_only=True)``):
the model's weights, the optimiser's and the scheduler's states, the number of finished
epochs, the early-stopping bookkeeping, the history so far, and the random-number states
of every process (Python, numpy, torch, CUDA), gathered to the main process so that no
other process writes files. It is written atomically at the end of every epoch.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from beats_core.atomic import atomic_path
from beats_core.errors import TrainingError

__all__ = ["STATE_FILE", "STATE_VERSION", "load_state", "rng_state", "save_state", "set_rng_state"]

#: The file name of the last state inside a run folder.
STATE_FILE = "state.pt"
#: The layout version of the state file.
STATE_VERSION = 1


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
    """
    with atomic_path(path) as temporary:
        torch.save({"version": STATE_VERSION, **state}, temporary)
    return Path(path)


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state`.

    Args:
        path: a ``state.pt`` file, or the run folder that holds it.

    Returns:
        The state dict.

    Raises:
        TrainingError: there is no state, or it cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise TrainingError(
            f"cannot resume: {str(path)!r} does not exist; pass the run folder of an earlier run (its "
            f"output_dir, which holds {STATE_FILE}) or the {STATE_FILE} file itself"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # damaged or foreign files fail in many ways
        raise TrainingError(
            f"cannot resume from {str(path)!r}: it cannot be read ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise TrainingError(
            f"cannot resume from {str(path)!r}: it is not a beats-train state (version {STATE_VERSION})"
        )
    return state
