"""Every code block of the root README runs, as written, so the README cannot drift from the code.

The Python blocks run in order in one namespace, in a folder that holds the files they name
(generated sounds, a CSV, miniature ESC-50 and UrbanSound8K trees), with the default model
served by a fake Hub on 127.0.0.1 (the real download code runs). The shell blocks run with
bash in the same folder. A block preceded by ``<!-- not run: REASON -->`` is skipped; the
quick-start commands are checked against ``hatch.toml`` and ``.ci/run`` instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import testkit
import tomllib

from beats_data import make_synthetic_dataset
from beats_data.synthetic import synthesize_clip

README = testkit.REPO_ROOT / "README.md"
FENCE = re.compile(r"(?:<!-- not run: (?P<reason>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)


@dataclass
class Block:
    language: str
    code: str
    line: int
    skip_reason: str | None


def readme_blocks() -> list[Block]:
    """The fenced blocks of the README with their language, line and skip reason."""
    text = README.read_text()
    return [
        Block(m["lang"], m["code"], text.count("\n", 0, m.start("code")) + 1, m["reason"])
        for m in FENCE.finditer(text)
    ]


@pytest.fixture
def readme_folder(tmp_path: Path, hub_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with what the README's examples name, as the current directory."""
    frame = make_synthetic_dataset(
        tmp_path / "my_sounds", clips_per_class=10, max_seconds=1.5, seed=1, progress=False
    )
    relative = frame.assign(filename=[str(Path(f).relative_to(tmp_path)) for f in frame["filename"]])
    relative.to_csv(tmp_path / "dataset.csv", index=False)
    testkit.write_audio(tmp_path / "clip.wav", synthesize_clip("birdsong", 2.0, seed=7), 16000)
    testkit.write_audio(tmp_path / "query.wav", synthesize_clip("siren", 1.5, seed=8), 16000)
    testkit.make_esc50(tmp_path / "ESC-50-master")
    testkit.make_urbansound8k(tmp_path / "UrbanSound8K")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_has_runnable_python_and_shell_blocks():
    blocks = readme_blocks()
    assert sum(b.language == "python" and not b.skip_reason for b in blocks) >= 8
    assert sum(b.language == "bash" and not b.skip_reason for b in blocks) >= 1
    for block in blocks:
        assert block.language in {"python", "bash", "toml"}, f"README line {block.line}: unknown block"
        if block.skip_reason is not None:
            assert len(block.skip_reason.split()) >= 3, f"README line {block.line}: say why it is not run"


def test_the_quick_start_commands_are_the_projects_own():
    """The two commands run hatch scripts that exist, and CI runs the second one."""
    quick_start = readme_blocks()[0]
    commands = [line.split("#")[0].strip() for line in quick_start.code.splitlines()]
    assert commands == ["uvx hatch run demo", "uvx hatch run test"]
    scripts = tomllib.loads((testkit.REPO_ROOT / "hatch.toml").read_text())["envs"]["default"]["scripts"]
    assert scripts["demo"].startswith("beats demo")
    assert "unit" in scripts["test"] and "lint" in scripts["test"]
    assert "hatch run test" in (testkit.REPO_ROOT / ".ci" / "run").read_text()


def test_the_readme_environments_install_on_any_machine():
    """The envs the README's commands use name nothing that exists only on one machine.

    No local wheel folder, no constraint or index file, no local-version pin (``+cpu`` builds
    are not on PyPI, and macOS has none), no Python version other than the packages' minimum;
    uv chooses the PyTorch build for the machine.
    """
    config = tomllib.loads((testkit.REPO_ROOT / "hatch.toml").read_text())["envs"]
    local = re.compile(r"^(/|~|\.|file:)|\{root\}|\{home\}|\+(cpu|cu\d+|rocm)")
    for name in ("default", "minimal"):
        env = {**config["default"], **config[name]} if name != "default" else config["default"]
        variables = env.get("env-vars", {})
        for key, value in variables.items():
            assert not key.endswith(("FIND_LINKS", "CONSTRAINT", "INDEX_URL", "INDEX")), f"{name}: {key}"
            assert not local.search(str(value)), f"{name}: {key} = {value!r} exists only on one machine"
        assert variables.get("UV_TORCH_BACKEND") == "auto"
        assert "python" not in env, f"{name} pins a Python; the packages need >=3.10 and the README says so"
        for dependency in env.get("dependencies", []):
            assert not local.search(dependency), f"{name}: {dependency!r}"
    minimums = {
        tomllib.loads(pyproject.read_text())["project"]["requires-python"]
        for pyproject in (testkit.REPO_ROOT / "packages").glob("*/pyproject.toml")
    }
    assert minimums == {">=3.10"}
    assert "Python 3.10 or newer" in (testkit.REPO_ROOT / "README.md").read_text()


def test_every_python_block_runs_in_order(readme_folder: Path, capsys: pytest.CaptureFixture[str]):
    namespace: dict[str, object] = {"__name__": "readme"}
    blocks = [b for b in readme_blocks() if b.language == "python" and b.skip_reason is None]
    for block in blocks:
        try:
            exec(compile(block.code, f"README.md, block at line {block.line}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"README block at line {block.line} failed: {error!r}") from error
    out = capsys.readouterr().out
    assert "BEATs_iter3_plus_AS2M" in out  # the checkpoints listed
    assert len(namespace["index"]) == 60
    assert namespace["results"].test_metrics["num_samples"] == 6  # a tenth of 60 clips held out
    assert len(namespace["summary"].folds) == 5
    assert namespace["hidden_states"][0].shape[0] == 2
    assert set(namespace["clips"]["category"]) == {
        "whistle",
        "birdsong",
        "engine",
        "knocking",
        "siren",
        "rain",
    }
    assert namespace["report"].ok
    assert (readme_folder / "my_sounds.npz").is_file()
    assert (readme_folder / "runs" / "beats" / "confusion_matrix.png").is_file()
    assert isinstance(namespace["esc50"], pd.DataFrame) and len(namespace["esc50"]) == 25


def test_every_shell_block_runs(readme_folder: Path, hub_env: dict[str, str]):
    environment = {**hub_env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{hub_env['PATH']}"}
    blocks = [b for b in readme_blocks() if b.language == "bash" and b.skip_reason is None]
    for block in blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=readme_folder,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (
            f"README block at line {block.line}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    assert (readme_folder / "features.npz").is_file()
    assert (readme_folder / "runs" / "cli" / "best_model.pt").is_file()
    assert (readme_folder / "demo-mine" / "embeddings.npz").is_file()
