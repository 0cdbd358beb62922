"""The umbrella package: the familiar imports, and the ``beats`` command with every package's commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import beats_core
import beats_data
import beats_extract
import beats_train
import beats_trainer
import beats_trainer.config
import beats_trainer.datasets


def test_the_documented_imports_work():
    from beats_trainer import BEATsFeatureExtractor, BEATsTrainer, ensure_checkpoint, list_available_models
    from beats_trainer.config import DataConfig, TrainingConfig
    from beats_trainer.datasets import (
        load_csv_dataset,
        load_esc50,
        load_urbansound8k,
        scan_directory_dataset,
        validate_dataset,
    )

    assert BEATsFeatureExtractor is beats_extract.BEATsFeatureExtractor
    assert BEATsTrainer is beats_train.BEATsTrainer
    assert ensure_checkpoint is beats_core.ensure_checkpoint
    assert list_available_models is beats_core.list_available_models
    assert (DataConfig, TrainingConfig) == (beats_train.DataConfig, beats_train.TrainingConfig)
    assert [load_csv_dataset, load_esc50, load_urbansound8k, scan_directory_dataset, validate_dataset] == [
        beats_data.load_csv_dataset,
        beats_data.load_esc50,
        beats_data.load_urbansound8k,
        beats_data.scan_directory_dataset,
        beats_data.validate_dataset,
    ]


@pytest.mark.parametrize("module", [beats_trainer, beats_trainer.config, beats_trainer.datasets])
def test_every_exported_name_exists(module):
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing


def test_the_umbrella_works_through_its_own_names(tmp_path, reference_dir):
    """A model loaded and an embedding made with nothing but beats_trainer's names."""
    import numpy as np
    import testkit

    clip = testkit.write_audio(tmp_path / "tone.flac", testkit.sine(440, 1.0, 44100), 44100)
    model = beats_trainer.load_checkpoint(reference_dir / "tiny_pretrained.pt").model
    extractor = beats_trainer.BEATsFeatureExtractor(model, num_workers=0)
    features = extractor.extract_from_file(clip)
    assert features.shape == (model.cfg.encoder_embed_dim,)
    assert np.isfinite(features).all()
    assert beats_trainer.load_audio(clip).shape == (16000,)


def test_beats_help_lists_the_commands_of_every_package():
    beats = Path(sys.executable).with_name("beats")  # the console script of beats-core
    result = subprocess.run([beats, "--help"], capture_output=True, text=True, check=True)
    for command in (
        "models",
        "download",
        "info",
        "validate",
        "extract",
        "search",
        "train",
        "evaluate",
        "predict",
        "demo",
    ):
        assert command in result.stdout
