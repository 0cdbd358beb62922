"""The run folder against hostile conditions: unwritable folders, a full disk, interruptions, earlier runs, bad states."""

from __future__ import annotations

import fractions
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import testkit
import torch

from beats_core import ConfigError, DatasetError, TrainingError
from beats_core.cli import main
from beats_train import BEATsTrainer, TrainingConfig
from beats_train.state import load_state, save_state

BEATS = Path(sys.executable).with_name("beats")
QUICK = ["--model", "random:tiny", "--batch-size", "8", "--no-validate", "--no-progress"]


def _beats_lines(error_output: str) -> list[str]:
    """The lines the ``beats`` command itself printed (log lines left out)."""
    return [line for line in error_output.splitlines() if line.startswith("beats:")]


@pytest.mark.skipif(os.geteuid() == 0, reason="chmod does not bind root (the next test covers root)")
def test_a_read_only_output_folder_is_refused_before_any_data_is_read(tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        # the data does not even exist: the folder is checked first
        status = main(["train", str(tmp_path / "no-data"), *QUICK, "--output-dir", str(folder / "run")])
    finally:
        folder.chmod(0o755)
    assert status == 1
    lines = _beats_lines(capsys.readouterr().err)
    assert (
        len(lines) == 1
        and "cannot write to the output folder" in lines[0]
        and "Permission denied" in lines[0]
    )


def test_an_output_folder_under_a_file_is_refused_before_any_data_is_read(tmp_path, capsys, sound_root):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    status = main(["train", str(tmp_path / "no-data"), *QUICK, "--output-dir", str(blocker / "run")])
    assert status == 1
    lines = _beats_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "cannot write to the output folder" in lines[0] and "is a file" in lines[0]
    trainer = BEATsTrainer.from_directory(sound_root, config=TrainingConfig(output_dir=str(blocker / "run")))
    with pytest.raises(ConfigError, match="cannot write to the output folder"):
        trainer.train()


def test_a_full_disk_is_named_and_the_printed_command_continues_the_run(
    sound_root, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    real_save = torch.save
    saves = []

    def save_on_a_disk_that_fills_up(obj, f, *args, **kwargs):
        saves.append(f)
        if len(saves) > 2:  # epoch 1 wrote best_model.pt and state.pt; then the disk is full
            f = testkit.FullDisk(f, 1000)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_on_a_disk_that_fills_up)
    assert main(["train", str(sound_root), *QUICK, "--epochs", "2", "--output-dir", str(run)]) == 1
    monkeypatch.undo()
    lines = _beats_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("beats: error: disk full: cannot write '")
    assert "state.pt'" in lines[0] or "best_model.pt'" in lines[0]
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no partial files left
    assert len(pd.read_csv(run / "metrics.csv")) == 1  # epoch 1 is intact
    command = lines[0].split("then continue the run with: ")[1]
    assert command == f"beats train --config {run / 'config.yaml'} --resume"
    assert main(shlex.split(command)[1:]) == 0
    assert len(pd.read_csv(run / "metrics.csv")) == 2


@pytest.mark.slow
def test_an_interrupted_run_says_how_to_continue_and_the_command_finishes_it(
    sound_root, tmp_path, offline_env
):
    run = tmp_path / "run"
    process = subprocess.Popen(
        [BEATS, "train", str(sound_root), *QUICK, "--epochs", "4", "--output-dir", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_env,
    )
    deadline = time.monotonic() + 300
    while not (run / "state.pt").is_file():  # the first epoch is saved
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, error_output = process.communicate(timeout=300)
    assert process.returncode == 130, error_output
    lines = _beats_lines(error_output)
    assert len(lines) == 1 and lines[0].startswith("beats: interrupted; the last finished epoch is saved")
    command = lines[0].split("continue with: ")[1]
    assert command == f"beats train --config {run / 'config.yaml'} --resume"
    finished = len(pd.read_csv(run / "metrics.csv"))
    assert 1 <= finished < 4
    assert main(shlex.split(command)[1:]) == 0
    assert list(pd.read_csv(run / "metrics.csv")["epoch"]) == [1, 2, 3, 4]


def test_an_earlier_run_is_continued_or_replaced_only_when_asked(sound_root, tmp_path, capsys):
    run = tmp_path / "run"
    arguments = [*QUICK, "--epochs", "1", "--output-dir", str(run)]
    assert main(["train", str(sound_root), *arguments]) == 0
    earlier = {name: (run / name).read_bytes() for name in ("best_model.pt", "metrics.csv", "state.pt")}
    capsys.readouterr()

    # refused before the data is read (it does not even exist), nothing replaced
    assert main(["train", str(tmp_path / "no-data"), *arguments]) == 1
    lines = _beats_lines(capsys.readouterr().err)
    assert (
        len(lines) == 1
        and "already holds a run (best_model.pt, state.pt, metrics.csv, results.json)" in lines[0]
    )
    assert "--resume" in lines[0] and "--overwrite" in lines[0]
    assert {name: (run / name).read_bytes() for name in earlier} == earlier
    config = TrainingConfig(model="random:tiny", output_dir=str(run), progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        BEATsTrainer.from_directory(sound_root, config=config).train()
    with pytest.raises(ConfigError, match="give only one of them"):
        BEATsTrainer.from_directory(sound_root, config=config).train(resume_from=run, overwrite=True)

    # replaced when asked: every file of the earlier run goes, also those this run does not write
    (run / "val_predictions.csv").write_text("from the earlier run")
    assert main(["train", str(sound_root), *arguments, "--seed", "1", "--overwrite"]) == 0
    assert not (run / "val_predictions.csv").exists()
    assert (run / "best_model.pt").read_bytes() != earlier["best_model.pt"]
    assert len(pd.read_csv(run / "metrics.csv")) == 1


def test_a_bad_state_file_says_what_is_wrong_and_what_to_do(tmp_path, sound_root, capsys):
    good = save_state(tmp_path / "good.pt", {"epoch": 1, "model": {"w": torch.zeros(1000)}})
    states = {
        "not a PyTorch file": b"these are not the bytes of a state",
        "cut short": good.read_bytes()[: good.stat().st_size // 2],
    }
    for name, content in states.items():
        (tmp_path / f"{name}.pt").write_bytes(content)
    with (tmp_path / "Python objects.pt").open("wb") as f:
        torch.save({"version": 1, "ratio": fractions.Fraction(1, 3)}, f)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "not a beats-train state.pt")
    for name in ("not a PyTorch file", "cut short", "Python objects", "not a beats-train state"):
        with pytest.raises(TrainingError) as caught:
            load_state(tmp_path / f"{name}.pt")
        message = str(caught.value)
        assert name in message and "--overwrite" in message, message
        assert "weights_only" not in message and "unpickl" not in message.lower(), message

    run = tmp_path / "run"
    run.mkdir()
    (run / "state.pt").write_bytes(states["cut short"])
    assert (
        main(["train", str(sound_root), *QUICK, "--epochs", "2", "--output-dir", str(run), "--resume"]) == 1
    )
    lines = _beats_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "cut short" in lines[0] and "weights_only" not in lines[0]


def test_a_cross_validation_does_not_replace_earlier_fold_runs_unless_asked(tmp_path, capsys):
    root = tmp_path / "cv"
    (root / "fold-2").mkdir(parents=True)
    (root / "fold-2" / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n")
    frame = pd.DataFrame({"filename": [str(tmp_path / "nowhere.wav")], "category": ["x"], "fold": [1]})
    trainer = BEATsTrainer.from_dataframe(
        frame, config=TrainingConfig(model="random:tiny", output_dir=str(root))
    )
    with pytest.raises(
        ConfigError, match=r"already holds the runs of a cross-validation \(fold-2/metrics\.csv\)"
    ):
        trainer.cross_validate()  # before the data is read (the only file does not exist)
    with pytest.raises(DatasetError):  # fold 1 replaces nothing: the data is read, and found missing
        trainer.cross_validate(folds=[1])
    arguments = ["train", str(tmp_path), "--cross-validate", "--resume", "--output-dir", str(root)]
    assert main(arguments) == 1
    assert "--resume continues one run; a cross-validation starts again" in capsys.readouterr().err
