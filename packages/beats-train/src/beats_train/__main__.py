"""``python -m beats_train DATA ...``: ``beats train`` as a module, for ``accelerate launch``.

::

    accelerate launch --multi_gpu --num_processes 2 -m beats_train esc50:/data/ESC-50-master --test-fold 1

It takes the arguments of ``beats train`` and ends with
:func:`beats_core.launch.exit_after_launch` (every process waits for the others, then
leaves without interpreter shutdown, which can abort a gloo process after the work is done).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run ``beats train`` with this process's arguments, then exit cleanly."""
    from beats_core.cli import main as beats_main
    from beats_core.launch import exit_after_launch

    try:
        status = beats_main(["train", *sys.argv[1:]])
    except SystemExit as e:  # --help, usage errors
        status = e.code if isinstance(e.code, int) else 2
    exit_after_launch(status)


if __name__ == "__main__":
    main()
