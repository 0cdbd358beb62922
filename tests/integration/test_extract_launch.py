"""``accelerate launch -m beats_extract``: two real CPU processes (gloo) fill one store as one process does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import testkit

from beats_extract import BEATsFeatureExtractor
from beats_extract.archive import embed_into_store

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


@pytest.mark.slow
def test_accelerate_launch_shares_an_archive_between_two_processes(reference_dir, tmp_path):
    files = testkit.archive_recordings(tmp_path)
    model = reference_dir / "tiny_pretrained.pt"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "true"}
    environment.pop("PYTEST_XDIST_WORKER", None)
    command = [
        *LAUNCH,
        "-m",
        "beats_extract",
        str(tmp_path),
        "-o",
        str(tmp_path / "store"),
        "--model",
        str(model),
        *testkit.STORE_ARGUMENTS,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "process 0: embedded" in done.stdout and "process 1: embedded" in done.stdout
    assert {part.name.split("-r")[1][:3] for part in (tmp_path / "store").glob("part-*.parquet")} == {
        "000",
        "001",
    }
    extractor = BEATsFeatureExtractor(str(model), clip_seconds=2.0, dtype="float32", num_workers=0)
    embed_into_store(extractor, files, tmp_path / "single", progress=False)
    testkit.assert_same_store_rows(tmp_path / "store", tmp_path / "single")
