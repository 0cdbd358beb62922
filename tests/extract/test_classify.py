"""A fine-tuned checkpoint as a clip classifier: its output on every clip cut out, and ``predict`` per file.

Every expected value is computed the plain way, with the model's own ``extract_features`` /
``forward_head`` on the clip cut out of the decoded recording, and compared with what the
classifier gives through the extractor (batched, padded, clip by clip).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import testkit
import torch

from beats_core import create_model, load_audio, save_checkpoint
from beats_core.audioset import display_name
from beats_core.clips import ClipRule
from beats_core.errors import CheckpointError, ConfigError, StoreError
from beats_core.model import BEATs
from beats_extract import BEATsFeatureExtractor, ClipClassifier, SkippedFileWarning, detect_events
from beats_extract.archive import embed_into_store

CLIP_SECONDS, OVERLAP = 2.0, 0.5
#: How every detection of these tests runs: 2 s clips sharing 0.5 s, in float32, in this process.
FROM_AUDIO = {
    "clip_seconds": CLIP_SECONDS,
    "clip_overlap": OVERLAP,
    "dtype": "float32",
    "num_workers": 0,
    "progress": False,
}
LABELS = {0: "owl", 1: "frog", 2: "wind", 3: "rain", 4: "engine"}


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """7.3 s of changing sounds at 22.05 kHz: its clips (the last one 1.3 s) differ from each other."""
    pieces = [testkit.class_sound(k % 4, 1.5, 22050, seed=k) for k in range(5)]
    signal = np.concatenate(pieces)[: round(7.3 * 22050)]
    return testkit.write_audio(tmp_path_factory.mktemp("recording") / "site.flac", signal, 22050)


@pytest.fixture(scope="module")
def trained_checkpoint(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny fine-tuned model as beats-train saves a single-label model that mixes its layers."""
    model = create_model(reference_dir / "tiny_finetuned.pt")
    model.cfg.extra["beats_train"] = {"multi_label": False, "layer_weights": [0.2, 0.3, 0.5]}
    return save_checkpoint(model, tmp_path_factory.mktemp("trained") / "best_model.pt", label_dict=LABELS)


def clips_cut_out(path: Path, rule: ClipRule) -> list[tuple[float, float, torch.Tensor]]:
    waveform = load_audio(path)
    return [
        (c.start_seconds, c.end_seconds, waveform[c.start : c.stop][None]) for c in rule.clips(len(waveform))
    ]


def confidence_matrix(table: pd.DataFrame, names: list[str]) -> np.ndarray:
    """``(clips, K)`` confidences of a table that holds every clip and class, in time order."""
    wide = table.pivot_table(index="start", columns="label", values="confidence")
    return wide[names].to_numpy()


def test_an_official_checkpoint_gives_its_sigmoid_on_each_clip_cut_out(reference_dir, recording):
    checkpoint = reference_dir / "tiny_finetuned.pt"
    model = create_model(checkpoint)
    classifier = ClipClassifier(checkpoint)
    assert classifier.multi_label and classifier.layer == -1 and classifier.clip_seconds == 10.0
    assert classifier.names == ["Speech", "Music", "Dog", "Rain", "Engine"]
    assert classifier.label_ids == ["/m/09x0r", "/m/04rlf", "/m/0bt9lr", "/m/06mb1", "/m/02mk9"]

    table = detect_events(classifier, [recording], min_confidence=0.0, batch_size=3, **FROM_AUDIO)
    clips = clips_cut_out(recording, ClipRule(CLIP_SECONDS, OVERLAP))
    assert len(clips) == 5 and clips[-1][1] - clips[-1][0] == pytest.approx(1.3)
    assert len(table) == 5 * 5 and set(table["path"]) == {str(recording)}
    assert sorted(set(zip(table["start"], table["end"], strict=True))) == [(s, e) for s, e, _ in clips]
    assert dict(zip(table["label"], table["label_id"], strict=True)) == {
        display_name(i): i for i in classifier.label_ids
    }
    with torch.no_grad():
        expected = np.concatenate([model.extract_features(clip)[0].numpy() for _, _, clip in clips])
    got = confidence_matrix(table, classifier.names)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.ptp(expected, axis=0).max() > 1e-3  # the clips differ, so the comparison can fail


