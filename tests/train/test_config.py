from __future__ import annotations

import json

import pytest
import yaml

from beats_core import ConfigError
from beats_core.registry import DEFAULT_MODEL
from beats_train import (
    AugmentationConfig,
    DataConfig,
    TrainingConfig,
    get_preset,
    list_presets,
    load_config,
    save_config,
)
from beats_train.config import resolve_batch_size


def test_defaults_start_from_the_default_checkpoint_and_are_valid():
    config = TrainingConfig()
    assert config.model == DEFAULT_MODEL
    assert config.optimizer == "adamw" and config.scheduler == "cosine" and config.mixed_precision == "auto"
    assert config.monitored_metric == "accuracy"
    assert TrainingConfig(multi_label=True).monitored_metric == "map"
    assert "sample_rate" not in DataConfig().to_dict()  # BEATs works on 16 kHz audio: not a setting


@pytest.mark.parametrize(
    ("make", "field", "hint"),
    [
        (
            lambda: DataConfig(train_split=0.7, val_split=0.1, test_split=0.1),
            "train_split + val_split + test_split",
            "sum to 1",
        ),
        (lambda: DataConfig(sample_rate=44100), "DataConfig.sample_rate", "16000"),
        (lambda: DataConfig.from_dict({"sample_rate": 22050}), "DataConfig.sample_rate", "16000"),
        (lambda: DataConfig(batch_size=0), "DataConfig.batch_size", "at least 1"),
        (lambda: DataConfig(val_fold=2), "DataConfig.val_fold", "test_fold"),
        (lambda: DataConfig(test_fold=1, val_fold=1), "DataConfig.val_fold", "differ"),
        (lambda: DataConfig(max_duration=0.0), "DataConfig.max_duration", "0.2 seconds"),
        (lambda: TrainingConfig(learning_rate=-1.0), "TrainingConfig.learning_rate", "positive"),
        (lambda: TrainingConfig(optimizer="adamax"), "TrainingConfig.optimizer", "adamw, adam, sgd"),
        (lambda: TrainingConfig(scheduler="cosin"), "TrainingConfig.scheduler", "did you mean 'cosine'"),
        (
            lambda: TrainingConfig(mixed_precision="fp8"),
            "TrainingConfig.mixed_precision",
            "auto, no, bf16, fp16",
        ),
        (lambda: TrainingConfig(warmup=1.5), "TrainingConfig.warmup", "[0, 1)"),
        (lambda: TrainingConfig(encoder_layerdrop=1.0), "TrainingConfig.encoder_layerdrop", "probability"),
        (lambda: TrainingConfig(unfreeze_after=2), "TrainingConfig.unfreeze_after", "freeze_backbone"),
        (
            lambda: TrainingConfig(class_balance="weights"),
            "TrainingConfig.class_balance",
            "none, loss, sampler",
        ),
        (lambda: TrainingConfig(monitor="map"), "TrainingConfig.monitor", "multi_label"),
        (lambda: TrainingConfig(max_epochs=2.5), "TrainingConfig.max_epochs", "whole number"),
        (lambda: TrainingConfig(freeze_backbone="yes"), "TrainingConfig.freeze_backbone", "true or false"),
        (lambda: TrainingConfig(betas=(0.9,)), "TrainingConfig.betas", "2 numbers"),
        (lambda: TrainingConfig(fbank_std=0.0), "TrainingConfig.fbank_std", "positive"),
        (
            lambda: TrainingConfig(dataset_fbank_stats=True, fbank_mean=1.0),
            "dataset_fbank_stats",
            "fbank_mean",
        ),
        (lambda: AugmentationConfig(freq_mask_bins=200), "AugmentationConfig.freq_mask_bins", "128"),
        (
            lambda: TrainingConfig(augmentation={"mixup": -1}),
            "TrainingConfig.augmentation: AugmentationConfig.mixup",
            ">= 0",
        ),
    ],
)
def test_invalid_values_name_the_field_and_what_is_accepted(make, field, hint):
    with pytest.raises(ConfigError) as error:
        make()
    assert field in str(error.value) and hint in str(error.value)


def test_unknown_fields_are_refused_with_the_closest_name():
    with pytest.raises(
        ConfigError, match="TrainingConfig has no field 'learning_rat'; did you mean 'learning_rate'"
    ):
        TrainingConfig.from_dict({"learning_rat": 1e-3})
    with pytest.raises(ConfigError, match="no field 'epochs'"):
        TrainingConfig().replace(epochs=3)
    with pytest.raises(ConfigError, match="DataConfig has no field 'batchsize'; did you mean 'batch_size'"):
        DataConfig.from_dict({"batchsize": 3})


