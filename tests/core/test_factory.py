"""The factory: one way from a spec (name, file, hf-hub:, random:) to a model; hostile checkpoints refused."""

from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path

import pytest
import torch

from beats_core import BEATs, CheckpointError, ConfigError, UnknownModelError
from beats_core.download import local_checkpoint_path
from beats_core.factory import MODEL_SIZES, create_model, load_checkpoint, model_from_checkpoint


def _official(reference_dir: Path, name: str = "tiny_finetuned.pt") -> dict:
    return torch.load(reference_dir / name, weights_only=True)


def _write(tmp_path: Path, checkpoint: dict, name: str = "hostile.pt") -> Path:
    path = tmp_path / name
    torch.save(checkpoint, path)
    return path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_file_spec_loads_in_eval_mode_and_remembers_its_file(reference_dir: Path):
    model = create_model(reference_dir / "tiny_finetuned.pt")
    assert isinstance(model, BEATs) and not model.training
    assert model.checkpoint_path == reference_dir / "tiny_finetuned.pt"
    assert model.label_dict == {int(k): v for k, v in _official(reference_dir)["label_dict"].items()}


@pytest.mark.parametrize("size", sorted(MODEL_SIZES))
def test_random_specs_build_the_named_size(size: str):
    if size != "tiny":  # the base and large sizes are built on the meta device: their shapes are what counts
        with torch.device("meta"):
            model = BEATs(MODEL_SIZES[size]())
    else:
        model = create_model("random:tiny")
        assert model.training and model.checkpoint_path is None
    assert model.cfg.encoder_layers == {"tiny": 2, "base": 12, "large": 24}[size]


def test_one_rule_tells_a_file_from_a_name(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BEATs_iter3_plus_AS2M").write_bytes(b"x")
    assert local_checkpoint_path("BEATs_iter3_plus_AS2M") is None  # a registered name wins
    assert local_checkpoint_path("./BEATs_iter3_plus_AS2M") == Path("BEATs_iter3_plus_AS2M")
    assert local_checkpoint_path(Path("BEATs_iter3_plus_AS2M")) == Path("BEATs_iter3_plus_AS2M")
    assert local_checkpoint_path("hf-hub:me/birds") is None
    for spec in ("model.pt", "model.pth", "model.ckpt", "pytorch_model.bin", "sub/dir", "~/x"):
        assert local_checkpoint_path(spec) is not None, spec
    assert local_checkpoint_path("BEATs_iter3_plus_AS2") is None  # a misspelt name, reported as such
    with pytest.raises(UnknownModelError, match="Did you mean 'BEATs_iter3_plus_AS2M'"):
        create_model("BEATs_iter3_plus_AS2")
    with pytest.raises(CheckpointError, match="does not exist"):
        create_model("missing.bin")


@pytest.mark.parametrize(
    ("field", "value"),
    [("encoder_layers", 10**6), ("encoder_embed_dim", 2**40), ("encoder_ffn_embed_dim", 2**40)],
)
def test_a_cfg_beyond_any_model_is_refused_before_anything_is_built(
    reference_dir: Path, tmp_path: Path, field: str, value: int
):
    checkpoint = _official(reference_dir)
    checkpoint["cfg"][field] = value
    path = _write(tmp_path, checkpoint)
    before, start = _peak_rss_mb(), time.perf_counter()
    with pytest.raises(CheckpointError, match=rf"{field}.*is beyond any BEATs model"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 5 and _peak_rss_mb() - before < 200


def test_label_dict_keys_must_be_class_indices(reference_dir: Path, tmp_path: Path):
    checkpoint = _official(reference_dir)
    checkpoint["label_dict"] = {**checkpoint["label_dict"], "x": "cat"}
    with pytest.raises(CheckpointError, match=r"label_dict has the key 'x', which is not a class index"):
        load_checkpoint(_write(tmp_path, checkpoint))


def test_a_label_dict_that_does_not_fit_the_head_is_refused(reference_dir: Path, tmp_path: Path):
    checkpoint = _official(reference_dir)
    checkpoint["label_dict"] = {k: v for k, v in checkpoint["label_dict"].items() if int(k) < 3}
    with pytest.raises(
        CheckpointError, match=r"label_dict names 3 class\(es\) \(0\.\.2\) but its head has 5"
    ):
        load_checkpoint(_write(tmp_path, checkpoint))


def test_string_class_indices_are_accepted(reference_dir: Path, tmp_path: Path):
    checkpoint = _official(reference_dir)
    checkpoint["label_dict"] = {str(k): v for k, v in checkpoint["label_dict"].items()}
    model = load_checkpoint(_write(tmp_path, checkpoint)).model
    assert sorted(model.label_dict) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_weights_that_are_not_finite_are_refused(reference_dir: Path, tmp_path: Path, bad: float):
    checkpoint = _official(reference_dir)
    key = "encoder.layers.1.fc2.weight"
    checkpoint["model"][key] = torch.full_like(checkpoint["model"][key], bad)
    with pytest.raises(CheckpointError, match=rf"{key}.*NaN or infinite"):
        load_checkpoint(_write(tmp_path, checkpoint))


def test_model_from_checkpoint_builds_from_content_without_a_file(reference_dir: Path):
    content = _official(reference_dir, "tiny_pretrained.pt")
    model = model_from_checkpoint(content, origin="in memory")
    assert model.predictor is None and model.checkpoint_path is None
    with pytest.raises(CheckpointError, match="'in memory' has a cfg that cannot be built"):
        model_from_checkpoint({**content, "cfg": {**content["cfg"], "encoder_layers": 0}}, origin="in memory")


def test_an_unknown_random_size_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown size 'huge'.*random:tiny, random:base, random:large"):
        create_model("random:huge")


def test_a_copied_checkpoint_keeps_its_own_path(reference_dir: Path, tmp_path: Path):
    copy = tmp_path / "copy.pt"
    shutil.copy(reference_dir / "tiny_pretrained.pt", copy)
    assert create_model(str(copy)).checkpoint_path == copy


def test_the_encoder_fingerprint_ignores_the_head_and_sees_weights_and_fbank_statistics(
    reference_dir, tmp_path
):
    from beats_core.factory import encoder_sha256, save_checkpoint

    pretrained = create_model(reference_dir / "tiny_pretrained.pt")
    probe = create_model(reference_dir / "tiny_pretrained.pt")
    probe.reset_classifier(3)  # a linear probe: same encoder, a new head
    probe.label_dict = {0: "a", 1: "b", 2: "c"}
    reloaded = create_model(save_checkpoint(probe, tmp_path / "probe.pt"))
    assert encoder_sha256(pretrained) == encoder_sha256(probe) == encoder_sha256(reloaded)
    assert encoder_sha256(pretrained) != encoder_sha256(create_model(reference_dir / "tiny_finetuned.pt"))
    other_statistics = create_model(reference_dir / "tiny_pretrained.pt")
    other_statistics.cfg.fbank_mean += 1.0
    assert encoder_sha256(other_statistics) != encoder_sha256(pretrained)
