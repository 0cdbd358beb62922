"""Search queries: files, clips of recordings and rows of a store; hits as a table to label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import testkit

from beats_core import ConfigError
from beats_core.cli import main
from beats_extract import BEATsFeatureExtractor, FeatureIndex
from beats_extract.archive import embed_into_store
from beats_extract.queries import Query, embed_queries, parse_query


def test_queries_are_files_or_clips_of_recordings(tmp_path):
    assert parse_query("a.wav") == Query("a.wav")
    assert parse_query("dir/rec.flac@12.5-17") == Query("dir/rec.flac", 12.5, 17.0)
    odd = tmp_path / "x@1-2.wav"
    odd.write_bytes(b"")
    assert parse_query(str(odd)) == Query(str(odd))  # an existing file with @ in its name is that file
    with pytest.raises(ConfigError, match="must end after it starts"):
        parse_query("rec.flac@5-5")


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("queries")
    recording = testkit.write_audio(
        root / "rec.flac",
        np.concatenate([testkit.class_sound(k % 3, 2.0, 16000, seed=k) for k in range(6)]),
        16000,
    )
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), clip_seconds=2.0, num_workers=0, dtype="float32")
    embed_into_store(extractor, [recording], root / "store", progress=False)
    queries = BEATsFeatureExtractor(
        str(tiny_checkpoint), num_workers=0, dtype="float32"
    )  # a query is one clip
    return root / "store", recording, queries


def test_a_stored_clip_is_its_own_best_hit_without_embedding_it_again(store):
    folder, recording, extractor = store
    index = FeatureIndex.load(folder)
    stored = embed_queries([Query(str(recording), 4.0, 6.0)], index, extractor)
    cut = embed_queries([Query(str(recording), 4.0, 5.999)], index, extractor)  # not a row: cut and embedded
    row = int(np.flatnonzero(np.isclose(index.starts, 4.0))[0])
    np.testing.assert_array_equal(stored[0], index.features[row])
    np.testing.assert_allclose(cut[0], index.features[row], atol=1e-3)
    hit = index.search(stored[0], k=1)[0]
    assert (hit.start, hit.end, hit.score) == (4.0, 6.0, pytest.approx(1.0))


def test_beats_search_writes_hits_to_label(store, tiny_checkpoint, tmp_path, capsys):
    folder, recording, _ = store
    hits = tmp_path / "hits.csv"
    arguments = ["search", str(folder), f"{recording}@0-2", f"{recording}@6-8", "-k", "3", "-o", str(hits)]
    assert main([*arguments, "--model", str(tiny_checkpoint), "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert f"{recording}@0-2" in out and "0.00 -     2.00 s" in out
    table = pd.read_csv(hits, keep_default_na=False)
    assert list(table.columns) == ["path", "start", "end", "score", "label", "query"]
    assert (table["label"] == "").all() and table["score"].is_monotonic_decreasing
    assert not table.duplicated(["path", "start"]).any() and 3 <= len(table) <= 6
    assert table["score"].iloc[0] == pytest.approx(1.0)
