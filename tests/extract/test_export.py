"""ONNX export (``export_onnx``, ``beats export``) and the onnxruntime runtime (``OnnxModel``).

Every graph is exported for real from the reference checkpoints (or the base size with random
weights) and run with onnxruntime on generated audio; outputs are compared with the torch
model: the feature extractor for embeddings, the official ``extract_features`` for
probabilities, each clip alone. Without onnxruntime (the minimal install) these tests skip.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import testkit
import torch

from beats_core import BEATs, BEATsConfig, create_model, save_checkpoint
from beats_core.cli import main
from beats_core.errors import (
    CheckpointError,
    ConfigError,
    InvalidAudioError,
    MissingDependencyError,
    UnknownPoolingError,
)
from beats_core.geometry import num_time_steps
from beats_extract import BEATsFeatureExtractor, detect_events
from beats_extract.classify import OnnxClipClassifier, open_classifier
from beats_extract.export import ExportedForward, export_onnx, quantize_onnx, time_steps_of_lengths
from beats_extract.onnx_model import FORMAT_VERSION, OnnxModel
from beats_extract.poolings import get_pooling

# Clip lengths of a padded batch: 3.1 s, 1 s, shorter than one time step (padded to 2800 samples), 2.2 s.
LENGTHS = [49600, 16000, 1200, 35200]


@pytest.fixture(scope="module")
def onnx_installed() -> None:
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)


@pytest.fixture(scope="module")
def pretrained_onnx(onnx_installed, tmp_path_factory, reference_dir) -> Path:
    return export_onnx(
        reference_dir / "tiny_pretrained.pt", tmp_path_factory.mktemp("onnx") / "pretrained.onnx"
    )


@pytest.fixture(scope="module")
def finetuned_onnx(onnx_installed, tmp_path_factory, reference_dir) -> Path:
    return export_onnx(
        reference_dir / "tiny_finetuned.pt", tmp_path_factory.mktemp("onnx") / "finetuned.onnx"
    )


def clips_and_batch(lengths: list[int], seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Generated clips of the given lengths, and the zero-padded batch and lengths the graph takes."""
    clips = [
        testkit.class_sound(k % 5, n / 16000, seed=seed + k) * (0.3 + 0.2 * k) for k, n in enumerate(lengths)
    ]
    batch = np.zeros((len(clips), max(lengths)), dtype=np.float32)
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = clip
    return clips, batch, np.asarray(lengths, dtype=np.int64)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_time_steps_of_lengths_is_the_geometry_rule():
    lengths = torch.arange(0, 30000, 37)
    expected = [num_time_steps(int(n)) for n in lengths]
    assert time_steps_of_lengths(lengths, 16).tolist() == expected


# ----------------------------------------------------------------------------- parity


def test_pretrained_export_gives_the_extractors_embeddings_on_a_padded_batch(
    pretrained_onnx, tiny_checkpoint
):
    clips, batch, lengths = clips_and_batch(LENGTHS)
    onnx_model = OnnxModel(pretrained_onnx)
    output = onnx_model(batch, lengths)

    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling="mean", device="cpu", dtype="float32")
    alone = np.stack([extractor.extract_from_array(clip, 16000) for clip in clips])
    assert output.shape == (4, 64) and output.dtype == np.float32
    np.testing.assert_allclose(output, alone, rtol=0, atol=1e-4)
    # each row is independent of the rest of the batch: one row alone, and the batch in another order
    np.testing.assert_allclose(onnx_model(batch[1:2], lengths[1:2]), output[1:2], rtol=0, atol=1e-5)
    np.testing.assert_allclose(onnx_model(batch[::-1], lengths[::-1]), output[::-1], rtol=0, atol=1e-5)


def test_finetuned_export_gives_the_official_probabilities_on_a_padded_batch(finetuned_onnx, reference_dir):
    clips, batch, lengths = clips_and_batch(LENGTHS, seed=7)
    output = OnnxModel(finetuned_onnx)(batch, lengths)

    model = create_model(reference_dir / "tiny_finetuned.pt")
    with torch.inference_mode():
        alone = [
            model.extract_features(torch.from_numpy(np.pad(clip, (0, max(0, 2800 - len(clip))))[None]))[0][0]
            for clip in clips
        ]
    assert output.shape == (4, 5) and ((output > 0) & (output < 1)).all()
    np.testing.assert_allclose(output, torch.stack(alone).numpy(), rtol=0, atol=1e-4)


