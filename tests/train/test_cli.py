"""``beats train``, ``beats evaluate`` and ``beats predict`` through the ``beats`` command."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import testkit
import yaml

from beats_core.cli import main


def test_beats_train_on_a_folder_with_a_config_file_and_flags(sound_root, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"batch_size": 8, "validate": False},
                "training": {"preset": "fast", "model": "random:tiny", "max_epochs": 5, "progress": False},
            }
        )
    )
    run = tmp_path / "run"
    status = main(
        [
            "train",
            str(sound_root),
            "--config",
            str(config),
            "--epochs",
            "2",
            "--lr",
            "0.002",
            "--output-dir",
            str(run),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "best epoch" in out and f"run folder: {run}" in out and "test: accuracy" in out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["training"]["max_epochs"] == 2 and saved["training"]["learning_rate"] == 0.002  # flags win
    assert saved["training"]["label_smoothing"] == 0.1  # from the preset in the file
    assert saved["data"]["data_dir"] == str(sound_root) and saved["data"]["batch_size"] == 8

    status = main(
        [
            "train",
            str(sound_root),
            "--config",
            str(config),
            "--epochs",
            "3",
            "--output-dir",
            str(run),
            "--resume",
        ]
    )
    assert status == 0
    assert len(pd.read_csv(run / "metrics.csv")) == 3  # two epochs were resumed, one more trained


def test_beats_evaluate_and_predict_a_checkpoint(trained, sound_root, tmp_path, capsys):
    checkpoint = str(trained.results.paths["best_model"])
    assert main(["evaluate", checkpoint, str(sound_root)]) == 0
    report = capsys.readouterr().out
    assert "noise_band" in report and "accuracy" in report and "samples" in report
    assert main(["evaluate", checkpoint, str(sound_root), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["num_samples"] == 48 and set(metrics["per_class"]) == {
        "chirp",
        "clicks",
        "noise_band",
        "tone",
    }

    files = [str(sound_root / "tone" / "tone_0.wav"), str(sound_root / "chirp" / "chirp_0.wav")]
    assert main(["predict", checkpoint, *files]) == 0
    printed = capsys.readouterr().out
    assert "tone_0.wav" in printed and "probability" in printed
    output = tmp_path / "predictions.csv"
    assert main(["predict", checkpoint, *files, "--output", str(output)]) == 0
    table = pd.read_csv(output)
    assert table["filename"].tolist() == files and "prob_tone" in table


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nowhere"), "--model", "random:tiny"]) == 1
    assert "beats: error: dataset" in capsys.readouterr().err
    assert main(["train", "--model", "random:tiny"]) == 1
    assert "no data: pass DATA" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "--preset", "fastest"]) == 1
    assert "unknown training preset 'fastest'" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.pt"), "x.wav"]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_esc50_cross_validation_and_an_urbansound8k_fold_from_the_command_line(tmp_path, capsys):
    esc50 = testkit.make_esc50(tmp_path / "ESC-50-master", clips_per_fold=2)
    arguments = ["--model", "random:tiny", "--epochs", "1", "--batch-size", "8", "--no-progress"]
    status = main(
        ["train", f"esc50:{esc50}", "--cross-validate", "--output-dir", str(tmp_path / "cv"), *arguments]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("fold")] == [
        f"fold {k}" for k in range(1, 6)
    ]
    assert "accuracy over 5 folds:" in out and "+-" in out
    splits = pd.read_csv(tmp_path / "cv" / "fold-3" / "splits.csv")
    assert set(splits.loc[splits["fold"] == 3, "split"]) == {"test"} and (splits["split"] == "val").any()

    us8k = testkit.make_urbansound8k(tmp_path / "UrbanSound8K", classes=3)
    run = tmp_path / "us8k"
    assert (
        main(["train", f"urbansound8k:{us8k}", "--test-fold", "10", "--output-dir", str(run), *arguments])
        == 0
    )
    splits = pd.read_csv(run / "splits.csv")
    assert set(splits.loc[splits["split"] == "test", "fold"]) == {10}
    assert json.loads((run / "results.json").read_text())["test_metrics"]["num_samples"] == 3


def test_beats_evaluate_writes_the_files_a_run_writes_for_its_test_split(
    trained, sound_root, tmp_path, capsys
):
    checkpoint = str(trained.results.paths["best_model"])
    out = tmp_path / "evaluation"
    assert main(["evaluate", checkpoint, str(sound_root), "--output-dir", str(out)]) == 0
    assert f"reports written to {out}" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {
        "classification_report.txt",
        "confusion_matrix.png",
        "predictions.csv",
    }
    run = trained.results.paths["output_dir"]
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == list(pd.read_csv(run / "test_predictions.csv").columns)
    assert len(predictions) == 48 and set(predictions["category"]) == {
        "chirp",
        "clicks",
        "noise_band",
        "tone",
    }
    report = (out / "classification_report.txt").read_text()
    assert report.splitlines()[0] == f"48 clips of {sound_root}" and "noise_band" in report
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["evaluate", checkpoint, str(sound_root), "--output-dir", str(out)]) == 1
    assert "already holds earlier results (classification_report.txt" in capsys.readouterr().err
    assert (
        main(["evaluate", checkpoint, str(sound_root), "--output-dir", str(out), "--overwrite", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["num_samples"] == 48
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["evaluate", checkpoint, str(tmp_path / "no-data"), "--output-dir", str(blocker / "x")]) == 1
    assert "cannot write to the output folder" in capsys.readouterr().err  # checked before the data is read