def test_yaml_and_json_round_trip(tmp_path):
    data = DataConfig(
        data_dir="esc50:/data/ESC-50-master", test_fold=2, max_duration=None, label_delimiter=";"
    )
    training = TrainingConfig.preset("fast", max_epochs=7, augmentation={"mixup": 0.3}, tracker="tensorboard")
    for name in ("run.yaml", "run.json"):
        path = save_config(tmp_path / name, training, data)
        assert load_config(path) == (data, training)
    content = yaml.safe_load((tmp_path / "run.yaml").read_text())
    assert content["training"]["betas"] == [0.9, 0.98] and content["training"]["augmentation"]["roll"] is True
    assert json.loads((tmp_path / "run.json").read_text())["data"]["test_fold"] == 2


def test_an_old_file_with_sample_rate_16000_still_loads_with_a_warning(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("data:\n  data_dir: /data/birds\n  sample_rate: 16000\n  batch_size: 4\n")
    with pytest.warns(FutureWarning, match="sample_rate is no longer a setting and is ignored"):
        data, training = load_config(path)
    assert data == DataConfig(data_dir="/data/birds", batch_size=4) and training is None
    with pytest.warns(FutureWarning):
        assert DataConfig(sample_rate=16000) == DataConfig()
    assert (
        "sample_rate" not in yaml.safe_load(save_config(tmp_path / "new.yaml", data=data).read_text())["data"]
    )
    with pytest.raises(ConfigError, match="DataConfig has no field 'sample_rat'; the fields are"):
        DataConfig.from_dict({"sample_rat": 16000})  # the former field is never suggested


def test_one_rule_gives_the_batch_size_of_a_run():
    data = DataConfig(batch_size=8)
    assert resolve_batch_size(data) == resolve_batch_size(data, TrainingConfig()) == 8
    assert resolve_batch_size(data, TrainingConfig.preset("esc50-paper")) == 60  # the recipe's batch size


def test_a_file_may_name_a_preset_hold_only_training_fields_and_write_1e_4(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("preset: esc50-paper\nlearning_rate: 1e-4\nmax_epochs: 60\naugmentation:\n  mixup: 0.5\n")
    data, training = load_config(path)
    assert data is None
    assert training.learning_rate == 1e-4 and training.max_epochs == 60  # YAML reads 1e-4 as a string
    assert training.fbank_mean == 11.72215 and training.augmentation.time_masks == 5  # from the preset
    assert training.augmentation.mixup == 0.5


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [unclosed")
    with pytest.raises(ConfigError, match=r"broken\.yaml.*cannot be parsed"):
        load_config(broken)
    typo = tmp_path / "typo.yaml"
    typo.write_text("data:\n  batch_size: 4\ntraining:\n  max_epoch: 3\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml.*did you mean 'max_epochs'"):
        load_config(typo)
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(tmp_path)
    (tmp_path / "x.toml").write_text("")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.json"):
        load_config(tmp_path / "x.toml")


def test_presets_carry_the_published_settings():
    assert list_presets() == ["esc50-paper", "fast"]
    paper = get_preset("esc50-paper")
    assert (paper.learning_rate, paper.betas, paper.weight_decay) == (3e-5, (0.9, 0.98), 0.01)
    assert (paper.scheduler, paper.warmup) == ("cosine", 0.1)
    assert (paper.layer_wise_gradient_decay_ratio, paper.encoder_layerdrop, paper.dropout) == (0.2, 0.1, 0.0)
    assert paper.label_smoothing == 0.1 and (paper.fbank_mean, paper.fbank_std) == (11.72215, 10.60431)
    assert paper.augmentation.time_masks > 0 and paper.augmentation.freq_masks == 0
    fast = TrainingConfig.preset("fast", learning_rate=5e-5)
    assert fast.learning_rate == 5e-5  # any field can be overridden
    assert (fast.layer_wise_gradient_decay_ratio, fast.encoder_layerdrop, fast.label_smoothing) == (
        0.2,
        0.1,
        0.1,
    )
    assert (fast.head_dropout, fast.gradient_clipping, fast.augmentation.roll) == (0.1, 1.0, True)
    with pytest.raises(ConfigError, match=r"unknown training preset 'fats'\. Did you mean 'fast'"):
        get_preset("fats")
