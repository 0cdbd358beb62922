from __future__ import annotations

import warnings

import numpy as np
import pytest
import testkit
import torch

from beats_core import (
    AudioDecodeError,
    BEATs,
    BEATsConfig,
    ConfigError,
    InvalidAudioError,
    create_model,
    load_audio,
)
from beats_extract import BEATsFeatureExtractor, FrameEmbeddings, SkippedFileWarning
from beats_extract.poolings import BUILTIN_POOLINGS


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- the known API
def test_known_api_shapes_and_default_pooling(tiny_checkpoint, mixed_clips):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint))
    assert extractor.get_feature_dim() == 64
    one = extractor.extract_from_file(mixed_clips[0])
    assert one.shape == (64,) and one.dtype == np.float32
    many = extractor.extract_from_files(mixed_clips[:2])
    assert many.shape == (2, 64) and many.dtype == np.float32
    np.testing.assert_allclose(many[0], one, atol=1e-5)


def test_matches_the_official_outputs(reference_dir):
    """layer=-1 is the official extract_features output; layer indices are the official layer_results."""
    cases = np.load(reference_dir / "model_cases.npz")
    wave = cases["single_wave"][0]
    pre = BEATsFeatureExtractor(str(reference_dir / "tiny_pretrained.pt"))
    np.testing.assert_allclose(
        pre.extract_from_array(wave), cases["pre_single_features"][0].mean(0), atol=1e-4
    )
    stacked = BEATsFeatureExtractor(str(reference_dir / "tiny_pretrained.pt"), layer="all")
    np.testing.assert_allclose(
        stacked.extract_from_array(wave), cases["pre_single_layer_results"][:, 0].mean(1), atol=1e-4
    )
    frames = BEATsFeatureExtractor(
        str(reference_dir / "tiny_pretrained.pt"), pooling=None
    ).extract_from_array(wave)
    expected = cases["pre_single_features"][0].reshape(-1, 8, 64).mean(1)
    np.testing.assert_allclose(frames.embeddings, expected, atol=1e-4)
    # A fine-tuned checkpoint gives encoder features, not class probabilities.
    tuned = BEATsFeatureExtractor(str(reference_dir / "tiny_finetuned.pt"))
    assert tuned.get_feature_dim() == 64
    np.testing.assert_allclose(
        tuned.extract_from_array(wave), cases["ft_single_tap_encoder_out"][0].mean(0), atol=1e-4
    )


def test_order_is_preserved_for_mixed_formats_rates_and_lengths(tiny_checkpoint, mixed_clips):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), batch_size=2, num_workers=1)
    batched = extractor.extract_from_files(list(reversed(mixed_clips)))
    for path, row in zip(reversed(mixed_clips), batched, strict=True):
        alone = extractor.extract_from_array(load_audio(path))
        np.testing.assert_allclose(row, alone, atol=1e-5, err_msg=str(path))


@pytest.mark.parametrize("pooling", [*BUILTIN_POOLINGS, None])
def test_padding_in_a_batch_never_changes_a_clip(tiny_checkpoint, pooling):
    """A clip alone and the same clip padded next to longer ones give the same result."""
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling=pooling, layer=[0, -1])
    clips = [testkit.noise(seconds, seed=i) for i, seconds in enumerate([0.9, 3.7, 0.05, 2.0011])]
    together = extractor.extract_from_arrays(clips)
    for clip, batched in zip(clips, together, strict=True):
        alone = extractor.extract_from_array(clip)
        if pooling is None:
            np.testing.assert_allclose(batched.embeddings, alone.embeddings, atol=1e-5)
            np.testing.assert_array_equal(batched.timestamps, alone.timestamps)
        else:
            np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_a_clip_shorter_than_a_patch_gives_one_time_step(tiny_checkpoint):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling=None)
    frames = extractor.extract_from_array(testkit.noise(0.01))
    assert frames.embeddings.shape == (1, 64)
    np.testing.assert_allclose(frames.timestamps, [0.0875])


