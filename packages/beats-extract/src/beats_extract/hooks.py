"""beats-extract's own plugin, registered through the ``beats`` entry point.

It registers the built-in poolings and the ``beats extract``, ``beats search``, ``beats export``,
``beats detect`` and ``beats predict`` commands. Imports are deferred so that starting the ``beats`` command
stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from beats_core.hookspecs import SubParsers, hookimpl


@hookimpl
def beats_poolings() -> Mapping[str, Callable[..., Any]]:
    """Register ``mean``, ``max``, ``first``, ``last`` and ``meanstd``."""
    from beats_extract.poolings import BUILTIN_POOLINGS

    return BUILTIN_POOLINGS


@hookimpl
def beats_cli_commands(subparsers: SubParsers) -> None:
    """Add ``beats extract``, ``beats search``, ``beats export``, ``beats detect`` and ``beats predict``."""
    from beats_extract import detect_cli
    from beats_extract.cli import add_commands
    from beats_extract.export_cli import add_export_command

    add_commands(subparsers)
    add_export_command(subparsers)
    detect_cli.add_commands(subparsers)
