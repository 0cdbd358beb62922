from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import testkit
import torch

from beats_core import ConfigError, DatasetError
from beats_train.config import DataConfig
from beats_train.data import BalancedSampler, class_weights, load_frame, prepare_data


def test_a_random_split_is_stratified_and_follows_the_ratios(sound_root):
    prepared = prepare_data(
        DataConfig(data_dir=str(sound_root), train_split=0.5, val_split=0.25, test_split=0.25)
    )
    counts = pd.crosstab(prepared.frame["category"], prepared.frame["split"])
    assert (counts["train"] == 6).all() and (counts["val"] == 3).all() and (counts["test"] == 3).all()
    assert prepared.labels.labels == ("chirp", "clicks", "noise_band", "tone")
    assert prepared.frame["duration"].between(0.99, 1.01).all()  # durations from validation
    assert prepared.report is not None and prepared.report.ok


def test_folds_give_the_test_set_and_validation_comes_from_the_training_folds(tmp_path):
    frame = testkit.make_fold_dataset(tmp_path, folds=3, clips_per_fold=2, seconds=0.5)
    prepared = prepare_data(
        DataConfig(test_fold=2, val_split=0.25, train_split=0.75, test_split=0.0), frame=frame
    )
    split = prepared.frame
    assert set(split.loc[split["fold"] == 2, "split"]) == {"test"}
    assert set(split.loc[split["fold"] != 2, "split"]) == {"train", "val"}
    assert (split["split"] == "val").sum() == 4  # a quarter of the 16 training clips
    with_val_fold = prepare_data(DataConfig(test_fold=2, val_fold=3), frame=frame).frame
    assert set(with_val_fold.loc[with_val_fold["fold"] == 3, "split"]) == {"val"}
    with pytest.raises(DatasetError, match=r"test_fold=7 is not a fold.*\[1, 2, 3\]"):
        prepare_data(DataConfig(test_fold=7), frame=frame)


def test_the_datasets_own_split_is_kept_and_validation_never_comes_from_the_test_set(tmp_path):
    for split, count in (("train", 8), ("test", 4)):
        testkit.make_sound_dataset(tmp_path / split, count, seconds=0.5, classes=("tone", "chirp"))
    prepared = prepare_data(DataConfig(data_dir=str(tmp_path)))
    split = prepared.frame
    assert (split["split"] == "test").sum() == 8 and split.loc[
        split["split"] == "test", "filename"
    ].str.contains("/test/").all()
    assert (split["split"] == "val").sum() > 0 and split.loc[
        split["split"] == "val", "filename"
    ].str.contains("/train/").all()


def test_ignored_folds_are_warned_about(tmp_path, caplog):
    frame = testkit.make_fold_dataset(tmp_path, folds=2, clips_per_fold=3, seconds=0.5)
    prepare_data(DataConfig(validate=False), frame=frame)
    assert "has folds but DataConfig.test_fold is not set" in caplog.text


def test_broken_files_are_left_out_with_a_warning(sound_root, tmp_path, caplog):
    frame = load_frame(DataConfig(data_dir=str(sound_root)))
    (tmp_path / "broken.wav").write_bytes(b"RIFF-but-not-really")
    broken = pd.DataFrame(
        {
            "filename": [str(tmp_path / "broken.wav"), str(tmp_path / "missing.wav")],
            "category": ["tone", "chirp"],
        }
    )
    with caplog.at_level(logging.WARNING, logger="beats_train"):
        prepared = prepare_data(DataConfig(), frame=pd.concat([frame, broken]))
    assert len(prepared.frame) == len(frame)
    assert (
        "leaving out 2 of 50 clips" in caplog.text
        and "broken.wav" in caplog.text
        and "missing.wav" in caplog.text
    )


def test_a_dataset_that_cannot_be_trained_on_stops_with_the_report(tmp_path):
    testkit.make_sound_dataset(tmp_path / "one", 3, seconds=0.5, classes=("tone",))
    with pytest.raises(DatasetError) as error:
        prepare_data(DataConfig(data_dir=str(tmp_path / "one")))
    message = str(error.value)
    assert "cannot be trained on" in message and "[too_few_classes]" in message
    frame = pd.DataFrame(
        {
            "filename": [
                str(tmp_path / "one" / "tone" / "tone_0.wav"),
                str(tmp_path / "nothing.wav"),
                str(tmp_path / "one" / "tone" / "tone_1.wav"),
                str(tmp_path / "one" / "tone" / "tone_2.wav"),
            ],
            "category": ["tone", "chirp", "tone", "chirp"],
        }
    )
    with pytest.raises(DatasetError, match=r"classes \['chirp'\] have fewer than 2 clips"):
        prepare_data(DataConfig(), frame=frame)


def test_data_must_be_given_somewhere():
    with pytest.raises(ConfigError, match="needs data_dir"):
        load_frame(DataConfig())


def test_csv_columns_and_relative_paths(sound_root, tmp_path):
    rows = [(f"{label}/{label}_{i}.wav", label) for label in ("tone", "chirp") for i in range(3)]
    csv = tmp_path / "meta.csv"
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(csv, index=False)
    frame = load_frame(
        DataConfig(
            metadata_file=str(csv), data_dir=str(sound_root), audio_column="path", label_column="label"
        )
    )
    assert frame["filename"].str.startswith(str(sound_root)).all() and list(frame["category"][:1]) == ["tone"]
    relative = pd.DataFrame({"path": [r[0] for r in rows], "label": [r[1] for r in rows]})
    frame = load_frame(
        DataConfig(data_dir=str(sound_root), audio_column="path", label_column="label"), relative
    )
    assert frame["filename"].str.startswith(str(sound_root)).all()


def test_balanced_sampler_draws_classes_equally_and_repeats_per_epoch():
    targets = np.array([0] * 90 + [1] * 9 + [2] * 1)
    sampler = BalancedSampler(targets, num_samples=30000, seed=3)
    drawn = targets[list(sampler)]
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.allclose(shares, 1 / 3, atol=0.02)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    multi = BalancedSampler(np.array([[1, 0], [1, 0], [1, 0], [0, 1]]), num_samples=8000)
    assert abs(np.mean([i == 3 for i in multi]) - 0.5) < 0.03


def test_class_weights_are_inverse_to_frequency():
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    assert torch.allclose(weights, torch.tensor([4 / 9, 4 / 3, 0.0]))
    multi = class_weights(np.array([[1, 1], [1, 0]]), 2)
    assert torch.allclose(multi, torch.tensor([0.5, 1.0]))
