from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from beats_core import BEATs, BEATsConfig, CheckpointError, ConfigError
from beats_core.checkpoint import ESPNET_FBANK_MEAN, ESPNET_FBANK_STD, read_checkpoint
from beats_core.factory import LoadedCheckpoint, create_model, load_checkpoint, save_checkpoint

LABELS = {0: "/m/09x0r", 1: "/m/04rlf", 2: "/m/0bt9lr", 3: "/m/06mb1", 4: "/m/02mk9"}


class NotPlainData:
    """A custom class: pickling it makes a checkpoint that is not plain data."""


def _noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def finetuned_file(reference_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "tiny_finetuned.pt"
    shutil.copy(reference_dir / "tiny_finetuned.pt", target)
    return target


def _official(reference_dir: Path, name: str = "tiny_pretrained.pt") -> dict:
    return torch.load(reference_dir / name, weights_only=True)


# ------------------------------------------------------------------------------ loading
def test_load_an_official_checkpoint(reference_dir: Path):
    loaded = load_checkpoint(reference_dir / "tiny_finetuned.pt")
    assert isinstance(loaded, LoadedCheckpoint)
    model, config, label_dict = loaded
    assert not model.training and model.label_dict == label_dict == LABELS
    assert config is model.cfg and config.predictor_class == 5
    official = _official(reference_dir, "tiny_finetuned.pt")
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, official["model"][key]), key
    pretrained = load_checkpoint(str(reference_dir / "tiny_pretrained.pt"))
    assert pretrained.label_dict is None and pretrained.model.predictor is None
    assert all(p.requires_grad for p in pretrained.model.parameters())


def test_create_model_equals_load_checkpoint(reference_dir: Path):
    model = create_model(reference_dir / "tiny_finetuned.pt")
    assert not model.training and model.label_dict == LABELS
    waves = _noise(1, 8000)
    with torch.no_grad():
        torch.testing.assert_close(
            model.extract_features(waves)[0],
            load_checkpoint(reference_dir / "tiny_finetuned.pt").model.extract_features(waves)[0],
        )


def test_read_checkpoint_returns_the_official_layout(reference_dir: Path):
    data = read_checkpoint(reference_dir / "tiny_finetuned.pt")
    official = _official(reference_dir, "tiny_finetuned.pt")
    assert set(data) == {"cfg", "model", "label_dict"}
    assert data["cfg"] == official["cfg"] and data["label_dict"] == LABELS
    assert list(data["model"]) == list(official["model"])


# ------------------------------------------------------------------------------ saving
def test_save_writes_the_official_layout_and_round_trips(tmp_path: Path):
    torch.manual_seed(0)
    model = BEATs(BEATsConfig.tiny(finetuned_model=True, predictor_class=3, fbank_mean=14.0, fbank_std=5.0))
    path = save_checkpoint(model, tmp_path / "sub" / "model.pt", label_dict={0: "a", 1: "b", 2: "c"})
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"cfg", "model", "label_dict"}
    assert raw["label_dict"] == {0: "a", 1: "b", 2: "c"}
    assert raw["cfg"]["finetuned_model"] is True and raw["cfg"]["fbank_mean"] == 14.0
    assert list(raw["model"]) == list(model.state_dict())
    tables = [raw["model"][f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"] for i in range(2)]
    assert tables[0].untyped_storage().data_ptr() == tables[1].untyped_storage().data_ptr()
    assert path.stat().st_mode & 0o777 == 0o644
    loaded = load_checkpoint(path)
    assert loaded.config.fbank_mean == 14.0 and loaded.label_dict == {0: "a", 1: "b", 2: "c"}
    waves = _noise(2, 8000)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model.extract_features(waves)[0], model.eval().extract_features(waves)[0]
        )
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]


def test_save_validates_the_labels(tmp_path: Path):
    model = BEATs(BEATsConfig.tiny(finetuned_model=True, predictor_class=3))
    with pytest.raises(ConfigError, match=r"every class index 0\.\.2"):
        save_checkpoint(model, tmp_path / "model.pt", label_dict={0: "a", 1: "b"})
    assert not (tmp_path / "model.pt").exists()


def test_a_crash_mid_write_leaves_the_old_file_intact(finetuned_file: Path, monkeypatch):
    before = finetuned_file.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(BEATs(BEATsConfig.tiny()), finetuned_file)
    assert finetuned_file.read_bytes() == before
    assert [p.name for p in finetuned_file.parent.iterdir()] == [finetuned_file.name]
    monkeypatch.undo()
    assert load_checkpoint(finetuned_file).label_dict == LABELS


# ------------------------------------------------------------------------------ bad files
def test_missing_file(tmp_path: Path):
    with pytest.raises(CheckpointError, match=r"'.*nope\.pt' does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_empty_file(tmp_path: Path):
    empty = tmp_path / "empty.pt"
    empty.touch()
    with pytest.raises(CheckpointError, match="is empty; download it again"):
        load_checkpoint(empty)


def test_truncated_file(finetuned_file: Path):
    data = finetuned_file.read_bytes()
    finetuned_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=r"tiny_finetuned\.pt' cannot be read, it is probably truncated"
    ):
        load_checkpoint(finetuned_file)


