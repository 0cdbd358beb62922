from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import testkit
import torch

from beats_core import ConfigError, DatasetError, TrainingError, load_checkpoint
from beats_core.fbank import compute_fbank
from beats_train import BEATsTrainer, DataConfig, TrainingConfig, compute_fbank_stats, load_config
from beats_train.model import BEATsClassifier

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.parametrize("mixed_precision", ["no", "bf16"])  # bf16: the block-wise half-precision attention
def test_a_tiny_random_model_learns_clearly_different_sounds(tmp_path, tiny_config, mixed_precision):
    root = testkit.make_sound_dataset(tmp_path / "sounds", 30)
    config = tiny_config(tmp_path / "run", max_epochs=10, learning_rate=1e-3, mixed_precision=mixed_precision)
    trainer = BEATsTrainer.from_directory(
        root, config=config, batch_size=8, train_split=0.6, val_split=0.2, test_split=0.2
    )
    results = trainer.train()
    assert results.test_metrics["num_samples"] == 24
    assert results.test_metrics["accuracy"] >= 0.9
    assert results.history["train_loss"].iloc[-1] < results.history["train_loss"].iloc[0] / 2


def test_a_linear_probe_on_the_tiny_reference_checkpoint_trains_the_head_only(
    tmp_path, tiny_config, reference_dir
):
    root = testkit.make_sound_dataset(tmp_path / "sounds", 20)
    checkpoint = reference_dir / "tiny_pretrained.pt"
    config = tiny_config(
        tmp_path / "probe", model=str(checkpoint), freeze_backbone=True, learning_rate=0.05, max_epochs=10
    )
    trainer = BEATsTrainer.from_directory(
        root, config=config, batch_size=8, train_split=0.5, val_split=0.25, test_split=0.25
    )
    results = trainer.train()
    original = torch.load(checkpoint, weights_only=True)["model"]
    saved = torch.load(results.paths["best_model"], weights_only=True)
    assert all(
        torch.equal(original[key], saved["model"][key]) for key in original
    )  # the encoder did not move
    assert saved["model"]["predictor.weight"].shape == (4, 64) and saved["cfg"]["finetuned_model"] is True
    assert results.history["train_loss"].iloc[-1] < 0.6 * results.history["train_loss"].iloc[0]
    assert (
        results.test_metrics["num_samples"] == 20 and results.test_metrics["accuracy"] >= 0.6
    )  # chance: 0.25


def test_the_run_folder_holds_configs_metrics_checkpoints_reports_and_plots(trained):
    results = trained.results
    out = results.paths["output_dir"]
    expected = {
        "config.yaml",
        "splits.csv",
        "validation_report.txt",
        "metrics.csv",
        "best_model.pt",
        "state.pt",
        "classification_report.txt",
        "confusion_matrix.png",
        "training_curves.png",
        "test_predictions.csv",
        "results.json",
    }
    assert expected <= {p.name for p in out.iterdir()}
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3, 4, 5, 6] and results.epochs == 6
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1", "learning_rate"} <= set(metrics.columns)
    assert results.best_epoch == int(metrics.loc[metrics["val_accuracy"].idxmax(), "epoch"])
    assert results.best_score == pytest.approx(metrics["val_accuracy"].max())
    test = results.test_metrics
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "loss"} <= set(test)
    assert set(test["per_class"]) == {"chirp", "clicks", "noise_band", "tone"}
    assert {"precision", "recall"} <= set(test["per_class"]["tone"])
    assert json.loads((out / "results.json").read_text())["test_metrics"]["accuracy"] == test["accuracy"]
    for name in ("confusion_matrix.png", "training_curves.png"):
        assert (out / name).read_bytes()[:8] == PNG
    assert "noise_band" in (out / "classification_report.txt").read_text()
    splits = pd.read_csv(out / "splits.csv")
    assert set(splits["split"]) == {"train", "val", "test"} and len(splits) == 48
    predictions = pd.read_csv(out / "test_predictions.csv")
    assert len(predictions) == (splits["split"] == "test").sum() == test["num_samples"]
    assert load_config(out / "config.yaml") == (trained.data_config, trained.training_config)
    loaded = load_checkpoint(results.paths["best_model"])
    assert loaded.label_dict == {0: "chirp", 1: "clicks", 2: "noise_band", 3: "tone"}


