from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from beats_core import BEATs, BEATsConfig, ConfigError

# The official BEATsConfig defaults (microsoft/unilm beats/BEATs.py), field by field, in order.
OFFICIAL_DEFAULTS = {
    "input_patch_size": -1,
    "embed_dim": 512,
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "activation_fn": "gelu",
    "layer_wise_gradient_decay_ratio": 1.0,
    "layer_norm_first": False,
    "deep_norm": False,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0,
    "dropout_input": 0.0,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": False,
    "num_buckets": 320,
    "max_distance": 1280,
    "gru_rel_pos": False,
    "finetuned_model": False,
    "predictor_dropout": 0.1,
    "predictor_class": 527,
}


def _parameters(config: BEATsConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in BEATs(config).parameters())


def test_defaults_are_the_official_ones_plus_fbank_statistics():
    data = BEATsConfig().to_dict()
    assert list(data)[: len(OFFICIAL_DEFAULTS)] == list(OFFICIAL_DEFAULTS)
    assert {k: data[k] for k in OFFICIAL_DEFAULTS} == OFFICIAL_DEFAULTS
    assert (data["fbank_mean"], data["fbank_std"]) == (15.41663, 6.55582)
    assert BEATsConfig.from_dict({}) == BEATsConfig()


@pytest.mark.parametrize("checkpoint", ["tiny_pretrained.pt", "tiny_finetuned.pt"])
def test_round_trip_of_a_checkpoint_cfg(reference_dir: Path, checkpoint):
    cfg = torch.load(reference_dir / checkpoint, weights_only=True)["cfg"]
    config = BEATsConfig.from_dict(cfg)
    written = config.to_dict()
    assert {k: written[k] for k in cfg} == cfg
    assert set(written) - set(cfg) == {"fbank_mean", "fbank_std"}
    assert BEATsConfig.from_dict(written) == config


def test_missing_fields_take_the_official_defaults_and_unknown_keys_are_kept():
    config = BEATsConfig.from_dict({"encoder_layers": 4, "my_note": "kept", "decoder_embed_dim": 1024})
    assert config.encoder_layers == 4
    assert config.max_distance == 1280 and config.input_patch_size == -1
    assert config.extra == {"my_note": "kept", "decoder_embed_dim": 1024}
    written = config.to_dict()
    assert written["my_note"] == "kept" and written["decoder_embed_dim"] == 1024
    assert json.loads(json.dumps(written)) == written  # plain data
    assert BEATsConfig.from_dict(written) == config


def test_types_are_checked_and_normalised():
    config = BEATsConfig.from_dict({"deep_norm": 1, "encoder_layers": 12.0, "dropout": 0})
    assert config.deep_norm is True and config.encoder_layers == 12 and isinstance(config.dropout, float)
    with pytest.raises(ConfigError, match="'encoder_layers'='twelve' must be a whole number"):
        BEATsConfig.from_dict({"encoder_layers": "twelve"})
    with pytest.raises(ConfigError, match="'deep_norm'='yes' must be true or false"):
        BEATsConfig.from_dict({"deep_norm": "yes"})
    with pytest.raises(ConfigError, match="'dropout'=True must be a number"):
        BEATsConfig.from_dict({"dropout": True})
    with pytest.raises(ConfigError, match="must be a dict"):
        BEATsConfig.from_dict(["encoder_layers", 12])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_patch_size": -1}, "'input_patch_size'=-1 must be a positive whole number .*16"),
        ({"encoder_attention_heads": 5}, "'encoder_attention_heads'=5 must divide encoder_embed_dim=64"),
        ({"conv_pos_groups": 3}, "'conv_pos_groups'=3 must divide"),
        ({"activation_fn": "swish"}, "'activation_fn'='swish' must be one of"),
        ({"deep_norm": True, "layer_norm_first": True}, "'deep_norm'=True cannot be combined"),
        ({"dropout": 1.0}, "'dropout'=1.0 must be a probability"),
        ({"encoder_layerdrop": -0.1}, "'encoder_layerdrop'=-0.1 must be a probability"),
        ({"num_buckets": 7}, "'num_buckets'=7 must be an even number"),
        ({"max_distance": 10, "num_buckets": 320}, "'max_distance'=10 must exceed"),
        ({"fbank_std": 0.0}, "'fbank_std'=0.0 must be a positive number"),
        ({"layer_wise_gradient_decay_ratio": 0.0}, "'layer_wise_gradient_decay_ratio'=0.0 must be > 0"),
    ],
)
def test_invalid_values_are_refused_when_building_a_model_naming_the_field(changes, message):
    config = BEATsConfig.tiny().replace(**changes)
    with pytest.raises(ConfigError, match=message):
        BEATs(config)


def test_the_official_default_patch_size_cannot_be_built():
    with pytest.raises(ConfigError, match="input_patch_size"):
        BEATs(BEATsConfig())


def test_named_sizes():
    base = BEATsConfig.base()
    assert (base.encoder_layers, base.encoder_embed_dim, base.encoder_attention_heads) == (12, 768, 12)
    assert (base.max_distance, base.deep_norm, base.gru_rel_pos, base.input_patch_size) == (
        800,
        True,
        True,
        16,
    )
    assert _parameters(base) == 90_311_792  # README section 3.3, verified with the official code
    large = BEATsConfig.large()
    assert (large.encoder_layers, large.encoder_embed_dim, large.encoder_ffn_embed_dim) == (24, 1024, 4096)
    assert large.encoder_attention_heads == 16
    assert _parameters(large) == 311_376_576
    tiny = BEATsConfig.tiny()
    assert _parameters(tiny) == 95_464  # the reference tiny checkpoints have 95,464 parameters
    fine = BEATsConfig.base(finetuned_model=True, predictor_class=527)
    assert _parameters(fine) == 90_717_055


def test_replace_copies():
    config = BEATsConfig.tiny().replace(extra_field=1)
    other = config.replace(encoder_layers=3)
    other.extra["extra_field"] = 2
    assert config.encoder_layers == 2 and config.extra == {"extra_field": 1}
