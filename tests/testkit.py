"""Helpers shared by the test suites of every package: reference data, signals, plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(
    os.environ.get("BEATS_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "testdata" / "beats_reference")
)
PLUGINS_DIR = REPO_ROOT / "tests" / "plugins"


def sine(freq: float, seconds: float, sample_rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    """A float32 sine tone."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def install_plugin_package(name: str, target: Path) -> Path:
    """pip-install the plugin package ``tests/plugins/<name>`` into ``target`` and return it.

    The package is built and installed for real (wheel, dist-info, entry points);
    putting ``target`` on ``sys.path`` makes it visible to ``importlib.metadata``.
    """
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PLUGINS_DIR / name),
        ],
        check=True,
        capture_output=True,
    )
    return target
