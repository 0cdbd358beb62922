"""beats-trainer: BEATs fine-tuning and feature extraction in one install.

This umbrella package depends on beats-core, beats-data, beats-extract and beats-train
and re-exports their public API, so the familiar imports work unchanged::

    from beats_trainer import BEATsFeatureExtractor, BEATsTrainer, ensure_checkpoint, list_available_models
    from beats_trainer.config import DataConfig, TrainingConfig
    from beats_trainer.datasets import load_esc50, scan_directory_dataset, validate_dataset
"""

from __future__ import annotations

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
from beats_trainer.__about__ import __version__

__all__ = [
    "DEFAULT_MODEL",
    "BEATs",
    "BEATsConfig",
    "BEATsFeatureExtractor",
    "BEATsTrainer",
    "BeatsError",
    "FeatureIndex",
    "__version__",
    "ensure_checkpoint",
    "list_available_models",
    "load_audio",
    "load_checkpoint",
]
