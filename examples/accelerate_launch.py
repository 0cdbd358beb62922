"""Fine-tune BEATs on several GPUs (or machines) with ``accelerate launch``.

The training code is the same as for one device: ``BEATsTrainer`` runs on Hugging Face
Accelerate, so the launcher decides how many processes train. Each process trains on its
share of every epoch (distributed data parallel); the data is validated once, on the main
process; metrics are gathered from every process, each clip counted once; only the main
process writes the run folder and prints.

Run it::

    # 4 GPUs on one machine
    accelerate launch --multi_gpu --num_processes 4 examples/accelerate_launch.py --data /path/to/birds --epochs 30

    # 2 processes on the CPU (gloo backend): handy to try it out without GPUs
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \\
        --dynamo_backend no --main_process_port 0 examples/accelerate_launch.py

    # one process, no launcher: the same script, the same result format
    python examples/accelerate_launch.py

``--data`` is a folder with one sub-folder per class, a ``.csv`` file, or ``NAME:PATH``
of a registered loader (``esc50:/data/ESC-50-master``). Without it the main process
generates a small dataset first while the others wait (see ``prepare_data``). Other
options: ``--model`` (default BEATs_iter3_plus_AS2M; when the processes start at the same
time they share one download), ``--preset``, ``--epochs``, ``--batch-size`` (per process:
the effective batch is this times the number of processes), ``--output-dir`` (default
``examples-output/accelerate_launch``; the run folder is ``run/`` inside it).

The command-line tool does the same: ``accelerate launch --multi_gpu --num_processes 4 -m
beats_train /path/to/birds --preset fast``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from accelerate import PartialState

from beats_core.launch import exit_after_launch
from beats_trainer import DEFAULT_MODEL, BeatsError, BEATsTrainer
from beats_trainer.config import TrainingConfig
from beats_trainer.datasets import make_synthetic_dataset


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fine-tune BEATs with accelerate launch.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", help="a class-folder dataset, a .csv or NAME:PATH (default: generate one)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"starting model (default {DEFAULT_MODEL})")
    parser.add_argument("--preset", default="fast", help="training recipe: fast (default) or esc50-paper")
    parser.add_argument("--epochs", type=int, default=10, help="most epochs to train (default 10)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per batch and process (default 8)")
    parser.add_argument(
        "--output-dir", type=Path, default=Path("examples-output/accelerate_launch"), help="where results go"
    )
    parser.add_argument(
        "--clips-per-class", type=int, default=20, help="generated clips per class (default 20)"
    )
    return parser.parse_args(argv)


def prepare_data(args: argparse.Namespace, state: PartialState) -> str:
    """The dataset to train on. Generated data is written by the main process alone.

    Every process runs this script. If each wrote the generated files, they would write
    the same files at the same time, and one could read a file another is still writing.
    So the main process writes them, and the others wait at a barrier until it is done.
    """
    if args.data is not None:
        return args.data
    data = args.output_dir / "data"
    if state.is_main_process:
        print(f"No --data given: generating {args.clips_per_class} clips per class in {data}")
        make_synthetic_dataset(data, clips_per_class=args.clips_per_class)
    state.wait_for_everyone()  # the other processes pass this only once the files are complete
    return str(data)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)

    # 1. This process's place in the run. On machines without a GPU the processes must be
    #    told to use the CPU (the gloo backend), or each would train alone; with GPUs each
    #    process takes its own. BEATsTrainer joins this same process group (it makes the
    #    same choice: the CPU only when there is no CUDA or Apple GPU).
    has_gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    state = PartialState(cpu=not has_gpu)
    if state.is_main_process:
        print(
            f"{state.num_processes} process(es), {state.distributed_type.value}, main process on {state.device}"
        )

    data = prepare_data(args, state)

    # 2. The same configuration as on one device. batch_size is per process.
    config = TrainingConfig.preset(
        args.preset, model=args.model, max_epochs=args.epochs, output_dir=str(args.output_dir / "run")
    )
    trainer = BEATsTrainer.from_directory(data, config=config, batch_size=args.batch_size)
    results = trainer.train(overwrite=True)  # running the example again replaces its earlier run

    # 3. Every process returns the same results; the main process reports them.
    if state.is_main_process:
        test = results.test_metrics or results.val_metrics
        print(f"best epoch {results.best_epoch} of {results.epochs}")
        print(f"test accuracy: {test['accuracy']:.4f}")
        print(f"run folder: {results.paths['output_dir']}")
    return 0


if __name__ == "__main__":
    try:
        status = main()
    except BeatsError as error:  # bad data or settings: one clear line, no traceback
        print(f"error: {error}", file=sys.stderr)
        status = 1
    # Leave cleanly: wait for the other processes, close the process group, flush the
    # output, exit. With gloo, a process can otherwise abort during interpreter shutdown
    # after the work is done, and the launcher would report a failure.
    exit_after_launch(status)
