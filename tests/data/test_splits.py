from __future__ import annotations

import pandas as pd
import pytest

from beats_core import ConfigError, DatasetError
from beats_data import fold_split, load_esc50, stratified_split


def _frame(counts: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{label}_{i}.wav", label) for label, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["filename", "category"], index=range(100, 100 + len(rows)))


def test_stratified_split_divides_every_class_by_the_ratios():
    frame = _frame({"a": 50, "b": 30, "c": 20})

    split = stratified_split(frame, (0.8, 0.1, 0.1), seed=1)

    assert split.index.equals(frame.index) and "split" not in frame.columns
    table = split.groupby(["category", "split"]).size().unstack()
    assert table.loc["a"].to_dict() == {"test": 5, "train": 40, "val": 5}
    assert table.loc["b"].to_dict() == {"test": 3, "train": 24, "val": 3}
    assert table.loc["c"].to_dict() == {"test": 2, "train": 16, "val": 2}


def test_stratified_split_is_reproducible_and_seeded():
    frame = _frame({"a": 10, "b": 10})

    first = stratified_split(frame, seed=3)["split"]
    again = stratified_split(frame, seed=3)["split"]
    other = stratified_split(frame, seed=4)["split"]

    assert first.equals(again) and not first.equals(other)


def test_stratified_split_spreads_rounding_leftovers_over_splits():
    frame = _frame({label: 5 for label in "abcdefgh"})

    split = stratified_split(frame, {"train": 0.8, "val": 0.1, "test": 0.1}, seed=0)

    sizes = split["split"].value_counts().to_dict()
    assert sizes == {"train": 32, "val": 4, "test": 4}


def test_two_way_split_and_bad_ratios():
    frame = _frame({"a": 10, "b": 10})

    assert stratified_split(frame, (0.7, 0.3))["split"].value_counts().to_dict() == {"train": 14, "test": 6}
    for bad in [(0.8, 0.1), (0.5, 0.5, 0.5, -0.5), (1.0,), {"train": 0.5, "dev": 0.5}]:
        with pytest.raises(ConfigError):
            stratified_split(frame, bad)


def test_fold_split_on_esc50(esc50_root):
    frame = load_esc50(esc50_root)

    split = fold_split(frame, test_fold=2, val_fold=5)

    assert set(split.loc[split["fold"] == 2, "split"]) == {"test"}
    assert set(split.loc[split["fold"] == 5, "split"]) == {"val"}
    assert set(split.loc[split["fold"].isin([1, 3, 4]), "split"]) == {"train"}
    with pytest.raises(
        DatasetError, match=r"test_fold=6 is not a fold of this dataset; its folds are \[1, 2, 3, 4, 5\]"
    ):
        fold_split(frame, test_fold=6)
    with pytest.raises(ConfigError, match="must differ"):
        fold_split(frame, test_fold=1, val_fold=1)
