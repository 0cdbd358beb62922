from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import testkit


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)  # one thread per worker: no oversubscription on small machines


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official-implementation reference vectors (shared/testdata/beats_reference)."""
    if not (testkit.REFERENCE_DIR / "manifest.json").is_file():
        pytest.fail(f"reference test data not found at {testkit.REFERENCE_DIR}; set BEATS_REFERENCE_DIR")
    return testkit.REFERENCE_DIR


@pytest.fixture(scope="session")
def _plugin_installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {}


@pytest.fixture
def install_plugin(
    _plugin_installs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Path]]:
    """Install a plugin package from tests/plugins/ for real and make it visible to this test.

    Usage: ``install_plugin("beats-plugin-pooling")``. The package is pip-installed
    once per session into its own folder; the folder is put on ``sys.path`` and the
    plugin manager is reloaded, and both are undone after the test.
    """
    from beats_core.plugins import get_plugin_manager

    added: list[str] = []

    def install(name: str) -> Path:
        if name not in _plugin_installs:
            target = tmp_path_factory.mktemp(f"plugin-{name}")
            _plugin_installs[name] = testkit.install_plugin_package(name, target)
        path = str(_plugin_installs[name])
        sys.path.insert(0, path)
        added.append(path)
        get_plugin_manager.cache_clear()
        return _plugin_installs[name]

    yield install
    for path in added:
        sys.path.remove(path)
    for module in [m for m in sys.modules if m.startswith("beats_plugin_")]:
        del sys.modules[module]
    get_plugin_manager.cache_clear()