def test_predict_evaluate_and_a_reloaded_checkpoint_agree(trained, sound_root, tmp_path):
    files = [
        sound_root / "tone" / "tone_0.wav",
        sound_root / "chirp" / "chirp_3.wav",
        tmp_path / "missing.wav",
    ]
    table = trained.predict(files)
    assert list(table.columns[:3]) == ["filename", "label", "probability"]
    assert [c for c in table.columns if c.startswith("prob_")] == [
        "prob_chirp",
        "prob_clicks",
        "prob_noise_band",
        "prob_tone",
    ]
    assert np.allclose(table.iloc[:2][[c for c in table.columns if c.startswith("prob_")]].sum(axis=1), 1.0)
    assert table["label"].iloc[2] == "" and np.isnan(table["probability"].iloc[2])
    assert table["filename"].tolist() == [str(f) for f in files]

    reloaded = BEATsTrainer.from_checkpoint(trained.results.paths["best_model"])
    again = reloaded.predict(files[:2])
    assert np.allclose(again["probability"], table["probability"].iloc[:2], atol=1e-5)

    metrics = reloaded.evaluate(sound_root)
    assert metrics["num_samples"] == 48 and 0.0 <= metrics["accuracy"] <= 1.0
    assert len(metrics["predictions"]) == 48 and "category" in metrics["predictions"]
    assert np.array(metrics["confusion_matrix"]).sum() == 48
    frame = pd.DataFrame({"filename": [str(files[0])], "category": ["whistle"]})
    with pytest.raises(DatasetError, match="'whistle' is not one of the 4 known classes"):
        reloaded.evaluate(frame)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(sound_root, tmp_path, tiny_config):
    augmentation = {"roll": True, "gain_db": 3.0, "time_masks": 1, "freq_masks": 1}
    settings = {"max_epochs": 4, "augmentation": augmentation, "head_dropout": 0.1}
    straight = BEATsTrainer.from_directory(
        sound_root, config=tiny_config(tmp_path / "straight", **settings), batch_size=8
    )
    expected = straight.train()
    interrupted = BEATsTrainer.from_directory(
        sound_root, config=tiny_config(tmp_path / "resumed", **settings), batch_size=8
    )
    partial = interrupted.train(stop_after=2)
    assert partial.epochs == 2 and len(pd.read_csv(tmp_path / "resumed" / "metrics.csv")) == 2
    resumed = BEATsTrainer.from_directory(
        sound_root, config=tiny_config(tmp_path / "resumed", **settings), batch_size=8
    )
    results = resumed.train(resume_from=tmp_path / "resumed")
    columns = [c for c in expected.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(results.history[columns], expected.history[columns])
    assert results.best_epoch == expected.best_epoch and results.test_metrics == expected.test_metrics
    final, reference = resumed.model.state_dict(), straight.model.state_dict()
    assert all(torch.equal(final[key], reference[key]) for key in reference)

    other = tmp_path / "other"
    testkit.make_sound_dataset(other, 4, seconds=0.5, classes=("tone", "chirp"))
    with pytest.raises(TrainingError, match="trained on other classes"):
        BEATsTrainer.from_directory(other, config=tiny_config(tmp_path / "x")).train(
            resume_from=tmp_path / "resumed"
        )
    with pytest.raises(TrainingError, match="does not exist"):
        BEATsTrainer.from_directory(other, config=tiny_config(tmp_path / "x")).train(
            resume_from=tmp_path / "nowhere"
        )


def test_unfreezing_trains_the_encoder_from_the_given_epoch(sound_root, tmp_path, tiny_config, reference_dir):
    checkpoint = reference_dir / "tiny_pretrained.pt"
    original = torch.load(checkpoint, weights_only=True)["model"]
    config = tiny_config(
        tmp_path / "run",
        model=str(checkpoint),
        freeze_backbone=True,
        unfreeze_after=1,
        max_epochs=2,
        warmup=0.0,
    )
    trainer = BEATsTrainer.from_directory(sound_root, config=config, batch_size=8)
    trainer.train(stop_after=1)
    encoder = trainer.model.backbone.state_dict()
    assert all(torch.equal(encoder[key], original[key]) for key in original)
    trainer.train(resume_from=tmp_path / "run")
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)["model"]
    assert not torch.equal(
        state["backbone.encoder.layers.0.fc1.weight"], original["encoder.layers.0.fc1.weight"]
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"augmentation": {"mixup": 0.4}, "label_smoothing": 0.1},
        {"class_balance": "loss"},
        {"class_balance": "sampler"},
        {"mixed_precision": "bf16", "gradient_accumulation_steps": 2, "gradient_clipping": 1.0},
        {"weighted_layer_sum": True, "optimizer": "sgd", "learning_rate": 0.05, "scheduler": "linear"},
        {"optimizer": "adam", "layer_lr_decay": 0.5, "encoder_layerdrop": 0.5, "monitor": "loss"},
    ],
    ids=[
        "mixup",
        "class-weighted-loss",
        "balanced-sampler",
        "bf16-accumulation",
        "layer-sum-sgd",
        "adam-llrd-layerdrop",
    ],
)
def test_training_options_run_end_to_end(sound_root, tmp_path, tiny_config, overrides):
    config = tiny_config(tmp_path / "run", max_epochs=2, **overrides)
    results = BEATsTrainer.from_directory(sound_root, config=config, batch_size=8, validate=False).train()
    assert np.isfinite(results.history["train_loss"]).all() and results.test_metrics["num_samples"] > 0
    assert results.monitor == ("loss" if "monitor" in overrides else "accuracy")


