from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from beats_core import AudioTooShortError, BEATs, BEATsConfig, ConfigError, InvalidAudioError
from beats_core.checkpoint import checkpoint_filter_fn
from beats_core.geometry import min_num_samples, num_tokens
from beats_core.model import downsample_padding_mask


def _noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _tiny(seed: int = 0, **overrides) -> BEATs:
    torch.manual_seed(seed)
    return BEATs(BEATsConfig.tiny(**overrides))


# A very small model for finite-difference gradient checks: 8 tokens per 2800 samples.
MICRO = {
    "embed_dim": 16,
    "encoder_embed_dim": 16,
    "encoder_ffn_embed_dim": 32,
    "encoder_attention_heads": 2,
    "conv_pos": 4,
    "conv_pos_groups": 2,
    "num_buckets": 8,
    "max_distance": 16,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "layer_wise_gradient_decay_ratio": 1.0,  # it scales gradients on purpose
}


# ------------------------------------------------------------------------------ layout
def test_parameter_names_and_order_are_the_official_ones(reference_dir: Path):
    for name in ("tiny_pretrained.pt", "tiny_finetuned.pt"):
        checkpoint = torch.load(reference_dir / name, weights_only=True)
        model = BEATs(BEATsConfig.from_dict(checkpoint["cfg"]))
        assert list(model.state_dict()) == list(checkpoint["model"])
        assert [tuple(t.shape) for t in model.state_dict().values()] == [
            tuple(t.shape) for t in checkpoint["model"].values()
        ]
        model.load_state_dict(checkpoint["model"], strict=True)


def test_the_relative_position_table_is_one_shared_parameter():
    model = _tiny()
    tables = [layer.self_attn.relative_attention_bias.weight for layer in model.encoder.layers]
    assert tables[0] is tables[1]
    names = [name for name, _ in model.named_parameters()]
    assert sum("relative_attention_bias" in name for name in names) == 1
    state = model.state_dict()
    key = "encoder.layers.{}.self_attn.relative_attention_bias.weight"
    assert state[key.format(1)].data_ptr() == state[key.format(0)].data_ptr()


def test_torch_weight_norm_names_load_both_ways(reference_dir: Path):
    """A state dict with torch's parametrization names loads, and our state dict uses the legacy names."""
    checkpoint = torch.load(reference_dir / "tiny_pretrained.pt", weights_only=True)
    official = checkpoint["model"]
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(64, 64, 16, groups=4), dim=2)
    renamed = {}
    for key, value in official.items():
        if key == "encoder.pos_conv.0.weight_g":
            key = "encoder.pos_conv.0." + next(k for k in conv.state_dict() if k.endswith("original0"))
        elif key == "encoder.pos_conv.0.weight_v":
            key = "encoder.pos_conv.0." + next(k for k in conv.state_dict() if k.endswith("original1"))
        renamed[key] = value
    assert "encoder.pos_conv.0.parametrizations.weight.original0" in renamed
    model = BEATs(BEATsConfig.from_dict(checkpoint["cfg"]))
    model.load_state_dict(renamed, strict=True)
    assert torch.equal(model.encoder.pos_conv[0].weight_g, official["encoder.pos_conv.0.weight_g"])
    # The effective kernel equals torch's weight norm over dim 2 with the same g and v.
    conv.parametrizations.weight.original0.data.copy_(official["encoder.pos_conv.0.weight_g"])
    conv.parametrizations.weight.original1.data.copy_(official["encoder.pos_conv.0.weight_v"])
    torch.testing.assert_close(model.encoder.pos_conv[0].weight(), conv.weight)
    assert "encoder.pos_conv.0.weight_g" in model.state_dict()


