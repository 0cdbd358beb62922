"""The core ``beats`` sub-commands, through ``beats_core.cli.main`` and through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import FakeHub, client_environment

from beats_core.cli import main
from beats_core.download import ensure_checkpoint

REPO = "beats-test/tiny-checkpoints"


@pytest.fixture
def plugin_dir(install_plugin) -> Path:
    return install_plugin("beats-plugin-model")


@pytest.fixture
def environment(reference_dir, tmp_path, plugin_dir, monkeypatch):
    """A fake Hub with the tiny checkpoints; this process's environment points at it, and is returned."""
    with FakeHub() as server:
        for filename in ("tiny_pretrained.pt", "tiny_finetuned.pt"):
            server.add_file(REPO, filename, (reference_dir / filename).read_bytes(), repo_type="dataset")
        environment = client_environment(server.url, tmp_path / "hf")
        for key, value in environment.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        yield environment


def _unique_parameters(path: Path) -> int:
    """Parameters of a tiny reference checkpoint, with the relative-position table shared by all layers once."""
    checkpoint = torch.load(path, weights_only=True)
    cfg, state = checkpoint["cfg"], checkpoint["model"]
    table = state["encoder.layers.0.self_attn.relative_attention_bias.weight"].numel()
    return sum(t.numel() for t in state.values()) - (cfg["encoder_layers"] - 1) * table


def test_models_shows_source_and_cache_state(environment, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["BEATs_iter3_plus_AS2M*"].split()[1:3] == ["no", "mit"]
    assert "hf://datasets/ninanor/beats-checkpoints@main/openbeats.pt" in lines["openbeats"]
    assert lines["test_tiny_pretrained"].split()[1] == "no"
    assert f"Cache: {Path(environment['HF_HOME']) / 'hub'}" in out

    ensure_checkpoint("test_tiny_pretrained")
    assert main(["models", "test_tiny*", "--long"]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.startswith("test_tiny")]
    assert [(line[0], line[1]) for line in lines] == [
        ("test_tiny_finetuned", "no"),
        ("test_tiny_pretrained", "yes"),
    ]
    assert "registered by beats-plugin-model" in out and "openbeats" not in out


def test_models_with_a_pattern_that_matches_nothing_fails(environment, capsys):
    assert main(["models", "nothing*"]) == 1
    assert "no registered model matches 'nothing*'" in capsys.readouterr().err


def test_download_prints_the_cached_path(environment, capsys, reference_dir, tmp_path):
    assert main(["download", "test_tiny_finetuned", "--revision", "main"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.read_bytes() == (reference_dir / "tiny_finetuned.pt").read_bytes()
    assert path.is_relative_to(Path(environment["HF_HOME"]))
    assert main(["download", "test_tiny_finetuned", "--force", "--cache-dir", str(tmp_path / "other")]) == 0
    assert Path(capsys.readouterr().out.strip()).is_relative_to(tmp_path / "other")


def test_a_user_error_is_one_line_and_verbose_adds_the_traceback(environment, capsys):
    assert main(["download", "test_tiny_pretrainde"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "beats: error: unknown model 'test_tiny_pretrainde'. Did you mean 'test_tiny_pretrained'?"
    )
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main(["--verbose", "download", "test_tiny_pretrainde"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "UnknownModelError" in err


def test_info_on_a_fine_tuned_file_shows_config_parameters_and_labels(environment, capsys, reference_dir):
    path = reference_dir / "tiny_finetuned.pt"
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "encoder_layers=2, encoder_embed_dim=64, encoder_attention_heads=4" in out
    assert "fine-tuned classifier, 5 classes" in out
    assert f"parameters  {_unique_parameters(path):,} (52 tensors)" in out
    labels = torch.load(path, weights_only=True)["label_dict"]
    for index, label in labels.items():
        assert f"{index:<5}{label}" in out


def test_info_on_a_model_name_downloads_it_and_can_print_json(environment, capsys, reference_dir):
    assert main(["info", "test_tiny_pretrained", "--json", "--config"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_parameters"] == _unique_parameters(reference_dir / "tiny_pretrained.pt")
    assert summary["finetuned"] is False and summary["labels"] == {} and summary["num_classes"] is None
    assert summary["cfg"]["max_distance"] == 800
    assert Path(summary["path"]).is_relative_to(Path(environment["HF_HOME"]))


def test_info_on_a_missing_file_fails_with_one_line(environment, capsys, tmp_path):
    assert main(["info", str(tmp_path / "nothing.pt")]) == 1
    err = capsys.readouterr().err
    assert "nothing.pt' does not exist" in err and len(err.strip().splitlines()) == 1


def test_the_beats_console_script(environment, plugin_dir, tmp_path):
    """The installed `beats` command, in a new process, with the plugin package on its path."""
    beats = Path(sys.executable).with_name("beats")
    env = {k: v for k, v in {**os.environ, **environment}.items() if v is not None}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), os.environ.get("PYTHONPATH")]))

    progress = {**env, "TQDM_POSITION": "-1"}  # makes huggingface_hub draw its bar without a terminal
    done = subprocess.run(
        [beats, "download", "test_tiny_pretrained"], env=progress, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_file()
    assert "tiny_pretrained.pt: 100%" in done.stderr  # the hub's progress bar
    assert "HTTP Request" not in done.stderr  # no chatter from the HTTP library

    done = subprocess.run(
        [beats, "info", str(tmp_path / "nothing.pt")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.startswith("beats: error: checkpoint file") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    done = subprocess.run([beats, "--help"], env=env, capture_output=True, text=True)
    assert done.returncode == 0
    for command in ("models", "download", "info", "tiny-hello"):
        assert command in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["extract"],
        ["extract", "--help"],
        ["no-such-command"],
        ["models", "--bogus"],
    ],
)
def test_help_version_and_argument_errors_do_not_import_torch(argv):
    """Starting the command, listing commands and rejecting arguments stay fast: no torch, pandas or accelerate."""
    code = (
        "import sys\n"
        "from beats_core.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'pandas', 'accelerate', 'matplotlib', 'huggingface_hub') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
