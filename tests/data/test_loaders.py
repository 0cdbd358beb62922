from __future__ import annotations

import logging
import time
from pathlib import Path

import hostile
import pandas as pd
import pytest
import testkit

from beats_core import DatasetError, PluginError, hookimpl
from beats_core.audio_files import SkippedPathWarning
from beats_core.plugins import get_plugin_manager
from beats_data import (
    get_dataset_loader,
    list_dataset_loaders,
    load_csv_dataset,
    load_dataset,
    load_esc50,
    load_urbansound8k,
    parse_dataset_spec,
    resolve_dataset,
    scan_directory_dataset,
    validate_dataset,
)


def test_seed_names_are_importable_from_the_package_root():
    import beats_data

    for name in [
        "load_esc50",
        "load_urbansound8k",
        "scan_directory_dataset",
        "load_csv_dataset",
        "validate_dataset",
    ]:
        assert callable(getattr(beats_data, name))
    assert validate_dataset is beats_data.validation.validate_dataset


# ---------------------------------------------------------------------------
# directory
# ---------------------------------------------------------------------------


def test_scan_directory_one_folder_per_class_with_nested_folders(tmp_path, caplog):
    testkit.make_directory_dataset(tmp_path, {"dog": 2, "rain": 1})
    testkit.write_audio(tmp_path / "rain" / "2024" / "june" / "deep.FLAC", testkit.sine(440, 0.1), 16000)
    testkit.write_audio(tmp_path / "rain" / "._deep.wav", testkit.sine(440, 0.1), 16000)  # macOS metadata
    testkit.write_audio(tmp_path / ".hidden" / "x.wav", testkit.sine(440, 0.1), 16000)
    testkit.write_audio(tmp_path / "stray.wav", testkit.sine(440, 0.1), 16000)
    (tmp_path / "dog" / "notes.txt").write_text("not audio")

    with caplog.at_level(logging.WARNING):
        frame = scan_directory_dataset(tmp_path)

    assert list(frame.columns) == ["filename", "category"]
    assert frame["category"].tolist() == ["dog", "dog", "rain", "rain"]
    names = [Path(f).relative_to(tmp_path).as_posix() for f in frame["filename"]]
    assert names == ["dog/dog_0.wav", "dog/dog_1.wav", "rain/2024/june/deep.FLAC", "rain/rain_0.wav"]
    assert all(Path(f).is_absolute() and Path(f).is_file() for f in frame["filename"])
    assert "1 audio files lie directly in" in caplog.text


def test_scan_directory_split_layout_adds_a_split_column(tmp_path):
    testkit.make_directory_dataset(tmp_path / "train", {"a": 2, "b": 2})
    testkit.make_directory_dataset(tmp_path / "Validation", {"a": 1, "b": 1})
    testkit.make_directory_dataset(tmp_path / "test", {"a": 1, "b": 1})

    frame = scan_directory_dataset(tmp_path)

    assert frame.groupby("split").size().to_dict() == {"test": 2, "train": 4, "val": 2}
    assert set(frame["category"]) == {"a", "b"}


def test_scan_directory_extensions_filter(tmp_path):
    testkit.make_directory_dataset(tmp_path, {"a": 1}, extension=".wav")
    testkit.make_directory_dataset(tmp_path, {"a": 1}, extension=".flac")

    assert len(scan_directory_dataset(tmp_path, extensions=["flac"])) == 1
    assert len(scan_directory_dataset(tmp_path)) == 2


def test_scan_directory_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist or is not a folder"):
        scan_directory_dataset(tmp_path / "nope")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DatasetError, match=r"no audio files .* found in class folders.*ROOT/<class>/<file>"):
        scan_directory_dataset(tmp_path)


def test_scan_directory_follows_a_link_loop_once(tmp_path):
    testkit.make_directory_dataset(tmp_path, {"x": 3, "y": 3})
    (tmp_path / "x" / "up").symlink_to("..")  # 6 files once became 2,706 rows, y's clips labelled x

    start = time.perf_counter()
    with pytest.warns(SkippedPathWarning, match=r"x/up': a link to .*, a folder already walked"):
        frame = scan_directory_dataset(tmp_path)

    assert len(frame) == 6 and frame.groupby("category").size().to_dict() == {"x": 3, "y": 3}
    assert all(Path(f).parent.name == c for f, c in zip(frame["filename"], frame["category"], strict=True))
    assert time.perf_counter() - start < 5


def test_scan_directory_takes_a_file_reached_twice_once_and_names_both_paths(tmp_path):
    testkit.make_directory_dataset(tmp_path, {"cat": 2, "dog": 2})
    (tmp_path / "dog" / "twin.wav").symlink_to(tmp_path / "cat" / "cat_0.wav")

    with pytest.warns(SkippedPathWarning) as caught:
        frame = scan_directory_dataset(tmp_path)

    assert len(frame) == 4 and str(tmp_path / "dog" / "twin.wav") not in set(frame["filename"])
    twin, original = tmp_path / "dog" / "twin.wav", tmp_path / "cat" / "cat_0.wav"
    assert f"'{twin}': the same file as '{original}'" in str(caught[0].message)


