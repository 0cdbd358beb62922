"""Parity with the official implementation: every array of the reference vectors, within the README's tolerances.

The reference folder (tests/reference) holds two tiny checkpoints in the
official layout and the outputs of microsoft/unilm's BEATs code for them. Both checkpoints
are loaded unchanged; intermediate taps are reached with forward hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from beats_core.factory import load_checkpoint
from beats_core.fbank import compute_fbank, normalize_fbank
from beats_core.model import BEATs, _relative_buckets

# README section 7: (atol) per kind of array; masks and buckets must match exactly.
FBANK_RAW_ATOL = 1e-3
FBANK_NORM_ATOL = 1e-4
FEATURE_ATOL = 1e-4
LPROBS_ATOL = 2e-6
EXACT = None


@pytest.fixture(scope="module")
def fbank_cases(reference_dir: Path) -> dict[str, np.ndarray]:
    with np.load(reference_dir / "fbank_cases.npz") as data:
        return dict(data)


@pytest.fixture(scope="module")
def model_cases(reference_dir: Path) -> dict[str, np.ndarray]:
    with np.load(reference_dir / "model_cases.npz") as data:
        return dict(data)


@pytest.fixture(scope="module")
def pretrained(reference_dir: Path) -> BEATs:
    return load_checkpoint(reference_dir / "tiny_pretrained.pt").model


@pytest.fixture(scope="module")
def finetuned(reference_dir: Path) -> BEATs:
    return load_checkpoint(reference_dir / "tiny_finetuned.pt").model


def _assert_matches(name: str, ours: np.ndarray, expected: np.ndarray, atol: float | None) -> None:
    assert ours.shape == expected.shape, f"{name}: shape {ours.shape} != {expected.shape}"
    if atol is EXACT:
        np.testing.assert_array_equal(ours, expected, err_msg=name)
    else:
        np.testing.assert_allclose(ours, expected, rtol=0, atol=atol, err_msg=name)


# ------------------------------------------------------------------------------ fbank
def test_every_fbank_array_is_covered(fbank_cases):
    cases = {name.split("__")[0] for name in fbank_cases}
    assert set(fbank_cases) == {
        f"{case}__{kind}" for case in cases for kind in ("wave", "fbank_raw", "fbank_norm")
    }
    assert len(fbank_cases) == 18


@pytest.mark.parametrize(
    "case", ["noise_1s", "sine440_2s", "silence_1s", "noise_0p5s", "one_frame_400", "noise_10s"]
)
def test_fbank_matches_official(fbank_cases, case):
    wave = torch.from_numpy(fbank_cases[f"{case}__wave"])
    raw = compute_fbank(wave).numpy()
    norm = normalize_fbank(torch.from_numpy(raw)).numpy()
    expected_raw, expected_norm = fbank_cases[f"{case}__fbank_raw"], fbank_cases[f"{case}__fbank_norm"]
    if case.startswith("sine"):
        # README section 7: a pure tone is compared tightly only where it has energy.
        loud = expected_raw > 0
        _assert_matches(case, raw[loud], expected_raw[loud], 1e-2)
        _assert_matches(case, norm[loud], expected_norm[loud], 1e-3)
        _assert_matches(case, raw, expected_raw, 0.2)
        _assert_matches(case, norm, expected_norm, 0.02)
    else:
        _assert_matches(f"{case}__fbank_raw", raw, expected_raw, FBANK_RAW_ATOL)
        _assert_matches(f"{case}__fbank_norm", norm, expected_norm, FBANK_NORM_ATOL)


def test_fbank_of_a_batch_matches_each_case(fbank_cases):
    cases = ["noise_1s", "silence_1s"]
    batch = torch.stack([torch.from_numpy(fbank_cases[f"{case}__wave"]) for case in cases])
    raw = compute_fbank(batch).numpy()
    for row, case in enumerate(cases):
        _assert_matches(case, raw[row], fbank_cases[f"{case}__fbank_raw"], FBANK_RAW_ATOL)


# ------------------------------------------------------------------------------ model
class _Taps:
    """Forward hooks that record module outputs."""

    def __init__(self, modules: dict[str, torch.nn.Module]) -> None:
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = [module.register_forward_hook(self._hook(name)) for name, module in modules.items()]

    def _hook(self, name: str) -> Callable:
        def record(module, inputs, output):
            self.outputs[name] = output.detach().clone()

        return record

    def __enter__(self) -> _Taps:
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()


def _tokens(conv_output: torch.Tensor) -> torch.Tensor:
    return conv_output.flatten(2).transpose(1, 2)


@pytest.fixture(scope="module")
def ours(model_cases, pretrained, finetuned) -> dict[str, np.ndarray]:
    """Every reference array, computed by our implementation."""
    batch = torch.from_numpy(model_cases["batch_wave"])
    mask = torch.from_numpy(model_cases["batch_padding_mask"])
    single = torch.from_numpy(model_cases["single_wave"])
    long10s = torch.from_numpy(model_cases["long10s_wave"])
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        fbank, frame_mask = pretrained.preprocess(batch, mask)
        out["batch_fbank_norm"], out["batch_fbank_frame_padding_mask"] = fbank, frame_mask

        with _Taps({"proj": pretrained.post_extract_proj}) as taps:
            features, token_mask = pretrained.extract_features(batch, mask)
        out["pre_batch_features"], out["pre_batch_padding_mask_out"] = features, token_mask
        out["pre_batch_tap_post_extract_proj"] = taps.outputs["proj"]
        hidden, _ = pretrained.extract_hidden_states(batch, mask)
        out["pre_batch_tap_layer_input"] = hidden[0]

        with _Taps({"logits": finetuned.predictor}) as taps:
            lprobs, token_mask = finetuned.extract_features(batch, mask)
        out["ft_batch_lprobs"], out["ft_batch_padding_mask_out"] = lprobs, token_mask
        out["ft_batch_tap_token_logits"] = taps.outputs["logits"]
        out["ft_batch_tap_encoder_out"] = finetuned.forward_features(batch, mask)[0]

        modules = {
            "patch": pretrained.patch_embedding,
            "patch_ln": pretrained.layer_norm,
            "proj": pretrained.post_extract_proj,
            "pos_conv": pretrained.encoder.pos_conv,
            "attn_0": pretrained.encoder.layers[0].self_attn,
            "attn_1": pretrained.encoder.layers[1].self_attn,
        }
        with _Taps(modules) as taps:
            features, token_mask = pretrained.extract_features(single)
        assert token_mask is None
        out["pre_single_features"] = features
        out["pre_single_tap_patch_embed"] = _tokens(taps.outputs["patch"])
        out["pre_single_tap_patch_embed_ln"] = taps.outputs["patch_ln"]
        out["pre_single_tap_post_extract_proj"] = taps.outputs["proj"]
        out["pre_single_tap_pos_conv_out"] = taps.outputs["pos_conv"].transpose(1, 2)
        out["pre_single_tap_attn_out_0"] = taps.outputs["attn_0"]
        out["pre_single_tap_attn_out_1"] = taps.outputs["attn_1"]
        hidden, token_mask = pretrained.extract_hidden_states(single)
        assert token_mask is None
        out["pre_single_layer_results"] = torch.stack(hidden)

        lprobs, token_mask = finetuned.extract_features(single)
        assert token_mask is None
        out["ft_single_lprobs"] = lprobs
        out["ft_single_tap_encoder_out"] = finetuned.forward_features(single)[0]

        hidden, _ = pretrained.extract_hidden_states(long10s)
        out["pre_long10s_features"], out["pre_long10s_layer0_out"] = hidden[-1], hidden[1]
        out["ft_long10s_lprobs"] = finetuned.extract_features(long10s)[0]

    relative = model_cases["rel_pos_relative_position"]
    span = int(relative.max()) + 1
    assert np.array_equal(relative, np.arange(-(span - 1), span))
    out["rel_pos_bucket"] = _relative_buckets(span, 320, 800, torch.device("cpu")).to(torch.int32)
    return {name: value.numpy() for name, value in out.items()}


INPUTS = {"batch_wave", "batch_padding_mask", "single_wave", "long10s_wave", "rel_pos_relative_position"}


def _tolerance(name: str) -> float | None:
    if "mask" in name or name == "rel_pos_bucket":
        return EXACT
    if name.endswith("lprobs"):
        return LPROBS_ATOL
    if name == "batch_fbank_norm":
        return FBANK_NORM_ATOL
    return FEATURE_ATOL  # features, taps, per-layer outputs and token logits


def test_every_model_array_is_covered(model_cases, ours):
    assert len(model_cases) == 29
    assert set(model_cases) - INPUTS == set(ours)


@pytest.mark.parametrize(
    "name",
    [
        "batch_fbank_norm",
        "batch_fbank_frame_padding_mask",
        "pre_batch_features",
        "pre_batch_padding_mask_out",
        "pre_batch_tap_post_extract_proj",
        "pre_batch_tap_layer_input",
        "ft_batch_lprobs",
        "ft_batch_padding_mask_out",
        "ft_batch_tap_encoder_out",
        "ft_batch_tap_token_logits",
        "pre_single_features",
        "pre_single_layer_results",
        "pre_single_tap_patch_embed",
        "pre_single_tap_patch_embed_ln",
        "pre_single_tap_post_extract_proj",
        "pre_single_tap_pos_conv_out",
        "pre_single_tap_attn_out_0",
        "pre_single_tap_attn_out_1",
        "ft_single_lprobs",
        "ft_single_tap_encoder_out",
        "pre_long10s_features",
        "pre_long10s_layer0_out",
        "ft_long10s_lprobs",
        "rel_pos_bucket",
    ],
)
def test_model_array_matches_official(model_cases, ours, name):
    expected = model_cases[name]
    assert ours[name].dtype == expected.dtype
    _assert_matches(name, ours[name], expected, _tolerance(name))


def test_an_all_false_mask_equals_no_mask(model_cases, pretrained):
    """Batch row 1 has no padding: with the mask it equals the single clip without one."""
    batch = torch.from_numpy(model_cases["batch_wave"])
    mask = torch.from_numpy(model_cases["batch_padding_mask"])
    assert not mask[1].any()
    with torch.no_grad():
        row, row_mask = pretrained.extract_features(batch[1:2], mask[1:2])
        alone, _ = pretrained.extract_features(batch[1:2])
    assert not row_mask.any()
    torch.testing.assert_close(row, alone, rtol=0, atol=1e-6)