def test_filter_fills_and_unifies_the_relative_tables(reference_dir: Path):
    official = torch.load(reference_dir / "tiny_pretrained.pt", weights_only=True)["model"]
    key1 = "encoder.layers.1.self_attn.relative_attention_bias.weight"
    without = {k: v for k, v in official.items() if k != key1}
    assert torch.equal(checkpoint_filter_fn(without)[key1], official[key1])
    model = _tiny()
    model.load_state_dict(without, strict=True)


# ------------------------------------------------------------------------------ geometry
def test_geometry_helpers():
    model = _tiny()
    assert model.num_frequency_patches == 8
    assert model.min_num_samples == min_num_samples() == 2800
    assert model.embed_dim == 64
    assert num_tokens(24000) == model.num_tokens(24000) == 72
    assert num_tokens(160000) == 496 and num_tokens(2800) == 8 and num_tokens(2799) == 0
    features, _ = model.forward_features(_noise(1, 2800))
    assert features.shape == (1, 8, 64)


def test_downsample_padding_mask_follows_the_official_rule():
    mask = torch.tensor([[False] * 5 + [True] * 6])  # M = 11, S = 3: drop 2, groups of 3
    assert downsample_padding_mask(mask, 3).tolist() == [[False, False, True]]


def test_too_short_and_bad_inputs_are_refused():
    model = _tiny()
    with pytest.raises(AudioTooShortError, match=r"2799 samples .* at least 2800 samples \(175 ms.*pad it"):
        model.extract_features(torch.zeros(1, 2799))
    with pytest.raises(InvalidAudioError, match="unsqueeze"):
        model.extract_features(torch.zeros(16000))
    with pytest.raises(InvalidAudioError, match="float samples"):
        model.extract_features(torch.zeros(1, 16000, dtype=torch.int16))
    with pytest.raises(InvalidAudioError, match="shape of the waveforms"):
        model.extract_features(torch.zeros(2, 16000), torch.zeros(2, 15999, dtype=torch.bool))
    with pytest.raises(InvalidAudioError, match="bool"):
        model.extract_features(torch.zeros(2, 16000), torch.zeros(2, 16000))
    all_padding = torch.zeros(3, 16000, dtype=torch.bool)
    all_padding[1] = True
    with pytest.raises(InvalidAudioError, match=r"every sample of batch row\(s\) \[1\] as padding"):
        model.extract_features(torch.zeros(3, 16000), all_padding)
    fbank, frame_mask = model.preprocess(torch.zeros(1, 400))  # the fbank alone needs one frame
    assert fbank.shape == (1, 1, 128) and frame_mask is None


# ------------------------------------------------------------------------------ outputs
def test_hidden_states_and_features_agree():
    model = _tiny().eval()
    waves, mask = _noise(2, 16000), torch.zeros(2, 16000, dtype=torch.bool)
    mask[1, 9000:] = True
    with torch.no_grad():
        hidden, hidden_mask = model.extract_hidden_states(waves, mask)
        features, token_mask = model.extract_features(waves, mask)
    assert len(hidden) == 3 and all(h.shape == (2, 48, 64) for h in hidden)
    assert torch.equal(hidden_mask, token_mask) and token_mask[1].any() and not token_mask[0].any()
    torch.testing.assert_close(hidden[-1], features)


def test_fbank_statistics_come_from_the_config():
    model = _tiny(fbank_mean=10.0, fbank_std=2.0)
    fbank, _ = model.preprocess(torch.zeros(1, 16000))
    torch.testing.assert_close(fbank, torch.full_like(fbank, (math.log(torch.finfo().eps) - 10.0) / 4.0))