def test_a_pickle_that_is_not_plain_data(reference_dir: Path, tmp_path: Path):
    checkpoint = _official(reference_dir)
    checkpoint["extra"] = NotPlainData()
    path = tmp_path / "code.pt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"other than plain data .* refused for safety"):
        load_checkpoint(path)


def test_an_error_page_saved_as_checkpoint(tmp_path: Path):
    page = tmp_path / "page.pt"
    page.write_bytes(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>")
    with pytest.raises(
        CheckpointError, match=r"page\.pt' is not a PyTorch checkpoint \(it starts with b'<!DOCTYPE"
    ):
        load_checkpoint(page)


def test_random_bytes(tmp_path: Path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk" * 100)
    with pytest.raises(
        CheckpointError, match=r"junk\.pt' cannot be read, it is probably truncated or corrupt"
    ):
        load_checkpoint(junk)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"weights": torch.zeros(3)}, "not a BEATs checkpoint: expected a dict with 'cfg' and 'model'"),
        ([1, 2, 3], "not a BEATs checkpoint: expected a dict .* found list"),
        ({"cfg": {}, "model": torch.nn.Linear(2, 2).state_dict()}, "has no 'patch_embedding.weight'"),
        ({"cfg": [1], "model": {"patch_embedding.weight": torch.zeros(1)}}, "its 'cfg' is not a dict"),
        ({"cfg": {}, "model": {"patch_embedding.weight": 3}}, "entries .* are not tensors"),
    ],
)
def test_files_that_are_not_beats_checkpoints(tmp_path: Path, content, message):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_cfg(reference_dir: Path, tmp_path: Path):
    path = tmp_path / "bad.pt"
    checkpoint = _official(reference_dir)
    checkpoint["model"]["encoder.layers.1.fc1.weight"] = torch.zeros(96, 64)
    torch.save(checkpoint, path)
    with pytest.raises(
        CheckpointError,
        match=r"'encoder.layers.1.fc1.weight' has shape \(96, 64\) in the file but \(128, 64\)",
    ):
        load_checkpoint(path)

    checkpoint = _official(reference_dir)
    del checkpoint["model"]["encoder.layer_norm.bias"]
    torch.save(checkpoint, path)
    with pytest.raises(
        CheckpointError, match=r"lacks 1 weight\(s\) .* 'encoder.layer_norm.bias' of shape \(64,\)"
    ):
        load_checkpoint(path)

    checkpoint = _official(reference_dir)
    checkpoint["model"]["encoder.layers.2.fc1.weight"] = torch.zeros(128, 64)
    torch.save(checkpoint, path)
    with pytest.raises(
        CheckpointError, match=r"weight\(s\) that a BEATs model .* 'encoder.layers.2.fc1.weight'"
    ):
        load_checkpoint(path)

    checkpoint = _official(reference_dir)
    checkpoint["cfg"]["encoder_attention_heads"] = 5
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"cfg that cannot be built: .*'encoder_attention_heads'=5"):
        load_checkpoint(path)


# ------------------------------------------------------------------------------ ESPnet / OpenBEATs
def _espnet_encoder_checkpoint(reference_dir: Path) -> dict:
    """An encoder checkpoint as ESPnet's generate_beats_checkpoint writes it (OpenBEATs layout)."""
    official = _official(reference_dir)
    cfg = dict(official["cfg"])
    del cfg["input_patch_size"]  # ESPnet's default (16) is left out of its beats_config
    cfg.update({"decoder_embed_dim": 64, "use_flash_attn": False})  # ESPnet-only settings
    model = dict(official["model"])
    model["patch_embedding_pad.weight"] = torch.ones(1, 1, 16, 16)
    model["raw2fbank_pad.weight"] = torch.ones(1, 1, 400)
    return {"cfg": cfg, "model": model}


def _reference_output(reference_dir: Path, mean: float, std: float, waves: torch.Tensor) -> torch.Tensor:
    model = load_checkpoint(reference_dir / "tiny_pretrained.pt").model
    model.cfg.fbank_mean, model.cfg.fbank_std = mean, std
    with torch.no_grad():
        return model.extract_features(waves)[0]


