"""Where a model runs and in which precision: devices, and bfloat16 only where the hardware has it.

``"auto"`` picks for the machine at hand. A device: CUDA, then Apple's MPS, then the CPU. A
precision: bfloat16 where it is native (a CUDA GPU that supports it, or a CPU with AMX or
AVX512-BF16 instructions), float32 elsewhere. On a CPU without native bfloat16 (AVX2 only:
most laptops and many servers) bfloat16 is emulated and runs about five times *slower* than
float32; asking for it there explicitly still works, with a warning that says so.
"""

from __future__ import annotations

import functools
import platform
import warnings
from pathlib import Path

import torch

from beats_core.errors import ConfigError

__all__ = ["PrecisionWarning", "has_native_bfloat16", "resolve_device", "resolve_dtype"]

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
#: The CPU flags (Linux ``/proc/cpuinfo``) of native bfloat16 arithmetic.
_BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


class PrecisionWarning(UserWarning):
    """A precision was asked for that this hardware only emulates, so it runs slower than float32."""


def resolve_device(
    device: str | torch.device = "auto", model_device: torch.device | None = None
) -> torch.device:
    """Turn a device argument into a device.

    Args:
        device: ``"auto"``, or anything ``torch.device`` takes (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
        model_device: where a given model is; ``"auto"`` keeps it there.

    Returns:
        The device: for ``"auto"``, ``model_device`` if given, else CUDA, then MPS, then the CPU.

    Raises:
        ConfigError: the device is not valid or not available here.
    """
    if isinstance(device, str) and device == "auto":
        if model_device is not None:
            return model_device
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(
            f"device {device!r} is not a device: {e}; use 'auto', 'cpu', 'cuda' or 'mps'"
        ) from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'"
        )
    if resolved.type == "mps" and not _mps_available():
        raise ConfigError(
            f"device {device!r} was asked for but MPS is not available here; use 'auto' or 'cpu'"
        )
    return resolved


def has_native_bfloat16(device: str | torch.device) -> bool:
    """Whether bfloat16 arithmetic is native (fast) on ``device``.

    Args:
        device: a device.

    Returns:
        On CUDA, whether the GPU supports bfloat16; on the CPU, whether it has AMX or
        AVX512-BF16 instructions (read from ``/proc/cpuinfo`` on Linux; False elsewhere);
        False on other devices.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(_cpu_flags() & set(_BFLOAT16_CPU_FLAGS))
    return False


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """Turn a precision argument into the dtype to compute in on ``device``.

    Args:
        dtype: ``"auto"`` (bfloat16 where it is native on ``device``, else float32), ``None``
            or ``"float32"``, ``"bfloat16"``/``"bf16"``, ``"float16"``/``"fp16"``, or a torch dtype.
        device: where the model runs.

    Returns:
        ``torch.float32``, ``torch.bfloat16`` or ``torch.float16``. An explicit bfloat16 on a
        CPU that only emulates it is honoured, with a :class:`PrecisionWarning` (once per process).

    Raises:
        ConfigError: an unknown precision.
    """
    device = torch.device(device)
    if isinstance(dtype, str) and dtype.lower() == "auto":
        return torch.bfloat16 if has_native_bfloat16(device) else torch.float32
    if dtype is None:
        return torch.float32
    resolved = _DTYPES.get(dtype.lower()) if isinstance(dtype, str) else dtype
    if resolved not in (torch.float32, torch.bfloat16, torch.float16):
        raise ConfigError(
            f"dtype {dtype!r} is not supported; use 'auto' (bfloat16 where the hardware has it), "
            "'float32', 'bfloat16' or 'float16'"
        )
    if resolved == torch.bfloat16 and device.type == "cpu" and not has_native_bfloat16(device):
        _warn_emulated_bfloat16()
    return resolved


@functools.cache
def _warn_emulated_bfloat16() -> None:
    warnings.warn(
        f"bfloat16 was asked for, but this CPU ({_cpu_name()}) has no native bfloat16 (no AMX, no "
        "AVX512-BF16): it is emulated and runs several times slower than float32. Use dtype 'auto' "
        "or 'float32' here; bfloat16 pays off on CPUs with AMX (Intel Xeon 4th generation and later) "
        "and on GPUs.",
        PrecisionWarning,
        stacklevel=3,
    )


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no native bfloat16 is assumed
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()
