"""The run folder: its files, the checks made before any work, and how to continue a stopped run.

Before a run decodes a single file, :meth:`RunFolder.prepare` makes sure the folder can be
written (it is created if needed) and that it does not hold an earlier run's results,
which a new run would replace: that takes ``resume_from`` (continue it) or
``overwrite=True`` (replace it: the earlier run's files are removed at once, so that a
stale state is never mistaken for the new run's). ``beats evaluate --output-dir`` checks its folder the
same way (:func:`check_output_folder`).
"""

from __future__ import annotations

import contextlib
import errno
import shlex
import tempfile
from collections.abc import Sequence
from pathlib import Path

from beats_core.errors import ConfigError, DiskFullError, TrainingError

__all__ = [
    "BEST_MODEL_FILE",
    "CONFIG_FILE",
    "CONFUSION_MATRIX_FILE",
    "METRICS_FILE",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SPLITS_FILE",
    "STATE_FILE",
    "TRAINING_CURVES_FILE",
    "VALIDATION_REPORT_FILE",
    "RunFolder",
    "check_output_folder",
    "predictions_file",
]

#: The best model (official fine-tuned checkpoint layout).
BEST_MODEL_FILE = "best_model.pt"
#: The last state, to resume (see :mod:`beats_train.state`).
STATE_FILE = "state.pt"
#: Both configurations (``beats train --config`` reads it).
CONFIG_FILE = "config.yaml"
#: Every clip with its split.
SPLITS_FILE = "splits.csv"
#: The data validation report.
VALIDATION_REPORT_FILE = "validation_report.txt"
#: One row per epoch.
METRICS_FILE = "metrics.csv"
#: The classification report of the test split (the validation split without one).
REPORT_FILE = "classification_report.txt"
#: Its confusion matrix.
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
#: Loss, accuracy and learning-rate curves.
TRAINING_CURVES_FILE = "training_curves.png"
#: :meth:`TrainingResults.to_dict` as JSON.
RESULTS_FILE = "results.json"
#: The files that hold a run's results: a new run does not replace them unless told to.
_RESULT_FILES = (BEST_MODEL_FILE, STATE_FILE, METRICS_FILE, RESULTS_FILE)


def predictions_file(split: str) -> str:
    """The name of the per-clip predictions of a split (``test_predictions.csv``, ...)."""
    return f"{split}_predictions.csv"


class RunFolder:
    """The folder a training run writes (:attr:`TrainingConfig.output_dir`).

    Args:
        path: the folder.

    Attributes:
        path: the folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        """The path of one of the run's files."""
        return self.path / name

    def prepare(self, *, resume_from: str | Path | None = None, overwrite: bool = False) -> None:
        """Before any work: check that a run can write here, and clear an earlier run's files for a new run.

        Args:
            resume_from: the run folder (or ``state.pt``) a resumed run continues from.
            overwrite: replace an earlier run in this folder.

        Raises:
            ConfigError: the folder cannot be written, it holds an earlier run and neither
                ``resume_from`` nor ``overwrite`` is given, or both are given.
            TrainingError: ``resume_from`` holds no state to continue from.
            DiskFullError: the disk is full.
        """
        if resume_from is not None and overwrite:
            raise ConfigError(
                "resume_from (--resume) continues an earlier run and overwrite (--overwrite) replaces it: "
                "give only one of them"
            )
        check_output_folder(self.path)
        if resume_from is not None:
            state = Path(resume_from)
            state = state / STATE_FILE if state.is_dir() else state
            if not state.is_file():
                raise TrainingError(
                    f"cannot resume: {str(state)!r} does not exist; pass the run folder of an earlier run (its "
                    f"output_dir, which holds {STATE_FILE}) or the {STATE_FILE} file itself"
                )
            return
        earlier = self.earlier_results()
        if earlier and not overwrite:
            raise ConfigError(
                f"the run folder {str(self.path)!r} already holds a run ({', '.join(earlier)}); continue it "
                "with --resume (resume_from=), replace it with --overwrite (overwrite=True), or choose "
                "another output folder (--output-dir)"
            )
        self._clear()

    def earlier_results(self) -> list[str]:
        """The result files of an earlier run in this folder (``best_model.pt``, ``state.pt``, ...)."""
        return [name for name in _RESULT_FILES if self.file(name).exists()]

    def _clear(self) -> None:
        """Remove an earlier run's files, so that none is mistaken for the new run's (a stale state above all)."""
        names = (
            *_RESULT_FILES,
            CONFIG_FILE,
            SPLITS_FILE,
            VALIDATION_REPORT_FILE,
            REPORT_FILE,
            CONFUSION_MATRIX_FILE,
            TRAINING_CURVES_FILE,
            predictions_file("test"),
            predictions_file("val"),
        )
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                self.file(name).unlink()

    def resume_command(self) -> str | None:
        """The command that continues this run, or None while it has no state to continue from."""
        if not self.file(STATE_FILE).is_file() or not self.file(CONFIG_FILE).is_file():
            return None
        return f"beats train --config {shlex.quote(str(self.file(CONFIG_FILE)))} --resume"


def check_output_folder(folder: str | Path, results: Sequence[str] = (), *, overwrite: bool = False) -> None:
    """Create ``folder`` if needed and prove that it takes a file; refuse to replace ``results`` unless told to.

    Args:
        folder: the output folder.
        results: names of files that must not be replaced without ``overwrite``.
        overwrite: replacing them is fine.

    Raises:
        ConfigError: the folder cannot be made or written (read-only, no permission, a
            file in its place), or it holds one of ``results`` and ``overwrite`` is False.
        DiskFullError: the disk is full.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except (FileExistsError, NotADirectoryError) as e:
        raise ConfigError(
            f"cannot write to the output folder {str(folder)!r}: it, or a folder above it, is a file "
            f"({e.strerror}); choose another output folder (--output-dir)"
        ) from e
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                f"disk full: cannot write to the output folder {str(folder)!r} ({e.strerror}); free space on "
                "its disk or choose another output folder (--output-dir)"
            ) from e
        raise ConfigError(
            f"cannot write to the output folder {str(folder)!r}: {e.strerror or e}; make it writable or "
            "choose another output folder (--output-dir)"
        ) from e
    found = [name for name in results if (folder / name).exists()]
    if found and not overwrite:
        raise ConfigError(
            f"the output folder {str(folder)!r} already holds earlier results ({', '.join(found)}); replace "
            "them with --overwrite (overwrite=True) or choose another output folder (--output-dir)"
        )
