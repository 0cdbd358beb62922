"""Ending a script started with ``accelerate launch`` or ``torchrun`` cleanly.

With torch's gloo backend (CPU processes) a process sometimes aborts while the Python
interpreter shuts down, after all the work is done ("terminate called without an active
exception"), so the launcher reports a failure. :func:`exit_after_launch` avoids the
shutdown: every process waits for the others, the process group is closed, output and logs
are flushed, and the process leaves with ``os._exit``. ``python -m beats_train`` and
``python -m beats_extract`` end this way; call it at the end of your own training scripts too::

    results = BEATsTrainer(...).train()
    exit_after_launch(0)
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

__all__ = ["exit_after_launch"]


def exit_after_launch(status: int = 0) -> NoReturn:
    """Wait for the other processes (on success), close the process group, flush the output, exit with ``status``.

    Args:
        status: the exit status; on failure the process does not wait for the others.
    """
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if status == 0:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
