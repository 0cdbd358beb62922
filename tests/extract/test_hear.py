from __future__ import annotations

import numpy as np
import pytest
import testkit
import torch

from beats_core import ConfigError, InvalidAudioError
from beats_extract import BEATsFeatureExtractor, hear


@pytest.fixture(scope="module")
def model(reference_dir):
    return hear.load_model(str(reference_dir / "tiny_pretrained.pt"))


def test_model_attributes(model):
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == 16000
    assert model.scene_embedding_size == 64 and model.timestamp_embedding_size == 64
    assert not model.training


def test_scene_embeddings_contract(model, tiny_checkpoint):
    audio = torch.from_numpy(np.stack([testkit.noise(2.5, seed=i) for i in range(3)]))
    with torch.no_grad():
        embeddings = hear.get_scene_embeddings(audio, model)
    assert isinstance(embeddings, torch.Tensor)
    assert embeddings.shape == (3, 64) and embeddings.dtype == torch.float32
    expected = BEATsFeatureExtractor(str(tiny_checkpoint)).extract_from_array(audio[1].numpy())
    np.testing.assert_allclose(embeddings[1].numpy(), expected, atol=1e-5)


def test_timestamp_embeddings_contract(model):
    n_samples = 40000  # 2.5 s
    audio = torch.from_numpy(np.stack([testkit.noise(2.5, seed=i) for i in range(2)]))
    assert audio.shape[1] == n_samples
    with torch.no_grad():
        embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.dtype == torch.float32 and timestamps.dtype == torch.float32
    assert embeddings.ndim == 3 and embeddings.shape[0] == 2 and embeddings.shape[2] == 64
    assert timestamps.shape == embeddings.shape[:2]
    torch.testing.assert_close(timestamps[0], timestamps[1])
    spacing = np.diff(timestamps[0].numpy())
    np.testing.assert_allclose(spacing, 40.0)
    assert timestamps[0, 0] == pytest.approx(87.5)  # centre of the first 175 ms patch
    assert timestamps[0, -1] + 87.5 <= 1000 * n_samples / 16000  # every embedding hears real audio
    assert embeddings.shape[1] > 2500 / 40 - 5


def test_native_hop_equals_the_frame_level_extractor(reference_dir, tiny_checkpoint):
    model = hear.load_model(str(reference_dir / "tiny_pretrained.pt"), timestamp_hop_ms=160)
    clip = testkit.noise(1.7, seed=9)
    embeddings, timestamps = hear.get_timestamp_embeddings(torch.from_numpy(clip)[None], model)
    frames = BEATsFeatureExtractor(str(tiny_checkpoint), pooling=None).extract_from_array(clip)
    np.testing.assert_allclose(embeddings[0].numpy(), frames.embeddings, atol=1e-5)
    np.testing.assert_allclose(timestamps[0].numpy(), 1000 * frames.timestamps, rtol=1e-6)


def test_shifted_passes_interleave_onto_one_grid(model, tiny_checkpoint):
    """Embedding k of the 40 ms sequence is the frame of the pass shifted by (k mod 4) * 40 ms."""
    clip = testkit.noise(1.3, seed=2)
    embeddings, _ = hear.get_timestamp_embeddings(torch.from_numpy(clip)[None], model)
    frames = BEATsFeatureExtractor(str(tiny_checkpoint), pooling=None)
    for shift in range(4):
        expected = frames.extract_from_array(clip[shift * 640 :]).embeddings
        got = embeddings[0, shift::4].numpy()
        np.testing.assert_allclose(got, expected[: len(got)], atol=1e-5)


def test_bad_input_and_options(model, reference_dir):
    with pytest.raises(InvalidAudioError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(torch.zeros(16000), model)
    with pytest.raises(ConfigError, match="timestamp_hop_ms=50"):
        hear.load_model(str(reference_dir / "tiny_pretrained.pt"), timestamp_hop_ms=50)
    with pytest.raises(ConfigError, match="not 'all'"):
        hear.load_model(str(reference_dir / "tiny_pretrained.pt"), layer="all")
