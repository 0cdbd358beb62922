"""Real two-process training on the CPU with ``accelerate launch`` (gloo), as TOOLING.md describes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import testkit
import torch

LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--multi_gpu",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    "--main_process_port",
    "0",
]
HERE = Path(__file__).parent


def _launch(arguments: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    environment.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [*LAUNCH, *arguments], capture_output=True, text=True, timeout=300, env=environment, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope="module")
def split_csv(tmp_path_factory) -> Path:
    """A CSV with its own split: 40 training clips, 8 validation clips, 7 test clips and a broken test file."""
    root = tmp_path_factory.mktemp("distributed")
    rows = []
    seed = 0
    for name in testkit.SOUND_CLASSES:
        for split, count in (("train", 10), ("val", 2), ("test", 2)):
            for i in range(count):
                path = testkit.write_audio(
                    root / f"{split}-{name}-{i}.wav", testkit.sound_clip(name, 0.5, seed), 16000
                )
                rows.append((path.name, name, split))
                seed += 1
    rows.pop()  # 7 good test clips
    (root / "broken.wav").write_bytes(b"this is not audio")
    rows.append(("broken.wav", "chirp", "test"))
    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(root / "data.csv", index=False)
    return root / "data.csv"


@pytest.mark.slow
def test_two_processes_train_one_model_and_count_every_clip_once(split_csv, tmp_path):
    run = tmp_path / "run"
    settings = {
        "output_dir": str(run),
        "report": str(tmp_path / "report.json"),
        "data": {
            "metadata_file": str(split_csv),
            "audio_column": "path",
            "label_column": "label",
            "batch_size": 2,
            "validate": False,  # the broken test file is skipped while loading: batch sizes differ per process
        },
        "training": {
            "model": "random:tiny",
            "max_epochs": 8,
            "patience": 1,
            "learning_rate": 2e-3,
            "encoder_layerdrop": 0.5,  # layers skipped on one process only: DDP must not hang on unused parameters
            "output_dir": str(run),
            "progress": False,
        },
    }
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    _launch([str(HERE / "two_process_run.py"), str(tmp_path / "settings.json")], tmp_path)
    ranks = json.loads((tmp_path / "report.json").read_text())

    assert [r["rank"] for r in ranks] == [0, 1] and {r["world"] for r in ranks} == {2}
    # both processes trained the same model: DDP kept them in step
    assert ranks[0]["digest"] == ranks[1]["digest"]
    # and they shared the data: each made half the optimiser steps of the whole training set per epoch
    state = torch.load(run / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2
    assert state["scheduler"]["last_epoch"] == state["epoch"] * 10  # 40 clips, batches of 2, 2 processes
    # gathered metrics count every clip once: no padding duplicates, the broken file absent
    assert {r["val_samples"] for r in ranks} == {8} and {r["test_samples"] for r in ranks} == {7}
    predictions = pd.read_csv(run / "test_predictions.csv")
    assert len(predictions) == predictions["filename"].nunique() == 7
    assert not predictions["filename"].str.endswith("broken.wav").any()
    # early stopping stopped both at the same epoch, before the last
    assert ranks[0]["stopped_early"] and ranks[1]["stopped_early"]
    assert (
        ranks[0]["epochs"]
        == ranks[1]["epochs"]
        == state["epoch"]
        == len(pd.read_csv(run / "metrics.csv"))
        < 8
    )
    # only the main process wrote into the run folder
    assert ranks[1]["writes"] == [] and any("best_model.pt" in w for w in ranks[0]["writes"])


@pytest.mark.slow
def test_python_m_beats_train_runs_under_accelerate_launch(split_csv, tmp_path):
    run = tmp_path / "cli-run"
    arguments = ["-m", "beats_train", str(split_csv), "--audio-column", "path", "--label-column", "label"]
    arguments += ["--model", "random:tiny", "--epochs", "2", "--batch-size", "4", "--output-dir", str(run)]
    arguments += ["--no-validate", "--no-progress"]
    result = _launch(arguments, tmp_path)
    assert result.stdout.count("run folder:") == 1  # the summary comes from the main process only
    assert json.loads((run / "results.json").read_text())["epochs"] == 2
    assert len(torch.load(run / "state.pt", weights_only=True)["rng"]) == 2
