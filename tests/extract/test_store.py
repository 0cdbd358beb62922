"""The store of embeddings: Parquet parts and a manifest, streamed, resumable, refusing other settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import testkit

from beats_core import StoreError
from beats_extract import BEATsFeatureExtractor
from beats_extract.archive import embed_into_store, share_by_duration
from beats_extract.storage import load_features
from beats_extract.store import MANIFEST_NAME, completed_recordings, read_store

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six recordings of 0.5 to 13 s in different formats and rates, and a name that is not UTF-8."""
    root = tmp_path_factory.mktemp("archive")
    specs = [("a.wav", 13.0, 16000), ("b.flac", 7.2, 44100), ("c.ogg", 3.1, 22050), ("d.wav", 0.5, 8000)]
    paths = [
        testkit.write_audio(root / name, testkit.class_sound(i % 3, seconds, rate, seed=i), rate)
        for i, (name, seconds, rate) in enumerate(specs)
    ]
    odd = root / os.fsdecode(b"caf\xe9.wav")
    testkit.write_audio(root / "cafe.wav", testkit.class_sound(1, 6.0, 16000, seed=9), 16000).rename(odd)
    paths.append(odd)
    paths.append(testkit.write_audio(root / "e.mp3", testkit.class_sound(2, 9.5, 44100, seed=5), 44100))
    return paths


def _extractor(tiny_checkpoint: Path, **options) -> BEATsFeatureExtractor:
    options = {"clip_seconds": 2.5, "clip_overlap": 0.5, "num_workers": 0, "dtype": "float32", **options}
    return BEATsFeatureExtractor(str(tiny_checkpoint), **options)


def _table(folder: Path) -> pd.DataFrame:
    """The store's rows sorted by path and start (in Python: pandas cannot sort a name that is not UTF-8)."""
    stored = read_store(folder)
    order = sorted(range(len(stored)), key=lambda i: (stored.paths[i], stored.starts[i]))
    paths = pd.Series([stored.paths[i] for i in order], dtype=object)
    frame = pd.DataFrame({"path": paths, "start": stored.starts[order], "end": stored.ends[order]})
    frame["embedding"] = list(stored.features[order])
    return frame


def test_rows_are_the_extractors_clips_and_every_tool_reads_the_store(tiny_checkpoint, recordings, tmp_path):
    extractor = _extractor(tiny_checkpoint)
    run = embed_into_store(extractor, recordings, tmp_path / "store", progress=False)
    expected = extractor.extract_from_files(recordings, progress=False)
    assert run.embedded == len(recordings) and run.rows == len(expected) and run.skipped == 0
    stored = read_store(tmp_path / "store")
    assert stored.features.dtype == np.float32 and stored.features.shape == (len(expected), 64)
    order = np.lexsort((expected.starts, expected.paths))
    table = _table(tmp_path / "store")
    assert table["path"].tolist() == [expected.paths[i] for i in order]  # the exact names, the odd one too
    np.testing.assert_allclose(np.stack(table["embedding"]), expected.features[order], atol=1e-5)
    np.testing.assert_allclose(table["end"], expected.ends[order])
    # pandas, pyarrow datasets and DuckDB read the folder as one table, the manifest aside
    frame = pd.read_parquet(tmp_path / "store")
    assert list(frame.columns) == ["path", "start", "end", "embedding"] and len(frame) == len(expected)
    dataset = pads.dataset(tmp_path / "store", format="parquet")
    assert dataset.count_rows() == len(expected)
    schema = pq.read_schema(next((tmp_path / "store").glob("part-*.parquet")))
    assert str(schema.field("embedding").type) == "fixed_size_list<element: float>[64]"
    duckdb = pytest.importorskip("duckdb")
    count = duckdb.sql(f"select count(*) from read_parquet('{tmp_path / 'store'}/*.parquet')").fetchall()[0][
        0
    ]
    assert count == len(expected)
    manifest = json.loads((tmp_path / "store" / MANIFEST_NAME).read_text())
    settings = manifest["settings"]
    assert (
        settings["clip_seconds"] == 2.5
        and settings["feature_shape"] == [64]
        and len(settings["model_sha256"]) == len(settings["encoder_sha256"]) == 64
    )
    assert manifest["summary"]["recordings"] == len(recordings) and manifest["summary"]["failures"] == []
    assert load_features(tmp_path / "store").features.shape == (len(expected), 64)


def test_a_second_run_adds_only_what_is_missing(tiny_checkpoint, recordings, tmp_path):
    extractor = _extractor(tiny_checkpoint)
    first = embed_into_store(extractor, recordings[:3], tmp_path / "store", progress=False)
    again = embed_into_store(extractor, recordings, tmp_path / "store", progress=False)
    assert (first.embedded, again.embedded, again.skipped) == (3, len(recordings) - 3, 3)
    whole = embed_into_store(extractor, recordings, tmp_path / "whole", progress=False)
    pd.testing.assert_frame_equal(
        _table(tmp_path / "store")[["path", "start", "end"]],
        _table(tmp_path / "whole")[["path", "start", "end"]],
    )
    assert embed_into_store(extractor, recordings, tmp_path / "store", progress=False).embedded == 0
    assert whole.rows == sum(completed_recordings(tmp_path / "store").values())


