from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import testkit
from hub_server import FakeHub


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)  # one thread per worker: no oversubscription on small machines


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The official-implementation reference vectors (tests/reference, or BEATS_REFERENCE_DIR)."""
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


@pytest.fixture(scope="session")
def default_model_hub(reference_dir: Path) -> Iterator[FakeHub]:
    """A fake Hub on 127.0.0.1 serving the tiny reference checkpoint under every built-in model's address.

    Code that asks for the default model (the README, the examples, ``beats demo``) then
    runs unchanged, through the real download code, without network.
    """
    from beats_core import list_available_models

    data = (reference_dir / "tiny_pretrained.pt").read_bytes()
    with FakeHub() as hub:
        for info in list_available_models().values():
            hub.add_file(info.repo_id, info.filename, data, repo_type=info.repo_type, lfs=True)
        yield hub


@pytest.fixture
def hub_env(default_model_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a process that downloads from the fake Hub into a fresh cache.

    It is applied to this test's own process too (``HF_ENDPOINT``, ``HF_HOME``); the
    returned dict is a complete environment for subprocesses.
    """
    environment = {
        "HF_ENDPOINT": default_model_hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "MPLBACKEND": "Agg",
    }
    return _apply_environment(monkeypatch, environment, unset=("HF_HUB_OFFLINE", "HF_HUB_CACHE"))


@pytest.fixture
def offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An empty Hugging Face cache and no downloads (``HF_HUB_OFFLINE=1``), here and for subprocesses."""
    environment = {"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return _apply_environment(monkeypatch, environment, unset=("HF_HUB_CACHE",))


def _apply_environment(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], *, unset: tuple[str, ...]
) -> dict[str, str]:
    """Set ``environment`` (and unset ``unset``) for this test; return it as a whole environment for subprocesses."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    process_environment = dict(os.environ)
    process_environment.pop("PYTEST_XDIST_WORKER", None)
    return process_environment