# --------------------------------------------------------------------------- errors
def test_skip_gives_nan_rows_and_a_warning_naming_the_file(tiny_checkpoint, mixed_clips, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF but not really audio")
    empty = tmp_path / "empty.flac"
    empty.touch()
    missing = tmp_path / "missing.wav"
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), num_workers=1)
    paths = [mixed_clips[0], broken, mixed_clips[1], empty, missing]
    with pytest.warns(SkippedFileWarning) as record:
        features = extractor.extract_from_files(paths, on_error="skip")
    messages = " ".join(str(w.message) for w in record)
    for bad in (broken, empty, missing):
        assert str(bad) in messages
    assert np.isnan(features[[1, 3, 4]]).all()
    assert np.isfinite(features[[0, 2]]).all()
    np.testing.assert_allclose(features[2], extractor.extract_from_file(mixed_clips[1]), atol=1e-5)


def test_raise_stops_with_the_decode_error(tiny_checkpoint, mixed_clips, tmp_path):
    broken = tmp_path / "broken.ogg"
    broken.write_bytes(b"\x00" * 100)
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), num_workers=1)
    with pytest.raises(AudioDecodeError, match=r"broken\.ogg"):
        extractor.extract_from_files([mixed_clips[0], broken])
    with pytest.raises(AudioDecodeError, match=r"broken\.ogg"):
        extractor.extract_from_file(broken)


def test_frame_level_skip_gives_none(tiny_checkpoint, mixed_clips, tmp_path):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling=None, num_workers=0)
    with pytest.warns(SkippedFileWarning, match="nothing.wav"):
        frames = extractor.extract_from_files([tmp_path / "nothing.wav", mixed_clips[0]], on_error="skip")
    assert frames[0] is None and isinstance(frames[1], FrameEmbeddings)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"layer": 3}, "out of range.*2 layers"),
        ({"layer": -4}, "out of range"),
        ({"layer": "last"}, "'all'"),
        ({"layer": []}, "empty"),
        ({"pooling": "meen"}, "Did you mean 'mean'"),
        ({"window_seconds": 0.1}, "shorter than one BEATs patch"),
        ({"hop_seconds": 20.0}, "longer than the window"),
        ({"batch_size": 0}, "batch_size"),
        ({"dtype": "int8"}, "dtype"),
        ({"device": "cuda:7"} if not torch.cuda.is_available() else {"device": "nonsense"}, "device"),
    ],
)
def test_bad_arguments_are_config_errors(tiny_checkpoint, options, match):
    with pytest.raises(ConfigError, match=match):
        BEATsFeatureExtractor(str(tiny_checkpoint), **options)


def test_bad_arrays_are_invalid_audio(tiny_checkpoint):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint))
    with pytest.raises(InvalidAudioError, match="int16"):
        extractor.extract_from_array(np.zeros(16000, dtype=np.int16))
    with pytest.raises(InvalidAudioError, match="NaN"):
        extractor.extract_from_array(np.full(16000, np.nan, dtype=np.float32))
    with pytest.raises(InvalidAudioError, match="empty"):
        extractor.extract_from_arrays([np.zeros(0, dtype=np.float32)])
    with pytest.raises(ConfigError, match="extract_from_file for one"):
        extractor.extract_from_files("a.wav")
    with pytest.raises(ConfigError, match="on_error"):
        extractor.extract_from_files([], on_error="ignore")


# --------------------------------------------------------------------------- layers and poolings
def test_layers_and_feature_dims(tiny_checkpoint):
    clip = testkit.noise(1.5)
    base = dict(model=str(tiny_checkpoint))
    per_layer = [BEATsFeatureExtractor(**base, layer=i).extract_from_array(clip) for i in range(3)]
    np.testing.assert_allclose(BEATsFeatureExtractor(**base, layer=-1).extract_from_array(clip), per_layer[2])
    listed = BEATsFeatureExtractor(**base, layer=[0, 2])
    assert listed.get_feature_dim() == 128
    np.testing.assert_allclose(
        listed.extract_from_array(clip), np.concatenate([per_layer[0], per_layer[2]]), atol=1e-6
    )
    stacked = BEATsFeatureExtractor(**base, layer="all", pooling="meanstd")
    assert stacked.get_feature_dim() == 128 and stacked.feature_shape == (3, 128)
    out = stacked.extract_from_array(clip)
    assert out.shape == (3, 128)
    np.testing.assert_allclose(out[:, :64], np.stack(per_layer), atol=1e-5)
    frames = BEATsFeatureExtractor(**base, layer="all", pooling=None).extract_from_array(clip)
    assert frames.embeddings.shape == (len(frames.timestamps), 3, 64)


