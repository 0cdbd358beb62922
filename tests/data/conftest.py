from __future__ import annotations

from pathlib import Path

import pytest
import testkit


@pytest.fixture(scope="session")
def esc50_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A miniature ESC-50-master tree: 5 classes x 5 folds, real CSV columns, 44.1 kHz WAV."""
    return testkit.make_esc50(tmp_path_factory.mktemp("esc50") / "ESC-50-master")


@pytest.fixture(scope="session")
def urbansound8k_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A miniature UrbanSound8K tree: 3 classes x 10 folds, mixed rates, channels and bit depths."""
    return testkit.make_urbansound8k(tmp_path_factory.mktemp("us8k") / "UrbanSound8K")
