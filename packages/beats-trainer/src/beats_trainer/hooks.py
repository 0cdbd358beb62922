"""beats-trainer's own plugin, registered through the ``beats`` entry point: ``beats demo``."""

from __future__ import annotations

from beats_core.hookspecs import SubParsers, hookimpl


@hookimpl
def beats_cli_commands(subparsers: SubParsers) -> None:
    """Add ``beats demo``."""
    from beats_trainer.cli import add_demo_command

    add_demo_command(subparsers)
