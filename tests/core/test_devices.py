"""Devices and precision from the hardware: bfloat16 only where it is native."""

from __future__ import annotations

import warnings

import pytest
import torch

from beats_core import devices
from beats_core.devices import PrecisionWarning, has_native_bfloat16, resolve_device, resolve_dtype
from beats_core.errors import ConfigError


def _native_cpu_flags() -> bool:
    return bool(devices._cpu_flags() & {"amx_bf16", "avx512_bf16"})


def test_auto_is_bfloat16_exactly_where_the_cpu_has_it():
    assert has_native_bfloat16("cpu") == _native_cpu_flags()
    expected = torch.bfloat16 if _native_cpu_flags() else torch.float32
    assert resolve_dtype("auto", "cpu") == expected
    assert not has_native_bfloat16("meta")


@pytest.mark.parametrize(
    ("given", "expected"), [(None, torch.float32), ("fp32", torch.float32), ("fp16", torch.float16)]
)
def test_explicit_precisions(given, expected):
    assert resolve_dtype(given, "cpu") == expected


def test_explicit_bfloat16_is_honoured_and_warns_where_it_is_emulated():
    devices._warn_emulated_bfloat16.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
        assert resolve_dtype(torch.bfloat16, "cpu") == torch.bfloat16
    emulated = [w for w in caught if issubclass(w.category, PrecisionWarning)]
    if _native_cpu_flags():
        assert not emulated
    else:
        assert len(emulated) == 1  # once per process
        assert "no native bfloat16" in str(emulated[0].message) and "'auto'" in str(emulated[0].message)


def test_bad_precisions_and_devices_say_what_is_accepted():
    with pytest.raises(ConfigError, match=r"'auto'.*'float32', 'bfloat16' or 'float16'"):
        resolve_dtype("int8", "cpu")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu0")
    assert resolve_device("auto", torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