def test_head_logits_pooling_and_probabilities():
    model = _tiny(finetuned_model=True, predictor_class=5).eval()
    waves, mask = _noise(2, 16000, seed=1), torch.zeros(2, 16000, dtype=torch.bool)
    mask[0, 8000:] = True
    with torch.no_grad():
        features, token_mask = model.forward_features(waves, mask)
        logits = model.forward_head(features, token_mask)
        pooled = model.forward_head(features, token_mask, pre_logits=True)
        probabilities, _ = model.extract_features(waves, mask)
    assert logits.shape == (2, 5) and pooled.shape == (2, 64)
    torch.testing.assert_close(torch.sigmoid(logits), probabilities)
    # The masked mean of token logits equals the head applied to the masked mean of the features.
    torch.testing.assert_close(model.predictor(pooled), logits, rtol=0, atol=1e-5)
    keep = ~token_mask[0]
    torch.testing.assert_close(pooled[0], features[0, keep].mean(dim=0))


def test_reset_classifier():
    model = _tiny()
    with pytest.raises(ConfigError, match="reset_classifier"):
        model.forward_head(torch.zeros(1, 8, 64))
    model.reset_classifier(3)
    assert model.cfg.finetuned_model and model.cfg.predictor_class == 3
    assert "predictor.weight" in model.state_dict()
    probabilities, _ = model.eval().extract_features(_noise(2, 8000))
    assert probabilities.shape == (2, 3) and torch.all((probabilities > 0) & (probabilities < 1))
    model.reset_classifier(0)
    assert model.predictor is None and not model.cfg.finetuned_model
    assert model.extract_features(_noise(1, 8000))[0].shape == (1, 24, 64)


@pytest.mark.parametrize(
    "overrides",
    [
        {"layer_norm_first": True, "deep_norm": False},
        {"activation_fn": "glu"},
        {"activation_fn": "relu", "gru_rel_pos": False},
        {"relative_position_embedding": False, "gru_rel_pos": False},
        {"embed_dim": 64, "conv_bias": True, "conv_pos": 15},
    ],
)
def test_other_official_options_build_and_run(overrides):
    model = _tiny(**overrides).eval()
    waves, mask = _noise(2, 8000), torch.zeros(2, 8000, dtype=torch.bool)
    mask[0, 5000:] = True
    with torch.no_grad():
        features, _ = model.extract_features(waves, mask)
        hidden, _ = model.extract_hidden_states(waves, mask)
    assert features.shape == (2, 24, 64) and torch.isfinite(features).all()
    if overrides.get("layer_norm_first"):  # the final LayerNorm is applied to the output only
        torch.testing.assert_close(model.encoder.layer_norm(hidden[-1]), features)
    else:
        torch.testing.assert_close(hidden[-1], features)
    if overrides.get("activation_fn") == "glu":
        assert "encoder.layers.0.fc1.linear.weight" in model.state_dict()
    if overrides.get("embed_dim") == 64:
        assert model.post_extract_proj is None and "post_extract_proj.weight" not in model.state_dict()


# ------------------------------------------------------------------------------ initialisation
def test_official_initialisation():
    torch.manual_seed(0)
    config = BEATsConfig.base(encoder_layers=2)
    model = BEATs(config)
    layer = model.encoder.layers[0]
    beta = (8 * config.encoder_layers) ** -0.25
    xavier = math.sqrt(2.0 / (768 + 768))
    assert layer.self_attn.q_proj.weight.std().item() == pytest.approx(xavier, rel=0.02)
    assert layer.self_attn.v_proj.weight.std().item() == pytest.approx(beta * xavier, rel=0.02)
    assert layer.fc1.weight.std().item() == pytest.approx(beta * math.sqrt(2.0 / (768 + 3072)), rel=0.02)
    assert layer.self_attn.grep_linear.weight.std().item() == pytest.approx(0.02, rel=0.1)
    table = layer.self_attn.relative_attention_bias.weight
    assert table.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.all(layer.self_attn.grep_a == 1) and torch.all(layer.fc1.bias == 0)
    conv = model.encoder.pos_conv[0]
    assert conv.weight_v.std().item() == pytest.approx(math.sqrt(4 / (128 * 768)), rel=0.02)
    torch.testing.assert_close(
        conv.weight_g, torch.linalg.vector_norm(conv.weight_v, dim=(0, 1), keepdim=True)
    )
    torch.testing.assert_close(conv.weight(), conv.weight_v)  # weight norm starts at the identity
    assert torch.all(conv.bias == 0)