def test_a_beats_train_checkpoint_gives_its_softmax_over_the_weighted_layers(trained_checkpoint, recording):
    model = create_model(trained_checkpoint)
    classifier = ClipClassifier(trained_checkpoint)
    assert not classifier.multi_label and classifier.layer == "all" and classifier.label_ids is None
    np.testing.assert_allclose(classifier.layer_weights, [0.2, 0.3, 0.5], atol=1e-7)

    table = detect_events(trained_checkpoint, [recording], min_confidence=0.0, batch_size=2, **FROM_AUDIO)
    assert "label_id" not in table and set(table["label"]) == set(LABELS.values())
    expected = []
    with torch.no_grad():
        for _, _, clip in clips_cut_out(recording, ClipRule(CLIP_SECONDS, OVERLAP)):
            hidden, mask = model.extract_hidden_states(clip)
            mixed = sum(w * h for w, h in zip([0.2, 0.3, 0.5], hidden, strict=True))
            expected.append(torch.softmax(model.forward_head(mixed, mask), dim=-1).numpy())
    got = confidence_matrix(table, list(LABELS.values()))
    np.testing.assert_allclose(got, np.concatenate(expected), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_the_head_on_pooled_embeddings_is_the_mean_of_the_token_logits(reference_dir):
    """The identity detection rests on: a linear head commutes with the mean over tokens."""
    model = create_model(reference_dir / "tiny_finetuned.pt")
    waveforms = torch.from_numpy(np.stack([testkit.class_sound(k, 1.7, seed=k) for k in range(3)]))
    with torch.no_grad():
        tokens, _ = model.forward_features(waveforms)
        logits = model.forward_head(tokens).numpy()
    pooled = tokens.mean(dim=1).numpy()
    np.testing.assert_allclose(ClipClassifier(model).logits(pooled), logits, atol=1e-5, rtol=0)


def test_the_training_clip_length_comes_from_the_checkpoint(reference_dir, tmp_path):
    model = create_model(reference_dir / "tiny_finetuned.pt")
    model.cfg.extra["beats_train"] = {"multi_label": True, "layer_weights": None, "max_duration": 4.0}
    path = save_checkpoint(model, tmp_path / "four_seconds.pt")
    assert ClipClassifier(path).clip_seconds == 4.0
    assert ClipClassifier(path, clip_seconds=3.0).clip_seconds == 3.0
    assert ClipClassifier(reference_dir / "tiny_finetuned.pt").clip_seconds == 10.0


def test_a_pretrained_checkpoint_without_a_head_says_how_to_get_one(reference_dir):
    with pytest.raises(ConfigError, match="without a classifier head") as caught:
        ClipClassifier(reference_dir / "tiny_pretrained.pt")
    assert "beats train" in str(caught.value) and "--freeze-backbone" in str(caught.value)


def test_layer_weights_that_do_not_fit_the_model_are_refused(reference_dir, tmp_path):
    model = create_model(reference_dir / "tiny_finetuned.pt")
    model.cfg.extra["beats_train"] = {"multi_label": False, "layer_weights": [0.5, 0.5]}
    path = save_checkpoint(model, tmp_path / "two_weights.pt")
    with pytest.raises(CheckpointError, match="layer_weights must be 3 non-negative numbers"):
        ClipClassifier(path)


# ----------------------------------------------------------------------------- predict


def test_predict_averages_the_logits_of_the_windows(trained_checkpoint, tmp_path):
    """One row per file: each window of the clip length classified alone, logits averaged, then the softmax."""
    path = testkit.write_audio(tmp_path / "long.wav", testkit.class_sound(2, 2.92, 16000, seed=3), 16000)
    missing = tmp_path / "missing.wav"
    classifier = ClipClassifier(trained_checkpoint)
    with pytest.warns(SkippedFileWarning, match="missing.wav"):
        table = classifier.predict(
            [path, missing], clip_seconds=1.0, dtype="float32", num_workers=0, progress=False
        )

    assert list(table.columns) == ["filename", "label", "probability"] + [
        f"prob_{v}" for v in LABELS.values()
    ]
    assert table["filename"].tolist() == [str(path), str(missing)]
    model = create_model(trained_checkpoint)
    windows = clips_cut_out(path, ClipRule.windows(1.0))
    assert len(windows) == 3 and all(e - s == pytest.approx(1.0) for s, e, _ in windows)
    with torch.no_grad():
        logits = []
        for _, _, window in windows:
            hidden, mask = model.extract_hidden_states(window)
            logits.append(
                model.forward_head(sum(w * h for w, h in zip([0.2, 0.3, 0.5], hidden, strict=True)), mask)
            )
        expected = torch.softmax(torch.cat(logits).mean(dim=0), dim=-1).numpy()
    probabilities = table[[f"prob_{v}" for v in LABELS.values()]].to_numpy()
    np.testing.assert_allclose(probabilities[0], expected, atol=1e-5, rtol=0)
    assert table["label"][0] == list(LABELS.values())[int(np.argmax(expected))]
    assert table["probability"][0] == pytest.approx(expected.max(), abs=1e-5)
    assert table["label"][1] == "" and np.isnan(probabilities[1]).all() and np.isnan(table["probability"][1])


def test_predict_with_audioset_labels_shows_names_and_keeps_the_ids(reference_dir, recording):
    classifier = ClipClassifier(reference_dir / "tiny_finetuned.pt")
    table = classifier.predict([recording], clip_seconds=2.0, dtype="float32", num_workers=0, progress=False)
    names = ["Speech", "Music", "Dog", "Rain", "Engine"]
    assert list(table.columns) == ["filename", "label", "probability", "label_id"] + [
        f"prob_{n}" for n in names
    ]
    probabilities = table[[f"prob_{n}" for n in names]].to_numpy()[0]
    chosen = [k for k in range(5) if probabilities[k] >= 0.5]  # multi-label: every class at 0.5 or more
    assert table["label"][0] == ",".join(names[k] for k in chosen)
    assert table["label_id"][0] == ",".join(classifier.label_ids[k] for k in chosen)


def test_predict_gives_what_beats_train_gives(trained_checkpoint, tmp_path):
    """The same table as beats-train's predict, on files whose windows all have the clip length.

    (beats-train pads shorter windows in its batches with the official padding mask, which is not
    aligned with the patches, so its probabilities for them move by up to a few 1e-3; ours are
    those of each window alone.)
    """
    beats_train = pytest.importorskip(
        "beats_train"
    )  # not in the environment of beats-core and beats-extract alone
    files = [
        testkit.write_audio(tmp_path / f"clip{k}.wav", testkit.class_sound(k, seconds, 16000, seed=k), 16000)
        for k, seconds in enumerate([1.96, 2.92, 1.0])
    ]
    theirs = beats_train.BEATsTrainer.from_checkpoint(
        trained_checkpoint, data_config=beats_train.DataConfig(max_duration=1.0)
    ).predict(files)
    ours = ClipClassifier(trained_checkpoint).predict(
        files, clip_seconds=1.0, dtype="float32", progress=False
    )
    assert list(ours.columns) == list(theirs.columns)
    assert ours["label"].tolist() == theirs["label"].tolist()
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, atol=1e-4, rtol=0, check_dtype=False)


