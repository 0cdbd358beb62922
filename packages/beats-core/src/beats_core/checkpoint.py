"""Reading, loading and writing BEATs checkpoints in the official layout.

An official checkpoint is a ``torch.save``-d dict ``{"cfg": dict, "model": state_dict}``
with ``"label_dict": {int: str}`` for fine-tuned classifiers. Checkpoints are data:
they are always read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from beats_core.errors import CheckpointError

__all__ = ["read_checkpoint"]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file as plain data and check that it is a BEATs checkpoint.

    Args:
        path: the ``.pt`` file.

    Returns:
        The checkpoint dict, with at least ``"cfg"`` (dict) and ``"model"`` (a
        mapping of parameter names to tensors).

    Raises:
        CheckpointError: the file is missing, empty, truncated, holds code rather
            than plain data, or is not a BEATs checkpoint. The message names the
            file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint file {str(path)!r} does not exist; pass the path of a BEATs .pt file "
            "or a model name from `beats models`"
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file {str(path)!r} is empty; download it again (`beats download`)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} holds Python objects other than plain data "
            f"(tensors, numbers, strings, dicts), so it is refused for safety: {_first_line(e)}. "
            "Re-save it as {'cfg': dict, 'model': state_dict} with torch.save."
        ) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(
            f"checkpoint file {str(path)!r} cannot be read, it is probably truncated or corrupt "
            f"({_first_line(e)}); delete it and download it again (`beats download NAME --force`)"
        ) from e
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointError(
            f"{str(path)!r} is not a BEATs checkpoint: expected a dict with 'cfg' and 'model' "
            f"(the official layout), found {found}"
        )
    if not isinstance(checkpoint.get("cfg", {}), Mapping):
        raise CheckpointError(f"{str(path)!r} is not a BEATs checkpoint: its 'cfg' is not a dict")
    state = checkpoint["model"]
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{str(path)!r} is not a BEATs checkpoint: 'model' entries {not_tensors[:3]} are not tensors"
        )
    return dict(checkpoint)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