def test_scan_directory_skips_a_fifo_in_a_class_folder(tmp_path):
    testkit.make_directory_dataset(tmp_path, {"cat": 2, "dog": 2})
    hostile.fifo(tmp_path / "dog" / "stream.wav")

    start = time.perf_counter()
    with pytest.warns(
        SkippedPathWarning, match=r"dog/stream\.wav': a FIFO \(named pipe\), not a regular file"
    ):
        frame = scan_directory_dataset(tmp_path)

    assert len(frame) == 4 and time.perf_counter() - start < 5


def test_scan_directory_keeps_names_that_are_not_utf8(tmp_path):
    testkit.make_directory_dataset(tmp_path, {"cat": 2})
    latin1_class = hostile.non_utf8_path(tmp_path, b"caf\xe9")
    latin1_class.mkdir()
    for i, name in enumerate([b"\xff.wav", b"b.wav"]):
        testkit.write_audio(tmp_path / "tmp.wav", testkit.class_sound(1, 0.2, seed=i), 16000).rename(
            hostile.non_utf8_path(latin1_class, name)
        )

    frame = scan_directory_dataset(tmp_path)

    assert frame["category"].tolist() == ["caf\\xe9", "caf\\xe9", "cat", "cat"]  # labels are printable text
    assert frame["filename"].tolist()[:2] == [
        str(latin1_class / "b.wav"),
        str(hostile.non_utf8_path(latin1_class, b"\xff.wav")),
    ]
    assert all(Path(f).is_file() for f in frame["filename"])


# ---------------------------------------------------------------------------
# csv
# ---------------------------------------------------------------------------


def test_csv_paths_are_relative_to_the_csv_folder_or_root(tmp_path):
    testkit.make_directory_dataset(tmp_path / "clips", {"a": 1, "b": 1})
    meta = tmp_path / "meta"
    meta.mkdir()
    csv = meta / "labels.csv"
    pd.DataFrame({"path": ["a/a_0.wav", "b/b_0.wav"], "label": [3, 7], "extra": ["x", "y"]}).to_csv(
        csv, index=False
    )

    frame = load_csv_dataset(csv, audio_col="path", label_col="label", root=tmp_path / "clips")
    relative = load_csv_dataset(csv, audio_col="path", label_col="label")

    assert frame["filename"].tolist() == [
        str(tmp_path / "clips" / "a" / "a_0.wav"),
        str(tmp_path / "clips" / "b" / "b_0.wav"),
    ]
    assert frame["category"].tolist() == ["3", "7"]
    assert frame["extra"].tolist() == ["x", "y"]  # other columns are kept
    assert relative["filename"].tolist()[0] == str(meta / "a" / "a_0.wav")


def test_csv_errors_name_the_file_and_the_columns_found(tmp_path):
    csv = tmp_path / "d.csv"
    with pytest.raises(DatasetError, match=r"d\.csv' does not exist"):
        load_csv_dataset(csv)
    pd.DataFrame({"file": ["a.wav"], "label": ["x"]}).to_csv(csv, index=False)
    with pytest.raises(
        DatasetError,
        match=r"d\.csv' has no column 'filename', 'category'; its columns are \['file', 'label'\]",
    ):
        load_csv_dataset(csv)
    pd.DataFrame({"filename": ["a.wav", "b.wav", None], "category": ["x", "", "y"]}).to_csv(csv, index=False)
    with pytest.raises(DatasetError, match=r"empty 'filename' values on lines \[4\]"):
        load_csv_dataset(csv)
    csv.write_bytes(b"")
    with pytest.raises(DatasetError, match="cannot be read as CSV"):
        load_csv_dataset(csv)


# ---------------------------------------------------------------------------
# ESC-50 and UrbanSound8K
# ---------------------------------------------------------------------------


def test_esc50(esc50_root):
    frame = load_esc50(esc50_root)

    assert len(frame) == 25
    assert sorted(frame["fold"].unique()) == [1, 2, 3, 4, 5]
    assert {"filename", "category", "target", "fold", "esc10", "src_file", "take"} <= set(frame.columns)
    assert all(Path(f).is_file() for f in frame["filename"])
    assert frame.set_index("category")["target"].to_dict() == {
        "dog": 0,
        "rooster": 1,
        "pig": 2,
        "rain": 10,
        "engine": 44,
    }
    assert frame["esc10"].dtype == bool


def test_esc10_only_renumbers_targets(esc50_root):
    frame = load_esc50(esc50_root, esc10_only=True)

    assert sorted(frame["category"].unique()) == ["dog", "rain", "rooster"]
    assert frame.drop_duplicates("category").set_index("category")[["target", "esc50_target"]].to_dict(
        "index"
    ) == {
        "dog": {"target": 0, "esc50_target": 0},
        "rooster": {"target": 1, "esc50_target": 1},
        "rain": {"target": 2, "esc50_target": 10},
    }


