from __future__ import annotations

import sys
import time

import numpy as np
import pytest
import testkit

from beats_core import ConfigError, MissingDependencyError
from beats_extract import BEATsFeatureExtractor, FeatureIndex, load_features, save_features


def test_search_ranks_by_cosine_and_skips_unusable_rows():
    features = np.array([[1.0, 0.0], [0.6, 0.8], [np.nan, np.nan], [0.0, 0.0], [-1.0, 0.1]], dtype=np.float32)
    index = FeatureIndex(features, ["a", "b", "nan", "zero", "c"])
    hits = index.search(np.array([2.0, 0.1]), k=10)
    assert [hit.path for hit in hits] == ["a", "b", "c"]
    assert hits[0].score == pytest.approx(2.0 / np.hypot(2.0, 0.1))
    several = index.search(np.array([[0.0, 1.0], [1.0, 0.0]]), k=1)
    assert [[hit.path for hit in hits] for hits in several] == [["b"], ["a"]]
    with pytest.raises(ConfigError, match="does not fit"):
        index.search(np.zeros(3))
    with pytest.raises(ConfigError, match="k must"):
        index.search(np.ones(2), k=0)


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_features_files_round_trip(tmp_path, suffix):
    features = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    paths = [f"/data/clip {i}.wav" for i in range(4)]
    written = save_features(
        tmp_path / f"out{suffix}", features, paths, metadata={"model": "m", "layer": "all"}
    )
    saved = load_features(written)
    np.testing.assert_array_equal(saved.features, features)
    assert (
        saved.paths == paths and saved.metadata["model"] == "m" and saved.metadata["feature_shape"] == [3, 5]
    )
    assert not list(tmp_path.glob(".*partial"))
    index = FeatureIndex.load(written)
    assert index.search(features[2])[0].path == paths[2]


def test_parquet_opens_in_pandas(tmp_path):
    import pandas as pd

    features = np.eye(3, dtype=np.float32)
    save_features(tmp_path / "f.parquet", features, ["x", "y", "z"])
    frame = pd.read_parquet(tmp_path / "f.parquet")
    assert list(frame.columns) == ["path", "start", "end", "embedding"]
    np.testing.assert_array_equal(np.stack(frame["embedding"]), features)


def test_bad_files_and_names(tmp_path):
    with pytest.raises(ConfigError, match=r"\.npz or \.parquet"):
        save_features(tmp_path / "f.csv", np.zeros((1, 2)), ["x"])
    with pytest.raises(ConfigError, match="1 feature rows but 2 paths"):
        save_features(tmp_path / "f.npz", np.zeros((1, 2)), ["x", "y"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_features(tmp_path / "nothing.npz")
    np.savez(tmp_path / "other.npz", something=np.zeros(2))
    with pytest.raises(ConfigError, match="not a features file"):
        load_features(tmp_path / "other.npz")


def test_index_built_from_files_finds_the_same_recording(tiny_checkpoint, tmp_path):
    paths = [
        testkit.write_audio(tmp_path / f"{k}_{seed}.wav", testkit.class_sound(k, 1.0, seed=seed), 16000)
        for k in range(3)
        for seed in range(2)
    ]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), num_workers=0)
    with pytest.warns(UserWarning, match="broken.wav"):
        index = FeatureIndex.build(extractor, [*paths, broken])
    assert index.metadata["model"] == str(tiny_checkpoint) and index.metadata["pooling"] == "mean"
    for path in paths:
        hits = index.search(extractor.extract_from_file(path), k=len(paths) + 1)
        assert hits[0].path == str(path) and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert str(broken) not in [hit.path for hit in hits]


# Similarity search at archive scale: the exact method's memory, the approximate method (usearch),
# its saved graph, and the choice between them.


