"""The core ``beats`` sub-commands: ``models``, ``download`` and ``info``.

Each wraps a public function (:func:`~beats_core.registry.list_available_models`,
:func:`~beats_core.download.ensure_checkpoint`,
:func:`~beats_core.summary.summarize_checkpoint`) and prints its result; errors are
:class:`~beats_core.errors.BeatsError` s, which the ``beats`` command prints as one line.
Modules that import torch or the Hub client are imported when a command runs, so
``beats --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json

from beats_core.errors import UnknownModelError
from beats_core.hookspecs import SubParsers
from beats_core.registry import DEFAULT_MODEL, find_registration, list_available_models

__all__ = ["add_commands"]

#: The architecture fields of a checkpoint's cfg that ``beats info`` shows.
_ARCHITECTURE_FIELDS = (
    "encoder_layers",
    "encoder_embed_dim",
    "encoder_attention_heads",
    "encoder_ffn_embed_dim",
    "input_patch_size",
    "embed_dim",
)
_LABELS_SHOWN = 10


def add_commands(subparsers: SubParsers) -> None:
    """Add ``models``, ``download`` and ``info`` to the ``beats`` command.

    Args:
        subparsers: the ``beats`` parser's sub-parsers object.
    """
    models = subparsers.add_parser(
        "models",
        help="list the registered checkpoints and whether each is cached",
        description="List the checkpoints registered by beats-core and installed plugins, where each comes "
        "from, and whether it is in the Hugging Face cache.",
    )
    models.add_argument(
        "pattern", nargs="*", help="only names matching these fnmatch patterns, e.g. 'BEATs*'"
    )
    models.add_argument(
        "-l", "--long", action="store_true", help="also show descriptions and who registers each"
    )
    models.add_argument(
        "--cache-dir", help="the Hugging Face cache folder (default: HF_HUB_CACHE or HF_HOME/hub)"
    )
    models.set_defaults(func=_models)

    download = subparsers.add_parser(
        "download",
        help="download a checkpoint into the Hugging Face cache",
        description="Download a registered checkpoint into the Hugging Face cache (or find it there), validate "
        "it, and print its path.",
    )
    download.add_argument(
        "name", nargs="?", metavar="NAME", help=f"a model from `beats models` (default: {DEFAULT_MODEL})"
    )
    download.add_argument("--revision", help="branch, tag or commit to download (default: the registry's)")
    download.add_argument("--force", action="store_true", help="download again even if the file is cached")
    download.add_argument(
        "--cache-dir", help="the Hugging Face cache folder (default: HF_HUB_CACHE or HF_HOME/hub)"
    )
    download.set_defaults(func=_download)

    info = subparsers.add_parser(
        "info",
        help="show a checkpoint's config, parameter count and labels",
        description="Show what a checkpoint holds: its architecture, parameter count and, for a fine-tuned "
        "classifier, its labels. A model name is downloaded first if needed.",
    )
    info.add_argument(
        "checkpoint", metavar="PATH_OR_NAME", help="a checkpoint file or a model from `beats models`"
    )
    info.add_argument("--revision", help="branch, tag or commit, for a model name (default: the registry's)")
    info.add_argument(
        "--cache-dir", help="the Hugging Face cache folder (default: HF_HUB_CACHE or HF_HOME/hub)"
    )
    info.add_argument("--config", action="store_true", help="show every field of the checkpoint's cfg")
    info.add_argument(
        "--all-labels", action="store_true", help=f"show every label, not only the first {_LABELS_SHOWN}"
    )
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(func=_info)


def _models(args: argparse.Namespace) -> int:
    from beats_core.download import find_cached_checkpoint, hub_cache_dir

    models = list_available_models(args.pattern or None)
    if not models:
        raise UnknownModelError(
            f"no registered model matches {' '.join(args.pattern)!r}; run `beats models` to list them all"
        )
    rows = [("NAME", "CACHED", "LICENCE", "SOURCE")]
    for name, info in models.items():
        cached = find_cached_checkpoint(name, cache_dir=args.cache_dir) is not None
        marker = "*" if name == DEFAULT_MODEL else ""
        rows.append((name + marker, "yes" if cached else "no", info.licence or "-", info.uri))
        if args.long:
            distribution = find_registration(name).distribution
            rows.append(("", "", "", f"{info.description} (registered by {distribution})"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
    print(f"\n* the default model. Cache: {hub_cache_dir(args.cache_dir)}")
    return 0


def _download(args: argparse.Namespace) -> int:
    from beats_core.download import ensure_checkpoint

    path = ensure_checkpoint(
        args.name, revision=args.revision, cache_dir=args.cache_dir, force_download=args.force
    )
    print(path)
    return 0


def _info(args: argparse.Namespace) -> int:
    from beats_core.audioset import display_name, is_audioset_id
    from beats_core.summary import summarize_checkpoint

    summary = summarize_checkpoint(args.checkpoint, revision=args.revision, cache_dir=args.cache_dir)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
        return 0
    cfg = summary.cfg
    architecture = ", ".join(f"{key}={cfg[key]}" for key in _ARCHITECTURE_FIELDS if key in cfg)
    kind = (
        f"fine-tuned classifier, {summary.num_classes} classes"
        if summary.finetuned
        else "pre-trained encoder (no classifier head)"
    )
    print(f"file        {summary.path} ({summary.file_size:,} bytes)")
    print(f"model       BEATs: {architecture or 'no architecture fields in cfg'}")
    print(f"kind        {kind}")
    print(f"parameters  {summary.num_parameters:,} ({summary.num_tensors} tensors)")
    labels = list(summary.labels.items())
    shown = labels if args.all_labels else labels[:_LABELS_SHOWN]
    width = max((len(label) for _, label in shown), default=0) + 2
    for i, (index, label) in enumerate(shown):
        shown_as = f"{label:<{width}}{display_name(label)}" if is_audioset_id(label) else label  # id and name
        print(f"{'labels' if i == 0 else '':<12}{index:<5}{shown_as}")
    if len(shown) < len(labels):
        print(f"{'':<12}... {len(labels) - len(shown)} more (--all-labels shows them)")
    if args.config:
        for i, key in enumerate(sorted(cfg)):
            print(f"{'cfg' if i == 0 else '':<12}{key} = {cfg[key]!r}")
    return 0
