"""Fixtures for the end-to-end tests: the README, the examples and ``beats demo``.

These run the documented code unchanged. Where it asks for the default model, the
``default_model_hub`` fixture serves a tiny BEATs checkpoint in the official format under
the default model's Hub address from a real HTTP server on 127.0.0.1, so the real
download code runs without network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import FakeHub

from beats_core import list_available_models


@pytest.fixture(scope="session")
def default_model_hub(reference_dir: Path) -> Iterator[FakeHub]:
    """A fake Hub serving the tiny reference checkpoint as every built-in model."""
    data = (reference_dir / "tiny_pretrained.pt").read_bytes()
    with FakeHub() as hub:
        for info in list_available_models().values():
            hub.add_file(info.repo_id, info.filename, data, repo_type=info.repo_type, lfs=True)
        yield hub


@pytest.fixture
def hub_env(default_model_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment of a process that downloads from the fake Hub into a fresh cache.

    It is also applied to this test's own process (``HF_ENDPOINT``, ``HF_HOME``).
    """
    environment = {
        "HF_ENDPOINT": default_model_hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MPLBACKEND": "Agg",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    process_environment = {**os.environ, **environment}
    process_environment.pop("PYTEST_XDIST_WORKER", None)
    return process_environment
