"""``python -m beats_extract INPUT... -o STORE``: ``beats extract`` as a module, for several processes.

::

    accelerate launch --num_processes 4 -m beats_extract recordings/ -o embeddings/ --clip-seconds 5
    torchrun --nproc_per_node 4 -m beats_extract recordings/ -o embeddings/ --clip-seconds 5

It takes the arguments of ``beats extract``. Each process embeds a disjoint share of the files
that the store does not hold yet (balanced by duration, one GPU each where there are GPUs) and
writes its own parts of the one store; run the same command again to continue after an
interruption. It ends with :func:`beats_core.launch.exit_after_launch`.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``beats extract`` with this process's arguments in the launcher's process group, then exit cleanly."""
    from beats_core.cli import main as beats_main
    from beats_core.launch import exit_after_launch

    try:
        status = beats_main(["extract", *sys.argv[1:]])
    except SystemExit as e:  # --help, usage errors
        status = e.code if isinstance(e.code, int) else 2
    exit_after_launch(status)


if __name__ == "__main__":
    main()
