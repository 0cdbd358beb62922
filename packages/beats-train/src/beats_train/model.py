"""The model being fine-tuned: a BEATs encoder with its head, fbank augmentation and an optional layer mix.

:class:`BEATsClassifier` wraps a :class:`beats_core.BEATs` whose classifier head
(``predictor``) classifies the masked mean of the token logits, exactly as the official
fine-tuned models do, so the backbone saves as an official fine-tuned checkpoint. What
the official format cannot hold (the weights of a weighted sum of layers, whether the
model is multi-label) goes into the checkpoint's cfg under the key ``beats_train``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from beats_core.errors import ConfigError
from beats_core.factory import load_checkpoint, save_checkpoint
from beats_core.model import BEATs
from beats_train.augment import FbankMasking
from beats_train.config import TrainingConfig

__all__ = [
    "CHECKPOINT_KEY",
    "BEATsClassifier",
    "build_classifier",
    "prepare_backbone",
]

logger = logging.getLogger(__name__)

#: The key of the checkpoint cfg that holds what beats-train adds to the official format.
CHECKPOINT_KEY = "beats_train"


class BEATsClassifier(nn.Module):
    """A BEATs backbone with a classifier head, for training and inference.

    ``forward(waveforms, padding_mask)`` returns logits (B, K): the backbone's head applied
    to every token of the last layer (or of a learnable softmax-weighted sum of every
    layer's output) and averaged over the tokens that are not padding.

    Args:
        backbone: the BEATs model; it must have a head (``reset_classifier``).
        weighted_layer_sum: classify a learnable weighted sum of the L + 1 hidden states.
        layer_weights: initial weights of that sum (L + 1 numbers summing to 1); equal
            weights when omitted.
        fbank_masking: masks applied to the normalised fbank in training (SpecAugment).
        multi_label: whether the labels are independent (sigmoid) rather than exclusive (softmax).
        clip_seconds: the clip length it is trained on (``DataConfig.max_duration``), recorded in
            its checkpoint so that ``beats detect`` and ``beats predict`` cut clips of that length.

    Raises:
        ConfigError: the backbone has no head, or ``layer_weights`` has the wrong length.
    """

    def __init__(
        self,
        backbone: BEATs,
        *,
        weighted_layer_sum: bool = False,
        layer_weights: list[float] | None = None,
        fbank_masking: FbankMasking | None = None,
        multi_label: bool = False,
        clip_seconds: float | None = None,
    ) -> None:
        super().__init__()
        if backbone.predictor is None:
            raise ConfigError(
                "BEATsClassifier needs a backbone with a head: call reset_classifier(num_classes)"
            )
        self.backbone = backbone
        self.multi_label = multi_label
        self.clip_seconds = clip_seconds
        self.backbone_frozen = False
        self.layer_weights: nn.Parameter | None = None
        if weighted_layer_sum or layer_weights is not None:
            count = backbone.cfg.encoder_layers + 1
            weights = (
                torch.full((count,), 1.0 / count) if layer_weights is None else torch.tensor(layer_weights)
            )
            if weights.shape != (count,):
                raise ConfigError(
                    f"layer_weights must hold {count} numbers (one per hidden state), got {weights.numel()}"
                )
            device = backbone.patch_embedding.weight.device
            self.layer_weights = nn.Parameter(weights.clamp_min(1e-12).log().to(device))
        self.fbank_masking = fbank_masking if fbank_masking is not None and fbank_masking.active else None
        if self.fbank_masking is not None:
            backbone.patch_embedding.register_forward_pre_hook(self._mask_fbank)

    # ------------------------------------------------------------------ forward
    def forward(self, waveforms: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Class logits of a batch.

        Args:
            waveforms: float (B, N), samples in [-1, 1] at 16 kHz.
            padding_mask: bool (B, N), ``True`` = padding, or None.

        Returns:
            Float logits (B, K).
        """
        frozen = torch.no_grad() if self.backbone_frozen else contextlib.nullcontext()
        with frozen:
            if self.layer_weights is None:
                features, token_mask = self.backbone.forward_features(waveforms, padding_mask)
            else:
                hidden, token_mask = self.backbone.extract_hidden_states(waveforms, padding_mask)
        if self.layer_weights is not None:
            weights = torch.softmax(self.layer_weights, dim=0)
            features = sum(weight * state for weight, state in zip(weights, hidden, strict=True))
        return self.backbone.forward_head(features, token_mask)

    def head_logits(self, embeddings: Tensor) -> Tensor:
        """Class logits of clips from their mean-pooled hidden states, without running the encoder.

        The head is linear, so applying it to every token and averaging the token logits (what
        :meth:`forward` does, as the official fine-tuned models do) equals applying it to the mean
        of the tokens: given the clips' embeddings as
        :class:`~beats_extract.extractor.BEATsFeatureExtractor` computes them with
        ``pooling="mean"``, this gives :meth:`forward`'s logits of the same clips (what a linear
        probe on stored embeddings trains, :mod:`beats_train.probe`). Head dropout acts on the
        tokens and has no counterpart here.

        Args:
            embeddings: float (B, C), the mean of the last layer's tokens (``layer=-1``); or
                (B, L + 1, C), the mean of every hidden state's tokens (``layer="all"``), which
                the layer weights mix (without them, the last one is taken).

        Returns:
            Float logits (B, K).

        Raises:
            ConfigError: ``(B, C)`` embeddings for a classifier with layer weights.
        """
        if embeddings.dim() == 2 and self.layer_weights is not None:
            raise ConfigError(
                f"this classifier mixes the {self.layer_weights.numel()} hidden states with its layer weights: give "
                'the mean of each, (B, L + 1, C) (an extractor with layer="all")'
            )
        if embeddings.dim() == 3:
            if self.layer_weights is None:
                embeddings = embeddings[:, -1]
            else:
                embeddings = torch.einsum("l,blc->bc", torch.softmax(self.layer_weights, dim=0), embeddings)
        return self.backbone.predictor(embeddings)

    def probabilities(self, logits: Tensor) -> Tensor:
        """Class probabilities from logits: softmax (single-label) or independent sigmoids (multi-label)."""
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    def _mask_fbank(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        """Forward pre-hook of the patch embedding: mask its (B, 1, T, F) fbank input in training."""
        if not self.training or self.fbank_masking is None:
            return None
        return (self.fbank_masking(inputs[0]), *inputs[1:])

    # ------------------------------------------------------------------ training modes
    def freeze_backbone(self, frozen: bool = True) -> None:
        """Run the backbone without gradients and in eval mode (a linear probe), or undo it."""
        self.backbone_frozen = frozen
        self.train(self.training)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """The backbone's parameters except its head (``predictor``)."""
        for name, parameter in self.backbone.named_parameters():
            if not name.startswith("predictor."):
                yield parameter

    def train(self, mode: bool = True) -> BEATsClassifier:
        """Set training mode; a frozen backbone stays in eval mode (no dropout or layer drop)."""
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    # ------------------------------------------------------------------ checkpoints
    @property
    def label_dict(self) -> dict[int, str]:
        """``{class index: label}`` of the head."""
        labels = self.backbone.label_dict
        if labels is None:
            return {i: str(i) for i in range(self.backbone.cfg.predictor_class)}
        return labels

    def checkpoint_extras(self) -> dict[str, Any]:
        """What beats-train stores in the checkpoint cfg under :data:`CHECKPOINT_KEY`."""
        weights = None
        if self.layer_weights is not None:
            weights = [float(w) for w in torch.softmax(self.layer_weights.detach().float(), 0).cpu()]
        return {"multi_label": self.multi_label, "layer_weights": weights, "max_duration": self.clip_seconds}

    def save(self, path: str | Path) -> Path:
        """Write the model as an official fine-tuned BEATs checkpoint (atomically).

        The file loads in the official code and with :func:`beats_core.load_checkpoint`;
        :meth:`load` also restores the layer weights, the multi-label flag and the clip length.

        Args:
            path: the ``.pt`` file.

        Returns:
            The path written.
        """
        self.backbone.cfg.extra[CHECKPOINT_KEY] = self.checkpoint_extras()
        return save_checkpoint(self.backbone, path, label_dict=self.label_dict)

    @classmethod
    def load(cls, name_or_path: str | Path, *, map_location: str | torch.device = "cpu") -> BEATsClassifier:
        """Load a fine-tuned checkpoint (a file, a registered name or ``hf-hub:owner/name``).

        Args:
            name_or_path: anything :func:`beats_core.load_checkpoint` accepts.
            map_location: the device to put the model on.

        Returns:
            The classifier, in eval mode.

        Raises:
            CheckpointError: the checkpoint is missing or invalid.
            ConfigError: it has no classifier head.
        """
        backbone = load_checkpoint(name_or_path, map_location=map_location).model
        if backbone.predictor is None:
            raise ConfigError(
                f"{str(name_or_path)!r} is a pre-trained checkpoint without a classifier head; fine-tune it "
                "first (beats train), or use it for embeddings (beats extract)"
            )
        extras = backbone.cfg.extra.get(CHECKPOINT_KEY) or {}
        classifier = cls(
            backbone,
            layer_weights=extras.get("layer_weights"),
            multi_label=bool(extras.get("multi_label", False)),
            clip_seconds=extras.get("max_duration"),
        )
        return classifier.eval()


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def prepare_backbone(
    backbone: BEATs,
    config: TrainingConfig,
    label_dict: Mapping[int, str],
    *,
    fbank_stats: tuple[float, float] | None = None,
) -> BEATs:
    """The backbone with the training settings of ``config`` and a head for ``label_dict``.

    The model is rebuilt from its cfg with the overrides of ``config`` (layer-wise gradient
    decay, layer drop, dropout, head dropout, fbank statistics) and its weights are moved
    over, so every setting takes effect the way it does in a model loaded with it. A head
    with exactly these labels is kept (continued training); otherwise a new head is made.

    Args:
        backbone: the starting model (from :func:`beats_core.create_model`).
        config: the training configuration.
        label_dict: ``{class index: label}`` of the dataset.
        fbank_stats: ``(mean, std)`` to normalise with, overriding the config's.

    Returns:
        A new BEATs model with a head of ``len(label_dict)`` classes and ``label_dict`` set.
    """
    changes: dict[str, Any] = {"predictor_dropout": config.head_dropout, "finetuned_model": False}
    for key in ("layer_wise_gradient_decay_ratio", "encoder_layerdrop", "dropout", "fbank_mean", "fbank_std"):
        value = getattr(config, key)
        if value is not None:
            changes[key] = value
    if fbank_stats is not None:
        changes["fbank_mean"], changes["fbank_std"] = fbank_stats
    labels = {int(k): str(v) for k, v in label_dict.items()}
    state = backbone.state_dict()
    head = {
        key.removeprefix("predictor."): state.pop(key) for key in list(state) if key.startswith("predictor.")
    }
    with torch.device("meta"):  # no initialisation: every encoder weight comes from the old model
        rebuilt = BEATs(backbone.cfg.replace(**changes))
    rebuilt.load_state_dict(state, strict=True, assign=True)
    rebuilt.reset_classifier(len(labels))
    if head and backbone.label_dict == labels:
        rebuilt.predictor.load_state_dict(head)
        logger.info("continuing with the model's own head for its %d classes", len(labels))
    rebuilt.label_dict = labels
    return rebuilt


def build_classifier(
    backbone: BEATs,
    config: TrainingConfig,
    label_dict: Mapping[int, str],
    *,
    fbank_stats: tuple[float, float] | None = None,
    clip_seconds: float | None = None,
) -> BEATsClassifier:
    """The classifier a run trains: the prepared backbone (:func:`prepare_backbone`) with the run's options.

    Args:
        backbone: the starting model (from :func:`beats_core.create_model`).
        config: the training configuration (layer sum, fbank masking, multi-label, freezing).
        label_dict: ``{class index: label}`` of the dataset.
        fbank_stats: ``(mean, std)`` measured on the training clips, overriding the config's.
        clip_seconds: the clip length of the run (``DataConfig.max_duration``).

    Returns:
        The classifier. A frozen encoder that is never unfrozen has no gradients at all
        (it stays out of the optimiser and of DDP).
    """
    classifier = BEATsClassifier(
        prepare_backbone(backbone, config, label_dict, fbank_stats=fbank_stats),
        weighted_layer_sum=config.weighted_layer_sum,
        fbank_masking=FbankMasking(config.augmentation),
        multi_label=config.multi_label,
        clip_seconds=clip_seconds,
    )
    if config.freeze_backbone:
        classifier.freeze_backbone(True)
        if config.unfreeze_after is None:
            for parameter in classifier.encoder_parameters():
                parameter.requires_grad_(False)
    return classifier
