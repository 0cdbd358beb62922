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

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["ESC50_FBANK_MEAN", "ESC50_FBANK_STD", "PRESETS", "list_presets"]

#: Fbank statistics of ESC-50 (ESPnet's BEATs ESC-50 configuration, from the BEATs paper's appendix).
ESC50_FBANK_MEAN = 11.72215
ESC50_FBANK_STD = 10.60431

#: Preset name -> the :class:`~beats_train.config.TrainingConfig` fields it sets (the others keep
#: their defaults); ``TrainingConfig.preset(name)`` builds it.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "esc50-paper": {
            "learning_rate": 3e-5,
            "max_epochs": 2962,
            "patience": None,
            "batch_size": 60,
            "optimizer": "adamw",
            "betas": (0.9, 0.98),
            "weight_decay": 0.01,
            "warmup": 0.1,
            "scheduler": "cosine",
            "layer_wise_gradient_decay_ratio": 0.2,
            "encoder_layerdrop": 0.1,
            "dropout": 0.0,
            "head_dropout": 0.0,
            "label_smoothing": 0.1,
            "gradient_clipping": 1.0,
            "fbank_mean": ESC50_FBANK_MEAN,
            "fbank_std": ESC50_FBANK_STD,
            "augmentation": {"time_masks": 5, "time_mask_ratio": 0.12},
        },
        "fast": {
            "learning_rate": 1e-4,
            "max_epochs": 30,
            "patience": 5,
            "optimizer": "adamw",
            "betas": (0.9, 0.98),
            "weight_decay": 0.01,
            "warmup": 0.1,
            "scheduler": "cosine",
            "layer_wise_gradient_decay_ratio": 0.2,
            "encoder_layerdrop": 0.1,
            "head_dropout": 0.1,
            "label_smoothing": 0.1,
            "gradient_clipping": 1.0,
            "augmentation": {"roll": True},
        },
    }
)


def list_presets() -> list[str]:
    """The names of the presets, sorted."""
    return sorted(PRESETS)