def test_other_settings_or_another_model_are_refused_unless_overwritten(
    tiny_checkpoint, recordings, reference_dir, tmp_path
):
    embed_into_store(_extractor(tiny_checkpoint), recordings[:2], tmp_path / "store", progress=False)
    with pytest.raises(StoreError, match=r"pooling='mean' \(now 'max'\)"):
        embed_into_store(
            _extractor(tiny_checkpoint, pooling="max"), recordings, tmp_path / "store", progress=False
        )
    with pytest.raises(StoreError, match=r"clip_seconds=2\.5 \(now 5\.0\)"):
        embed_into_store(
            _extractor(tiny_checkpoint, clip_seconds=5.0), recordings, tmp_path / "store", progress=False
        )
    other = _extractor(reference_dir / "tiny_finetuned.pt")
    with pytest.raises(StoreError, match=r"encoder_sha256=.*--overwrite"):
        embed_into_store(other, recordings, tmp_path / "store", progress=False)
    run = embed_into_store(other, recordings[:1], tmp_path / "store", overwrite=True, progress=False)
    assert run.skipped == 0 and completed_recordings(tmp_path / "store") == {str(recordings[0]): run.rows}


def test_a_broken_file_is_listed_retried_and_never_stops_the_others(tiny_checkpoint, recordings, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF but not really a wave file at all")
    run = embed_into_store(
        _extractor(tiny_checkpoint), [*recordings[:2], broken], tmp_path / "store", progress=False
    )
    assert run.embedded == 2 and list(run.failures) == [str(broken)]
    failures = json.loads((tmp_path / "store" / MANIFEST_NAME).read_text())["summary"]["failures"]
    assert failures[0]["path"] == str(broken) and "broken.wav" in failures[0]["reason"]
    testkit.write_audio(broken, testkit.class_sound(0, 1.0), 16000)  # repaired
    again = embed_into_store(
        _extractor(tiny_checkpoint), [*recordings[:2], broken], tmp_path / "store", progress=False
    )
    assert again.embedded == 1 and again.skipped == 2
    assert json.loads((tmp_path / "store" / MANIFEST_NAME).read_text())["summary"]["failures"] == []


KILLED_RUN = """
import sys
from beats_extract import BEATsFeatureExtractor
from beats_extract.archive import embed_into_store
extractor = BEATsFeatureExtractor(sys.argv[1], clip_seconds=2.5, clip_overlap=0.5, num_workers=0, dtype="float32")
files = sys.argv[3:]
print("started", flush=True)
embed_into_store(extractor, files, sys.argv[2], progress=False, flush_seconds=0.0)
"""


@pytest.mark.slow
def test_sigkill_at_any_moment_then_resume_loses_and_repeats_nothing(tiny_checkpoint, recordings, tmp_path):
    files = [str(p) for p in recordings] * 1
    store = tmp_path / "store"
    delays = [0.3, 0.9, 1.7, 2.6]
    for delay in delays:  # kill, resume, kill again ... at different moments of the run
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, str(tiny_checkpoint), str(store), *files],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout.readline().strip() == b"started"
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for part in store.glob("part-*.parquet"):
            pq.read_table(part)  # every part on disk is whole
    subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tiny_checkpoint), str(store), *files],
        check=True,
        capture_output=True,
    )
    reference = tmp_path / "reference"
    embed_into_store(_extractor(tiny_checkpoint), recordings, reference, progress=False)
    resumed, clean = _table(store), _table(reference)
    assert not resumed.duplicated(["path", "start"]).any()
    pd.testing.assert_frame_equal(resumed[["path", "start", "end"]], clean[["path", "start", "end"]])
    np.testing.assert_allclose(np.stack(resumed["embedding"]), np.stack(clean["embedding"]), atol=1e-5)
    assert not list(store.glob(".*"))  # no temporary file left behind


def test_shares_are_disjoint_and_balanced_by_duration():
    durations = [3600.0, 5.0, 5.0, 1800.0, 1800.0, 10.0, 2.0]
    shares = share_by_duration(durations, 2)
    assert sorted(i for share in shares for i in share) == list(range(7))
    loads = [sum(durations[i] for i in share) for share in shares]
    assert abs(loads[0] - loads[1]) <= 10.0


def test_a_folder_that_is_not_writable_fails_before_anything_is_decoded(
    tiny_checkpoint, recordings, tmp_path
):
    if os.geteuid() == 0:
        target = tmp_path / "a-file" / "store"  # a path under a regular file: not a folder anyone can make
        (tmp_path / "a-file").write_text("x")
    else:
        (tmp_path / "locked").mkdir(mode=0o500)
        target = tmp_path / "locked" / "store"
    with pytest.raises(StoreError, match="cannot write to store"):
        embed_into_store(_extractor(tiny_checkpoint), recordings, target, progress=False)


def test_reading_some_recordings_gives_their_rows_of_the_whole_store(tiny_checkpoint, recordings, tmp_path):
    extractor = _extractor(tiny_checkpoint)
    folder = tmp_path / "store"
    for share in (recordings[:3], recordings[3:]):  # two runs, two parts of three recordings each
        embed_into_store(extractor, share, folder, progress=False)
    whole = read_store(folder)
    names = list(dict.fromkeys(whole.paths))
    wanted = [names[1], names[4], "not/in/the/store.wav"]  # the middle recording of each part
    some = read_store(folder, recordings=wanted)
    keep = np.array([path in wanted for path in whole.paths])
    assert some.paths == [path for path in whole.paths if path in wanted] and 0 < len(some) < len(whole)
    np.testing.assert_array_equal(some.features, whole.features[keep])
    np.testing.assert_array_equal(some.starts, whole.starts[keep])
    np.testing.assert_array_equal(some.ends, whole.ends[keep])
    assert some.metadata == whole.metadata
    assert len(read_store(folder, recordings=[])) == 0
