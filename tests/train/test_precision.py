"""Mixed precision from the hardware: auto, an explicit bf16 that warns where it is emulated, fp16 loss scaling."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from beats_core import ConfigError, create_model, devices
from beats_core.devices import PrecisionWarning, has_native_bfloat16
from beats_data.dataset import AudioCollator
from beats_train import BEATsTrainer
from beats_train.config import TrainingConfig
from beats_train.evaluation import evaluate_model
from beats_train.model import BEATsClassifier, prepare_backbone
from beats_train.precision import MixedPrecision, resolve_mixed_precision

CPU = torch.device("cpu")


def _precision_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, PrecisionWarning)]


def test_auto_is_bf16_exactly_where_the_hardware_computes_it_natively():
    assert resolve_mixed_precision("auto", CPU) == ("bf16" if has_native_bfloat16(CPU) else "no")
    assert resolve_mixed_precision("no", CPU) == "no"
    with pytest.raises(ConfigError, match="'fp16' needs a GPU; on the CPU use 'bf16'"):
        resolve_mixed_precision("fp16", CPU)


def test_an_explicit_bf16_is_kept_and_warns_once_where_the_cpu_emulates_it():
    devices._warn_emulated_bfloat16.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_mixed_precision("bf16", CPU) == "bf16"
        assert resolve_mixed_precision("bf16", CPU) == "bf16"
    found = _precision_warnings(caught)
    if has_native_bfloat16(CPU):
        assert found == []
    else:
        assert len(found) == 1 and "no native bfloat16" in found[0] and "slower" in found[0]


def test_fp16_loss_scaling_skips_the_update_of_an_overflowing_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = MixedPrecision("fp16", CPU)  # torch's CPU scaler: the arithmetic a GPU run does
    inputs = torch.ones(4, 64)  # gradients of 4 per weight: 4 x 65536 overflows float16
    taken = []
    for _ in range(8):
        before = model.weight.detach().clone()
        with precision.autocast():
            output = model(inputs)
        assert output.dtype == torch.float16
        precision.scale(output.float().sum()).backward()
        precision.unscale(optimizer)
        stepped = precision.step(optimizer)
        optimizer.zero_grad()
        assert stepped == (not torch.equal(before, model.weight))  # skipped steps leave the weights alone
        taken.append(stepped)
    assert taken[0] is False and taken[-1] is True  # the first scale overflows; a lower one does not


def test_evaluation_runs_in_place_and_in_the_runs_precision():
    backbone = prepare_backbone(
        create_model("random:tiny"), TrainingConfig(model="random:tiny"), {0: "a", 1: "b"}
    )
    classifier = BEATsClassifier(backbone)
    seen = []

    def record(encoder, inputs, output):
        seen.append((encoder.in_place, torch.is_autocast_enabled("cpu")))

    backbone.encoder.register_forward_hook(record)
    rng = np.random.default_rng(0)
    items = [
        {
            "waveform": torch.from_numpy(rng.standard_normal(16000).astype(np.float32) * 0.1),
            "index": i,
            "target": torch.tensor(i % 2),
        }
        for i in range(3)
    ]
    loader = [AudioCollator()(items)]
    for precision in (None, MixedPrecision("bf16", CPU)):
        result = evaluate_model(
            classifier,
            loader,
            targets=np.array([0, 1, 0]),
            labels=["a", "b"],
            multi_label=False,
            progress=False,
            precision=precision,
        )
        assert result.logits.dtype == np.float32 and np.isfinite(result.logits).all()
    assert seen == [(True, False), (True, True)]
    assert not backbone.encoder.in_place  # the plain path again after the evaluation


def test_runs_in_several_precisions_share_one_process(sound_root, tmp_path, tiny_config):
    """Accelerate keeps one precision per process; beats-train applies its own, so runs may differ."""
    devices._warn_emulated_bfloat16.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bf16 = BEATsTrainer.from_directory(
            sound_root,
            config=tiny_config(tmp_path / "bf16", max_epochs=1, mixed_precision="bf16"),
            batch_size=8,
            validate=False,
        ).train()
    auto = BEATsTrainer.from_directory(
        sound_root, config=tiny_config(tmp_path / "auto", max_epochs=1), batch_size=8, validate=False
    ).train()
    assert bf16.mixed_precision == "bf16"
    assert auto.mixed_precision == ("bf16" if has_native_bfloat16(CPU) else "no")
    assert len(_precision_warnings(caught)) == (0 if has_native_bfloat16(CPU) else 1)
    assert np.isfinite(bf16.history["train_loss"]).all() and np.isfinite(auto.history["train_loss"]).all()
