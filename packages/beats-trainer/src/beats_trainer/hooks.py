"""beats-trainer's own plugin, registered through the ``beats`` entry point: ``beats demo``."""

from __future__ import annotations

import argparse

from beats_core.hookspecs import hookimpl


@hookimpl
def beats_cli_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``beats demo``."""
    from beats_trainer.cli import add_demo_command

    add_demo_command(subparsers)
