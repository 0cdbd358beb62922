"""beats-train's own plugin, registered through the ``beats`` entry point.

It adds ``beats train`` and ``beats evaluate``; imports are deferred so
that starting the ``beats`` command stays fast.
"""

from __future__ import annotations

from beats_core.hookspecs import SubParsers, hookimpl


@hookimpl
def beats_cli_commands(subparsers: SubParsers) -> None:
    """Add ``beats train`` and ``beats evaluate``."""
    from beats_train.cli import add_commands

    add_commands(subparsers)
