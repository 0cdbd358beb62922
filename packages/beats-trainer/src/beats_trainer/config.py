"""Training and data configuration (re-exported from :mod:`beats_train.config`)."""

from beats_train.config import DataConfig, TrainingConfig

__all__ = ["DataConfig", "TrainingConfig"]
