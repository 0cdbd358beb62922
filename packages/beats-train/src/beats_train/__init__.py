"""beats-train: fine-tune BEATs on your own audio with Hugging Face Accelerate.

The public API is importable from the package root; names are resolved lazily so that
``import beats_train`` (and the ``beats`` command) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beats_core.lazy import lazy_exports
from beats_train.__about__ import __version__

if TYPE_CHECKING:
    from beats_train.config import (
        AugmentationConfig,
        DataConfig,
        TrainingConfig,
        get_preset,
        load_config,
        save_config,
    )
    from beats_train.cross_validation import CrossValidationResults
    from beats_train.metrics import classification_metrics, multilabel_metrics
    from beats_train.model import BEATsClassifier
    from beats_train.presets import list_presets
    from beats_train.results import TrainingResults
    from beats_train.stats import compute_fbank_stats
    from beats_train.trainer import BEATsTrainer

_LAZY = {
    "BEATsTrainer": ".trainer",
    "CrossValidationResults": ".cross_validation",
    "TrainingResults": ".results",
    "DataConfig": ".config",
    "TrainingConfig": ".config",
    "AugmentationConfig": ".config",
    "load_config": ".config",
    "save_config": ".config",
    "get_preset": ".config",
    "list_presets": ".presets",
    "BEATsClassifier": ".model",
    "compute_fbank_stats": ".stats",
    "classification_metrics": ".metrics",
    "multilabel_metrics": ".metrics",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
