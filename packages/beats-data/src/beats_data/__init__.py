"""beats-data: dataset loaders (plugins), dataset validation and the torch data pipeline for BEATs.

The public API is importable from the package root; names are resolved lazily so that
``import beats_data`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from beats_core.lazy import lazy_exports
from beats_data.__about__ import __version__

if TYPE_CHECKING:
    from beats_data.dataset import AudioCollator, AudioDataset, create_dataloader
    from beats_data.labels import LabelEncoder
    from beats_data.loaders import (
        get_dataset_loader,
        list_dataset_loaders,
        load_csv_dataset,
        load_dataset,
        load_esc50,
        load_urbansound8k,
        parse_dataset_spec,
        resolve_dataset,
        scan_directory_dataset,
    )
    from beats_data.samplers import LengthGroupedSampler
    from beats_data.splits import fold_split, stratified_split
    from beats_data.synthetic import make_synthetic_dataset
    from beats_data.validation import Issue, ValidationReport, format_report, validate_dataset

_LAZY = {
    "scan_directory_dataset": ".loaders",
    "load_csv_dataset": ".loaders",
    "load_esc50": ".loaders",
    "load_urbansound8k": ".loaders",
    "list_dataset_loaders": ".loaders",
    "get_dataset_loader": ".loaders",
    "load_dataset": ".loaders",
    "parse_dataset_spec": ".loaders",
    "resolve_dataset": ".loaders",
    "validate_dataset": ".validation",
    "format_report": ".validation",
    "Issue": ".validation",
    "ValidationReport": ".validation",
    "LabelEncoder": ".labels",
    "stratified_split": ".splits",
    "fold_split": ".splits",
    "AudioDataset": ".dataset",
    "AudioCollator": ".dataset",
    "create_dataloader": ".dataset",
    "LengthGroupedSampler": ".samplers",
    "make_synthetic_dataset": ".synthetic",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
