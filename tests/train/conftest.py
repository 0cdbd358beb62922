from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import testkit

from beats_train import BEATsTrainer, TrainingConfig


@pytest.fixture(autouse=True)
def _beats_train_logging(caplog):
    """Record beats-train's own messages (epoch lines, dataset warnings) for assertions."""
    caplog.set_level(logging.INFO, logger="beats_train")


@pytest.fixture(scope="session")
def sound_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four clearly different sound classes (tone, noise band, clicks, chirp), 12 clips of 1 s each."""
    return testkit.make_sound_dataset(tmp_path_factory.mktemp("sounds") / "data", 12)


def _tiny_config(output_dir: Path, **overrides) -> TrainingConfig:
    values = {
        "model": "random:tiny",
        "max_epochs": 3,
        "learning_rate": 2e-3,
        "patience": None,
        "output_dir": str(output_dir),
        "progress": False,
    }
    values.update(overrides)
    return TrainingConfig(**values)


@pytest.fixture
def tiny_config() -> Callable[..., TrainingConfig]:
    """``tiny_config(output_dir, **overrides)``: a quick run of the tiny random model."""
    return _tiny_config


@pytest.fixture(scope="session")
def trained(sound_root: Path, tmp_path_factory: pytest.TempPathFactory) -> BEATsTrainer:
    """A trainer that has fine-tuned the tiny random model for six epochs (shared: do not modify it)."""
    output = tmp_path_factory.mktemp("trained") / "run"
    trainer = BEATsTrainer.from_directory(sound_root, config=_tiny_config(output, max_epochs=6), batch_size=8)
    trainer.train()
    return trainer
