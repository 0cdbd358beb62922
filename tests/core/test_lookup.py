"""One lookup of registered names for models, loaders, poolings and presets."""

from __future__ import annotations

import pytest

from beats_core.errors import (
    ConfigError,
    DatasetError,
    UnknownLoaderError,
    UnknownNameError,
    UnknownPoolingError,
    UnknownPresetError,
)
from beats_core.lookup import close_matches, lookup


def test_a_registered_name_is_returned():
    assert lookup("mean", {"mean": 1, "max": 2}, kind="pooling", error=UnknownPoolingError) == 1


def test_an_unknown_name_gets_the_closest_and_the_list():
    with pytest.raises(UnknownPoolingError) as error:
        lookup("Maen", {"max": 2, "mean": 1}, kind="pooling", error=UnknownPoolingError, advice="Add one.")
    assert (
        str(error.value)
        == "unknown pooling 'Maen'. Did you mean 'mean'? Registered poolings: 'max', 'mean'. Add one."
    )
    assert isinstance(error.value, UnknownNameError) and isinstance(error.value, ConfigError)
    assert isinstance(error.value, LookupError)


def test_each_kind_raises_the_error_of_its_area():
    assert issubclass(UnknownLoaderError, DatasetError) and issubclass(UnknownPresetError, ConfigError)
    with pytest.raises(UnknownLoaderError, match="Registered dataset loaders: none"):
        lookup("x", {}, kind="dataset loader", error=UnknownLoaderError)


def test_close_matches_ignore_case_and_keep_the_registered_spelling():
    assert close_matches("beats_iter3", ["BEATs_iter3_plus_AS2M", "openbeats"]) == ["BEATs_iter3_plus_AS2M"]
    assert close_matches("zzz", ["mean"]) == []
