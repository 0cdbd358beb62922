from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from beats_core import ConfigError, PluginWarning, hookimpl
from beats_core.plugins import get_plugin_manager
from beats_extract import Pooling, get_pooling, list_poolings
from beats_extract.poolings import BUILTIN_POOLINGS, weighted_mean


def padded_batch(lengths: list[int], width: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features whose padded positions hold huge garbage, and their padding mask."""
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    features = torch.randn(len(lengths), longest, width, generator=generator)
    mask = torch.arange(longest)[None] >= torch.tensor(lengths)[:, None]
    features[mask] = 1e6 * torch.randn(int(mask.sum()), width, generator=generator)
    return features, mask


def test_builtins_are_registered_through_the_entry_point():
    poolings = list_poolings()
    assert list(poolings)[:5] == ["mean", "max", "first", "last", "meanstd"]
    assert all(poolings[name].distribution == "beats-extract" for name in BUILTIN_POOLINGS)
    assert poolings["meanstd"].output_multiplier == 2 and poolings["meanstd"].output_dim(768) == 1536


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4), st.sampled_from(sorted(BUILTIN_POOLINGS)))
def test_padding_never_changes_a_pooled_row(lengths, name):
    pooling = get_pooling(name)
    features, mask = padded_batch(lengths)
    pooled = pooling(features, mask)
    for row, length in enumerate(lengths):
        alone = pooling(features[row : row + 1, :length], None)
        torch.testing.assert_close(pooled[row : row + 1], alone, rtol=1e-5, atol=1e-5)


def test_builtin_values():
    features = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [5.0, 0.0], [99.0, 99.0]]])
    mask = torch.tensor([[False, False, False, True]])
    valid = features[0, :3].numpy()
    np.testing.assert_allclose(get_pooling("mean")(features, mask)[0], valid.mean(0))
    np.testing.assert_allclose(get_pooling("max")(features, mask)[0], valid.max(0))
    np.testing.assert_allclose(get_pooling("first")(features, mask)[0], valid[0])
    np.testing.assert_allclose(get_pooling("last")(features, mask)[0], valid[-1])
    np.testing.assert_allclose(
        get_pooling("meanstd")(features, mask)[0], np.concatenate([valid.mean(0), valid.std(0)]), rtol=1e-6
    )
    leading = torch.tensor([[True, False, False, False]])  # padding need not be at the end
    np.testing.assert_allclose(get_pooling("first")(features, leading)[0], features[0, 1])


@pytest.mark.parametrize("name", sorted(BUILTIN_POOLINGS))
def test_combining_windows_equals_pooling_everything(name):
    """Pool contiguous pieces separately, combine with the pooling's rule: same as pooling all at once."""
    pooling = get_pooling(name)
    features = torch.randn(1, 23, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    cuts = [0, 8, 9, 17, 23]
    pieces = [pooling(features[:, a:b], None)[0].numpy() for a, b in itertools.pairwise(cuts)]
    weights = np.diff(cuts)
    combined = pooling.combine_windows(np.stack(pieces), weights)
    np.testing.assert_allclose(combined, pooling(features, None)[0].numpy(), rtol=1e-5, atol=1e-6)
    assert weighted_mean(np.stack(pieces)[:, None], weights).shape == (1, pieces[0].shape[0])


def test_callables_and_poolings_pass_through():
    def peak(features, padding_mask):
        return features.abs().amax(dim=1)

    peak.output_multiplier = 1
    resolved = get_pooling(peak)
    assert (
        isinstance(resolved, Pooling)
        and resolved.name == "peak"
        and resolved.combine_windows is weighted_mean
    )
    assert get_pooling(resolved) is resolved


def test_unknown_names_and_unusable_callables_say_what_to_do():
    with pytest.raises(
        ConfigError, match=r"unknown pooling 'maxx'.*Did you mean 'max'.*'mean', 'max', 'first'"
    ):
        get_pooling("maxx")
    with pytest.raises(ConfigError, match="not a callable"):
        get_pooling(42)  # type: ignore[arg-type]

    def wide(features, padding_mask):
        return features.mean(1)

    wide.output_multiplier = 0
    with pytest.raises(ConfigError, match="output_multiplier=0"):
        get_pooling(wide)


class _BadPlugin:
    @hookimpl
    def beats_poolings(self):
        return {"broken": "not callable"}


def test_a_plugin_registering_something_unusable_is_left_out_with_a_warning():
    manager = get_plugin_manager()
    plugin = _BadPlugin()
    manager.register(plugin)
    try:
        with pytest.warns(PluginWarning, match="'broken'.*not a callable"):
            poolings = list_poolings()
        assert "broken" not in poolings and "mean" in poolings
    finally:
        manager.unregister(plugin)