# ----------------------------------------------------------------------------- stored embeddings


def test_a_store_of_other_layers_cannot_feed_a_head_that_mixes_layers(
    trained_checkpoint, recording, tmp_path
):
    def store(layer, folder):
        options = {key: FROM_AUDIO[key] for key in ("clip_seconds", "clip_overlap", "dtype", "num_workers")}
        extractor = BEATsFeatureExtractor(str(trained_checkpoint), layer=layer, **options)
        embed_into_store(extractor, [recording], folder, progress=False)
        return folder

    with pytest.raises(StoreError, match=r"layer is \[2\], the head reads 'all'.*--layer all"):
        detect_events(trained_checkpoint, embeddings=store(-1, tmp_path / "last"), progress=False)
    from_store = detect_events(
        trained_checkpoint, embeddings=store("all", tmp_path / "all"), min_confidence=0.0
    )
    from_audio = detect_events(trained_checkpoint, [recording], min_confidence=0.0, **FROM_AUDIO)
    pd.testing.assert_frame_equal(from_store, from_audio, check_exact=False, atol=1e-4, rtol=0)


def test_the_classifier_takes_a_model_in_memory(reference_dir):
    model = create_model(reference_dir / "tiny_finetuned.pt")
    classifier = ClipClassifier(model, multi_label=False, layer_weights=[1, 1, 2])
    assert classifier.model is model and isinstance(classifier.model, BEATs)
    assert not classifier.multi_label
    np.testing.assert_allclose(classifier.layer_weights, [0.25, 0.25, 0.5])
    features = np.random.default_rng(0).standard_normal((4, 3, 64)).astype(np.float32)
    probabilities = classifier.classify(features)
    assert probabilities.shape == (4, 5) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ConfigError, match=r"reads embeddings of shape \(3, 64\)"):
        classifier.logits(features[:, 0])
