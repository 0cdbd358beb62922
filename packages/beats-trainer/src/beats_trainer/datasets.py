"""Dataset loaders and validation (re-exported from :mod:`beats_data`)."""

from beats_data import (
    list_dataset_loaders,
    load_csv_dataset,
    load_dataset,
    load_esc50,
    load_urbansound8k,
    make_synthetic_dataset,
    scan_directory_dataset,
    validate_dataset,
)

__all__ = [
    "list_dataset_loaders",
    "load_csv_dataset",
    "load_dataset",
    "load_esc50",
    "load_urbansound8k",
    "make_synthetic_dataset",
    "scan_directory_dataset",
    "validate_dataset",
]