def test_a_callable_pooling_is_used_directly(tiny_checkpoint):
    def rms(features, padding_mask):
        keep = (
            (~padding_mask).unsqueeze(-1).float()
            if padding_mask is not None
            else torch.ones_like(features[..., :1])
        )
        return ((features**2 * keep).sum(1) / keep.sum(1)).sqrt()

    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling=rms)
    assert extractor.pooling.name == "rms"
    clips = [testkit.noise(0.5, seed=1), testkit.noise(2.0, seed=2)]
    together = extractor.extract_from_arrays(clips)
    np.testing.assert_allclose(together[0], extractor.extract_from_array(clips[0]), atol=1e-5)


def test_a_third_party_pooling_plugin_is_used_by_name(tiny_checkpoint, install_plugin):
    install_plugin("beats-plugin-pooling")
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling="median")
    assert extractor.pooling.distribution == "beats-plugin-pooling"
    clips = [testkit.noise(0.7, seed=3), testkit.noise(2.5, seed=4)]
    medians = extractor.extract_from_arrays(clips)
    model = create_model(tiny_checkpoint)
    with torch.no_grad():
        tokens, _ = model.forward_features(torch.from_numpy(clips[0])[None])
    np.testing.assert_allclose(medians[0], tokens[0].median(dim=0).values.numpy(), atol=1e-5)


# --------------------------------------------------------------------------- models, devices, precision
def test_a_model_instance_is_used_in_place_and_its_training_mode_restored(tiny_checkpoint):
    model = create_model(tiny_checkpoint).train()
    extractor = BEATsFeatureExtractor(model, device="auto")
    assert extractor.model is model and extractor.model_name is None
    first = extractor.extract_from_array(testkit.noise(1.0))
    second = extractor.extract_from_array(testkit.noise(1.0))
    np.testing.assert_array_equal(first, second)  # dropout was off during extraction
    assert model.training


def test_random_base_size_model_gives_768_dims():
    model = BEATs(BEATsConfig.tiny())
    extractor = BEATsFeatureExtractor(model)
    assert extractor.get_feature_dim() == model.embed_dim
    assert extractor.extract_from_array(testkit.noise(0.3)).shape == (model.embed_dim,)


def test_bfloat16_is_close_to_float32(tiny_checkpoint, mixed_clips):
    reference = BEATsFeatureExtractor(str(tiny_checkpoint)).extract_from_files(mixed_clips[:3])
    half = BEATsFeatureExtractor(str(tiny_checkpoint), dtype="bfloat16").extract_from_files(mixed_clips[:3])
    assert half.dtype == np.float32
    for a, b in zip(reference, half, strict=True):
        assert cosine(a, b) > 0.99


# --------------------------------------------------------------------------- arrays
def test_arrays_numpy_torch_stereo_and_other_rates(tiny_checkpoint, tmp_path):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint))
    signal = testkit.class_sound(1, 1.2, 44100)
    path = testkit.write_audio(tmp_path / "x.wav", signal, 44100, subtype="FLOAT")
    from_file = extractor.extract_from_file(path)
    np.testing.assert_allclose(extractor.extract_from_array(signal, 44100), from_file, atol=1e-5)
    np.testing.assert_allclose(
        extractor.extract_from_array(torch.from_numpy(signal), 44100), from_file, atol=1e-5
    )
    stereo = np.stack([signal, signal])
    np.testing.assert_allclose(extractor.extract_from_array(stereo, 44100), from_file, atol=1e-5)
    batch = extractor.extract_from_arrays(torch.from_numpy(np.stack([signal, signal])), 44100)
    assert batch.shape == (2, 64)