def test_multi_label_training_reports_map_and_predicts_label_sets(tmp_path, tiny_config):
    rows = []
    for i in range(12):
        for names in (("tone",), ("chirp",), ("tone", "chirp")):
            clip = sum(
                testkit.sound_clip(name, 1.0, seed=100 * i + len(names) + k) for k, name in enumerate(names)
            )
            path = testkit.write_audio(
                tmp_path / "clips" / f"{'+'.join(names)}_{i}.wav", clip / len(names), 16000
            )
            rows.append((str(path), ";".join(names)))
    frame = pd.DataFrame(rows, columns=["path", "tags"])
    config = tiny_config(tmp_path / "run", multi_label=True, max_epochs=3)
    trainer = BEATsTrainer.from_dataframe(
        frame, "path", "tags", config=config, label_delimiter=";", batch_size=6
    )
    results = trainer.train()
    assert results.monitor == "map" and 0.0 <= results.test_metrics["map"] <= 1.0
    assert "val_map" in results.history.columns
    table = trainer.predict([rows[2][0]])
    assert set(table["label"].iloc[0].split(";")) - {""} <= {"tone", "chirp"}
    assert not np.isclose(table[["prob_chirp", "prob_tone"]].sum(axis=1).iloc[0], 1.0)  # independent sigmoids
    assert BEATsClassifier.load(results.paths["best_model"]).multi_label


def test_dataset_fbank_statistics_are_measured_and_saved_in_the_checkpoint(sound_root, tmp_path, tiny_config):
    config = tiny_config(tmp_path / "run", max_epochs=1, dataset_fbank_stats=True)
    trainer = BEATsTrainer.from_directory(sound_root, config=config, batch_size=8)
    results = trainer.train()
    train_files = pd.read_csv(results.paths["splits"]).query("split == 'train'")["filename"]
    mean, std = compute_fbank_stats(list(train_files), progress=False)
    cfg = torch.load(results.paths["best_model"], weights_only=True)["cfg"]
    assert (cfg["fbank_mean"], cfg["fbank_std"]) == (pytest.approx(mean), pytest.approx(std))


def test_fbank_statistics_are_those_of_every_frame(sound_root):
    files = [sound_root / "tone" / "tone_0.wav", sound_root / "clicks" / "clicks_1.wav"]
    from beats_core import load_audio

    values = torch.cat([compute_fbank(load_audio(f)).flatten() for f in files]).double()
    mean, std = compute_fbank_stats(files, progress=False)
    assert mean == pytest.approx(float(values.mean()), rel=1e-6) and std == pytest.approx(
        float(values.std(correction=0)), rel=1e-6
    )


def test_settings_this_machine_cannot_run_are_refused_before_training(sound_root, tmp_path, tiny_config):
    fp16 = BEATsTrainer.from_directory(
        sound_root, config=tiny_config(tmp_path / "a", mixed_precision="fp16"), validate=False
    )
    with pytest.raises(ConfigError, match="'fp16' needs a GPU; on the CPU use 'bf16'"):
        fp16.train()
    tracker = BEATsTrainer.from_directory(
        sound_root, config=tiny_config(tmp_path / "b", tracker="no-such-tracker"), validate=False
    )
    with pytest.raises(ConfigError, match=r"TrainingConfig\.tracker='no-such-tracker'"):
        tracker.train()
    with pytest.raises(ConfigError, match="no fine-tuned model yet"):
        BEATsTrainer.from_directory(sound_root).predict(["x.wav"])


