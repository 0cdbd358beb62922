"""The one way to make a BEATs model: from a name, a file, a Hub repository or a size, and back to a file.

A *model spec* is what a user types wherever a model is asked for:

* a registered name (``beats models``), e.g. ``"BEATs_iter3_plus_AS2M"``, downloaded into the
  Hugging Face cache on first use;
* the path of a checkpoint file (official or ESPnet/OpenBEATs layout);
* ``hf-hub:owner/name[@revision]``, the checkpoint of a Hub model repository;
* ``random:tiny``, ``random:base`` or ``random:large``, a randomly initialised model of that size.

:func:`~beats_core.download.local_checkpoint_path` decides between a name and a file. A
checkpoint is read once (:func:`~beats_core.download.fetch_checkpoint` validates it and hands
over what it read), its cfg is bounded and its weights, values and labels are checked before
a model is built, and the model is built on the meta device and takes the file's tensors, so
nothing is initialised twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch

from beats_core.checkpoint import write_checkpoint
from beats_core.config import BEATsConfig
from beats_core.download import fetch_checkpoint
from beats_core.errors import CheckpointError, ConfigError
from beats_core.model import BEATs

__all__ = [
    "MODEL_SIZES",
    "RANDOM_PREFIX",
    "LoadedCheckpoint",
    "create_model",
    "encoder_sha256",
    "load_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
]

#: The prefix of a spec that asks for a randomly initialised model of a named size.
RANDOM_PREFIX = "random:"
#: The sizes ``random:SIZE`` knows, each a :class:`~beats_core.config.BEATsConfig` constructor.
MODEL_SIZES = {"tiny": BEATsConfig.tiny, "base": BEATsConfig.base, "large": BEATsConfig.large}


class LoadedCheckpoint(NamedTuple):
    """What :func:`load_checkpoint` returns."""

    model: BEATs
    """The model, in eval mode, on the requested device."""
    config: BEATsConfig
    """Its configuration (the same object as ``model.cfg``)."""
    label_dict: dict[int, str] | None
    """``{class index: label}`` of a fine-tuned checkpoint, or None."""


def create_model(
    spec: str | os.PathLike[str] | None = None,
    *,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> BEATs:
    """Make a BEATs model from a spec: a registered name, a file, ``hf-hub:owner/name`` or ``random:SIZE``.

    Args:
        spec: see the module docstring. *Optional*, defaults to
            :data:`~beats_core.registry.DEFAULT_MODEL`.
        map_location: the device to put the model on.
        revision: for a name or ``hf-hub:``, the Hub revision (default: the registry's, or ``main``).
        cache_dir: for a name or ``hf-hub:``, the Hugging Face cache folder.

    Returns:
        The model: from a checkpoint in eval mode, with :attr:`~beats_core.model.BEATs.label_dict`
        and :attr:`~beats_core.model.BEATs.checkpoint_path` set; a random model in training
        mode (as ``BEATs(config)`` makes it), from torch's current random state.

    Raises:
        UnknownModelError: the spec is neither a registered name nor a file.
        CheckpointError: the checkpoint is missing, cannot be downloaded or is invalid
            (the message names the file, the field and the fix).
        ConfigError: an unknown ``random:`` size.
    """
    if isinstance(spec, str) and spec.startswith(RANDOM_PREFIX):
        size = spec.removeprefix(RANDOM_PREFIX)
        if size not in MODEL_SIZES:
            raise ConfigError(
                f"model {spec!r}: unknown size {size!r}; use one of "
                + ", ".join(RANDOM_PREFIX + name for name in MODEL_SIZES)
            )
        return BEATs(MODEL_SIZES[size]()).to(map_location)
    return load_checkpoint(spec, map_location=map_location, revision=revision, cache_dir=cache_dir).model


def load_checkpoint(
    spec: str | os.PathLike[str] | None = None,
    *,
    map_location: str | torch.device = "cpu",
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> LoadedCheckpoint:
    """Load a BEATs checkpoint: the model (in eval mode), its configuration and its labels.

    Args:
        spec: a checkpoint file (official or ESPnet/OpenBEATs layout), a model name from
            ``beats models`` or ``hf-hub:owner/name`` (downloaded and cached). *Optional*,
            defaults to the default model.
        map_location: device to put the model on.
        revision: for a model name, the Hub revision to use (default: the pinned one).
        cache_dir: for a model name, the download cache (default: the Hugging Face cache).

    Returns:
        ``LoadedCheckpoint(model, config, label_dict)``; ``label_dict`` is None for a
        pre-trained checkpoint. ``model.label_dict`` is set too.

    Raises:
        UnknownModelError: the spec is neither a registered name nor a file.
        CheckpointError: the file is missing, unreadable, not a BEATs checkpoint, its cfg
            is out of range, its weights do not fit its cfg or are not finite, or its
            labels do not fit its head (the message names the field and the fix).
    """
    checkpoint = fetch_checkpoint(spec, revision=revision, cache_dir=cache_dir)
    model = model_from_checkpoint(checkpoint.content, origin=str(checkpoint.path))
    model.checkpoint_path = checkpoint.path
    if torch.device(map_location) != torch.device("cpu"):
        model.to(map_location)
    return LoadedCheckpoint(model, model.cfg, model.label_dict)


def model_from_checkpoint(checkpoint: Mapping[str, Any], *, origin: str = "the checkpoint") -> BEATs:
    """Build the model a checkpoint dict describes, on the CPU, in eval mode.

    Args:
        checkpoint: ``{"cfg", "model", ["label_dict"]}`` as
            :func:`~beats_core.checkpoint.read_checkpoint` returns it.
        origin: how messages name the checkpoint (its file).

    Returns:
        The model with the checkpoint's weights and ``label_dict``.

    Raises:
        CheckpointError: the cfg is out of range, the weights do not fit it or are not
            finite, or the labels do not fit the head.
    """
    try:
        config = BEATsConfig.from_dict(checkpoint.get("cfg") or {})
        with torch.device("meta"):  # no random initialisation: every weight comes from the file
            model = BEATs(config)
    except ConfigError as e:
        raise CheckpointError(
            f"{origin!r} has a cfg that cannot be built: {e}; fix that field of its cfg"
        ) from e
    state = checkpoint["model"]
    expected = model.state_dict()
    _check_fits(state, expected, origin)
    _check_finite(state, origin)
    model.load_state_dict(
        {key: value.to(expected[key].dtype) for key, value in state.items()}, strict=True, assign=True
    )
    num_classes = None if model.predictor is None else model.predictor.out_features
    model.label_dict = _label_dict(checkpoint.get("label_dict"), num_classes, origin)
    return model.eval()


def save_checkpoint(
    model: BEATs, path: str | os.PathLike[str], *, label_dict: Mapping[int, str] | None = None
) -> Path:
    """Write a model as an official checkpoint, atomically.

    The file is ``{"cfg": model.cfg.to_dict(), "model": state_dict}`` plus
    ``"label_dict"`` for a model with a head: the official code loads it with
    ``BEATsConfig(ckpt["cfg"])`` and a strict ``load_state_dict``. A crash mid-write
    leaves an existing file intact.

    Args:
        model: the model (any device; tensors are written from the CPU).
        path: the ``.pt`` file to write; its folder is created if needed.
        label_dict: ``{class index: label}``; defaults to ``model.label_dict``. Only written
            for a model with a head.

    Returns:
        The path written.

    Raises:
        ConfigError: ``label_dict`` does not match the model's classes.
        OSError: the file cannot be written.
    """
    labels = dict(label_dict) if label_dict is not None else model.label_dict
    checkpoint: dict[str, Any] = {"cfg": model.cfg.to_dict(), "model": model.state_dict()}
    if model.predictor is not None and labels is not None:
        classes = model.predictor.out_features
        if sorted(labels) != list(range(classes)) or not all(isinstance(v, str) for v in labels.values()):
            raise ConfigError(
                f"label_dict must map every class index 0..{classes - 1} to a string label, "
                f"got {len(labels)} entries"
            )
        checkpoint["label_dict"] = {int(k): labels[k] for k in sorted(labels)}
    return write_checkpoint(path, checkpoint)


def encoder_sha256(model: BEATs) -> str:
    """A fingerprint of everything that makes a model's embeddings: its encoder weights and fbank statistics.

    Two models with the same fingerprint give the same embeddings, whatever their heads: a
    fine-tuned checkpoint whose encoder was frozen (a linear probe) has the fingerprint of the
    pre-trained model it was trained on, so embeddings stored with one serve the other.

    Args:
        model: the model.

    Returns:
        64 hex digits: the SHA-256 of the fbank mean and standard deviation, then of every
        parameter and buffer except the head (``predictor.*``), by name, as float32.
    """
    digest = hashlib.sha256(f"{model.cfg.fbank_mean!r} {model.cfg.fbank_std!r}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        if not name.startswith("predictor."):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# Checks of a checkpoint's content
# ---------------------------------------------------------------------------

_MISMATCH = "its cfg and its weights do not belong together; use the cfg the weights were trained with"


def _check_fits(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], origin: str) -> None:
    missing = [key for key in expected if key not in state]
    if missing:
        raise CheckpointError(
            f"{origin!r} lacks {len(missing)} weight(s) that its cfg needs, e.g. {missing[0]!r} "
            f"of shape {tuple(expected[missing[0]].shape)}; {_MISMATCH}"
        )
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        raise CheckpointError(
            f"{origin!r} has {len(unexpected)} weight(s) that a BEATs model with its cfg does not have, "
            f"e.g. {unexpected[0]!r} of shape {tuple(state[unexpected[0]].shape)}; {_MISMATCH}"
        )
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{origin!r}: weight {key!r} has shape {tuple(state[key].shape)} in the file but "
                f"{tuple(tensor.shape)} in a BEATs model built from its cfg; {_MISMATCH}"
            )


def _check_finite(state: Mapping[str, torch.Tensor], origin: str) -> None:
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{origin!r}: weight {key!r} holds {bad:,} NaN or infinite value(s) of {tensor.numel():,}; "
                "the file is damaged or comes from a training run that diverged: use another checkpoint"
            )


def _label_dict(labels: Any, num_classes: int | None, origin: str) -> dict[int, str] | None:
    """The checkpoint's ``label_dict`` as ``{int: str}``, checked against the head's classes."""
    if labels is None:
        return None
    if not isinstance(labels, Mapping):
        raise CheckpointError(f"{origin!r}: its label_dict is a {type(labels).__name__}, expected a dict")
    result: dict[int, str] = {}
    for index, label in labels.items():
        try:
            result[int(index)] = str(label)
        except (TypeError, ValueError) as e:
            raise CheckpointError(
                f"{origin!r}: its label_dict has the key {index!r}, which is not a class index; "
                "a label_dict maps class indices 0, 1, ... to label strings"
            ) from e
    if num_classes is not None and sorted(result) != list(range(num_classes)):
        raise CheckpointError(
            f"{origin!r}: its label_dict names {len(result)} class(es) {_span(result)} but its head has "
            f"{num_classes} classes (0..{num_classes - 1}); the labels do not belong to this head: save the "
            "model again with one label per class"
        )
    return dict(sorted(result.items()))


def _span(labels: Mapping[int, str]) -> str:
    return f"({min(labels)}..{max(labels)})" if labels else "(none)"
