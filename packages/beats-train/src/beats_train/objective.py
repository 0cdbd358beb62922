"""The training objective: what a batch costs, after augmentation.

Waveform augmentation (gain, roll), then mixup if it is on; the loss is cross-entropy
(class-weighted, label-smoothed) for single-label data, or binary cross-entropy on smoothed
multi-hot targets for multi-label data and whenever mixup mixes the targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from beats_train.augment import augment_waveforms, mixup
from beats_train.config import TrainingConfig
from beats_train.precision import MixedPrecision

__all__ = ["TrainingObjective"]


class TrainingObjective:
    """The loss of a training batch.

    Args:
        config: augmentation, mixup, label smoothing, multi-label.
        num_classes: K.
        class_weights: float (K,) loss weights (``class_balance="loss"``), or None.
        precision: the run's mixed precision (the forward pass runs under its autocast).
    """

    def __init__(
        self,
        config: TrainingConfig,
        num_classes: int,
        class_weights: Tensor | None,
        precision: MixedPrecision,
    ) -> None:
        self.augmentation = config.augmentation
        self.label_smoothing = config.label_smoothing
        self.multi_label = config.multi_label
        self.num_classes = num_classes
        self.class_weights = class_weights
        self.precision = precision

    def __call__(self, model: torch.nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Augment a batch, run the model on it and compute the loss.

        Args:
            model: the classifier being trained (logits (B, K)).
            batch: ``waveform`` float (B, N), ``padding_mask`` bool (B, N) (True = padding),
                ``target`` int (B,) or multi-hot float (B, K).

        Returns:
            ``(loss, logits)``: the scalar loss and the float32 (B, K) logits.
        """
        waveforms, mask, targets = batch["waveform"], batch["padding_mask"], batch["target"]
        waveforms = augment_waveforms(waveforms, mask, self.augmentation)
        soft = None
        if self.augmentation.mixup > 0:
            waveforms, mask, soft = mixup(
                waveforms, mask, self._target_matrix(targets), self.augmentation.mixup
            )
        with self.precision.autocast():
            logits = model(waveforms, mask)
        logits = logits.float()
        return self.loss(logits, targets, soft), logits

    def loss(self, logits: Tensor, targets: Tensor, soft: Tensor | None = None) -> Tensor:
        """The loss of logits: cross-entropy, or binary cross-entropy (multi-label, mixed targets).

        Args:
            logits: float32 (B, K).
            targets: int (B,) or multi-hot float (B, K).
            soft: mixed float (B, K) targets (mixup), which take the place of ``targets``.

        Returns:
            The scalar loss (class-weighted and label-smoothed as configured).
        """
        if soft is not None or self.multi_label:
            soft = soft if soft is not None else self._target_matrix(targets)
            return F.binary_cross_entropy_with_logits(logits, soft, weight=self.class_weights)
        return F.cross_entropy(
            logits, targets, weight=self.class_weights, label_smoothing=self.label_smoothing
        )

    def _target_matrix(self, targets: Tensor) -> Tensor:
        """Smoothed float (B, K) targets for BCE: one-hot (single-label) or multi-hot."""
        smoothing = self.label_smoothing
        if self.multi_label:
            return targets.float() * (1.0 - smoothing) + smoothing / 2.0
        one_hot = F.one_hot(targets, self.num_classes).float()
        return one_hot * (1.0 - smoothing) + smoothing / self.num_classes