def test_cross_validation_tests_on_each_fold_and_selects_on_the_others(tmp_path, tiny_config, caplog):
    frame = testkit.make_fold_dataset(tmp_path / "clips", folds=3, clips_per_fold=3, seconds=0.5)
    config = tiny_config(tmp_path / "cv", max_epochs=2)
    summary = BEATsTrainer.from_dataframe(
        frame, config=config, batch_size=8, val_split=0.2, train_split=0.8, test_split=0.0
    ).cross_validate()
    assert summary.folds == [1, 2, 3] and len(summary.runs) == 3
    assert "splitting at random" not in caplog.text  # the folds are the protocol: no misleading warning
    assert summary.mean_accuracy == pytest.approx(np.mean(summary.accuracies))
    assert summary.std_accuracy == pytest.approx(np.std(summary.accuracies, ddof=1))
    for fold in (1, 2, 3):
        splits = pd.read_csv(tmp_path / "cv" / f"fold-{fold}" / "splits.csv")
        assert set(splits.loc[splits["fold"] == fold, "split"]) == {"test"}
        assert set(splits.loc[splits["fold"] != fold, "split"]) == {"train", "val"}
        assert (tmp_path / "cv" / f"fold-{fold}" / "best_model.pt").is_file()
    table = pd.read_csv(tmp_path / "cv" / "cross_validation.csv")
    assert table["fold"].tolist() == [1, 2, 3] and np.allclose(table["test_accuracy"], summary.accuracies)
    assert json.loads((tmp_path / "cv" / "cross_validation.json").read_text())[
        "mean_accuracy"
    ] == pytest.approx(summary.mean_accuracy)
    with pytest.raises(DatasetError, match=r"folds \[9\] are not in the data"):
        BEATsTrainer.from_dataframe(frame, config=config).cross_validate(folds=[9])


def test_constructors_take_the_data_in_its_usual_forms(sound_root, tmp_path):
    csv = tmp_path / "data.csv"
    pd.DataFrame({"file": ["tone/tone_0.wav"], "label": ["tone"]}).to_csv(csv, index=False)
    trainer = BEATsTrainer.from_csv(
        csv_path=csv, audio_column="file", label_column="label", data_dir=str(sound_root)
    )
    assert trainer.data_config.metadata_file == str(csv) and trainer.data_config.audio_column == "file"
    config = TrainingConfig(model="random:tiny")
    trainer = BEATsTrainer.from_directory(sound_root, config=config, batch_size=4)
    assert trainer.training_config is config and trainer.data_config.batch_size == 4
    trainer = BEATsTrainer(data_config=DataConfig(data_dir=str(sound_root)), training_config=config)
    assert trainer.data_config.data_dir == str(sound_root)
    with pytest.raises(ConfigError, match="training_config must be a TrainingConfig"):
        BEATsTrainer(DataConfig(), {"model": "random:tiny"})
    with pytest.raises(ConfigError, match="needs a pandas DataFrame"):
        BEATsTrainer.from_dataframe([("a.wav", "x")])


def test_extract_features_embeds_with_the_fine_tuned_encoder(trained, sound_root):
    from beats_core import load_audio

    files = [sound_root / "tone" / "tone_0.wav", sound_root / "clicks" / "clicks_0.wav"]
    features = trained.extract_features(files)
    assert features.shape == (2, 64) and features.dtype == np.float32
    backbone = BEATsClassifier.load(trained.results.paths["best_model"]).backbone
    with torch.no_grad():
        expected = [backbone.forward_features(load_audio(f)[None])[0].mean(dim=1)[0].numpy() for f in files]
    assert np.allclose(features, np.stack(expected), atol=1e-4)
    assert trained.extract_features(files, pooling="max").shape == (2, 64)


def test_decoding_in_worker_processes_trains_the_same_model(sound_root, tmp_path, tiny_config):
    histories = []
    for workers in (0, 2):
        config = tiny_config(tmp_path / f"workers-{workers}", max_epochs=2)
        trainer = BEATsTrainer.from_directory(
            sound_root, config=config, batch_size=8, num_workers=workers, validate=False
        )
        histories.append(trainer.train().history.drop(columns="seconds"))
    pd.testing.assert_frame_equal(histories[0], histories[1])


def test_long_files_are_predicted_from_the_mean_of_their_windows(trained, tmp_path):
    from beats_core import load_audio
    from beats_core.clips import ClipRule

    clip = np.concatenate([testkit.sound_clip(name, 1.0, seed=7) for name in ("tone", "chirp", "clicks")])
    path = testkit.write_audio(tmp_path / "long.wav", clip, 16000)
    reloaded = BEATsTrainer.from_checkpoint(
        trained.results.paths["best_model"], data_config=DataConfig(max_duration=1.0)
    )
    table = reloaded.predict([path])
    waveform = load_audio(path)
    windows = ClipRule.windows(1.0).clips(waveform.shape[0])  # the one clip rule: 1 s every 0.96 s
    assert len(windows) == 3
    with torch.no_grad():
        logits = torch.stack([reloaded.model(waveform[w.start : w.stop][None])[0] for w in windows])
    expected = torch.softmax(logits.mean(dim=0), dim=-1).numpy()
    columns = [f"prob_{label}" for label in ("chirp", "clicks", "noise_band", "tone")]
    assert np.allclose(table[columns].to_numpy()[0], expected, atol=1e-5)