def test_clips_shorter_than_one_time_step_are_padded_like_the_extractor_pads_them(
    pretrained_onnx, tiny_checkpoint
):
    clips, batch, lengths = clips_and_batch([1200, 2000])
    output = OnnxModel(pretrained_onnx)(batch, lengths)  # N = 2000 < 2800: padded to one time step
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling="mean", device="cpu", dtype="float32")
    alone = np.stack([extractor.extract_from_array(clip, 16000) for clip in clips])
    np.testing.assert_allclose(output, alone, rtol=0, atol=1e-4)
    assert OnnxModel(pretrained_onnx)(np.zeros((0, 5000), np.float32), np.zeros(0, np.int64)).shape == (0, 64)


@pytest.mark.slow
def test_base_size_parity_and_the_model_is_left_as_it_was(onnx_installed, tmp_path):
    torch.manual_seed(0)
    model = BEATs(BEATsConfig.base())  # random weights, the real structure; in training mode
    clips, batch, lengths = clips_and_batch([80000, 30000])
    path = export_onnx(model, tmp_path / "base.onnx")
    assert model.training  # export ran in eval mode and restored the mode

    output = OnnxModel(path)(batch, lengths)
    with torch.inference_mode():
        model.eval()
        expected = ExportedForward(model, get_pooling("mean"))(
            torch.from_numpy(batch), torch.from_numpy(lengths)
        )
        alone, _ = model.extract_features(torch.from_numpy(clips[1])[None])
    assert output.shape == (2, 768)
    np.testing.assert_allclose(output, expected.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(output[1], alone[0].mean(dim=0).numpy(), rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- int8


def test_int8_keeps_the_pooled_embeddings(pretrained_onnx, tmp_path):
    path = quantize_onnx(pretrained_onnx, tmp_path / "int8.onnx")
    quantized, full = OnnxModel(path), OnnxModel(pretrained_onnx)
    assert quantized.metadata.quantize == "int8" and full.metadata.quantize == "none"
    assert path.stat().st_size < pretrained_onnx.stat().st_size
    _, batch, lengths = clips_and_batch([40000, 12000, 30000, 20000, 25000, 5000], seed=3)
    assert cosines(quantized(batch, lengths), full(batch, lengths)).min() >= 0.99
    with pytest.raises(CheckpointError, match="already quantized"):
        quantize_onnx(path, tmp_path / "twice.onnx")


def _train_on_synthetic_sounds(classes: list[str]) -> BEATs:
    """Fine-tune the tiny reference model on generated sounds until its predictions are confident."""
    from beats_data.synthetic import synthesize_clip

    torch.manual_seed(0)
    model = create_model(testkit.REFERENCE_DIR / "tiny_pretrained.pt")
    model.reset_classifier(len(classes))
    model.label_dict = dict(enumerate(classes))
    clips = torch.stack(
        [
            torch.from_numpy(synthesize_clip(name, 1.5, seed=100 * i + k))
            for k in range(24)
            for i, name in enumerate(classes)
        ]
    )
    targets = torch.eye(len(classes)).repeat(24, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(12):
        for batch in torch.randperm(len(clips)).split(16):
            features, mask = model.forward_features(clips[batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model.forward_head(features, mask), targets[batch]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.mark.slow
def test_int8_agrees_with_float32_on_a_confident_finetuned_model(onnx_installed, tmp_path):
    """Top-1 agreement of int8 with float32 on fresh generated clips, for a model whose predictions mean something."""
    synthetic = pytest.importorskip("beats_data.synthetic")
    classes = list(synthetic.SYNTHETIC_CLASSES)
    model = _train_on_synthetic_sounds(classes)
    full = OnnxModel(export_onnx(model, tmp_path / "trained.onnx"))
    quantized = OnnxModel(quantize_onnx(tmp_path / "trained.onnx", tmp_path / "trained_int8.onnx"))
    assert full.labels == classes

    rng = np.random.default_rng(1)
    names = [classes[i] for i in rng.integers(0, len(classes), 300)]
    lengths = rng.integers(12000, 40000, 300)
    truth, agree, confidence = [], [], []
    for start in range(0, 300, 20):
        rows = range(start, start + 20)
        clips = [synthetic.synthesize_clip(names[r], lengths[r] / 16000, seed=10_000 + r) for r in rows]
        batch = np.zeros((20, max(len(c) for c in clips)), np.float32)
        for k, clip in enumerate(clips):
            batch[k, : len(clip)] = clip
        sizes = np.array([len(c) for c in clips])
        reference, int8 = full(batch, sizes), quantized(batch, sizes)
        truth += [classes[i] == names[r] for i, r in zip(reference.argmax(1), rows, strict=True)]
        agree += list(reference.argmax(1) == int8.argmax(1))
        confidence += list(reference.max(1))
    # a fair test: the float32 model recognises the sounds (4x chance; 67 % measured), with varied answers
    assert np.mean(truth) >= 4 / len(classes) and np.median(confidence) >= 0.5
    assert np.mean(agree) >= 0.99, f"int8 agrees with float32 on {np.mean(agree):.1%} of the clips"


# ----------------------------------------------------------------------------- metadata


def test_metadata_carries_labels_provenance_and_settings(finetuned_onnx, reference_dir):
    import onnx

    checkpoint = reference_dir / "tiny_finetuned.pt"
    meta = OnnxModel(finetuned_onnx).metadata
    saved = torch.load(checkpoint, weights_only=True)
    assert meta.kind == "probabilities" and meta.output_dim == 5 and meta.pooling == "mean"
    assert meta.labels == [saved["label_dict"][i] for i in range(5)]
    assert meta.model == str(checkpoint)
    assert meta.checkpoint_sha256 == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert meta.cfg == create_model(checkpoint).cfg.to_dict()
    assert (meta.sample_rate, meta.min_samples, meta.quantize) == (16000, 2800, "none")
    assert meta.version and meta.exporter.startswith("torch ") and meta.opset >= 18
    assert meta.format_version == FORMAT_VERSION
    # any ONNX tool reads it: plain strings under beats.*
    props = {p.key: p.value for p in onnx.load(str(finetuned_onnx)).metadata_props}
    assert json.loads(props["beats.labels"]) == meta.labels and props["beats.kind"] == "probabilities"


def test_a_pretrained_export_has_no_labels(pretrained_onnx):
    model = OnnxModel(pretrained_onnx)
    assert model.metadata.kind == "embeddings" and model.labels is None and model.output_dim == 64
    assert "kind='embeddings'" in repr(model)


# ----------------------------------------------------------------------------- errors


def test_the_runtime_refuses_bad_inputs_with_clear_errors(pretrained_onnx):
    model = OnnxModel(pretrained_onnx)
    batch = np.zeros((2, 8000), np.float32)
    with pytest.raises(InvalidAudioError, match=r"\(batch, samples\)"):
        model(np.zeros(8000, np.float32))
    with pytest.raises(InvalidAudioError, match="float samples"):
        model(np.zeros((2, 8000), np.int16))
    with pytest.raises(InvalidAudioError, match=r"row\(s\) \[1\] contain NaN"):
        model(np.stack([batch[0], np.full(8000, np.nan, np.float32)]))
    with pytest.raises(InvalidAudioError, match="2 integers"):
        model(batch, np.array([8000]))
    with pytest.raises(InvalidAudioError, match="2 integers"):
        model(batch, np.array([8000.0, 100.0]))
    with pytest.raises(InvalidAudioError, match=r"row\(s\) \[0, 1\] are \[0, 9000\]"):
        model(batch, np.array([0, 9000]))


def test_files_that_are_not_our_exports_are_refused(onnx_installed, tmp_path, tiny_checkpoint):
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(CheckpointError, match="not found"):
        OnnxModel(tmp_path / "missing.onnx")
    with pytest.raises(CheckpointError, match="not an ONNX model"):
        OnnxModel(tiny_checkpoint)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    other = tmp_path / "other.onnx"
    onnx.save_model(helper.make_model(graph), str(other))
    with pytest.raises(CheckpointError, match="not one exported by beats"):
        OnnxModel(other)


def test_missing_onnxruntime_names_the_extra(monkeypatch, tmp_path, tiny_checkpoint):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'beats-extract\[onnx\]'"):
        OnnxModel(tmp_path / "model.onnx")
    with pytest.raises(MissingDependencyError, match=r"pip install 'beats-extract\[onnx\]'"):
        export_onnx(tiny_checkpoint, tmp_path / "model.onnx")
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(MissingDependencyError, match="onnxscript"):
        export_onnx(tiny_checkpoint, tmp_path / "model.onnx")


def test_export_settings_are_checked_before_any_work(onnx_installed, tmp_path, reference_dir):
    finetuned = reference_dir / "tiny_finetuned.pt"
    with pytest.raises(ConfigError, match="quantize"):
        export_onnx(finetuned, tmp_path / "x.onnx", quantize="int4")
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(finetuned, tmp_path / "x.onnx", opset=13)
    with pytest.raises(ConfigError, match="official class probabilities"):
        export_onnx(finetuned, tmp_path / "x.onnx", pooling="max")
    with pytest.raises(UnknownPoolingError):
        export_onnx(reference_dir / "tiny_pretrained.pt", tmp_path / "x.onnx", pooling="median")
    with pytest.raises(CheckpointError):
        export_onnx(tmp_path / "missing.pt", tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())  # nothing written


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_beats_export_writes_an_int8_graph_with_another_pooling(
    onnx_installed, tiny_checkpoint, tmp_path, capsys
):
    out = tmp_path / "models" / "meanstd.onnx"
    status = main(
        ["export", str(tiny_checkpoint), "-o", str(out), "--quantize", "int8", "--pooling", "meanstd"]
    )
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert f"wrote {out} (int8, 128-d meanstd embeddings, opset" in captured.out

    model = OnnxModel(out)
    assert (model.metadata.quantize, model.metadata.pooling, model.output_dim) == ("int8", "meanstd", 128)
    clips, batch, lengths = clips_and_batch([30000, 20000, 9000])
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling="meanstd", device="cpu", dtype="float32")
    alone = np.stack([extractor.extract_from_array(clip, 16000) for clip in clips])
    assert cosines(model(batch, lengths), alone).min() >= 0.99


def test_beats_export_reports_errors_in_one_line(onnx_installed, reference_dir, tmp_path, capsys):
    finetuned = reference_dir / "tiny_finetuned.pt"
    assert main(["export", str(finetuned), "-o", str(tmp_path / "x.onnx"), "--pooling", "max"]) == 1
    assert "beats: error: pooling='max': a fine-tuned model" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "x.onnx")]) == 1
    assert "beats: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(finetuned), "-o", str(tmp_path / "x.onnx"), "--quantize", "int4"])


# ----------------------------------------------------------------------------- our tools on an ONNX model
def test_the_extractor_runs_an_exported_model_with_the_checkpoints_embeddings(
    pretrained_onnx, reference_dir, tmp_path
):
    files = [
        testkit.write_audio(tmp_path / "long.flac", testkit.class_sound(0, 13.3, 22050, seed=1), 22050),
        testkit.write_audio(tmp_path / "short.wav", testkit.class_sound(1, 1.7, 16000, seed=2), 16000),
    ]
    checkpoint = reference_dir / "tiny_pretrained.pt"
    for options in ({}, {"clip_seconds": 3.0}):
        onnx = BEATsFeatureExtractor(pretrained_onnx, num_workers=0, **options)
        torch_ = BEATsFeatureExtractor(str(checkpoint), num_workers=0, dtype="float32", **options)
        ours, expected = (
            onnx.extract_from_files(files, progress=False),
            torch_.extract_from_files(files, progress=False),
        )
        features = ours.features if options else ours
        np.testing.assert_allclose(features, expected.features if options else expected, atol=1e-4, rtol=0)
    assert onnx.settings()["dtype"] == "onnx-float32" and onnx.get_feature_dim() == 64


def test_beats_extract_fills_a_store_with_an_exported_model(pretrained_onnx, tmp_path, capsys):
    testkit.write_audio(tmp_path / "a.wav", testkit.class_sound(2, 4.5), 16000)
    store = tmp_path / "store"
    assert (
        main(
            [
                "extract",
                str(tmp_path / "a.wav"),
                "--model",
                str(pretrained_onnx),
                "-o",
                str(store),
                "--clip-seconds",
                "2",
            ]
        )
        == 0
    )
    manifest = json.loads((store / "_manifest.json").read_text())
    assert manifest["settings"]["dtype"] == "onnx-float32" and manifest["summary"]["rows"] == 3
    digest = hashlib.sha256(Path(pretrained_onnx).read_bytes()).hexdigest()
    assert manifest["settings"]["encoder_sha256"] == manifest["settings"]["model_sha256"] == digest


def test_the_extractor_refuses_what_an_export_cannot_give(pretrained_onnx, finetuned_onnx):
    with pytest.raises(ConfigError, match="classifier"):
        BEATsFeatureExtractor(finetuned_onnx)
    with pytest.raises(ConfigError, match=r"exported with pooling 'mean', not 'max'"):
        BEATsFeatureExtractor(pretrained_onnx, pooling="max")
    with pytest.raises(ConfigError, match="last layer only"):
        BEATsFeatureExtractor(pretrained_onnx, layer=0)
    overlapping = BEATsFeatureExtractor(pretrained_onnx, window_seconds=2.0, hop_seconds=1.0, num_workers=0)
    with pytest.raises(ConfigError, match="follow each other"):
        overlapping.extract_from_array(np.zeros(16000 * 5, np.float32))


# ----------------------------------------------------------------------------- detect and predict on an export


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory) -> Path:
    """7.3 s of changing sounds at 22.05 kHz: 2 s clips sharing 0.5 s, the last one 1.3 s."""
    pieces = [testkit.class_sound(k % 4, 1.5, 22050, seed=k) for k in range(5)]
    signal = np.concatenate(pieces)[: round(7.3 * 22050)]
    return testkit.write_audio(tmp_path_factory.mktemp("recording") / "site.flac", signal, 22050)


