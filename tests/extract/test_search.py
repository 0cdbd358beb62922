from __future__ import annotations

import sys

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
    assert list(frame.columns) == ["path", "embedding"]
    np.testing.assert_array_equal(np.stack(frame["embedding"]), features)


def test_parquet_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    with pytest.raises(MissingDependencyError, match=r"beats-extract\[parquet\]"):
        save_features(tmp_path / "f.parquet", np.zeros((1, 2)), ["x"])
    save_features(tmp_path / "f.npz", np.zeros((1, 2)), ["x"])  # npz needs nothing more


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