def test_an_openbeats_encoder_checkpoint_with_its_espnet_config(reference_dir: Path, tmp_path: Path):
    torch.save(_espnet_encoder_checkpoint(reference_dir), tmp_path / "beats_encoder.pt")
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"encoder": "beats", "encoder_conf": {"fbank_mean": 15.0, "fbank_std": 6.0}})
    )
    model, config, label_dict = load_checkpoint(tmp_path / "beats_encoder.pt")
    assert (config.fbank_mean, config.fbank_std, config.input_patch_size) == (15.0, 6.0, 16)
    assert config.extra == {"decoder_embed_dim": 64, "use_flash_attn": False} and label_dict is None
    waves = _noise(2, 16000, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(
            model.extract_features(waves)[0], _reference_output(reference_dir, 15.0, 6.0, waves)
        )
    # Saved again, it is an official checkpoint that carries the statistics.
    saved = torch.load(save_checkpoint(model, tmp_path / "official.pt"), weights_only=True)
    assert "patch_embedding_pad.weight" not in saved["model"]
    assert (saved["cfg"]["fbank_mean"], saved["cfg"]["fbank_std"]) == (15.0, 6.0)


def test_an_openbeats_encoder_checkpoint_alone_uses_espnet_statistics(
    reference_dir: Path, tmp_path: Path, caplog
):
    path = tmp_path / "beats_encoder.pt"
    torch.save(_espnet_encoder_checkpoint(reference_dir), path)
    loaded = load_checkpoint(path)
    assert (loaded.config.fbank_mean, loaded.config.fbank_std) == (ESPNET_FBANK_MEAN, ESPNET_FBANK_STD)
    assert "does not say its fbank_mean" in caplog.text
    checkpoint = _espnet_encoder_checkpoint(reference_dir)
    checkpoint["cfg"].update(fbank_mean=16.5, fbank_std=7.0)  # statistics inside the cfg win
    torch.save(checkpoint, path)
    assert load_checkpoint(path).config.fbank_mean == 16.5


def test_a_whole_espnet_classification_model(reference_dir: Path, tmp_path: Path):
    """A bare ESPnet model file: BEATs under 'encoder.', the head as decoder.linear_out, config.yaml beside it."""
    official = _official(reference_dir, "tiny_finetuned.pt")
    state = {}
    for key, tensor in official["model"].items():
        if key.startswith("predictor."):
            state["decoder.linear_out." + key.removeprefix("predictor.")] = tensor
        else:
            state["encoder." + key] = tensor
    state["encoder.patch_embedding_pad.weight"] = torch.ones(1, 1, 16, 16)
    state["encoder.raw2fbank_pad.weight"] = torch.ones(1, 1, 400)
    folder = tmp_path / "exp" / "cls_openbeats"
    folder.mkdir(parents=True)
    torch.save(state, folder / "valid.acc.best.pth")
    beats_config = {
        k: v for k, v in official["cfg"].items() if not k.startswith("predictor") and k != "finetuned_model"
    }
    config = {
        "encoder": "beats",
        "encoder_conf": {"beats_config": beats_config, "fbank_mean": 15.2913, "fbank_std": 5.90532},
        "decoder": "linear",
        "token_list": [*LABELS.values(), "<blank>", "<unk>"],
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    model, loaded_config, label_dict = load_checkpoint(folder / "valid.acc.best.pth")
    assert label_dict == LABELS and loaded_config.predictor_class == 5 and loaded_config.finetuned_model
    assert (loaded_config.fbank_mean, loaded_config.fbank_std) == (15.2913, 5.90532)
    reference = load_checkpoint(reference_dir / "tiny_finetuned.pt").model
    reference.cfg.fbank_mean, reference.cfg.fbank_std = 15.2913, 5.90532
    waves = _noise(2, 16000, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(model.extract_features(waves)[0], reference.extract_features(waves)[0])


def test_an_espnet_model_without_its_config_is_refused(reference_dir: Path, tmp_path: Path):
    state = {"encoder." + k: v for k, v in _official(reference_dir)["model"].items()}
    torch.save(state, tmp_path / "model.pth")
    with pytest.raises(
        CheckpointError, match=r"ESPnet model without its configuration: put the config\.yaml"
    ):
        load_checkpoint(tmp_path / "model.pth")
    (tmp_path / "config.yaml").write_text(json.dumps({"encoder": "conformer"}))
    with pytest.raises(CheckpointError, match="encoder is 'conformer', not BEATs"):
        load_checkpoint(tmp_path / "model.pth")


def test_the_large_size_reads_from_an_espnet_cfg():
    """OpenBEATs-Large: 24 layers, 1024 wide, 16 heads (shapes checked without allocating weights)."""
    espnet_cfg = {"encoder_layers": 24, "encoder_embed_dim": 1024, "encoder_ffn_embed_dim": 4096}
    espnet_cfg.update(encoder_attention_heads=16, decoder_embed_dim=1024, decoder_attention_heads=16)
    config = BEATsConfig.base().replace(**espnet_cfg)
    assert config == BEATsConfig.large().replace(decoder_embed_dim=1024, decoder_attention_heads=16)
    with torch.device("meta"):
        model = BEATs(config)
    state = model.state_dict()
    assert state["encoder.pos_conv.0.weight_v"].shape == (1024, 64, 128)
    assert state["encoder.layers.23.self_attn.grep_a"].shape == (1, 16, 1, 1)
    assert state["post_extract_proj.weight"].shape == (1024, 512)
