"""Named training recipes. A preset is a :class:`~beats_train.config.TrainingConfig`; override any field.

``esc50-paper``
    The BEATs paper's ESC-50 fine-tuning as published in ESPnet's BEATs configuration
    (``egs2/esc50/asr1/conf/beats_classification.yaml``): AdamW with betas (0.9, 0.98),
    weight decay 0.01, peak learning rate 3e-5, cosine decay with a linear warm-up over
    the first 10 % of the steps (8 000 of 80 000), layer-wise gradient decay 0.2, layer
    drop 0.1, dropout 0, five time masks of up to 12 % of the clip, no frequency masks,
    label smoothing 0.1, gradient clipping 1.0, the ESC-50 fbank statistics (mean
    11.72215, std 10.60431), batches of 60 and 2 962 epochs (the paper's 80 000 steps on
    1 600 training clips), choosing the best epoch on validation accuracy without early
    stopping.

``fast``
    A short fine-tune that does well on small datasets: peak learning rate 1e-4 with
    warm-up and cosine decay, AdamW (0.9, 0.98), weight decay 0.01, layer-wise gradient
    decay 0.2, layer drop 0.1, roll augmentation, label smoothing 0.1, head dropout 0.1,
    gradient clipping 1.0, 30 epochs with early stopping after 5 without improvement.

Use them as ``TrainingConfig.preset("fast", max_epochs=10)``, ``get_preset("esc50-paper")``,
``preset: fast`` in a configuration file, or ``beats train --preset fast``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from beats_core.errors import ConfigError
from beats_train.config import AugmentationConfig, TrainingConfig

__all__ = ["ESC50_FBANK_MEAN", "ESC50_FBANK_STD", "PRESETS", "get_preset", "list_presets"]

#: Fbank statistics of ESC-50 (ESPnet's BEATs ESC-50 configuration, from the BEATs paper's appendix).
ESC50_FBANK_MEAN = 11.72215
ESC50_FBANK_STD = 10.60431


def _esc50_paper() -> TrainingConfig:
    return TrainingConfig(
        learning_rate=3e-5,
        max_epochs=2962,
        patience=None,
        batch_size=60,
        optimizer="adamw",
        betas=(0.9, 0.98),
        weight_decay=0.01,
        warmup=0.1,
        scheduler="cosine",
        layer_wise_gradient_decay_ratio=0.2,
        encoder_layerdrop=0.1,
        dropout=0.0,
        head_dropout=0.0,
        label_smoothing=0.1,
        gradient_clipping=1.0,
        fbank_mean=ESC50_FBANK_MEAN,
        fbank_std=ESC50_FBANK_STD,
        augmentation=AugmentationConfig(time_masks=5, time_mask_ratio=0.12),
    )


def _fast() -> TrainingConfig:
    return TrainingConfig(
        learning_rate=1e-4,
        max_epochs=30,
        patience=5,
        optimizer="adamw",
        betas=(0.9, 0.98),
        weight_decay=0.01,
        warmup=0.1,
        scheduler="cosine",
        layer_wise_gradient_decay_ratio=0.2,
        encoder_layerdrop=0.1,
        head_dropout=0.1,
        label_smoothing=0.1,
        gradient_clipping=1.0,
        augmentation=AugmentationConfig(roll=True),
    )


#: Preset name -> a function building its configuration.
PRESETS: dict[str, Callable[[], TrainingConfig]] = {"esc50-paper": _esc50_paper, "fast": _fast}


def list_presets() -> list[str]:
    """The names of the presets, sorted."""
    return sorted(PRESETS)


def get_preset(name: str, **overrides: Any) -> TrainingConfig:
    """Return a preset's configuration with some fields overridden.

    Args:
        name: a name from :func:`list_presets`.
        **overrides: fields to change; ``augmentation`` may be a mapping of the augmentation
            fields to change (the others keep the preset's values).

    Returns:
        A new :class:`~beats_train.config.TrainingConfig`.

    Raises:
        ConfigError: the name is not a preset (the message lists them and the closest), or
            an override is not a field or has an invalid value.
    """
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown training preset {name!r}.{hint} The presets are {', '.join(list_presets())}."
        )
    return PRESETS[name]().replace(**overrides)
