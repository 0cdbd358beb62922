"""beats-trainer: BEATs fine-tuning and feature extraction in one install.

This umbrella package depends on beats-core, beats-data, beats-extract and beats-train
and re-exports their public API, so the familiar imports work unchanged::

    from beats_trainer import BEATsFeatureExtractor, BEATsTrainer, ensure_checkpoint, list_available_models
    from beats_trainer.config import DataConfig, TrainingConfig
    from beats_trainer.datasets import load_esc50, scan_directory_dataset, validate_dataset

Names are resolved on first use, so that loading the package (the ``beats`` command does,
to find ``beats demo``) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beats_core.lazy import lazy_exports
from beats_trainer.__about__ import __version__

if TYPE_CHECKING:
    from beats_core import (
        DEFAULT_MODEL,
        BEATs,
        BEATsConfig,
        BeatsError,
        ensure_checkpoint,
        list_available_models,
        load_audio,
        load_checkpoint,
    )
    from beats_extract import BEATsFeatureExtractor, FeatureIndex
    from beats_train import BEATsTrainer

_LAZY = {
    "DEFAULT_MODEL": "beats_core",
    "BEATs": "beats_core",
    "BEATsConfig": "beats_core",
    "BeatsError": "beats_core",
    "ensure_checkpoint": "beats_core",
    "list_available_models": "beats_core",
    "load_audio": "beats_core",
    "load_checkpoint": "beats_core",
    "BEATsFeatureExtractor": "beats_extract",
    "FeatureIndex": "beats_extract",
    "BEATsTrainer": "beats_train",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
