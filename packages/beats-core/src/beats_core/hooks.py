"""beats-core's own plugin: the built-in checkpoints and the core ``beats`` sub-commands.

It is registered through beats-core's ``beats`` entry point, the same way a third-party
plugin is.
"""

from __future__ import annotations

from collections.abc import Mapping

from beats_core.commands import add_commands
from beats_core.hookspecs import SubParsers, hookimpl
from beats_core.registry import BUILTIN_MODELS, ModelInfo


@hookimpl
def beats_models() -> Mapping[str, ModelInfo]:
    """Register the built-in checkpoints (:data:`beats_core.registry.BUILTIN_MODELS`)."""
    return BUILTIN_MODELS


@hookimpl
def beats_cli_commands(subparsers: SubParsers) -> None:
    """Add ``beats models``, ``beats download`` and ``beats info``."""
    add_commands(subparsers)