# ------------------------------------------------------------------------------ training
def test_dropout_acts_in_training_only():
    model = _tiny(dropout=0.3)
    waves = _noise(1, 8000)
    first, _ = model.train().forward_features(waves)
    second, _ = model.forward_features(waves)
    assert not torch.allclose(first, second)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.forward_features(waves)[0], model.forward_features(waves)[0])


def test_layerdrop_skips_whole_layers_in_training_only():
    model = _tiny(dropout=0.0, attention_dropout=0.0, encoder_layers=6, encoder_layerdrop=0.5)
    waves = _noise(1, 8000)
    torch.manual_seed(3)
    skipped = []
    for _ in range(10):
        hidden, _ = model.train().extract_hidden_states(waves)
        skipped += [torch.equal(hidden[i], hidden[i + 1]) for i in range(6)]
    assert 0.3 < sum(skipped) / len(skipped) < 0.7
    with torch.no_grad():
        hidden, _ = model.eval().extract_hidden_states(waves)
    assert not any(torch.equal(hidden[i], hidden[i + 1]) for i in range(6))


def test_layer_wise_gradient_decay_scales_gradients_only():
    waves = _noise(2, 8000)
    gradients, outputs = [], []
    for ratio in (1.0, 0.5):
        model = _tiny(
            seed=4, layer_wise_gradient_decay_ratio=ratio, dropout=0.0, attention_dropout=0.0
        ).train()
        features, _ = model.forward_features(waves)
        features.square().sum().backward()
        outputs.append(features.detach())
        gradients.append(model.patch_embedding.weight.grad)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    # Every path from the output to the input crosses both layers' gradient scaling: 0.5 ** 2.
    torch.testing.assert_close(gradients[1], 0.25 * gradients[0], rtol=1e-4, atol=1e-9)


def test_gradients_match_finite_differences():
    """float64 gradcheck through attention, gated relative bias, key padding and positional conv."""
    torch.manual_seed(5)
    model = BEATs(BEATsConfig.tiny(**MICRO)).double().train()
    waves = _noise(2, 3200, seed=6).double()
    mask = torch.zeros(2, 3200, dtype=torch.bool)
    mask[1, 2000:] = True
    names = [
        "encoder.layers.0.self_attn.relative_attention_bias.weight",
        "encoder.layers.1.self_attn.grep_a",
        "encoder.layers.1.self_attn.grep_linear.bias",
        "encoder.pos_conv.0.weight_g",
        "encoder.layers.0.self_attn.q_proj.bias",
    ]
    params = dict(model.named_parameters())
    inputs = tuple(params[name].detach().clone().requires_grad_() for name in names)
    weights = torch.randn(2, 8, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(7))

    def loss(*values):
        features, _ = torch.func.functional_call(model, dict(zip(names, values, strict=True)), (waves, mask))
        return (features * weights).sum()

    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-5)


def test_float32_gradients_match_float64():
    """The float32 path (SDPA's fused CPU kernel, reused buffers off) has the float64 gradients."""
    torch.manual_seed(8)
    model32 = BEATs(BEATsConfig.tiny(dropout=0.0, attention_dropout=0.0)).train()
    model64 = BEATs(BEATsConfig.tiny(dropout=0.0, attention_dropout=0.0)).double().train()
    model64.load_state_dict(model32.state_dict())
    waves, mask = _noise(2, 16000, seed=9), torch.zeros(2, 16000, dtype=torch.bool)
    mask[0, 10000:] = True
    for model, dtype in ((model32, torch.float32), (model64, torch.float64)):
        features, _ = model.forward_features(waves.to(dtype), mask)
        features.mul(torch.linspace(-1, 1, 64, dtype=dtype)).sum().backward()
    for (name, p32), p64 in zip(model32.named_parameters(), model64.parameters(), strict=True):
        if name.endswith("k_proj.bias"):  # provably no effect: its gradient is rounding noise
            assert p64.grad.abs().max() < 1e-12
            continue
        error = (p32.grad.double() - p64.grad).norm() / p64.grad.norm()
        assert error < 1e-4, name


