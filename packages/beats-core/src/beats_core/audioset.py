"""The names of AudioSet's 527 classes, so that labels like ``/m/09x0r`` show as "Speech".

Checkpoints fine-tuned on AudioSet (Microsoft's ``BEATs_*_finetuned_on_AS2M`` files among them)
name their classes by the ontology's machine ids (``label_dict = {0: "/m/09x0r", ...}``).
:func:`display_name` turns such an id into the ontology's display name and leaves any other
label as it is, so every output can show names while tables keep the id where a tool needs it.

The table ships with beats-core as ``beats_core/data/audioset_labels.csv``: Google's AudioSet
class list ``class_labels_indices.csv`` (columns ``index,mid,display_name``, 527 rows), as
published with the AudioSet release and in ``qiuqiangkong/audioset_tagging_cnn``
(``metadata/class_labels_indices.csv``); its display names are those of the AudioSet ontology
(``audioset/ontology``, ``ontology.json``), which is licensed CC BY-SA 4.0.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files

__all__ = [
    "AUDIOSET_LABELS_FILE",
    "AudioSetClass",
    "audioset_classes",
    "display_name",
    "display_names",
    "is_audioset_id",
]

#: The package data file that lists the classes, relative to the ``beats_core`` package.
AUDIOSET_LABELS_FILE = "data/audioset_labels.csv"


@dataclass(frozen=True)
class AudioSetClass:
    """One AudioSet class.

    Attributes:
        index: its position in AudioSet's class list (0 to 526), the output index of models
            trained on AudioSet with that list.
        id: the ontology's machine id, e.g. ``"/m/09x0r"``.
        name: the ontology's display name, e.g. ``"Speech"``.
    """

    index: int
    id: str
    name: str


@functools.cache
def audioset_classes() -> tuple[AudioSetClass, ...]:
    """The 527 AudioSet classes, in the order of AudioSet's class list.

    Returns:
        One :class:`AudioSetClass` per class, ``index`` 0 to 526.
    """
    text = files("beats_core").joinpath(AUDIOSET_LABELS_FILE).read_text(encoding="utf-8")
    return tuple(
        AudioSetClass(int(row["index"]), row["mid"], row["display_name"])
        for row in csv.DictReader(io.StringIO(text))
    )


@functools.cache
def _names_by_id() -> dict[str, str]:
    return {entry.id: entry.name for entry in audioset_classes()}


def is_audioset_id(label: str) -> bool:
    """Whether ``label`` is the id of one of the 527 AudioSet classes (``"/m/09x0r"``, ``"/t/dd00003"``).

    Args:
        label: a class label.

    Returns:
        True for a known AudioSet id.
    """
    return label in _names_by_id()


def display_name(label: str) -> str:
    """The label to show: an AudioSet id's display name, any other label unchanged.

    Args:
        label: a class label, e.g. ``"/m/0bt9lr"`` or ``"owl"``.

    Returns:
        ``"Dog"`` for ``"/m/0bt9lr"``; ``"owl"`` for ``"owl"``.
    """
    return _names_by_id().get(label, label)


def display_names(labels: Iterable[str]) -> list[str]:
    """The labels to show for a model's classes: AudioSet ids become display names, other labels stay.

    The display names of AudioSet's classes are unique, so a model's classes keep distinct names.

    Args:
        labels: the class labels in class order (a checkpoint's ``label_dict`` values).

    Returns:
        The names, in the same order.
    """
    return [display_name(label) for label in labels]
