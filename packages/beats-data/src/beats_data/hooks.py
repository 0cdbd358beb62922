"""beats-data's own plugin, registered through the ``beats`` entry point.

It registers the built-in dataset loaders and the ``beats validate`` command. Imports
are deferred so that starting the ``beats`` command stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from beats_core.hookspecs import SubParsers, hookimpl


@hookimpl
def beats_dataset_loaders() -> Mapping[str, Callable[..., Any]]:
    """Register ``directory``, ``csv``, ``esc50`` and ``urbansound8k``."""
    from beats_data.loaders import load_csv_dataset, load_esc50, load_urbansound8k, scan_directory_dataset

    return {
        "directory": scan_directory_dataset,
        "csv": load_csv_dataset,
        "esc50": load_esc50,
        "urbansound8k": load_urbansound8k,
    }


@hookimpl
def beats_cli_commands(subparsers: SubParsers) -> None:
    """Add ``beats validate``."""
    from beats_data.cli import add_validate_command

    add_validate_command(subparsers)