def test_bfloat16_autocast_inference_and_training():
    model = _tiny(seed=10, finetuned_model=True, predictor_class=4)
    waves, mask = _noise(2, 16000, seed=11), torch.zeros(2, 16000, dtype=torch.bool)
    mask[1, 7000:] = True
    with torch.no_grad():
        reference, _ = model.eval().forward_features(waves, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, token_mask = model.forward_features(waves, mask)
    assert low.dtype in (torch.bfloat16, torch.float32)
    cosine = F.cosine_similarity(low.float().mean(1), reference.mean(1), dim=-1)
    assert torch.all(cosine > 0.999)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features, token_mask = model.forward_features(waves, mask)
        logits = model.forward_head(features, token_mask)
    F.binary_cross_entropy_with_logits(logits.float(), torch.ones(2, 4)).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.encoder.layers[1].self_attn.grep_a.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_gelu_equals_the_official_float32_upcast(dtype):
    """The official code computes GELU as ``gelu(x.float()).type_as(x)``; ours matches it bit for bit."""
    from beats_core.model import _activation

    generator = torch.Generator().manual_seed(15)
    x = (4 * torch.randn(100_000, generator=generator)).to(dtype).requires_grad_()
    upstream = torch.randn(100_000, generator=generator).to(dtype)
    official = F.gelu(x.float()).type_as(x)
    ours = _activation("gelu", x)
    assert ours.dtype == dtype
    assert torch.equal(ours, official)
    assert torch.equal(*(torch.autograd.grad(y, x, upstream)[0] for y in (ours, official)))
    with torch.inference_mode():  # bfloat16 inference takes torch's kernel without the float32 copies
        assert torch.equal(_activation("gelu", x.detach()), official.detach())


def test_forward_hooks_see_unmodified_outputs_in_inference():
    """In inference the model works in place on some outputs, but never on one a hook can see."""
    model = _tiny().eval()
    layer = model.encoder.layers[0]
    waves = _noise(1, 8000)
    seen: dict[str, list[torch.Tensor]] = {"attention": [], "fc1": [], "fc2": []}
    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: seen[name].append(o))
        for name, module in (("attention", layer.self_attn), ("fc1", layer.fc1), ("fc2", layer.fc2))
    ]
    model.forward_features(waves)  # with autograd: nothing in place
    with torch.no_grad():
        model.forward_features(waves)
    for handle in handles:
        handle.remove()
    for name, (with_grad, without_grad) in seen.items():
        torch.testing.assert_close(without_grad, with_grad.detach(), msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_in_place_inference_equals_the_plain_path(dtype):
    """The seam: reused buffers and in-place steps give the plain path's outputs, padding and every layer included."""
    model = _tiny().eval()
    waves, mask = _noise(3, 12000), torch.zeros(3, 12000, dtype=torch.bool)
    mask[1, 9000:] = True
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16)
    with torch.inference_mode(), autocast:
        plain = model.extract_hidden_states(waves, mask)[0]
        with model.in_place_inference():
            assert model.encoder.in_place
            fast = model.extract_hidden_states(waves, mask)[0]
        assert not model.encoder.in_place
    for i, (a, b) in enumerate(zip(plain, fast, strict=True)):
        assert torch.equal(a, b), f"hidden state {i}"


