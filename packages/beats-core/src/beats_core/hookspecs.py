"""Hook specifications of the ``beats`` plugin system.

Every package of the project, and any third-party package, extends beats by
implementing these hooks in a module listed under the ``beats`` entry-point group
of its ``pyproject.toml``::

    [project.entry-points.beats]
    my_plugin = "my_package.beats_plugin"

and marking the implementations with :data:`beats_core.hookimpl`::

    from beats_core import hookimpl

    @hookimpl
    def beats_poolings():
        return {"median": median_pooling}

Registration hooks return a mapping of names to objects. Every plugin contributes;
a name registered twice keeps its first registration (built-ins are registered
first) and the later one is reported with a :class:`~beats_core.errors.PluginWarning`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    import torch

    from beats_core.model_info import ModelInfo

__all__ = ["SubParsers", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("beats")
hookimpl = pluggy.HookimplMarker("beats")


class SubParsers(Protocol):
    """What ``argparse.ArgumentParser.add_subparsers()`` returns, as far as a plugin uses it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add a sub-command and return its parser (``argparse`` keywords: ``help``, ``description``, ...)."""


# ---------------------------------------------------------------------------
# Models and checkpoints
# ---------------------------------------------------------------------------


@hookspec
def beats_models() -> Mapping[str, ModelInfo]:
    """Register pretrained BEATs checkpoints.

    :returns: a mapping of model name (as users type it, e.g.
        ``"BEATs_iter3_plus_AS2M"``) to the :class:`~beats_core.model_info.ModelInfo`
        that says where to download it from and what it is.
    """


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@hookspec
def beats_dataset_loaders() -> Mapping[str, Callable[..., Any]]:
    """Register dataset loaders.

    :returns: a mapping of loader name (e.g. ``"esc50"``) to a callable
        ``loader(root, **options) -> pandas.DataFrame`` that returns one row per
        clip with the columns ``filename`` (absolute, or relative to ``root``) and
        ``category`` (label string), optionally ``fold``, ``split`` and ``target``.
    """


# ---------------------------------------------------------------------------
# Feature extraction
# ---------------------------------------------------------------------------


@hookspec
def beats_poolings() -> Mapping[str, Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]]:
    """Register poolings that turn a sequence of frame embeddings into one vector.

    :returns: a mapping of pooling name (e.g. ``"mean"``) to a callable
        ``pool(features, padding_mask) -> pooled`` where ``features`` is a float
        tensor ``(B, T, C)``, ``padding_mask`` a bool tensor ``(B, T)`` with
        ``True`` at padding (or ``None``), and ``pooled`` is ``(B, D)``. A padded
        frame must never change the result. A callable may carry an attribute
        ``output_multiplier`` (int, default 1) when ``D`` is a multiple of ``C``.
    """


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


@hookspec
def beats_cli_commands(subparsers: SubParsers) -> None:
    """Add sub-commands to the ``beats`` command.

    Each implementation adds its parsers with ``subparsers.add_parser(...)`` and
    sets ``func`` with ``parser.set_defaults(func=handler)``; ``handler(args)``
    returns the process exit code (``0`` or ``None`` for success) and raises a
    :class:`~beats_core.errors.BeatsError` for user errors, which the CLI prints
    as one line.

    :param subparsers: the ``beats`` parser's sub-parsers object.
    """