# --------------------------------------------------------------------------- time
def test_timestamps_are_the_centres_of_the_steps_that_hear_an_onset(local_model):
    """Silence, then noise from 2.0 s: the first step that changes is the first whose span holds the onset."""
    onset = 2.0
    signal = np.concatenate([np.zeros(int(onset * 16000), np.float32), testkit.noise(1.5, amplitude=0.3)])
    extractor = BEATsFeatureExtractor(local_model, pooling=None, layer=0)
    frames = extractor.extract_from_array(signal)
    silent = extractor.extract_from_array(np.zeros_like(signal))
    changed = np.abs(frames.embeddings - silent.embeddings).max(axis=1) > 1e-4
    first = int(np.argmax(changed))
    assert not changed[:first].any() and changed[first:].all()
    start, stop = frames.timestamps[first] - 0.0875, frames.timestamps[first] + 0.0875
    assert start < onset < stop  # the step's span (175 ms) around its timestamp holds the onset
    assert frames.timestamps[first - 1] + 0.0875 <= onset  # the previous step ended before it
    np.testing.assert_allclose(np.diff(frames.timestamps), 0.16)


@pytest.mark.parametrize("hop_seconds", [None, 3.0])
def test_long_audio_in_windows_equals_the_whole_recording(local_model, hop_seconds):
    """With a per-token model, window-by-window processing reproduces whole-clip processing exactly."""
    signal = testkit.noise(23.3, seed=5) * np.linspace(0.1, 1.0, int(23.3 * 16000), dtype=np.float32)
    for pooling in [*BUILTIN_POOLINGS, None]:
        windowed = BEATsFeatureExtractor(
            local_model, pooling=pooling, layer=0, window_seconds=5.0, hop_seconds=hop_seconds, batch_size=3
        )
        whole = BEATsFeatureExtractor(local_model, pooling=pooling, layer=0, window_seconds=None)
        a, b = windowed.extract_from_array(signal), whole.extract_from_array(signal)
        if pooling is None:
            np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-9)
            np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)
        else:
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=pooling)


def test_long_files_are_read_in_windows(tiny_checkpoint, tmp_path):
    path = testkit.write_audio(tmp_path / "long.flac", testkit.noise(31.0, 22050, seed=2), 22050)
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), pooling=None, window_seconds=4.0, batch_size=2)
    frames = extractor.extract_from_file(path)
    expected_steps = (1 + (31 * 16000 - 400) // 160) // 16
    assert len(frames) == expected_steps
    np.testing.assert_allclose(np.diff(frames.timestamps), 0.16, atol=1e-9)
    pooled = BEATsFeatureExtractor(str(tiny_checkpoint), window_seconds=4.0, batch_size=2)
    files = pooled.extract_from_files([path, path])
    np.testing.assert_allclose(files[0], frames.embeddings.mean(0), atol=1e-5)


# --------------------------------------------------------------------------- streaming
def test_streaming_yields_in_order_from_a_generator(tiny_checkpoint, mixed_clips):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), batch_size=2, num_workers=1)
    paths = [*mixed_clips, mixed_clips[0]]
    results = list(extractor.stream_from_files(str(p) for p in paths))
    assert [r.index for r in results] == list(range(len(paths)))
    assert [r.path for r in results] == [str(p) for p in paths]
    np.testing.assert_allclose(results[0].features, results[-1].features, atol=1e-6)


def test_no_warning_when_every_file_decodes(tiny_checkpoint, mixed_clips):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint), num_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extractor.extract_from_files(mixed_clips, on_error="skip", progress=False)


def test_an_empty_list_gives_an_empty_array(tiny_checkpoint):
    extractor = BEATsFeatureExtractor(str(tiny_checkpoint))
    assert extractor.extract_from_files([]).shape == (0, 64)
    assert extractor.extract_from_arrays([]).shape == (0, 64)
