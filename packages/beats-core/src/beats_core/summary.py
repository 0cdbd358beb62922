"""What a checkpoint holds, without building the model: config, parameter count, labels."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from beats_core.download import fetch_checkpoint
from beats_core.errors import CheckpointError

__all__ = ["CheckpointSummary", "summarize_checkpoint"]


@dataclass(frozen=True)
class CheckpointSummary:
    """A summary of a BEATs checkpoint file.

    Attributes:
        path: the checkpoint file.
        file_size: its size in bytes.
        cfg: the checkpoint's ``cfg`` dict, as stored (fields it lacks are not filled in).
        num_parameters: the number of parameters, counting tensors that share storage
            once (official files store the relative-position table of layer 0 under
            every layer's name).
        num_tensors: the number of entries in the state dict.
        finetuned: whether it is a fine-tuned classifier (``cfg["finetuned_model"]`` or a
            ``predictor`` head).
        labels: class index -> label of a fine-tuned checkpoint (its ``label_dict``).
    """

    path: Path
    file_size: int
    cfg: Mapping[str, Any]
    num_parameters: int
    num_tensors: int
    finetuned: bool
    labels: Mapping[int, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int | None:
        """The number of classes of a fine-tuned classifier, else ``None``."""
        if not self.finetuned:
            return None
        return len(self.labels) or self.cfg.get("predictor_class")

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-serialisable dict."""
        return {
            "path": str(self.path),
            "file_size": self.file_size,
            "cfg": dict(self.cfg),
            "num_parameters": self.num_parameters,
            "num_tensors": self.num_tensors,
            "finetuned": self.finetuned,
            "num_classes": self.num_classes,
            "labels": {str(k): v for k, v in self.labels.items()},
        }


def summarize_checkpoint(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> CheckpointSummary:
    """Summarise a checkpoint: its config, parameter count and, if fine-tuned, its labels.

    Args:
        name_or_path: a registered model name or the path of a checkpoint file, as for
            :func:`~beats_core.download.ensure_checkpoint` (downloaded if needed).
            *Optional*, defaults to the default model.
        revision: the revision to download. *Optional*, defaults to the registry's.
        cache_dir: the Hugging Face cache folder. *Optional*.

    Returns:
        The summary.

    Raises:
        UnknownModelError: the name is not registered and is not a file.
        CheckpointError: the file cannot be obtained or is not a BEATs checkpoint.
    """
    fetched = fetch_checkpoint(name_or_path, revision=revision, cache_dir=cache_dir)
    path, checkpoint = fetched.path, fetched.content
    state: Mapping[str, torch.Tensor] = checkpoint["model"]
    cfg = dict(checkpoint.get("cfg") or {})
    return CheckpointSummary(
        path=path,
        file_size=path.stat().st_size,
        cfg=cfg,
        num_parameters=_unique_numel(state.values()),
        num_tensors=len(state),
        finetuned=bool(cfg.get("finetuned_model")) or "predictor.weight" in state,
        labels=_labels(checkpoint.get("label_dict"), path),
    )


def _labels(label_dict: Any, path: Path) -> dict[int, str]:
    if not label_dict:
        return {}
    try:
        return {int(k): str(v) for k, v in sorted(label_dict.items(), key=lambda item: int(item[0]))}
    except (AttributeError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{str(path)!r} has a malformed 'label_dict': expected {{class index: label}}, got "
            f"{type(label_dict).__name__} ({e})"
        ) from e


def _unique_numel(tensors: Any) -> int:
    """Count elements once per distinct view of a storage (tied tensors count once)."""
    seen = set()
    total = 0
    for tensor in tensors:
        key = (
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
        )
        if key not in seen:
            seen.add(key)
            total += tensor.numel()
    return total
