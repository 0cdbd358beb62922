"""Dataset loaders, validation and a generated dataset (re-exported from :mod:`beats_data`)."""

from beats_data import (
    format_report,
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
    "format_report",
    "list_dataset_loaders",
    "load_csv_dataset",
    "load_dataset",
    "load_esc50",
    "load_urbansound8k",
    "make_synthetic_dataset",
    "scan_directory_dataset",
    "validate_dataset",
]