@pytest.mark.parametrize(
    ("with_gate", "with_bias", "with_padding"),
    [
        (True, True, True),
        (True, True, False),
        (False, True, True),
        (False, False, True),
        (False, False, False),
    ],
)
def test_half_precision_training_attention_matches_sdpa(with_gate, with_bias, with_padding):
    """bfloat16 training on the CPU computes attention explicitly (SDPA would run it in float32): same result."""
    from beats_core.attention import half_precision_attention

    generator = torch.Generator().manual_seed(12)
    q, k, v = (torch.randn(2, 4, 24, 16, generator=generator) for _ in range(3))
    gate = 2 * torch.rand(2, 4, 24, 1, generator=generator) if with_gate else None
    bias = 3 * torch.randn(4, 24, 24, generator=generator) if with_bias else None
    key_padding = None
    if with_padding:
        key_padding = torch.zeros(2, 1, 1, 24)
        key_padding[1, ..., 20:] = float("-inf")
    mask = torch.zeros(2, 4, 24, 24)
    for term in (bias if gate is None else None if bias is None else gate * bias, key_padding):
        mask = mask if term is None else mask + term
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    low = half_precision_attention(
        q.bfloat16(),
        k.bfloat16(),
        v.bfloat16(),
        gate=None if gate is None else gate.bfloat16(),
        bias=bias,
        key_padding=key_padding,
        dropout_p=0.0,
    )
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), expected, atol=3e-2, rtol=3e-2)


def test_bfloat16_training_forward_matches_inference_through_sdpa():
    """With autograd on, the model's bfloat16 forward pass takes the explicit path; it equals the SDPA one."""
    model = _tiny(seed=13).eval()
    waves, padding = _noise(2, 16000, seed=14), torch.zeros(2, 16000, dtype=torch.bool)
    padding[1, 9000:] = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            through_sdpa, _ = model.forward_features(waves, padding)
        explicit, _ = model.forward_features(waves, padding)  # grad enabled: the explicit path
    cosine = F.cosine_similarity(
        explicit.detach().float().flatten(1), through_sdpa.float().flatten(1), dim=-1
    )
    assert torch.all(cosine > 0.999)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
# Blocks of the 4 heads of a clip: None: one block of 4; 1: four blocks of 1; 3: two of 2 (as even as possible).
@pytest.mark.parametrize("heads_per_block", [None, 1, 3])
def test_half_precision_training_attention_is_as_accurate_as_the_official_float32_round_trip(
    dtype, heads_per_block, monkeypatch
):
    """Outputs and gradients (queries, keys, values, gate, bias) against float64, in half precision."""
    import beats_core.attention
    from beats_core.attention import half_precision_attention

    length = 40
    if heads_per_block is not None:
        monkeypatch.setattr(beats_core.attention, "_BLOCK_ELEMENTS", heads_per_block * length * length)
    generator = torch.Generator().manual_seed(16)
    batch, heads, dim = 2, 4, 16
    inputs64 = [
        torch.randn(batch, heads, length, dim, generator=generator, dtype=torch.float64) for _ in range(3)
    ]
    gate64 = torch.rand(batch, heads, length, 1, generator=generator, dtype=torch.float64) * 2
    bias64 = 3 * torch.randn(heads, length, length, generator=generator, dtype=torch.float64)
    upstream = torch.randn(batch, heads, length, dim, generator=generator, dtype=torch.float64)

    def official(q, k, v, gate, bias):
        # The official order: scale, matmul, add the gated bias (float32 under autocast), float32
        # softmax, cast back.
        scores = torch.matmul(q * dim**-0.5, k.transpose(-1, -2))
        scores = scores + gate * bias.to(torch.promote_types(bias.dtype, torch.float32))
        return torch.matmul(torch.softmax(scores.float(), dim=-1).type_as(q), v)

    def ours(q, k, v, gate, bias):
        return half_precision_attention(q, k, v, gate=gate, bias=bias, key_padding=None, dropout_p=0.0)

    def run(attend, dtype):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (*inputs64, gate64, bias64)]
        out = attend(*leaves)
        out.backward(upstream.to(dtype))
        return [out.detach().double()] + [leaf.grad.double() for leaf in leaves]

    reference = run(official, torch.float64)
    theirs, mine = run(official, dtype), run(ours, dtype)
    for name, exact, their, our in zip(
        ("out", "q", "k", "v", "gate", "bias"), reference, theirs, mine, strict=True
    ):
        their_error = ((their - exact).norm() / exact.norm()).item()
        our_error = ((our - exact).norm() / exact.norm()).item()
        assert our_error <= 1.01 * their_error, (name, our_error, their_error)
        assert our_error < 0.03, (name, our_error)  # bfloat16 has 8 significant bits, float16 11


