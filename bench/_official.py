"""Run the official BEATs code side by side with ours, for the benchmarks only.

Nothing here is part of the library and no third-party code is committed: the
official sources and torchaudio's ``compliance/kaldi.py`` are fetched at run time
into ``bench/_cache/`` (git-ignored).

* torchaudio cannot be imported with a CPU build of torch (its extension wants CUDA
  libraries), but ``torchaudio.compliance.kaldi`` is pure Python. We download the
  torchaudio wheel with pip, extract that one file, and put it in a stand-in
  ``torchaudio`` package whose ``__init__`` is empty.
* The official model (``microsoft/unilm``, folder ``beats/``: ``BEATs.py``,
  ``backbone.py``, ``modules.py``) is imported from a folder given on the command
  line; see bench/README.md for how to get it.
"""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

CACHE = Path(__file__).resolve().parent / "_cache"
TORCHAUDIO_VERSION = "2.11.0"
# sha256 of torchaudio 2.11.0's compliance/kaldi.py, the file the reference vectors were made with.
KALDI_SHA256 = "5cbea1a584ddea748f6f68a621d794e13334e88d9faa1d40986f7af32f196d29"
OFFICIAL_FILES = ("BEATs.py", "backbone.py", "modules.py")


def kaldi_module() -> ModuleType:
    """Import ``torchaudio.compliance.kaldi`` from a stand-in package built from the wheel."""
    standin = CACHE / "torchaudio_standin"
    kaldi = standin / "torchaudio" / "compliance" / "kaldi.py"
    if not kaldi.is_file():
        wheel = _torchaudio_wheel()
        kaldi.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            kaldi.write_bytes(archive.read("torchaudio/compliance/kaldi.py"))
        (standin / "torchaudio" / "__init__.py").write_text(
            '"""Stand-in: only compliance.kaldi is used."""\n'
        )
        (kaldi.parent / "__init__.py").write_text("")
    digest = hashlib.sha256(kaldi.read_bytes()).hexdigest()
    if digest != KALDI_SHA256:
        raise RuntimeError(
            f"{kaldi} has sha256 {digest}, expected {KALDI_SHA256}; delete {standin} and rerun"
        )
    if str(standin) not in sys.path:
        sys.path.insert(0, str(standin))
    return importlib.import_module("torchaudio.compliance.kaldi")


def _torchaudio_wheel() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob(f"torchaudio-{TORCHAUDIO_VERSION}-*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                f"torchaudio=={TORCHAUDIO_VERSION}",
                "--no-deps",
                "--only-binary=:all:",
                "--quiet",
                "-d",
                str(CACHE),
            ],
            check=True,
        )
        found = sorted(CACHE.glob(f"torchaudio-{TORCHAUDIO_VERSION}-*.whl"))
    return found[0]


def official_beats(official_dir: str | Path) -> ModuleType:
    """Import the official ``BEATs`` module from a folder holding BEATs.py, backbone.py, modules.py."""
    folder = Path(official_dir).resolve()
    missing = [name for name in OFFICIAL_FILES if not (folder / name).is_file()]
    if missing:
        raise SystemExit(
            f"{folder} lacks {', '.join(missing)}: copy the folder beats/ of microsoft/unilm there "
            "(see bench/README.md)"
        )
    kaldi_module()
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module("BEATs")


def best_of(fn, repeats: int) -> tuple[float, object]:
    """Run ``fn`` ``repeats`` times; return the best wall time in seconds and the last result."""
    import time

    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result
