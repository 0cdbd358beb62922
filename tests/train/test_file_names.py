"""A file whose name is not valid UTF-8 (a Latin-1 "café.wav") through a whole run, and back out of its files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import testkit

from beats_core.cli import main
from beats_train import BEATsTrainer


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV of file names as the run wrote them: undecodable bytes come back as the same surrogate escapes."""
    return pd.read_csv(path, encoding_errors="surrogateescape", dtype=object)


def test_a_file_name_that_is_not_utf8_goes_through_a_whole_run(tmp_path, tiny_config, offline_env):
    root = testkit.make_sound_dataset(tmp_path / "sounds", 4, seconds=0.5)
    odd = os.fsdecode(os.fsencode(root / "tone") + b"/caf\xe9.wav")  # the byte 0xE9: Latin-1, not UTF-8
    os.rename(root / "tone" / "tone_0.wav", odd)
    rows = []
    for label in ("chirp", "clicks", "noise_band", "tone"):
        files = sorted(str(p) for p in (root / label).iterdir())
        files = [f for f in files if f != odd] + [odd] if label == "tone" else files
        rows += zip(files, [label] * 4, ["train", "train", "val", "test"], strict=True)
    frame = pd.DataFrame(rows, columns=["filename", "category", "split"], dtype=object)
    # validate=False: the validation report (beats-data) is tested with such names on its own
    trainer = BEATsTrainer.from_dataframe(
        frame, config=tiny_config(tmp_path / "run", max_epochs=1), batch_size=8, validate=False
    )
    results = trainer.train()
    run = results.paths["output_dir"]

    assert b"/tone/caf\xe9.wav," in (run / "splits.csv").read_bytes()  # the name's own bytes
    splits = _read_csv(run / "splits.csv")
    assert splits.loc[splits["filename"] == odd, "split"].tolist() == ["test"]
    predictions = _read_csv(run / "test_predictions.csv")
    assert odd in set(predictions["filename"]) and len(predictions) == 4
    assert results.test_metrics["num_samples"] == 4
    assert json.loads((run / "results.json").read_text())["epochs"] == 1

    table = trainer.predict([odd])
    assert table["filename"].tolist() == [odd] and table["label"].iloc[0] != ""
    trainer.evaluate(frame, output_dir=tmp_path / "evaluation")
    assert odd in set(_read_csv(tmp_path / "evaluation" / "predictions.csv")["filename"])
    output = tmp_path / "predictions.csv"
    assert main(["predict", str(results.paths["best_model"]), odd, "--output", str(output)]) == 0
    assert _read_csv(output)["filename"].tolist() == [odd]
    # printed on a terminal whose encoding is strict UTF-8: the name comes out as its own bytes
    beats = Path(sys.executable).with_name("beats")
    printed = subprocess.run(
        [beats, "predict", str(results.paths["best_model"]), odd],
        capture_output=True,
        env={**offline_env, "PYTHONIOENCODING": "utf-8:strict"},
        timeout=300,
    )
    assert printed.returncode == 0, printed.stderr[-2000:]
    assert b"/tone/caf\xe9.wav" in printed.stdout
