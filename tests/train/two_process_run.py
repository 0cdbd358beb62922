"""Started by ``accelerate launch`` with two CPU processes from test_distributed.py.

Usage: ``two_process_run.py SETTINGS.json``. Every process records the files it opens for
writing (or renames) inside the run folder with a Python audit hook, trains through the
public API, then the processes gather what each saw (rank, world size, a digest of its
final weights, its epochs, its writes) and the main process writes it to the report file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

settings = json.loads(Path(sys.argv[1]).read_text())
RUN = os.path.abspath(settings["output_dir"])
writes: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
    elif event in ("os.rename", "os.remove", "os.mkdir"):
        path, writing = args[0], True
    else:
        return
    if writing and isinstance(path, str | os.PathLike) and os.path.abspath(os.fspath(path)).startswith(RUN):
        writes.append(f"{event} {os.fspath(path)}")


sys.addaudithook(_audit)

from accelerate import PartialState  # noqa: E402
from accelerate.utils import gather_object  # noqa: E402

from beats_core.launch import exit_after_launch  # noqa: E402
from beats_train import BEATsTrainer, DataConfig, TrainingConfig  # noqa: E402

trainer = BEATsTrainer(DataConfig(**settings["data"]), TrainingConfig(**settings["training"]))
results = trainer.train()
state = PartialState()
weights = trainer.model.state_dict()
digest = hashlib.sha256(b"".join(weights[key].detach().cpu().numpy().tobytes() for key in sorted(weights)))
seen = {
    "rank": state.process_index,
    "world": state.num_processes,
    "digest": digest.hexdigest(),
    "epochs": results.epochs,
    "stopped_early": results.stopped_early,
    "val_samples": results.val_metrics["num_samples"],
    "test_samples": results.test_metrics["num_samples"],
    "writes": writes,
}
everyone = gather_object([seen])
if state.is_main_process:
    Path(settings["report"]).write_text(json.dumps(everyone))
exit_after_launch(0)
