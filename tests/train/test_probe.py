"""A linear probe on stored embeddings: embedded once, reused, exact, refusing what a store cannot reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import testkit
import torch

from beats_core import ConfigError, StoreError, create_model
from beats_core.audio import load_audio
from beats_core.cli import main
from beats_core.clips import ClipRule
from beats_extract import BEATsFeatureExtractor
from beats_extract.archive import embed_into_store
from beats_extract.store import completed_recordings, read_store
from beats_train import BEATsTrainer, DataConfig, TrainingConfig
from beats_train.cli import hits_table_columns
from beats_train.data import CLIP_END, CLIP_START, prepare_data
from beats_train.model import BEATsClassifier
from beats_train.stored import embed_dataset, store_extractor

CLASSES = sorted(testkit.SOUND_CLASSES)


def _probe_config(output_dir: Path, store: Path, model: Path | str, **overrides) -> TrainingConfig:
    values = {
        "model": str(model),
        "freeze_backbone": True,
        "embeddings": str(store),
        "learning_rate": 0.05,
        "max_epochs": 8,
        "patience": None,
        "output_dir": str(output_dir),
        "progress": False,
    }
    return TrainingConfig(**{**values, **overrides})


def _parts(store: Path) -> dict[str, int]:
    """The store's parts with their modification times: a run that writes nothing leaves them as they are."""
    return {part.name: part.stat().st_mtime_ns for part in store.glob("part-*.parquet")}


def _official_probabilities(checkpoint: Path, files: list[str]) -> np.ndarray:
    """What Microsoft's code computes for each file: the sigmoid of the mean token logits (BEATs.extract_features)."""
    model = create_model(checkpoint).eval()
    with torch.no_grad():
        return np.stack([model.extract_features(load_audio(f)[None])[0][0].numpy() for f in files])


@pytest.fixture(scope="module")
def tiny(reference_dir: Path) -> Path:
    return reference_dir / "tiny_pretrained.pt"