def test_a_model_that_ran_in_inference_mode_trains_afterwards():
    """Constants cached during inference (position buckets, fbank window and filters) are not inference tensors."""
    import beats_core.fbank
    import beats_core.model

    for cached in (
        beats_core.model._relative_buckets,
        beats_core.fbank._window,
        beats_core.fbank._mel_blocks,
    ):
        cached.cache_clear()  # made for the first time below, in inference mode
    torch.manual_seed(0)
    model = BEATs(BEATsConfig.tiny()).eval()
    waveforms = torch.randn(2, 8000).clamp(-1, 1)
    with torch.inference_mode():
        model.extract_features(waveforms)
    model.train()
    features, _ = model.extract_features(waveforms)
    features.pow(2).mean().backward()
    table = model.encoder.layers[0].self_attn.relative_attention_bias.weight
    assert table.grad is not None and table.grad.abs().sum() > 0


def test_aligned_features_of_a_padded_row_are_those_of_the_clip_alone():
    """forward_features_aligned masks whole time steps: a padded row's kept tokens are its clip's alone."""
    model = _tiny().eval()
    lengths = [16000, 9000, 3000]
    clips = [_noise(n, seed=n) for n in lengths]
    batch = torch.zeros(len(lengths), max(lengths))
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = clip
    steps = torch.tensor([max(1, (1 + (n - 400) // 160) // 16) for n in lengths])
    with torch.no_grad():
        features, mask = model.forward_features_aligned(batch, steps)
        assert mask.shape == features.shape[:2] == (3, num_tokens(max(lengths)))
        for row, clip in enumerate(clips):
            alone, _ = model.forward_features(clip.unsqueeze(0))
            kept = int(steps[row]) * model.num_frequency_patches
            assert not mask[row, :kept].any() and mask[row, kept:].all()
            torch.testing.assert_close(features[row, :kept], alone[0], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_the_model_exports_with_a_dynamic_batch_and_length_and_keeps_its_caches_clean():
    """torch.export traces the aligned forward for any shape; the cached constants stay real tensors."""

    class Aligned(torch.nn.Module):
        def __init__(self, model: BEATs) -> None:
            super().__init__()
            self.model = model

        def forward(self, waveforms: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
            features, mask = self.model.forward_features_aligned(waveforms, steps)
            return self.model.forward_head(features, mask, pre_logits=True)

    model = _tiny().eval()
    auto = torch.export.Dim.AUTO
    example = (_noise(2, 16000), torch.tensor([6, 3]))
    with torch.no_grad():
        program = torch.export.export(
            Aligned(model), example, dynamic_shapes=({0: auto, 1: auto}, {0: auto}), strict=False
        )
        for waveforms, steps in (
            # torch's program checks the guards of its trace: at least 2 rows and 2 time steps
            (_noise(2, 5360), torch.tensor([2, 1])),
            (_noise(3, 40000, seed=1), torch.tensor([15, 2, 9])),
        ):
            torch.testing.assert_close(
                program.module()(waveforms, steps), Aligned(model)(waveforms, steps), rtol=0, atol=1e-5
            )
        # eager inference and training after the export use real (cached) constants
        model.extract_features(_noise(2, 16000))
    model.train()
    model.extract_features(_noise(2, 16000))[0].pow(2).mean().backward()