def test_urbansound8k(urbansound8k_root):
    frame = load_urbansound8k(urbansound8k_root)

    assert len(frame) == 30
    assert sorted(frame["fold"].unique()) == list(range(1, 11))
    assert all(Path(f).is_file() for f in frame["filename"])
    assert all(f"/fold{fold}/" in f for f, fold in zip(frame["filename"], frame["fold"], strict=True))
    assert frame.drop_duplicates("category").set_index("category")["target"].to_dict() == {
        "air_conditioner": 0,
        "car_horn": 1,
        "children_playing": 2,
    }
    assert {"slice_file_name", "fsID", "start", "end", "salience", "classID", "class"} <= set(frame.columns)


def test_dataset_layout_errors_say_what_is_missing(tmp_path):
    with pytest.raises(DatasetError, match=r"ESC-50 folder .* does not exist"):
        load_esc50(tmp_path / "nope")
    (tmp_path / "audio").mkdir()
    with pytest.raises(
        DatasetError, match=r"not a ESC-50 folder: 'meta/esc50\.csv' is missing \(found \['audio'\]\)"
    ):
        load_esc50(tmp_path)
    with pytest.raises(DatasetError, match=r"'metadata/UrbanSound8K\.csv' is missing"):
        load_urbansound8k(tmp_path)
    (tmp_path / "meta").mkdir()
    pd.DataFrame({"filename": ["x.wav"], "fold": [1], "target": [0], "class": ["dog"]}).to_csv(
        tmp_path / "meta" / "esc50.csv", index=False
    )
    with pytest.raises(
        DatasetError,
        match=r"no column 'category', 'esc10'; its columns are \['filename', 'fold', 'target', 'class'\]\. It is not",
    ):
        load_esc50(tmp_path)


# ---------------------------------------------------------------------------
# Registry, plugins and the DATA argument
# ---------------------------------------------------------------------------


def test_builtin_loaders_are_registered_through_the_entry_point(esc50_root):
    assert {"directory", "csv", "esc50", "urbansound8k"} <= set(list_dataset_loaders())
    assert get_dataset_loader("esc50") is load_esc50
    assert len(load_dataset("esc50", esc50_root, esc10_only=True)) == 15


def test_load_dataset_errors():
    with pytest.raises(DatasetError, match=r"unknown dataset loader 'esc5'\. Did you mean 'esc50'\?"):
        load_dataset("esc5", "/data")
    with pytest.raises(DatasetError, match=r"'esc50' does not accept the options \['esc_10'\].*esc50\(root"):
        load_dataset("esc50", "/data", esc_10=True)


def test_third_party_loader_plugin_is_used_through_load_dataset(install_plugin, tmp_path):
    install_plugin("beats-plugin-loader")
    testkit.make_directory_dataset(tmp_path / "sounds", {"owl": 1, "wren": 1})
    (tmp_path / "labels.tsv").write_text("owl\tsounds/owl/owl_0.wav\nwren\tsounds/wren/wren_0.wav\n")

    assert "tsv-list" in list_dataset_loaders()
    frame = load_dataset("tsv-list", tmp_path, label_prefix="bird:")
    resolved = resolve_dataset(f"tsv-list:{tmp_path}")

    assert frame["category"].tolist() == ["bird:owl", "bird:wren"]
    assert frame["source"].tolist() == ["tsv-list", "tsv-list"]
    assert resolved["category"].tolist() == ["owl", "wren"]
    assert validate_dataset(resolved, num_workers=0, progress=False).stats.num_decoded == 2


class _BadLoaders:
    @hookimpl
    def beats_dataset_loaders(self):
        def crashes(root):
            raise KeyError("boom")

        def wrong_type(root):
            return ["not", "a", "frame"]

        return {"crashes": crashes, "wrong-type": wrong_type}


def test_a_misbehaving_plugin_loader_gives_a_plugin_error_naming_it():
    manager = get_plugin_manager()
    plugin = _BadLoaders()
    manager.register(plugin)
    try:
        with pytest.raises(PluginError, match=r"'crashes' from distribution '<local>' failed.*KeyError"):
            load_dataset("crashes", "/data")
        with pytest.raises(PluginError, match=r"'wrong-type' .* returned list, not a DataFrame"):
            load_dataset("wrong-type", "/data")
    finally:
        manager.unregister(plugin)


def test_parse_dataset_spec(tmp_path, esc50_root):
    csv = tmp_path / "d.csv"
    csv.write_text("filename,category\n")
    other = tmp_path / "d.txt"
    other.write_text("x")

    assert parse_dataset_spec(tmp_path) == ("directory", tmp_path)
    assert parse_dataset_spec(str(csv)) == ("csv", csv)
    assert parse_dataset_spec(f"esc50:{esc50_root}") == ("esc50", esc50_root)
    assert len(resolve_dataset(f"esc50:{esc50_root}")) == 25
    with pytest.raises(
        DatasetError,
        match=r"'esc5:.*NAME in NAME:PATH must be a dataset loader: unknown dataset loader 'esc5'\. Did you mean 'esc50'\?",
    ):
        parse_dataset_spec(f"esc5:{esc50_root}")
    with pytest.raises(DatasetError, match="does not exist; pass a folder"):
        parse_dataset_spec(tmp_path / "missing")
    with pytest.raises(DatasetError, match=r"is a file but not a \.csv"):
        parse_dataset_spec(other)
