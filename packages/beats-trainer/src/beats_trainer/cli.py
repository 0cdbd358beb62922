"""``beats demo``: the end-to-end demo of :mod:`beats_trainer.demo` on the command line."""

from __future__ import annotations

import argparse

from beats_core.hookspecs import SubParsers

__all__ = ["add_demo_command", "run_demo_command"]


def add_demo_command(subparsers: SubParsers) -> None:
    """Add ``demo`` to the ``beats`` command.

    Args:
        subparsers: the ``beats`` parser's sub-parsers object.
    """
    demo = subparsers.add_parser(
        "demo",
        help="the whole story end to end: data, validation, fine-tuning, evaluation, embeddings, search",
        description="Generate a small labelled dataset of synthetic sounds (or take DATA), validate it, fine-tune "
        "BEATs (the default checkpoint if it is cached or downloadable, else a small random model), evaluate it "
        "on a held-out split, write the report and plots, embed every clip and answer a similarity query. "
        "No network or GPU needed.",
    )
    demo.add_argument(
        "data",
        nargs="?",
        metavar="DATA",
        help="your dataset: a folder with one sub-folder per class, a .csv (filename, category), or NAME:PATH "
        "(default: generated sounds)",
    )
    demo.add_argument(
        "--output-dir", default="beats-demo", help="where the data, run folder and embeddings go"
    )
    demo.add_argument(
        "--model",
        help="starting model: a name, a checkpoint file or random:tiny (default: the default checkpoint "
        "if it can be had, else random:tiny)",
    )
    demo.add_argument(
        "--epochs",
        type=int,
        help="the most epochs (default 8 pre-trained, 10 with --full-finetune, 40 random)",
    )
    demo.add_argument(
        "--clips-per-class", type=int, default=30, help="clips per class of the generated dataset"
    )
    demo.add_argument(
        "--full-finetune",
        action="store_true",
        help="train every layer of a pre-trained model (default: its classifier only, which is fast on a CPU)",
    )
    demo.set_defaults(func=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    """Run ``beats demo``.

    Returns:
        0 on success.
    """
    from beats_trainer.demo import run_demo

    results = run_demo(
        args.data,
        output_dir=args.output_dir,
        model=args.model,
        epochs=args.epochs,
        clips_per_class=args.clips_per_class,
        full_finetune=args.full_finetune,
    )
    print(f"\nDone. Everything is in {results.training.paths['output_dir'].parent}.")
    return 0