def clustered_embeddings(rows: int, dim: int = 64, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Embedding-like vectors: Gaussian clusters around a common offset, variance falling as 1/(d+1)."""
    rng = np.random.default_rng(seed)
    scale = (1.0 / np.sqrt(np.arange(1, dim + 1))).astype(np.float32)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32) * scale
    offset = rng.standard_normal(dim, dtype=np.float32) * scale
    noise = rng.standard_normal((rows, dim), dtype=np.float32) * scale
    return noise + centres[rng.integers(0, clusters, rows)] + offset


def rows_of(results) -> list[list[int]]:
    return [[hit.index for hit in hits] for hits in results]


def test_exact_index_holds_the_matrix_once():
    features = clustered_embeddings(2000)
    original = features.copy()
    index = FeatureIndex(features, [f"{i}.wav" for i in range(2000)], method="exact")
    assert index.method == "exact" and index.hnsw is None
    assert np.shares_memory(index.features, features)  # the caller's array itself, not normalised in place
    np.testing.assert_array_equal(features, original)
    held = [value for value in vars(index).values() if isinstance(value, np.ndarray)]
    others = sum(value.nbytes for value in held if not np.shares_memory(value, features))
    assert others <= 2000 * (4 + 1 + 8)  # one over each norm, which rows are usable, the unusable rows

    as_float64 = FeatureIndex(original.astype(np.float64), [f"{i}.wav" for i in range(2000)], method="exact")
    assert as_float64.features.dtype == np.float32 and as_float64.features.flags.owndata
    hits = as_float64.search(original[7], k=3)
    assert hits[0].index == 7 and hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert hits[1].score == pytest.approx(
        float(
            original[7]
            @ original[hits[1].index]
            / np.linalg.norm(original[7])
            / np.linalg.norm(original[hits[1].index])
        ),
        abs=1e-6,
    )


def test_exact_search_answers_query_blocks_like_single_queries():
    features = clustered_embeddings(3000)
    index = FeatureIndex(features, [str(i) for i in range(3000)], method="exact")
    queries = clustered_embeddings(40, seed=1)
    batched = index.search(queries, k=10)
    assert rows_of(batched) == rows_of([index.search(query, k=10) for query in queries])
    normalised = features / np.linalg.norm(features, axis=1, keepdims=True)
    expected = np.argsort(-(queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ normalised.T, axis=1)[
        :, :10
    ]
    assert rows_of(batched) == expected.tolist()


def test_bad_queries_and_settings_are_named():
    index = FeatureIndex(np.eye(3, dtype=np.float32), ["a", "b", "c"])
    with pytest.raises(ConfigError, match="query 1 is NaN, infinite or zero"):
        index.search(np.array([[1.0, 0, 0], [np.nan, 0, 0]]))
    with pytest.raises(ConfigError, match="query 0 is NaN, infinite or zero"):
        index.search(np.zeros(3))
    with pytest.raises(ConfigError, match="method must be one of"):
        FeatureIndex(np.eye(3), ["a", "b", "c"], method="fast")
    with pytest.raises(ConfigError, match="connectivity must be an integer of at least 2"):
        FeatureIndex(np.eye(3), ["a", "b", "c"], connectivity=1)
    with pytest.raises(ConfigError, match="vector_dtype must be one of"):
        FeatureIndex(np.eye(3), ["a", "b", "c"], vector_dtype="f8")
    with pytest.raises(
        ConfigError, match=r"starts has shape \(2,\); it must give one time in seconds per row, \(3,\)"
    ):
        FeatureIndex(np.eye(3), ["a", "b", "c"], starts=[0.0, 1.0])
    assert FeatureIndex(np.full((2, 3), np.nan), ["a", "b"]).search(np.ones(3)) == []
    huge = FeatureIndex(np.array([[3e30, 3e30], [1.0, 0.0]], dtype=np.float32), ["huge", "small"])
    hits = huge.search(np.array([1.0, 1.0]), k=2)  # the squares of the first row overflow float32
    assert [hit.path for hit in hits] == ["huge", "small"]
    assert [hit.score for hit in hits] == pytest.approx([1.0, np.sqrt(0.5)], abs=1e-6)


@pytest.mark.parametrize("method", ["exact", "approximate"])
def test_hits_carry_the_clip_and_never_an_unusable_row(method, tmp_path):
    if method == "approximate":
        pytest.importorskip("usearch")
    features = clustered_embeddings(600)
    features[[3, 50, 400]] = np.nan
    features[[10, 11]] = 0.0
    features[12, 5] = np.inf
    paths = [f"recording{i // 100}.flac" for i in range(600)]
    starts = np.arange(600) % 100 * 5.0
    index = FeatureIndex(features, paths, starts=starts, ends=starts + 5.0, method=method, progress=False)
    assert index.method == method
    hits = index.search(features[20], k=600)
    returned = {hit.index for hit in hits}
    assert not returned & {3, 50, 400, 10, 11, 12}
    if method == "exact":
        assert len(hits) == 600 - 6
    assert len(hits) >= 500
    assert hits[0].index == 20 and hits[0].path == "recording0.flac"
    assert (hits[0].start, hits[0].end) == (100.0, 105.0)
    assert all(hit.end == hit.start + 5.0 == starts[hit.index] + 5.0 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)

    saved = index.save(tmp_path / "clips.npz")
    again = FeatureIndex.load(saved, method=method)
    assert [(hit.index, hit.start, hit.end) for hit in again.search(features[20], k=5)] == [
        (hit.index, hit.start, hit.end) for hit in hits[:5]
    ]
    assert (
        "starts" not in again.metadata and FeatureIndex(features, paths).search(features[20])[0].start is None
    )


def test_approximate_finds_the_exact_neighbours_of_clustered_embeddings():
    pytest.importorskip("usearch")
    features = clustered_embeddings(4000)
    paths = [f"{i}.wav" for i in range(4000)]
    queries = clustered_embeddings(100, seed=1)  # held out: not rows of the index
    exact = FeatureIndex(features, paths, method="exact").search(queries, k=10)
    approximate = FeatureIndex(features, paths, method="approximate", progress=False)
    assert approximate.method == "approximate" and not approximate.hnsw.memory_mapped
    found = approximate.search(queries, k=10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(rows_of(found), rows_of(exact), strict=True)])
    assert recall >= 0.95
    assert rows_of(found) == rows_of([approximate.search(query, k=10) for query in queries])
    for hits, expected in zip(found, exact, strict=True):  # scores are exact cosines, best first
        scores = {hit.index: hit.score for hit in expected}
        for hit in hits:
            if hit.index in scores:
                assert hit.score == pytest.approx(scores[hit.index], abs=1e-5)
        assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_saved_graph_is_viewed_memory_mapped_without_rebuilding(tmp_path):
    pytest.importorskip("usearch")
    import warnings

    features = clustered_embeddings(4000)
    paths = [f"{i}.wav" for i in range(4000)]
    queries = clustered_embeddings(20, seed=1)
    started = time.perf_counter()
    built = FeatureIndex(
        features, paths, {"model": "m"}, method="approximate", connectivity=8, progress=False
    )
    build_seconds = time.perf_counter() - started
    written = built.save(tmp_path / "archive.npz")
    graph_file = tmp_path / "archive.npz.usearch"
    assert graph_file.is_file() and (tmp_path / "archive.npz.usearch.json").is_file()
    modified = graph_file.stat().st_mtime_ns

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        started = time.perf_counter()
        loaded = FeatureIndex.load(written, method="approximate", connectivity=8)
        load_seconds = time.perf_counter() - started
    assert loaded.hnsw.memory_mapped and loaded.hnsw.graph.connectivity == 8
    assert built.hnsw.expansion_search == loaded.hnsw.expansion_search == 64  # a small graph, by default
    assert loaded.hnsw.graph.memory_usage < graph_file.stat().st_size / 10  # the file is viewed, not read in
    assert graph_file.stat().st_mtime_ns == modified
    assert load_seconds < build_seconds / 3
    assert rows_of(loaded.search(queries, k=10)) == rows_of(built.search(queries, k=10))
    assert loaded.metadata["model"] == "m"

    in_memory = FeatureIndex.load(written, method="approximate", connectivity=8, mmap=False)
    assert (
        not in_memory.hnsw.memory_mapped and in_memory.hnsw.graph.memory_usage > graph_file.stat().st_size / 2
    )
    assert rows_of(in_memory.search(queries, k=10)) == rows_of(built.search(queries, k=10))
    assert FeatureIndex.load(written, method="exact").hnsw is None

    loaded.save(tmp_path / "copy.npz")  # a viewed graph saves to another file and over its own
    loaded.save(written)
    for path in (tmp_path / "copy.npz", written):
        again = FeatureIndex.load(path, method="approximate", connectivity=8)
        assert again.hnsw.memory_mapped and rows_of(again.search(queries, k=10)) == rows_of(
            built.search(queries, k=10)
        )


def test_stale_graph_is_rebuilt_with_a_warning(tmp_path):
    pytest.importorskip("usearch")
    features = clustered_embeddings(1500)
    paths = [f"{i}.wav" for i in range(1500)]
    graph_file = tmp_path / "index.usearch"
    FeatureIndex(features, paths, method="approximate", index_path=graph_file, progress=False)
    assert graph_file.is_file()

    with pytest.warns(UserWarning, match="connectivity 16 instead of 8; rebuilding it"):
        FeatureIndex(
            features, paths, method="approximate", index_path=graph_file, connectivity=8, progress=False
        )
    with pytest.warns(UserWarning, match="rows 1500 instead of 1499"):
        FeatureIndex(features[:-1], paths[:-1], method="approximate", index_path=graph_file, progress=False)
    changed = features.copy()
    changed[0] += 1.0
    with pytest.warns(UserWarning, match="fingerprint"):
        rebuilt = FeatureIndex(changed, paths, method="approximate", index_path=graph_file, progress=False)
    assert rebuilt.search(changed[0], k=1)[0].index == 0
    (tmp_path / "index.usearch.json").unlink()
    with pytest.warns(UserWarning, match="has no readable record index.usearch.json"):
        FeatureIndex(changed, paths, method="approximate", index_path=graph_file, progress=False)
    reopened = FeatureIndex(changed, paths, method="approximate", index_path=graph_file)
    assert reopened.hnsw.memory_mapped  # the rebuilt file fits again
    del reopened
    graph_file.write_bytes(graph_file.read_bytes()[: graph_file.stat().st_size // 2])
    with pytest.warns(UserWarning, match="cannot be opened .*; rebuilding it"):
        FeatureIndex(changed, paths, method="approximate", index_path=graph_file, progress=False)
    graph_file.write_bytes(b"not a graph")
    with pytest.warns(UserWarning, match="cannot be read .*; rebuilding it"):
        FeatureIndex(changed, paths, method="approximate", index_path=graph_file, progress=False)
    assert FeatureIndex(changed, paths, method="approximate", index_path=graph_file).hnsw.memory_mapped


def test_graph_attached_to_features_in_memory(tmp_path):
    pytest.importorskip("usearch")
    features = clustered_embeddings(2000)
    paths = [f"{i // 10}.wav" for i in range(2000)]
    starts = np.arange(2000) % 10 * 1.0
    graph_file = tmp_path / "store" / "index.usearch"
    first = FeatureIndex(
        features,
        paths,
        starts=starts,
        ends=starts + 1.0,
        method="approximate",
        index_path=graph_file,
        progress=False,
    )
    assert not first.hnsw.memory_mapped and graph_file.is_file()
    second = FeatureIndex(
        features, paths, starts=starts, ends=starts + 1.0, method="approximate", index_path=graph_file
    )
    assert second.hnsw.memory_mapped
    hit = second.search(features[1234], k=1)[0]
    assert (hit.index, hit.path, hit.start, hit.end) == (1234, "123.wav", 4.0, 5.0)


def test_auto_chooses_by_size(monkeypatch):
    pytest.importorskip("usearch")
    from beats_extract import search

    features = clustered_embeddings(1000, dim=32)
    assert features.size < search.APPROXIMATE_FROM_VALUES
    assert FeatureIndex(features, [str(i) for i in range(1000)]).method == "exact"
    monkeypatch.setattr(search, "APPROXIMATE_FROM_VALUES", features.size)
    assert FeatureIndex(features, [str(i) for i in range(1000)], progress=False).method == "approximate"
    assert FeatureIndex(features[:-1], [str(i) for i in range(999)]).method == "exact"


def test_without_usearch_approximate_names_the_extra_and_auto_searches_exactly(monkeypatch, caplog):
    from beats_extract import search

    monkeypatch.setitem(sys.modules, "usearch", None)  # as if usearch were not installed
    monkeypatch.setitem(sys.modules, "usearch.index", None)
    features = clustered_embeddings(500, dim=16)
    paths = [str(i) for i in range(500)]
    with pytest.raises(MissingDependencyError, match=r"pip install 'beats-extract\[search\]'"):
        FeatureIndex(features, paths, method="approximate")
    monkeypatch.setattr(search, "APPROXIMATE_FROM_VALUES", features.size)
    with caplog.at_level("WARNING", logger="beats_extract.search"):
        index = FeatureIndex(features, paths)
    assert index.method == "exact" and "beats-extract[search]" in caplog.text
    assert index.search(features[3], k=1)[0].index == 3


def test_the_default_expansion_grows_with_the_graph():
    """64 candidates keep recall@10 near 0.98 at 200,000 rows but 0.86 at 10**6, where 256 keep 0.96 (bench/README.md)."""
    from beats_extract.hnsw import LARGE_GRAPH_ROWS, HnswSettings

    default = HnswSettings()
    assert default.expansion_for(200_000) == default.expansion_for(LARGE_GRAPH_ROWS) == 64
    assert default.expansion_for(LARGE_GRAPH_ROWS + 1) == default.expansion_for(1_000_000) == 256
    assert HnswSettings(expansion_search=32).expansion_for(1_000_000) == 32
    with pytest.raises(ConfigError, match="expansion_search must be an integer of at least 2"):
        HnswSettings(expansion_search=1)
