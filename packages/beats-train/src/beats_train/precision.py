"""Mixed precision of a run: chosen for the hardware, applied with torch's autocast.

``TrainingConfig.mixed_precision="auto"`` trains in bfloat16 where the hardware computes in
it natively (a CUDA GPU that supports it, a CPU with AMX or AVX512-BF16) and in float32
elsewhere (:mod:`beats_core.devices` decides). An explicit ``"bf16"`` on a CPU that only
emulates bfloat16 trains as asked, several times slower, with one
:class:`~beats_core.devices.PrecisionWarning`. ``"fp16"`` needs a GPU and scales the loss.

The precision is applied here rather than by Accelerate: Accelerate keeps one precision
for the whole process and refuses another one later, so a notebook or a test session
could not train in bfloat16 and then in float32. The Accelerator of every run is made with
``mixed_precision="no"``; :class:`MixedPrecision` does what Accelerate would do
(``torch.autocast`` around the forward pass, float32 logits, a ``GradScaler`` for fp16).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from beats_core.devices import has_native_bfloat16, resolve_dtype
from beats_core.errors import ConfigError

__all__ = ["MixedPrecision", "resolve_mixed_precision"]

_DTYPES = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_mixed_precision(setting: str, device: torch.device) -> str:
    """The precision a run uses on ``device``.

    Args:
        setting: :attr:`TrainingConfig.mixed_precision`: ``auto``, ``no``, ``bf16`` or ``fp16``.
        device: where the run trains.

    Returns:
        ``no``, ``bf16`` or ``fp16``. ``auto`` is ``bf16`` where bfloat16 is native on
        ``device`` and ``no`` elsewhere. An explicit ``bf16`` on a CPU that emulates
        bfloat16 is kept, with a :class:`~beats_core.devices.PrecisionWarning` (once per process).

    Raises:
        ConfigError: ``fp16`` on the CPU.
    """
    if setting == "auto":
        return "bf16" if has_native_bfloat16(device) else "no"
    if setting == "fp16" and device.type == "cpu":
        raise ConfigError(
            "TrainingConfig.mixed_precision='fp16' needs a GPU; on the CPU use 'bf16' (fast only on CPUs with "
            "AMX or AVX512-BF16), 'auto' or 'no'"
        )
    if setting == "bf16":
        resolve_dtype("bf16", device)  # warns where bfloat16 is emulated
    return setting


class MixedPrecision:
    """Autocast and loss scaling of one run.

    Use :meth:`autocast` around every forward pass (training and evaluation), pass the loss
    through :meth:`scale` before ``backward``, call :meth:`unscale` before clipping the
    gradients and :meth:`step` instead of ``optimizer.step()`` on the steps that update
    the weights.

    Args:
        precision: ``no``, ``bf16`` or ``fp16`` (see :func:`resolve_mixed_precision`).
        device: where the run trains.

    Attributes:
        precision: the precision.
        dtype: the autocast dtype, or None for float32.
    """

    def __init__(self, precision: str, device: torch.device) -> None:
        if precision not in _DTYPES:
            raise ConfigError(f"mixed precision must be one of no, bf16, fp16, got {precision!r}")
        self.precision = precision
        self.dtype = _DTYPES[precision]
        self._device_type = device.type
        self._scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Run the block under ``torch.autocast`` in :attr:`dtype` (nothing for float32)."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self._device_type, dtype=self.dtype):
            yield

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to call ``backward`` on: multiplied by the fp16 loss scale, else unchanged."""
        return self._scaler.scale(loss) if self._scaler is not None else loss

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the fp16 loss scale (before clipping them); nothing otherwise."""
        if self._scaler is not None:
            self._scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Update the weights; in fp16, skip the update when a gradient is not finite.

        Args:
            optimizer: the optimiser (Accelerate's wrapper is fine).

        Returns:
            Whether the weights were updated (advance the learning-rate schedule only then).
        """
        if self._scaler is None:
            optimizer.step()
            return True
        scale = self._scaler.get_scale()
        self._scaler.step(optimizer)
        self._scaler.update()
        return self._scaler.get_scale() >= scale  # the scale drops exactly when the step was skipped
