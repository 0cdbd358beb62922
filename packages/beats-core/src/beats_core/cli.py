"""The ``beats`` command. Its sub-commands come from plugins.

Each installed beats package (and any third-party plugin) adds sub-commands
through the :func:`~beats_core.hookspecs.beats_cli_commands` hook, so
``beats --help`` lists what is installed. A user error (any
:class:`~beats_core.errors.BeatsError`) prints one line and exits with status 1;
``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence

from beats_core.__about__ import __version__
from beats_core.errors import BeatsError, PluginWarning
from beats_core.plugins import BUILTIN_DISTRIBUTIONS, get_plugin_manager

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the ``beats`` argument parser with the sub-commands of every installed plugin.

    Returns:
        The parser; each sub-command sets ``args.func``.
    """
    parser = argparse.ArgumentParser(
        prog="beats",
        description="BEATs audio models: download checkpoints, extract embeddings, validate data, fine-tune.",
    )
    parser.add_argument("--version", action="version", version=f"beats {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and debug logging")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    manager = get_plugin_manager()
    for impl in manager.hook.beats_cli_commands.get_hookimpls():
        try:
            impl.function(subparsers=subparsers)
        except Exception as e:  # one broken plugin must not take the CLI down
            warnings.warn(
                f"beats plugin {impl.plugin_name!r} from distribution "
                f"{manager.distribution_of(impl.plugin)!r} failed to add its commands: "
                f"{type(e).__name__}: {e}",
                PluginWarning,
                stacklevel=2,
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``beats`` command.

    Args:
        argv: the arguments after ``beats``; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 on success, 1 on a user error, 2 on a usage error,
        130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    for distribution in BUILTIN_DISTRIBUTIONS:  # our own messages, without the HTTP chatter of the libraries
        logging.getLogger(distribution.replace("-", "_")).setLevel(
            logging.DEBUG if args.verbose else logging.INFO
        )
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        status = args.func(args)
    except BeatsError as e:
        if args.verbose:
            traceback.print_exc()
        print(f"beats: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("beats: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
