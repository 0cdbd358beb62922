"""The label <-> class index mapping, single- or multi-label, saved as a checkpoint's ``label_dict``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from beats_core.errors import ConfigError, DatasetError
from beats_data.frame import CATEGORY, TARGET, require_columns

__all__ = ["LabelEncoder", "split_labels"]


@dataclass(frozen=True)
class LabelEncoder:
    """A stable mapping between label strings and class indices.

    Build it once from the whole dataset (:meth:`from_frame`) and share it between the
    train, validation and test sets, so that index ``i`` means the same class everywhere.
    :meth:`to_label_dict` gives the ``{index: label}`` dict stored in a fine-tuned
    checkpoint, and :meth:`from_label_dict` rebuilds the encoder from it.

    In multi-label mode (AudioSet style) a clip's label string holds several labels joined
    by ``delimiter`` (e.g. ``"dog;bark"``) and its target is a multi-hot vector.

    Attributes:
        labels: the label of each class index, in index order.
        multi_label: whether a clip may have several labels.
        delimiter: the separator between labels of one clip in multi-label mode.
    """

    labels: tuple[str, ...]
    multi_label: bool = False
    delimiter: str = ","
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = tuple(str(label) for label in self.labels)
        if not labels:
            raise ConfigError("a LabelEncoder needs at least one label, got none")
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ConfigError(f"labels must be unique, got duplicates {duplicates}")
        if self.multi_label and not self.delimiter:
            raise ConfigError("multi-label mode needs a non-empty delimiter")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "_index", {label: i for i, label in enumerate(labels)})

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        label_column: str = CATEGORY,
        multi_label: bool = False,
        delimiter: str = ",",
    ) -> LabelEncoder:
        """Build the mapping from a dataset frame.

        Single-label: if the frame has a ``target`` column that numbers the labels
        ``0..K-1`` one-to-one (as ESC-50 and UrbanSound8K do), that numbering is kept;
        otherwise labels are numbered in sorted order. Multi-label: every label met in the
        column, sorted.

        Args:
            frame: the dataset frame (all splits, so that no class is missing).
            label_column: the column holding the label strings.
            multi_label: whether label strings hold several labels.
            delimiter: their separator in multi-label mode.

        Returns:
            The encoder.

        Raises:
            DatasetError: the column is missing or has empty labels.
        """
        require_columns(frame, [label_column], "the dataset DataFrame", "Pass label_column=.")
        values = frame[label_column]
        if values.isna().any():
            rows = np.flatnonzero(values.isna().to_numpy())[:10].tolist()
            raise DatasetError(
                f"rows {rows} of the dataset DataFrame have no label in column {label_column!r}"
            )
        if multi_label:
            found = {label for value in values for label in split_labels(value, delimiter)}
            return cls(tuple(sorted(found)), multi_label=True, delimiter=delimiter)
        strings = values.astype(str)
        if TARGET in frame.columns and frame[TARGET].notna().all():
            pairs = set(zip(strings, frame[TARGET].astype(int), strict=True))
            labels = {label for label, _ in pairs}
            targets = sorted(target for _, target in pairs)
            if len(pairs) == len(labels) and targets == list(range(len(labels))):
                return cls(tuple(label for label, _ in sorted(pairs, key=lambda pair: pair[1])))
        return cls(tuple(sorted(set(strings))))

    @classmethod
    def from_label_dict(
        cls, label_dict: Mapping[int, str], *, multi_label: bool = False, delimiter: str = ","
    ) -> LabelEncoder:
        """Rebuild the encoder from a checkpoint's ``{index: label}`` dict.

        Args:
            label_dict: indices ``0..K-1`` to labels.
            multi_label: whether the model is multi-label.
            delimiter: the separator of labels in multi-label strings.

        Returns:
            The encoder.

        Raises:
            ConfigError: the indices are not exactly ``0..K-1``.
        """
        indices = sorted(int(i) for i in label_dict)
        if indices != list(range(len(indices))):
            raise ConfigError(f"label_dict keys must be 0..{len(indices) - 1}, got {indices[:10]}")
        return cls(tuple(str(label_dict[i]) for i in indices), multi_label=multi_label, delimiter=delimiter)

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def to_label_dict(self) -> dict[int, str]:
        """The ``{index: label}`` dict of the official checkpoint format."""
        return dict(enumerate(self.labels))

    def split(self, value: str) -> list[str]:
        """The labels in one clip's label string (just ``[value]`` in single-label mode)."""
        return split_labels(value, self.delimiter) if self.multi_label else [str(value)]

    def index(self, label: str) -> int:
        """The class index of one label.

        Raises:
            DatasetError: the label is unknown; the message suggests close labels.
        """
        try:
            return self._index[label]
        except KeyError:
            close = difflib.get_close_matches(label, self.labels, n=3)
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            raise DatasetError(
                f"label {label!r} is not one of the {self.num_classes} known classes{hint}; build the "
                "LabelEncoder from the whole dataset (every split) with LabelEncoder.from_frame"
            ) from None

    def encode(self, values: Iterable[str]) -> np.ndarray:
        """Turn label strings into targets.

        Args:
            values: one label string per clip.

        Returns:
            Single-label: int64 class indices ``(N,)``. Multi-label: float32 multi-hot
            ``(N, num_classes)``.

        Raises:
            DatasetError: a label is unknown.
        """
        values = [str(v) for v in values]
        if not self.multi_label:
            return np.array([self.index(v) for v in values], dtype=np.int64)
        targets = np.zeros((len(values), self.num_classes), dtype=np.float32)
        for row, value in enumerate(values):
            targets[row, [self.index(label) for label in self.split(value)]] = 1.0
        return targets

    def decode(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        """The labels of class indices."""
        return [self.labels[int(i)] for i in indices]


def split_labels(text: object, delimiter: str) -> list[str]:
    """The labels of one clip's multi-label string: split on ``delimiter``, stripped, empty parts dropped.

    Every part of the project that reads multi-label strings (the label encoder, dataset
    validation, class counts in training) splits them here, so they agree on every clip.

    Args:
        text: the label string (other values are turned into strings first).
        delimiter: the separator, e.g. ``","`` or ``";"``.

    Returns:
        The distinct labels in the order they first appear (``"dog; bark;dog"`` gives
        ``["dog", "bark"]``); empty for an empty or blank string.

    Raises:
        ConfigError: ``delimiter`` is empty.
    """
    if not delimiter:
        raise ConfigError("the label delimiter must not be empty; use e.g. ',' or ';'")
    parts = (part.strip() for part in str(text).split(delimiter))
    return list(dict.fromkeys(part for part in parts if part))
