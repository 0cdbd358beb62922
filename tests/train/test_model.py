from __future__ import annotations

import math

import pytest
import torch

from beats_core import BEATs, ConfigError, load_checkpoint
from beats_core.factory import create_model
from beats_extract.classify import ClipClassifier
from beats_train.augment import FbankMasking
from beats_train.config import AugmentationConfig, TrainingConfig
from beats_train.model import BEATsClassifier, prepare_backbone
from beats_train.optim import build_optimizer, build_scheduler, lr_factor, parameter_groups

LABELS = {0: "dog", 1: "rooster", 2: "rain", 3: "engine", 4: "pig"}


def _encoder(model: BEATs) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("predictor.")}


def test_training_settings_are_applied_by_rebuilding_the_model(reference_dir):
    pretrained = create_model(str(reference_dir / "tiny_pretrained.pt"))
    config = TrainingConfig(
        layer_wise_gradient_decay_ratio=0.2,
        encoder_layerdrop=0.3,
        dropout=0.0,
        head_dropout=0.25,
        fbank_mean=11.72215,
        fbank_std=10.60431,
    )
    model = prepare_backbone(pretrained, config, LABELS)
    cfg = model.cfg
    assert (cfg.layer_wise_gradient_decay_ratio, cfg.encoder_layerdrop, cfg.dropout) == (0.2, 0.3, 0.0)
    assert (cfg.predictor_dropout, cfg.fbank_mean, cfg.fbank_std) == (0.25, 11.72215, 10.60431)
    assert cfg.finetuned_model and cfg.predictor_class == 5 and model.label_dict == LABELS
    assert model.encoder.layerdrop == 0.3 and model.encoder.gradient_scale == 0.2  # the modules use them
    assert all(layer.dropout == 0.0 for layer in model.encoder.layers)
    original = _encoder(pretrained)
    assert all(torch.equal(original[k], v) for k, v in _encoder(model).items())
    assert model.predictor.out_features == 5 and not model.predictor.weight.is_meta
    same = prepare_backbone(pretrained, TrainingConfig(), LABELS)
    assert same.cfg.encoder_layerdrop == pretrained.cfg.encoder_layerdrop  # None keeps the model's own
    assert same.cfg.fbank_mean == pretrained.cfg.fbank_mean


def test_a_head_for_the_same_labels_is_kept_and_other_labels_get_a_new_one(reference_dir):
    finetuned = create_model(str(reference_dir / "tiny_finetuned.pt"))
    labels = finetuned.label_dict
    kept = prepare_backbone(finetuned, TrainingConfig(), labels)
    assert torch.equal(kept.predictor.weight, finetuned.predictor.weight)
    fresh = prepare_backbone(finetuned, TrainingConfig(), {0: "a", 1: "b"})
    assert fresh.predictor.out_features == 2 and fresh.label_dict == {0: "a", 1: "b"}


def test_random_sizes_and_unknown_ones():
    torch.manual_seed(0)
    assert create_model("random:tiny").cfg.encoder_embed_dim == 64
    with pytest.raises(ConfigError, match=r"unknown size 'huge'.*random:tiny, random:base, random:large"):
        create_model("random:huge")


def test_saved_model_is_an_official_fine_tuned_checkpoint(reference_dir, tmp_path):
    model = prepare_backbone(
        create_model(str(reference_dir / "tiny_pretrained.pt")), TrainingConfig(), LABELS
    )
    classifier = BEATsClassifier(model, clip_seconds=2.5).eval()
    path = classifier.save(tmp_path / "model.pt")
    saved = torch.load(path, weights_only=True)
    official = torch.load(reference_dir / "tiny_finetuned.pt", weights_only=True)
    assert list(saved["model"]) == list(official["model"])  # the official keys, in the official order
    assert {k: v.shape for k, v in saved["model"].items()} == {
        k: v.shape for k, v in official["model"].items()
    }
    assert saved["cfg"]["finetuned_model"] is True and saved["cfg"]["predictor_class"] == 5
    assert saved["label_dict"] == LABELS
    assert saved["cfg"]["beats_train"] == {"multi_label": False, "layer_weights": None, "max_duration": 2.5}
    loaded = load_checkpoint(path)
    assert loaded.label_dict == LABELS
    waveforms = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        official_output, _ = loaded.model.extract_features(waveforms)  # sigmoid of the pooled token logits
        assert torch.allclose(official_output, torch.sigmoid(classifier(waveforms)), atol=1e-6)
    again = BEATsClassifier.load(path)
    assert not again.multi_label and again.label_dict == LABELS and again.clip_seconds == 2.5
    # beats detect and beats predict cut the clips the model was trained on
    classifier_of_detect = ClipClassifier(path)
    assert classifier_of_detect.clip_seconds == 2.5 and not classifier_of_detect.multi_label


def test_weighted_layer_sum_is_learnable_and_travels_in_the_checkpoint(reference_dir, tmp_path):
    model = prepare_backbone(
        create_model(str(reference_dir / "tiny_pretrained.pt")), TrainingConfig(), LABELS
    )
    classifier = BEATsClassifier(model, weighted_layer_sum=True, multi_label=True).eval()
    waveforms = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hidden, mask = model.extract_hidden_states(waveforms)
        expected = model.forward_head(torch.stack(hidden).mean(dim=0), mask)
        assert torch.allclose(classifier(waveforms), expected, atol=1e-5)  # equal weights at the start
        classifier.layer_weights.copy_(torch.tensor([0.0, 1.0, 2.0]))
    path = classifier.save(tmp_path / "weighted.pt")
    again = BEATsClassifier.load(path)
    assert again.multi_label
    weights = torch.softmax(again.layer_weights, 0)
    assert torch.allclose(weights, torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0), atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(again(waveforms), classifier(waveforms), atol=1e-5)
    with pytest.raises(ConfigError, match="3 numbers"):
        BEATsClassifier(model, layer_weights=[0.5, 0.5])


