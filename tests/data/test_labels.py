from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beats_core import ConfigError, DatasetError
from beats_data import LabelEncoder, load_esc50
from beats_data.labels import split_labels


def test_labels_are_numbered_in_sorted_order_and_round_trip_through_label_dict():
    frame = pd.DataFrame({"category": ["rain", "dog", "owl", "dog"]})

    labels = LabelEncoder.from_frame(frame)

    assert labels.labels == ("dog", "owl", "rain")
    assert labels.encode(frame["category"]).tolist() == [2, 0, 1, 0]
    assert labels.to_label_dict() == {0: "dog", 1: "owl", 2: "rain"}
    assert LabelEncoder.from_label_dict(labels.to_label_dict()) == labels
    assert labels.decode([2, 1]) == ["rain", "owl"]


def test_a_consistent_target_column_keeps_the_datasets_own_numbering(esc50_root):
    frame = load_esc50(esc50_root, esc10_only=True)

    labels = LabelEncoder.from_frame(frame)

    assert labels.labels == ("dog", "rooster", "rain")
    np.testing.assert_array_equal(labels.encode(frame["category"]), frame["target"])
    # the full ESC-50 subset has gaps in its targets (0, 1, 2, 10, 44): sorted labels instead
    assert LabelEncoder.from_frame(load_esc50(esc50_root)).labels == (
        "dog",
        "engine",
        "pig",
        "rain",
        "rooster",
    )


def test_multi_label_targets_are_multi_hot():
    frame = pd.DataFrame({"category": ["dog;bark", "rain", "bark ; rain;", "dog"]})

    labels = LabelEncoder.from_frame(frame, multi_label=True, delimiter=";")
    targets = labels.encode(frame["category"])

    assert labels.labels == ("bark", "dog", "rain")
    assert targets.dtype == np.float32
    assert targets.tolist() == [[1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0]]
    restored = LabelEncoder.from_label_dict(labels.to_label_dict(), multi_label=True, delimiter=";")
    assert restored == labels


def test_split_labels_strips_drops_empty_parts_and_repeats():
    assert split_labels("dog; bark;dog ;", ";") == ["dog", "bark"]
    assert split_labels("  ", ",") == [] and split_labels(3, ",") == ["3"]
    assert split_labels("a,b", ";") == ["a,b"]
    with pytest.raises(ConfigError, match="delimiter must not be empty"):
        split_labels("a", "")


def test_unknown_and_bad_labels():
    labels = LabelEncoder(("dog", "rain"))

    with pytest.raises(
        DatasetError, match=r"label 'dgo' is not one of the 2 known classes \(did you mean 'dog'\?\)"
    ):
        labels.encode(["dgo"])
    with pytest.raises(ConfigError, match="duplicates"):
        LabelEncoder(("a", "a"))
    with pytest.raises(ConfigError, match=r"keys must be 0\.\.1"):
        LabelEncoder.from_label_dict({0: "a", 2: "b"})
    with pytest.raises(DatasetError, match=r"rows \[1\] .* have no label"):
        LabelEncoder.from_frame(pd.DataFrame({"category": ["a", None]}))
