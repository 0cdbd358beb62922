"""Several processes fill one store (torchrun here; accelerate launch in tests/integration), and long files stay small."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import testkit

from beats_extract import BEATsFeatureExtractor
from beats_extract.archive import embed_into_store


def _launch(launcher: list[str], arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    environment.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(
        [*launcher, "-m", "beats_extract", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


@pytest.mark.slow
def test_two_torchrun_processes_fill_one_store_as_one_process_does(tiny_checkpoint, tmp_path):
    files = testkit.archive_recordings(tmp_path)
    store, single = tmp_path / "store", tmp_path / "single"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = _launch(
        launcher,
        [str(tmp_path), "-o", str(store), "--model", str(tiny_checkpoint), *testkit.STORE_ARGUMENTS],
        tmp_path,
    )
    assert "process 0: embedded" in done.stdout and "process 1: embedded" in done.stdout
    ranks = {part.name.split("-r")[1][:3] for part in store.glob("part-*.parquet")}
    assert ranks == {"000", "001"}  # each process wrote its own parts
    embed_into_store(
        BEATsFeatureExtractor(str(tiny_checkpoint), clip_seconds=2.0, dtype="float32", num_workers=0),
        files,
        single,
        progress=False,
    )
    testkit.assert_same_store_rows(store, single)
    again = _launch(
        launcher,
        [str(tmp_path), "-o", str(store), "--model", str(tiny_checkpoint), *testkit.STORE_ARGUMENTS],
        tmp_path,
    )
    assert "embedded 0 file(s)" in again.stdout  # resumed: nothing left to do


MEMORY = """
import resource, sys
from beats_extract import BEATsFeatureExtractor
from beats_extract.archive import embed_into_store
extractor = BEATsFeatureExtractor(sys.argv[1], clip_seconds=5.0, num_workers=0, dtype="float32")
extractor.extract_from_arrays([__import__("numpy").zeros(16000, "float32")])  # warm up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run = embed_into_store(extractor, [sys.argv[2]], sys.argv[3], progress=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(run.rows, (after - before) / 1024)
"""


@pytest.mark.slow
def test_a_one_hour_recording_is_embedded_in_bounded_memory(tiny_checkpoint, tmp_path):
    hour = tmp_path / "hour.flac"
    with sf.SoundFile(hour, "w", 16000, 1, subtype="PCM_16") as f:  # written a minute at a time
        for minute in range(60):
            f.write(testkit.class_sound(minute % 3, 60.0, 16000, seed=minute))
    done = subprocess.run(
        [sys.executable, "-c", MEMORY, str(tiny_checkpoint), str(hour), str(tmp_path / "store")],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    rows, growth_mb = done.stdout.split()
    assert int(rows) == 720  # 3600 s in 5 s clips
    assert float(growth_mb) < 500, f"peak memory grew by {growth_mb} MB"
