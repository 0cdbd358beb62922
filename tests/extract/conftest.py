from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import testkit
import torch

from beats_core import BEATs, create_model


@pytest.fixture(scope="session")
def tiny_checkpoint(reference_dir: Path) -> Path:
    """The tiny pre-trained reference checkpoint (2 layers, 64-d), official layout."""
    return reference_dir / "tiny_pretrained.pt"


@pytest.fixture
def local_model(tiny_checkpoint: Path) -> BEATs:
    """The tiny model with its positional convolution's kernel zeroed.

    Its layer-0 hidden state is then a function of each token's own patch alone (the
    convolution adds a constant), so windowed processing must reproduce whole-clip
    processing exactly, and a sound's onset shows in exactly the time steps that hear it.
    """
    model = create_model(tiny_checkpoint)
    with torch.no_grad():
        model.encoder.pos_conv[0].weight_g.zero_()
    return model


@pytest.fixture(scope="session")
def mixed_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Clips of different lengths, formats, sample rates and channel counts (one shorter than a patch)."""
    root = tmp_path_factory.mktemp("mixed")
    specs = [
        ("a.wav", 1.3, 16000, 1),
        ("b.flac", 3.1, 44100, 2),
        ("c.mp3", 0.12, 22050, 1),
        ("d.ogg", 2.2, 48000, 1),
        ("e.m4a", 0.8, 44100, 2),
        ("f.wav", 4.0, 8000, 1),
    ]
    paths = []
    for i, (name, seconds, rate, channels) in enumerate(specs):
        signal = testkit.class_sound(i % 3, seconds, rate, seed=i)
        if channels == 2:
            signal = np.stack([signal, 0.5 * signal], axis=1)
        paths.append(testkit.write_audio(root / name, signal, rate))
    return paths
