"""Scoring a classifier: clip-level predictions of a loader, their metrics, and the predictions table.

:func:`evaluate_model` serves a training run (every epoch's validation, the final test, on
every process together), :func:`evaluate_frame` serves
:class:`~beats_train.trainer.BEATsTrainer`'s ``evaluate`` (its ``predict`` is beats-extract's
:class:`~beats_extract.ClipClassifier`). Inference runs without autograd inside the backbone's
:meth:`~beats_core.BEATs.in_place_inference` (buffers reused: faster on the CPU) and in the
run's mixed precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from beats_data.frame import CATEGORY, FILENAME
from beats_data.labels import LabelEncoder
from beats_train.config import DataConfig
from beats_train.data import build_dataset, build_loader, refuse_clips
from beats_train.metrics import classification_metrics, multilabel_metrics
from beats_train.model import BEATsClassifier
from beats_train.precision import MixedPrecision

__all__ = [
    "Evaluation",
    "clip_evaluation",
    "evaluate_frame",
    "evaluate_model",
    "prediction_frame",
    "score_logits",
]


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


def evaluate_model(
    model: BEATsClassifier,
    loader: Any,
    *,
    targets: np.ndarray | None,
    labels: list[str],
    multi_label: bool,
    gather: Callable[[list[Any]], list[Any]] | None = None,
    description: str = "evaluation",
    progress: bool = True,
    precision: MixedPrecision | None = None,
) -> Evaluation:
    """Run a classifier over a loader and score its clip-level predictions.

    Each batch item carries its row ``index`` (and ``window`` for long clips): logits are
    collected per (row, window), gathered from every process when ``gather`` is given,
    de-duplicated (even sharding repeats items to fill the last batches), and averaged over
    each clip's windows.

    Args:
        model: the classifier (logits (B, K) for ``(waveform, padding_mask)``); put in eval mode here.
        loader: yields batches of :class:`~beats_data.AudioCollator`.
        targets: the split's targets by row (int (N,) or multi-hot (N, K)), or None.
        labels: the K class names.
        multi_label: score with multi-label metrics.
        gather: ``accelerate.utils.gather_object`` in a multi-process run.
        description: the progress bar's label.
        progress: show a progress bar.
        precision: the run's mixed precision (float32 when None).

    Returns:
        The :class:`Evaluation`.
    """
    model.eval()
    keys: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    device = next(model.parameters()).device
    autocast = precision.autocast() if precision is not None else contextlib.nullcontext()
    with torch.no_grad(), autocast, model.backbone.in_place_inference():
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
    return clip_evaluation(all_keys[first, 0], all_logits[first], targets, labels, multi_label)


def clip_evaluation(
    rows: np.ndarray,
    window_logits: np.ndarray,
    targets: np.ndarray | None,
    labels: list[str],
    multi_label: bool,
) -> Evaluation:
    """Average the logits of each clip's windows and score the clips.

    Args:
        rows: int (W,), the row of the split's frame each window belongs to.
        window_logits: float (W, K), one row per window.
        targets: the split's targets by row (int (N,) or multi-hot (N, K)), or None.
        labels: the K class names.
        multi_label: score with multi-label metrics.

    Returns:
        The :class:`Evaluation` of the rows that have windows.
    """
    indices, inverse = np.unique(np.asarray(rows), return_inverse=True)
    summed = np.zeros((len(indices), window_logits.shape[1]), dtype=np.float64)
    np.add.at(summed, inverse, window_logits)
    clip_logits = (summed / np.bincount(inverse, minlength=len(indices))[:, None]).astype(np.float32)
    metrics: dict[str, Any] = {}
    if targets is not None and len(indices):
        metrics = score_logits(clip_logits, np.asarray(targets)[indices], labels, multi_label)
    return Evaluation(indices=indices, logits=clip_logits, metrics=metrics)


def score_logits(
    logits: np.ndarray, targets: np.ndarray, labels: list[str], multi_label: bool
) -> dict[str, Any]:
    """The metrics of clip logits against their targets, with the loss.

    Args:
        logits: float32 (M, K).
        targets: int (M,) class indices, or multi-hot (M, K).
        labels: the K class names.
        multi_label: sigmoid outputs, binary cross-entropy and the multi-label metrics; else
            softmax, cross-entropy and the single-label metrics.

    Returns:
        :func:`~beats_train.metrics.classification_metrics` (or ``multilabel_metrics``) with ``loss``.
    """
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

    Text columns are ``object`` columns, so that file and class names that are not valid
    UTF-8 (surrogate escapes), which pandas' string columns refuse, are kept as they are.

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
    frame = pd.DataFrame({FILENAME: pd.Series(list(rows[FILENAME]), dtype=object)})
    if CATEGORY in rows:
        frame[CATEGORY] = pd.Series(list(rows[CATEGORY]), dtype=object)
    if multi_label:
        predicted = [
            labels.delimiter.join(labels.labels[k] for k in np.flatnonzero(row >= threshold))
            for row in probabilities
        ]
    else:
        predicted = [labels.labels[k] for k in probabilities.argmax(axis=1)] if len(probabilities) else []
    frame["label"] = pd.Series(predicted, dtype=object)
    frame["probability"] = probabilities.max(axis=1) if len(probabilities) else []
    for k, label in enumerate(labels.labels):
        frame[f"prob_{label}"] = probabilities[:, k]
    return frame


def evaluate_frame(
    model: BEATsClassifier,
    labels: LabelEncoder,
    frame: pd.DataFrame,
    config: DataConfig,
    *,
    batch_size: int,
    progress: bool = True,
) -> Evaluation:
    """Score a classifier on every clip of a labelled dataset frame.

    Args:
        model: the fine-tuned classifier.
        labels: its label mapping.
        frame: the standard frame (``filename``, ``category``).
        config: decoding settings (``max_duration`` windows, ``num_workers``).
        batch_size: clips per batch.
        progress: show a progress bar.

    Returns:
        The :class:`Evaluation` (indices into ``frame``; clips that cannot be decoded are
        left out with a logged warning).

    Raises:
        DatasetError: a label is not one of the model's classes.
        ConfigError: the rows are clips of recordings (evaluation reads whole files).
    """
    refuse_clips(frame, "evaluate")
    targets = labels.encode(frame[CATEGORY])
    loader = build_loader(
        build_dataset(frame, labels, config, train=False), batch_size, config, shuffle=False
    )
    return evaluate_model(
        model,
        loader,
        targets=targets,
        labels=list(labels.labels),
        multi_label=model.multi_label,
        progress=progress,
    )
