"""The hook implementations beats calls: each returns a mapping of names to objects.

This module is listed under ``[project.entry-points.beats]`` in ``pyproject.toml``. beats
imports it the first time a registry is asked for (``list_dataset_loaders()``,
``list_poolings()``, ``beats --help``, ...), so keep it cheap to import.
"""

from __future__ import annotations

from beats_core import hookimpl
from beats_plugin_example.manifest import load_jsonl_manifest
from beats_plugin_example.pooling import max_mean_pooling


@hookimpl
def beats_dataset_loaders():
    """Register ``jsonl``: ``load_dataset("jsonl", PATH)`` and ``DATA`` arguments ``jsonl:PATH``."""
    return {"jsonl": load_jsonl_manifest}


@hookimpl
def beats_poolings():
    """Register ``maxmean``: ``BEATsFeatureExtractor(pooling="maxmean")``."""
    return {"maxmean": max_mean_pooling}
