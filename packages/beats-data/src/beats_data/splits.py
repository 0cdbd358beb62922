"""Train/validation/test splits: stratified by class with a seed, or by the datasets' own folds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from beats_core.errors import ConfigError, DatasetError
from beats_data.frame import CATEGORY, FOLD, SPLIT, SPLITS, require_columns

__all__ = ["fold_split", "stratified_split"]


def stratified_split(
    frame: pd.DataFrame,
    ratios: Sequence[float] | Mapping[str, float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
    label_column: str = CATEGORY,
) -> pd.DataFrame:
    """Assign every clip to a split so that each class is divided in the given ratios.

    Each class's clips are shuffled (seeded) and cut by the ratios; a class's rounding
    leftovers go to the splits furthest below their share over all classes so far, so the
    whole split follows the ratios too. With multi-label strings, each distinct label string is a stratum.

    Args:
        frame: the dataset frame.
        ratios: ``(train, test)``, ``(train, val, test)``, or a mapping such as
            ``{"train": 0.9, "val": 0.1}``; they must sum to 1.
        seed: the shuffling seed; the same seed gives the same split.
        label_column: the column to stratify on.

    Returns:
        A copy of ``frame`` with a ``split`` column (``"train"``, ``"val"``, ``"test"``),
        replacing any existing one; rows keep their order and index.

    Raises:
        ConfigError: the ratios are not 2 or 3 non-negative numbers summing to 1.
        DatasetError: the label column is missing.
    """
    names, weights = _parse_ratios(ratios)
    require_columns(frame, [label_column], "the dataset DataFrame", "Pass label_column=.")
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(frame), dtype=object)
    labels = frame[label_column].astype(str).to_numpy()
    deficit = [0.0] * len(weights)
    for label in sorted(set(labels)):
        rows = np.flatnonzero(labels == label)
        rng.shuffle(rows)
        counts = _largest_remainder(len(rows), weights, deficit)
        start = 0
        for name, count in zip(names, counts, strict=True):
            assignment[rows[start : start + count]] = name
            start += count
    result = frame.copy()
    result[SPLIT] = assignment
    return result


def fold_split(
    frame: pd.DataFrame, test_fold: int, *, val_fold: int | None = None, fold_column: str = FOLD
) -> pd.DataFrame:
    """Split by the dataset's predefined folds: one fold is the test set, the rest train.

    This is the protocol of ESC-50 (5 folds) and UrbanSound8K (10 folds): report the mean
    accuracy over ``test_fold = 1..K``.

    Args:
        frame: a frame with a fold column (e.g. from :func:`~beats_data.load_esc50`).
        test_fold: the fold used for testing.
        val_fold: optionally, a second fold used for validation (model selection).
        fold_column: the column holding fold numbers.

    Returns:
        A copy of ``frame`` with a ``split`` column, replacing any existing one.

    Raises:
        DatasetError: the fold column is missing or a fold is not in it (the message lists
            the folds found).
        ConfigError: ``val_fold`` equals ``test_fold``.
    """
    require_columns(frame, [fold_column], "the dataset DataFrame", "Pass fold_column=.")
    folds = frame[fold_column].astype(int)
    found = sorted(folds.unique().tolist())
    for name, fold in (("test_fold", test_fold), ("val_fold", val_fold)):
        if fold is not None and fold not in found:
            raise DatasetError(f"{name}={fold} is not a fold of this dataset; its folds are {found}")
    if val_fold is not None and val_fold == test_fold:
        raise ConfigError(f"val_fold and test_fold must differ, both are {test_fold}")
    result = frame.copy()
    result[SPLIT] = np.where(folds == test_fold, "test", np.where(folds == val_fold, "val", "train"))
    return result


def _parse_ratios(ratios: Sequence[float] | Mapping[str, float]) -> tuple[list[str], list[float]]:
    if isinstance(ratios, Mapping):
        names, weights = list(ratios), [float(r) for r in ratios.values()]
        unknown = [n for n in names if n not in SPLITS]
        if unknown:
            raise ConfigError(f"split names must be among {list(SPLITS)}, got {unknown}")
    else:
        weights = [float(r) for r in ratios]
        if len(weights) not in (2, 3):
            raise ConfigError(f"ratios must be (train, test) or (train, val, test), got {tuple(ratios)}")
        names = ["train", "test"] if len(weights) == 2 else list(SPLITS)
    if any(not math.isfinite(w) or w < 0 for w in weights) or not math.isclose(
        sum(weights), 1.0, abs_tol=1e-6
    ):
        raise ConfigError(
            f"split ratios must be non-negative and sum to 1, got {dict(zip(names, weights, strict=True))}"
        )
    return names, weights


def _largest_remainder(total: int, weights: Sequence[float], deficit: list[float]) -> list[int]:
    """Split ``total`` by ``weights``; leftovers go to the splits furthest behind overall.

    ``deficit`` holds, per split, how many clips it is short of its share over the classes
    done so far; it is updated in place.
    """
    exact = [total * w for w in weights]
    counts = [math.floor(x + 1e-9) for x in exact]
    fractional = [i for i in range(len(weights)) if exact[i] - counts[i] > 1e-9] or list(range(len(weights)))
    order = sorted(fractional, key=lambda i: -(deficit[i] + exact[i] - counts[i]))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    for i in range(len(weights)):
        deficit[i] += exact[i] - counts[i]
    return counts