@pytest.fixture(scope="module")
def two_runs(sound_root: Path, tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two probe runs of the same data on one store: the first fills it, the second reads it (shared: do not modify)."""
    base = tmp_path_factory.mktemp("probe")
    store = base / "store"
    runs = []
    for k in range(2):
        trainer = BEATsTrainer.from_directory(
            sound_root, config=_probe_config(base / f"run{k}", store, tiny), batch_size=8
        )
        trainer.train()
        runs.append((trainer, _parts(store), completed_recordings(store)))
    return store, runs


def test_a_second_run_embeds_nothing_and_trains_on_the_same_rows(two_runs, sound_root):
    _, [(first, parts_first, stored_first), (second, parts_second, stored_second)] = two_runs
    files = sorted(str(p) for p in sound_root.rglob("*.wav"))
    assert sorted(stored_first) == files and set(stored_first.values()) == {1}  # one row per 1 s clip
    assert first.results.embeddings["recordings_embedded"] == 48
    assert first.results.embeddings["recordings_reused"] == 0
    # counted with the store: the second run added no part, rewrote none, and holds the same recordings
    assert parts_second == parts_first and stored_second == stored_first
    assert second.results.embeddings["recordings_embedded"] == 0
    assert second.results.embeddings["recordings_reused"] == 48
    assert (
        second.results.embeddings["clips_cut_from_audio"] == 0
        and not second.results.embeddings["clips_left_out"]
    )
    # same embeddings, same seed: the same run, epoch for epoch
    pd.testing.assert_frame_equal(
        first.results.history.drop(columns="seconds"), second.results.history.drop(columns="seconds")
    )
    assert second.results.test_metrics["accuracy"] == first.results.test_metrics["accuracy"]
    assert first.results.history["train_loss"].iloc[-1] < 0.7 * first.results.history["train_loss"].iloc[0]
    assert first.results.test_metrics["accuracy"] >= 0.5  # chance: 0.25


def test_the_run_folder_holds_what_a_run_of_the_encoder_writes_but_a_state(two_runs):
    _, runs = two_runs
    results = runs[1][0].results
    out = results.paths["output_dir"]
    expected = {
        "config.yaml",
        "splits.csv",
        "validation_report.txt",
        "metrics.csv",
        "best_model.pt",
        "classification_report.txt",
        "confusion_matrix.png",
        "training_curves.png",
        "test_predictions.csv",
        "results.json",
    }
    assert {p.name for p in out.iterdir()} == expected  # no state.pt: a probe is run again, not resumed
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["epoch"]) == list(range(1, 9))
    assert {
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_macro_f1",
        "learning_rate",
    } <= set(metrics.columns)
    assert results.best_epoch == int(metrics.loc[metrics["val_accuracy"].idxmax(), "epoch"])
    saved = json.loads((out / "results.json").read_text())
    assert saved["embeddings"]["recordings_reused"] == 48 and saved["test_metrics"]["num_samples"] == 5
    assert (out / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    predictions = pd.read_csv(out / "test_predictions.csv")
    assert len(predictions) == 5 and set(predictions["label"]) <= set(CLASSES)


def test_best_model_is_an_official_checkpoint_whose_outputs_are_the_probes(two_runs, tiny):
    _, runs = two_runs
    results = runs[0][0].results
    best = results.paths["best_model"]
    saved = torch.load(best, weights_only=True)
    original = torch.load(tiny, weights_only=True)["model"]
    assert saved["cfg"]["finetuned_model"] is True and saved["model"]["predictor.weight"].shape == (4, 64)
    assert all(torch.equal(original[key], saved["model"][key]) for key in original)  # the store's encoder
    assert create_model(best).label_dict == dict(enumerate(CLASSES))

    # the official semantics on the audio: the sigmoid of the mean token logits; the probe: its test predictions
    predictions = pd.read_csv(results.paths["output_dir"] / "test_predictions.csv")
    official = _official_probabilities(best, list(predictions["filename"]))
    logits = np.log(official.astype(np.float64)) - np.log1p(-official.astype(np.float64))
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, predictions[[f"prob_{c}" for c in CLASSES]].to_numpy(), atol=1e-4)
    # and the library's prediction from the audio with the same checkpoint
    again = BEATsTrainer.from_checkpoint(best).predict(list(predictions["filename"]))
    np.testing.assert_allclose(again["probability"], predictions["probability"], atol=1e-4)


def test_a_multi_label_probe_gives_the_official_sigmoids(sound_root, tiny, tmp_path):
    frame = pd.DataFrame({"filename": sorted(str(p) for p in sound_root.rglob("*.wav"))})
    frame["category"] = [Path(f).parent.name for f in frame["filename"]]
    config = _probe_config(tmp_path / "run", tmp_path / "store", tiny, multi_label=True, max_epochs=3)
    trainer = BEATsTrainer.from_dataframe(frame, config=config, batch_size=8)
    results = trainer.train()
    predictions = pd.read_csv(tmp_path / "run" / "test_predictions.csv")
    official = _official_probabilities(results.paths["best_model"], list(predictions["filename"]))
    np.testing.assert_allclose(official, predictions[[f"prob_{c}" for c in CLASSES]].to_numpy(), atol=1e-5)
    assert "map" in results.test_metrics


def test_long_clips_train_on_a_window_and_are_evaluated_on_the_mean_of_their_windows(tiny, tmp_path):
    root = tmp_path / "data"
    lengths = [1.2, 2.5, 3.7, 4.0]
    for k, name in enumerate(CLASSES[:2]):
        for i, seconds in enumerate(lengths * 2):
            clip = testkit.sound_clip(name, seconds, seed=100 * k + i)
            testkit.write_audio(root / name / f"{name}_{i}.wav", clip, 16000)
    config = _probe_config(tmp_path / "run", tmp_path / "store", tiny, max_epochs=4)
    trainer = BEATsTrainer.from_directory(
        root, config=config, batch_size=4, max_duration=1.5, train_split=0.5, val_split=0.25, test_split=0.25
    )
    results = trainer.train()
    # every recording is stored as the evaluation windows of max_duration (1.5 s, every 1.44 s)
    stored = read_store(tmp_path / "store")
    windows = ClipRule.windows(1.5)
    for path in set(stored.paths):
        rows = [i for i, p in enumerate(stored.paths) if p == path]
        expected = windows.clips(len(load_audio(path)))
        assert len(rows) == len(expected) > 0
        np.testing.assert_allclose(stored.starts[rows], [c.start_seconds for c in expected])
        np.testing.assert_allclose(stored.ends[rows], [c.end_seconds for c in expected])
    settings = stored.metadata["settings"]
    assert (
        settings["clip_seconds"] == 1.5
        and settings["window_seconds"] is None
        and settings["pooling"] == "mean"
    )
    # the mean of the windows' logits, as the evaluation of the encoder loop computes it from the audio
    predictions = pd.read_csv(tmp_path / "run" / "test_predictions.csv")
    windows_alone = DataConfig(max_duration=1.5, batch_size=1)  # a batch per window: no padding
    reloaded = BEATsTrainer.from_checkpoint(results.paths["best_model"], data_config=windows_alone)
    again = reloaded.predict(list(predictions["filename"]))
    np.testing.assert_allclose(again["probability"], predictions["probability"], atol=1e-5)


def test_weighted_layer_sum_trains_on_every_hidden_state_of_the_store(sound_root, tiny, tmp_path):
    config = _probe_config(tmp_path / "run", tmp_path / "store", tiny, weighted_layer_sum=True, max_epochs=3)
    results = BEATsTrainer.from_directory(sound_root, config=config, batch_size=8).train()
    assert read_store(tmp_path / "store", recordings=()).metadata["settings"]["layer"] == "all"
    model = BEATsClassifier.load(results.paths["best_model"])
    assert model.layer_weights is not None
    weights = torch.softmax(model.layer_weights, 0)
    assert not torch.allclose(weights, torch.full_like(weights, 1 / 3))  # the weights trained
    predictions = pd.read_csv(tmp_path / "run" / "test_predictions.csv")
    with torch.no_grad():
        logits = torch.cat([model(load_audio(f)[None]) for f in predictions["filename"]])
    np.testing.assert_allclose(
        torch.softmax(logits, -1).numpy(), predictions[[f"prob_{c}" for c in CLASSES]], atol=1e-5
    )
    # a store of every hidden state also serves a head on the last layer, and one of the last layer
    # does not serve layer weights
    plain = _probe_config(tmp_path / "plain", tmp_path / "store", tiny, max_epochs=2)
    again = BEATsTrainer.from_directory(sound_root, config=plain, batch_size=8).train()
    assert again.embeddings["recordings_embedded"] == 0
    last = tmp_path / "last"
    BEATsTrainer.from_directory(sound_root, config=plain.replace(embeddings=str(last)), batch_size=8).train(
        overwrite=True
    )
    with pytest.raises(StoreError, match="layer=\\[2\\] \\(weighted_layer_sum mixes every hidden state"):
        BEATsTrainer.from_directory(
            sound_root, config=config.replace(embeddings=str(last)), batch_size=8
        ).train(overwrite=True)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"augmentation": {"time_masks": 2}}, "time_masks=2"),
        ({"augmentation": {"freq_masks": 1}}, "freq_masks=1"),
        ({"augmentation": {"roll": True}}, "roll=True"),
        ({"augmentation": {"gain_db": 6.0}}, "gain_db=6.0"),
        ({"augmentation": {"mixup": 0.4}}, "mixup=0.4"),
        ({"head_dropout": 0.1}, "head_dropout=0.1"),
        ({"unfreeze_after": 2}, "unfreeze_after=2"),
        ({"freeze_backbone": False}, "needs freeze_backbone=True"),
    ],
)
def test_settings_a_store_cannot_reproduce_are_refused_naming_them(overrides, named):
    values = {"freeze_backbone": True, "embeddings": "store", **overrides}
    with pytest.raises(ConfigError, match=r"TrainingConfig\.embeddings") as error:
        TrainingConfig(**values)
    assert named in str(error.value)
    with pytest.raises(ConfigError, match="embeddings"):  # also as a preset's override
        TrainingConfig.preset("fast", freeze_backbone=True, embeddings="store")


def test_resuming_a_probe_and_clips_without_a_store_are_refused(sound_root, tiny, tmp_path):
    trainer = BEATsTrainer.from_directory(
        sound_root, config=_probe_config(tmp_path / "r", tmp_path / "s", tiny)
    )
    with pytest.raises(ConfigError, match="not resumed"):
        trainer.train(resume_from=tmp_path / "r")
    with pytest.raises(ConfigError, match="not resumed"):
        trainer.train(stop_after=1)
    assert not (tmp_path / "r").exists()  # refused before any work

    clips = pd.DataFrame(
        {"filename": [str(p) for p in sorted(sound_root.rglob("*.wav"))], "start": 0.0, "end": 0.5}
    )
    clips["category"] = [Path(f).parent.name for f in clips["filename"]]
    config = TrainingConfig(model=str(tiny), max_epochs=1, output_dir=str(tmp_path / "fly"), progress=False)
    on_the_fly = BEATsTrainer.from_dataframe(clips, config=config, start_column="start", end_column="end")
    with pytest.raises(ConfigError, match=r"clips of recordings .* --embeddings STORE"):
        on_the_fly.train()
    fine_tuned = BEATsTrainer.from_checkpoint(
        testkit.REFERENCE_DIR / "tiny_finetuned.pt",
        data_config=DataConfig(start_column="start", end_column="end"),
    )
    with pytest.raises(ConfigError, match="evaluate reads whole files"):
        fine_tuned.evaluate(clips)


@pytest.mark.parametrize(
    ("extractor_options", "run_overrides", "message"),
    [
        ({"pooling": "max"}, {}, "pooling='max'"),
        ({"layer": 1}, {}, "layer=\\[1\\]"),
        ({"dtype": "bfloat16"}, {}, "dtype='bfloat16' \\(this run computes in float32"),
        ({"window_seconds": 0.5}, {}, "as long as 1 s in windows of 0.5 s \\(its window_seconds\\)"),
        ({}, {"fbank_mean": 10.0}, "another encoder .* fbank statistics"),
        ({}, {"model": "random:tiny", "seed": 3}, "another encoder .* depend on the seed \\(seed=3\\)"),
    ],
)
@pytest.mark.filterwarnings(
    "ignore::beats_core.devices.PrecisionWarning"
)  # a store made in emulated bfloat16
def test_a_store_made_otherwise_is_refused_with_what_differs(
    sound_root, tiny, tmp_path, extractor_options, run_overrides, message
):
    files = sorted(sound_root.rglob("*.wav"))[:2]
    options = {"pooling": "mean", "dtype": "float32", "num_workers": 0, **extractor_options}
    embed_into_store(BEATsFeatureExtractor(str(tiny), **options), files, tmp_path / "store", progress=False)
    parts = _parts(tmp_path / "store")
    overrides = {"model": tiny, **run_overrides}
    config = _probe_config(tmp_path / "run", tmp_path / "store", **overrides)
    with pytest.raises(StoreError, match=message) as error:
        BEATsTrainer.from_directory(sound_root, config=config, batch_size=8).train()
    assert str(tmp_path / "store") in str(error.value)
    assert _parts(tmp_path / "store") == parts  # nothing was added to it


def test_a_store_of_other_clips_serves_short_files_and_refuses_long_ones(tiny, tmp_path):
    root = tmp_path / "data"
    for k, name in enumerate(CLASSES[:2]):
        for i in range(4):
            testkit.write_audio(
                root / name / f"{name}_{i}.wav", testkit.sound_clip(name, 1.0, seed=10 * k + i), 16000
            )
    store = tmp_path / "store"
    files = sorted(root.rglob("*.wav"))
    extractor = BEATsFeatureExtractor(str(tiny), clip_seconds=1.0, dtype="float32", num_workers=0)
    embed_into_store(extractor, files, store, progress=False)  # an archive of 1 s clips (10 s windows)
    config = _probe_config(tmp_path / "run", store, tiny, max_epochs=2)
    split = {"train_split": 0.5, "val_split": 0.25, "test_split": 0.25}
    results = BEATsTrainer.from_directory(root, config=config, batch_size=4, **split).train()
    assert results.embeddings["recordings_reused"] == 8  # a 1 s file is one 1 s clip, whole

    longer = root / CLASSES[0] / "long.wav"
    testkit.write_audio(longer, testkit.sound_clip(CLASSES[0], 2.6, seed=99), 16000)
    with pytest.raises(
        StoreError, match=r"cuts '.*long\.wav' into the clips 0-1, 1-2, 2-2\.6 s, and training reads"
    ):
        BEATsTrainer.from_directory(root, config=config, batch_size=4, max_duration=2.0, **split).train(
            overwrite=True
        )
    assert str(longer) not in completed_recordings(store)  # refused before embedding


# ----------------------------------------------------------------------------- clips of recordings


@pytest.fixture(scope="module")
def archive(tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    """Three 8 s recordings of 1 s sounds in a known order, in a store of 1 s clips, and the sound of each second."""
    root = tmp_path_factory.mktemp("archive")
    truth = []
    recordings = []
    for r in range(3):
        names = [CLASSES[(r + s) % 4] for s in range(8)]
        audio = np.concatenate([testkit.sound_clip(n, 1.0, seed=1000 * r + s) for s, n in enumerate(names)])
        recordings.append(testkit.write_audio(root / f"recording{r}.flac", audio, 16000))
        truth += [(str(recordings[-1]), float(s), float(s + 1), n) for s, n in enumerate(names)]
    store = root / "store"
    extractor = BEATsFeatureExtractor(str(tiny), clip_seconds=1.0, dtype="float32", num_workers=0)
    embed_into_store(extractor, recordings, store, progress=False)
    return store, pd.DataFrame(truth, columns=["path", "start", "end", "label"])


def _hits_table(truth: pd.DataFrame, path: Path, off_grid: int) -> Path:
    """A labelled hits table as `beats search -o` writes it, plus ``off_grid`` clips that are not rows of the store."""
    table = truth.assign(score=1.0, query="q.wav")[["path", "start", "end", "score", "label", "query"]]
    shifted = table.iloc[:off_grid].assign(start=lambda t: t["start"] + 0.25, end=lambda t: t["end"] + 0.25)
    pd.concat([table, shifted]).to_csv(path, index=False, float_format="%.3f")
    return path


def test_a_hits_table_trains_on_the_stores_rows_and_cuts_the_others(archive, tiny, tmp_path, capsys):
    store, truth = archive
    hits = _hits_table(truth, tmp_path / "hits.csv", off_grid=3)
    assert hits_table_columns(hits) == {
        "audio_column": "path",
        "label_column": "label",
        "start_column": "start",
        "end_column": "end",
    }
    parts = _parts(store)
    arguments = ["train", str(hits), "--freeze-backbone", "--embeddings", str(store), "--model", str(tiny)]
    arguments += ["--epochs", "6", "--lr", "0.05", "--batch-size", "8", "--output-dir", str(tmp_path / "run")]
    assert main([*arguments, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"embeddings from {store}: 3 recordings reused, 0 embedded, 3 clips cut from their audio" in out
    assert _parts(store) == parts  # the store holds whole recordings: clips are never added to it
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    splits = pd.read_csv(tmp_path / "run" / "splits.csv")
    assert results["embeddings"]["clips_cut_from_audio"] == 3
    assert results["test_metrics"]["num_samples"] == (splits["split"] == "test").sum()
    assert list(splits.columns[:4]) == ["filename", CLIP_START, CLIP_END, "category"] and len(splits) == 27
    assert (splits[CLIP_END] - splits[CLIP_START]).round(3).eq(1.0).all()


def test_clips_take_their_stored_rows_or_their_own_audio(archive, tiny, tmp_path):
    store, truth = archive
    hits = _hits_table(truth, tmp_path / "hits.csv", off_grid=2)
    data_config = DataConfig(
        metadata_file=str(hits),
        audio_column="path",
        label_column="label",
        start_column="start",
        end_column="end",
    )
    data = prepare_data(data_config, progress=False, split=False)
    data.frame["split"] = "train"
    config = _probe_config(tmp_path / "run", store, tiny)
    model = create_model(tiny)
    extractor, settings = store_extractor(
        model, config, data_config, precision="no", batch_size=8, device=torch.device("cpu")
    )
    assert settings["clip_seconds"] == 1.0
    splits, run = embed_dataset(data, extractor, config, data_config, stacked=False)
    embeddings = splits["train"]
    assert run.cut == 2 and run.embedded == 0 and run.reused == 3
    assert embeddings.rows.tolist() == list(range(26))  # one window per 1 s clip
    stored = read_store(store)
    for position in (0, 7, 24, 25):  # two rows of the store, then the two clips a quarter second off the grid
        path, start, end = data.frame.loc[position, ["filename", CLIP_START, CLIP_END]]
        if position < 24:
            row = next(i for i, p in enumerate(stored.paths) if p == path and stored.starts[i] == start)
            expected = stored.features[row]
        else:
            alone = BEATsFeatureExtractor(model, dtype="float32", num_workers=0)
            expected = alone.extract_from_array(load_audio(path, offset=start, duration=end - start))
        np.testing.assert_allclose(embeddings.features[position].numpy(), expected, atol=1e-5)


def test_cross_validation_embeds_the_dataset_once(tmp_path, tiny):
    frame = testkit.make_fold_dataset(tmp_path / "data", folds=3, clips_per_fold=2, seconds=0.5)
    config = _probe_config(tmp_path / "cv", tmp_path / "store", tiny, max_epochs=2)
    summary = BEATsTrainer.from_dataframe(frame, config=config, batch_size=4).cross_validate()
    embedded = [run.embeddings["recordings_embedded"] for run in summary.runs]
    assert embedded == [24, 0, 0] and [run.embeddings["recordings_reused"] for run in summary.runs] == [
        0,
        24,
        24,
    ]
    assert len(summary.accuracies) == 3


@pytest.mark.parametrize(
    "overrides",
    [
        {"class_balance": "sampler"},
        {"class_balance": "loss", "label_smoothing": 0.1},
        {"gradient_accumulation_steps": 2, "gradient_clipping": 0.5, "optimizer": "sgd"},
        {"monitor": "loss", "patience": 1, "max_epochs": 20},
    ],
)
def test_training_options_of_the_loop_run_on_stored_embeddings(
    two_runs, sound_root, tiny, tmp_path, overrides
):
    store = two_runs[0]
    config = _probe_config(tmp_path / "run", store, tiny, **overrides)
    results = BEATsTrainer.from_directory(sound_root, config=config, batch_size=8).train()
    assert results.embeddings["recordings_embedded"] == 0
    assert np.isfinite(results.history["train_loss"]).all() and 0.0 <= results.test_metrics["accuracy"] <= 1.0
    if "patience" in overrides:
        assert results.stopped_early and results.epochs < 20
        assert results.epochs == results.best_epoch + 1


def test_the_probe_takes_the_loops_path_epoch_by_epoch(sound_root, tiny, tmp_path):
    """Same seed, same data: the same initial head, mini-batches, optimiser steps and metrics as the encoder loop."""
    histories, accuracies = [], []
    for name, store in (("loop", None), ("probe", tmp_path / "store")):
        config = _probe_config(tmp_path / name, store, tiny, max_epochs=4, embeddings=store and str(store))
        trainer = BEATsTrainer.from_directory(sound_root, config=config, batch_size=8)
        results = trainer.train()
        histories.append(results.history.drop(columns=["seconds", "lr"], errors="ignore"))
        accuracies.append(results.test_metrics["accuracy"])
    loop, probe = histories
    assert list(loop.columns) == list(probe.columns)
    np.testing.assert_allclose(probe.to_numpy(dtype=float), loop.to_numpy(dtype=float), atol=2e-4, rtol=1e-4)
    assert accuracies[0] == accuracies[1]