def test_fbank_masks_apply_in_training_only_and_a_frozen_encoder_gets_no_gradient(reference_dir):
    config = TrainingConfig(dropout=0.0, head_dropout=0.0)
    model = prepare_backbone(create_model(str(reference_dir / "tiny_pretrained.pt")), config, LABELS)
    masking = FbankMasking(
        AugmentationConfig(time_masks=2, time_mask_ratio=0.3, freq_masks=2, freq_mask_bins=30)
    )
    classifier = BEATsClassifier(model, fbank_masking=masking)
    waveforms = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    classifier.freeze_backbone(True)
    classifier.train()
    assert not classifier.backbone.training  # a frozen encoder runs in eval mode (no dropout, no layer drop)
    torch.manual_seed(0)
    masked = classifier(waveforms)
    masked.sum().backward()
    encoder_grads = [p.grad for p in classifier.encoder_parameters()]
    assert all(g is None for g in encoder_grads) and classifier.backbone.predictor.weight.grad is not None
    classifier.eval()
    with torch.no_grad():
        clean = classifier(waveforms)
        assert torch.allclose(clean, model.forward_head(*model.forward_features(waveforms)), atol=1e-6)
    assert not torch.allclose(masked.detach(), clean, atol=1e-4)


def test_parameter_groups_decay_the_learning_rate_by_layer_and_skip_weight_decay_on_vectors(reference_dir):
    config = TrainingConfig(learning_rate=1e-3, layer_lr_decay=0.5, weight_decay=0.05)
    model = prepare_backbone(create_model(str(reference_dir / "tiny_pretrained.pt")), config, LABELS)
    classifier = BEATsClassifier(model, weighted_layer_sum=True)
    groups = parameter_groups(classifier, config)
    by_layer = {(g["layer"], g["weight_decay"] > 0): g for g in groups}
    assert {layer for layer, _ in by_layer} == {0, 1, 2, 3}  # embedding, 2 layers, head
    for (layer, decays), group in by_layer.items():
        assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (3 - layer))
        assert group["backbone"] == (layer <= 2)
        assert all((p.ndim >= 2) == decays for p in group["params"])
        assert group["weight_decay"] == (0.05 if decays else 0.0)
    assert classifier.layer_weights in by_layer[(3, False)]["params"]
    assert classifier.backbone.predictor.weight in by_layer[(3, True)]["params"]
    listed = [id(p) for g in groups for p in g["params"]]
    assert sorted(listed) == sorted(id(p) for p in classifier.parameters())  # each once, the shared table too


def test_schedules():
    assert [lr_factor(step, 100, 0.1, "cosine") for step in (0, 5, 10)] == [0.0, 0.5, 1.0]
    assert lr_factor(55, 100, 0.1, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 0.1, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(55, 100, 0.1, "linear") == pytest.approx(0.5)
    assert lr_factor(90, 100, 0.1, "constant") == 1.0
    assert lr_factor(0, 100, 0.0, "cosine") == 1.0


@pytest.mark.parametrize("name", ["adamw", "adam"])
def test_adam_steps_use_the_fused_kernel_and_match_the_plain_one(reference_dir, name):
    config = TrainingConfig(optimizer=name, learning_rate=1e-3, weight_decay=0.05)
    models = [
        BEATsClassifier(
            prepare_backbone(create_model(str(reference_dir / "tiny_pretrained.pt")), config, LABELS)
        )
        for _ in range(2)
    ]
    models[1].load_state_dict(models[0].state_dict())
    for model in models:
        model.eval()  # no dropout: both see the same gradients
    initial = {key: value.clone() for key, value in models[0].state_dict().items()}
    fused = build_optimizer(models[0], config)
    assert all(group["fused"] for group in fused.param_groups)
    plain = type(fused)(parameter_groups(models[1], config), lr=1e-3, betas=config.betas)
    waves = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        for model, optimizer in ((models[0], fused), (models[1], plain)):
            torch.nn.functional.cross_entropy(model(waves, None), torch.tensor([0, 3])).backward()
            optimizer.step()
            optimizer.zero_grad()
    for (key, ours), theirs in zip(
        models[0].state_dict().items(), models[1].state_dict().values(), strict=True
    ):
        # Adam turns rounding noise in tiny gradients (the key bias's is zero in exact arithmetic)
        # into steps of up to lr: allow a tenth of one step.
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4, msg=key)
    assert not torch.equal(
        models[0].state_dict()["backbone.predictor.weight"], initial["backbone.predictor.weight"]
    )


def test_the_encoder_learning_rate_is_zero_while_frozen(reference_dir):
    config = TrainingConfig(
        learning_rate=1e-3, warmup=0.0, scheduler="constant", freeze_backbone=True, unfreeze_after=1
    )
    model = prepare_backbone(create_model(str(reference_dir / "tiny_pretrained.pt")), config, LABELS)
    optimizer = build_optimizer(BEATsClassifier(model), config)
    scheduler = build_scheduler(optimizer, config, total_steps=10, frozen_steps=4)
    for step in range(6):
        rates = {g["backbone"]: g["lr"] for g in optimizer.param_groups}
        assert rates[False] == pytest.approx(1e-3)
        assert rates[True] == (0.0 if step < 4 else pytest.approx(1e-3))
        optimizer.step()
        scheduler.step()
    assert isinstance(optimizer, torch.optim.AdamW)
    sgd = build_optimizer(BEATsClassifier(model), config.replace(optimizer="sgd", momentum=0.8))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.8
    assert not math.isnan(sgd.param_groups[0]["lr"])