@pytest.fixture(scope="module")
def trained_checkpoint(reference_dir, tmp_path_factory) -> Path:
    """The tiny fine-tuned model as beats-train saves a single-label model that mixes its layers."""
    model = create_model(reference_dir / "tiny_finetuned.pt")
    model.cfg.extra["beats_train"] = {
        "multi_label": False,
        "layer_weights": [0.2, 0.3, 0.5],
        "max_duration": 2.0,
    }
    labels = {0: "owl", 1: "frog", 2: "wind", 3: "rain", 4: "engine"}
    return save_checkpoint(model, tmp_path_factory.mktemp("trained") / "best_model.pt", label_dict=labels)


def _confidences(table: pd.DataFrame) -> pd.DataFrame:
    return table.pivot_table(index="start", columns="label", values="confidence").sort_index(axis=1)


@pytest.mark.parametrize("which", ["official", "beats-train"])
def test_detect_and_predict_on_an_export_give_the_checkpoints_outputs(
    which, onnx_installed, reference_dir, trained_checkpoint, long_recording, tmp_path
):
    checkpoint = reference_dir / "tiny_finetuned.pt" if which == "official" else trained_checkpoint
    graph = export_onnx(checkpoint, tmp_path / "classifier.onnx")
    classifier = open_classifier(graph)
    assert isinstance(classifier, OnnxClipClassifier)
    assert OnnxModel(graph).metadata.activation == ("sigmoid" if which == "official" else "softmax")
    assert classifier.clip_seconds == (
        10.0 if which == "official" else 2.0
    )  # the checkpoint's record travels

    settings = {
        "clip_seconds": 2.0,
        "clip_overlap": 0.5,
        "min_confidence": 0.0,
        "num_workers": 0,
        "progress": False,
    }
    from_checkpoint = detect_events(checkpoint, [long_recording], dtype="float32", **settings)
    from_export = detect_events(graph, [long_recording], **settings)
    assert len(from_export) == len(from_checkpoint) == 5 * len(set(from_checkpoint["label"]))
    pd.testing.assert_frame_equal(_confidences(from_export), _confidences(from_checkpoint), atol=1e-4, rtol=0)

    long_file = testkit.write_audio(tmp_path / "long.wav", testkit.class_sound(1, 12.5, 16000, seed=3), 16000)
    files = [str(long_recording), str(long_file)]  # windows of the clip length, their logits averaged
    expected = open_classifier(checkpoint).predict(files, clip_seconds=4.0, dtype="float32", num_workers=0)
    got = classifier.predict(files, clip_seconds=4.0, num_workers=0)
    probabilities = [c for c in expected.columns if c.startswith("prob_")]
    assert list(got.columns) == list(expected.columns) and got["label"].tolist() == expected["label"].tolist()
    np.testing.assert_allclose(got[probabilities].to_numpy(), expected[probabilities].to_numpy(), atol=1e-4)

    out = tmp_path / "detections"
    assert (
        main(
            [
                "detect",
                str(graph),
                str(long_recording),
                "-o",
                str(out),
                "--clip-seconds",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert set(pd.read_csv(out / "detections.csv")["label"]) <= set(from_checkpoint["label"])


def test_an_export_classifies_audio_not_stores_and_embeddings_do_not_classify(
    pretrained_onnx, finetuned_onnx, tmp_path, capsys
):
    with pytest.raises(ConfigError, match="export of a pre-trained model"):
        open_classifier(pretrained_onnx)
    audio = testkit.write_audio(tmp_path / "a.wav", testkit.class_sound(0, 3.0, 16000), 16000)
    store = tmp_path / "store"
    extract = [
        "extract",
        str(audio),
        "-o",
        str(store),
        "--model",
        str(pretrained_onnx),
        "--clip-seconds",
        "1",
    ]
    assert main([*extract, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["detect", str(finetuned_onnx), "--embeddings", str(store), "-o", str(tmp_path / "out")]) == 1
    assert "is an ONNX classifier: it classifies audio, not the embeddings in" in capsys.readouterr().err
