"""``beats demo``: the whole story on generated sounds, offline, and on a user's own folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import testkit

from beats_core import load_checkpoint
from beats_core.cli import main
from beats_extract import load_features
from beats_trainer.demo import RANDOM_MODEL, run_demo

BEATS = Path(sys.executable).with_name("beats")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_run_folder(run: Path, classes: set[str]) -> dict:
    for name in ("best_model.pt", "classification_report.txt", "metrics.csv", "test_predictions.csv"):
        assert (run / name).is_file(), name
    for name in ("confusion_matrix.png", "training_curves.png"):
        assert (run / name).read_bytes()[:8] == PNG_SIGNATURE, name
    checkpoint = load_checkpoint(run / "best_model.pt")
    assert set(checkpoint.label_dict.values()) == classes
    return json.loads((run / "results.json").read_text())


def test_the_default_demo_runs_offline_on_a_small_random_model(tmp_path, offline_env):
    """The README's first command on a machine without network: it says so and still does every step."""
    done = subprocess.run(
        [BEATS, "demo"], cwd=tmp_path, env=offline_env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "NOTE: the pre-trained checkpoint is not available here" in out
    assert "HF_HUB_OFFLINE" in out  # the reason, from the checkpoint error
    assert RANDOM_MODEL in out
    for step in (
        "1. Data",
        "2. Validation",
        "3. Model",
        "4. Fine-tuning",
        "5. Evaluation",
        "6. Embeddings",
        "7. Similarity",
    ):
        assert f"== {step}" in out
    assert "OK: no errors" in out

    demo = tmp_path / "beats-demo"
    classes = {"whistle", "birdsong", "engine", "knocking", "siren", "rain"}
    assert {p.name for p in (demo / "data").iterdir()} == classes
    results = _assert_run_folder(demo / "run", classes)
    # Six distinct sound classes: even the tiny model trained from scratch separates them well.
    assert results["test_metrics"]["accuracy"] >= 0.7
    assert results["test_metrics"]["num_samples"] == 36  # a fifth of 180 clips held out
    saved = load_features(demo / "embeddings.npz")
    assert saved.features.shape == (180, 64)
    assert np.isfinite(saved.features).all()
    agreement = float(out.split("Over all test clips, ")[1].split("%")[0]) / 100
    assert agreement >= 0.6  # chance is 1/6
    assert "Done. Everything is in beats-demo." in out


def test_the_demo_fine_tunes_the_default_checkpoint_when_it_can_be_downloaded(tmp_path, hub_env, monkeypatch):
    """With the Hub reachable, the default model is downloaded into the cache and its classifier trained."""
    monkeypatch.chdir(tmp_path)
    results = run_demo(output_dir="out", clips_per_class=6, epochs=2, say=lambda line: None)
    assert results.pretrained
    assert results.model == "BEATs_iter3_plus_AS2M"
    cached = list((tmp_path / "hf-home" / "hub").rglob("BEATs_iter3_plus_AS2M.pt"))
    assert cached
    training = json.loads((tmp_path / "out" / "run" / "results.json").read_text())
    assert training["epochs"] == 2
    run_config = (tmp_path / "out" / "run" / "config.yaml").read_text()
    assert "freeze_backbone: true" in run_config  # a linear probe of the pre-trained encoder
    assert len(results.hits) == 5
    assert results.query not in [hit.path for hit in results.hits]
    assert 0.0 <= results.neighbour_agreement <= 1.0


def test_the_demo_on_a_users_folder_reports_and_leaves_out_a_broken_file(
    tmp_path, offline_env, monkeypatch, capsys
):
    data = testkit.make_directory_dataset(tmp_path / "field", {"owl": 6, "frog": 6, "wind": 6}, seconds=1.0)
    (data / "owl" / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really")
    monkeypatch.chdir(tmp_path)
    status = main(["demo", str(data), "--model", RANDOM_MODEL, "--epochs", "2", "--output-dir", "mine"])
    assert status == 0
    out = capsys.readouterr().out
    assert "19 clips of 3 classes" in out
    assert "broken.wav" in out  # named in the validation report
    assert "NOTE" not in out  # a model asked for by name is used without a fallback
    assert not (tmp_path / "mine" / "data").exists()  # nothing generated
    results = _assert_run_folder(tmp_path / "mine" / "run", {"owl", "frog", "wind"})
    splits = pd.read_csv(tmp_path / "mine" / "run" / "splits.csv")
    assert len(splits) == 18 and not splits["filename"].str.endswith("broken.wav").any()
    assert results["epochs"] == 2
    assert load_features(tmp_path / "mine" / "embeddings.npz").features.shape[0] == 18


def test_a_model_that_cannot_be_had_is_an_error_not_a_fallback(tmp_path, offline_env, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = main(["demo", "--model", "openbeats", "--clips-per-class", "2"])
    assert status == 1
    err = capsys.readouterr().err
    assert "openbeats" in err and "beats download openbeats" in err


def test_a_bad_setting_is_a_one_line_error(tmp_path, offline_env, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--clips-per-class", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("beats: error:") and "clips_per_class" in err
    assert "Traceback" not in err
