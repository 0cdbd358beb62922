"""Poolings: one vector per clip from a sequence of token embeddings.

A pooling is a callable ``pool(features, padding_mask) -> pooled``:

* ``features``: float tensor ``(B, T, C)``, the encoder's tokens (time-major, 8 frequency
  patches per time step for BEATs);
* ``padding_mask``: bool tensor ``(B, T)``, ``True`` at padding, or ``None`` when nothing
  is padded; every row has at least one token that is not padding;
* ``pooled``: float tensor ``(B, D)``. A padded token never changes it.

Poolings are registered by name through the ``beats_poolings`` hook (see
:mod:`beats_core.hookspecs`); the built-ins below are registered by beats-extract's own
``beats`` entry point, the same way a third-party plugin registers its own. Two optional
attributes of the callable tell the rest of the library about it:

* ``output_multiplier`` (int, default 1): ``D = output_multiplier * C``;
* ``combine_windows`` (callable ``(values (W, ..., D), weights (W,)) -> (..., D)``,
  numpy): how the pooled vectors of the W windows of a long recording become one. Each
  window is pooled over the tokens it alone contributes (overlaps are split between
  neighbouring windows), and ``weights`` counts those tokens. The default is the
  weighted mean, exact for ``mean``; the built-ins ``max``, ``first``, ``last`` and
  ``meanstd`` carry their exact rule.

:func:`get_pooling` turns a name or a callable into a :class:`Pooling`;
:func:`list_poolings` lists the registered names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from beats_core.errors import ConfigError, UnknownPoolingError
from beats_core.lookup import lookup

__all__ = [
    "BUILTIN_POOLINGS",
    "Pooling",
    "PoolingFunction",
    "first_pooling",
    "get_pooling",
    "last_pooling",
    "list_poolings",
    "max_pooling",
    "mean_pooling",
    "meanstd_pooling",
    "weighted_mean",
]

#: ``pool(features (B, T, C), padding_mask (B, T) bool or None) -> (B, D)``.
PoolingFunction = Callable[[Tensor, "Tensor | None"], Tensor]
#: ``combine(values (W, ..., D), weights (W,)) -> (..., D)``, numpy float arrays.
CombineFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- window combination
def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean of the windows' vectors weighted by their token counts (exact for mean pooling).

    Args:
        values: ``(W, ..., D)`` pooled vectors of W windows.
        weights: ``(W,)`` non-negative token counts.

    Returns:
        ``(..., D)`` float32.
    """
    weights = np.asarray(weights, dtype=np.float64)
    return np.tensordot(weights / weights.sum(), values.astype(np.float64), axes=1).astype(np.float32)


def _combine_max(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return values.max(axis=0)


def _combine_first(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return values[0]


def _combine_last(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return values[-1]


def _combine_meanstd(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pool ``[mean, std]`` halves exactly: the overall mean and the overall (population) std."""
    half = values.shape[-1] // 2
    means, stds = values[..., :half].astype(np.float64), values[..., half:].astype(np.float64)
    w = np.asarray(weights, dtype=np.float64)
    w = (w / w.sum()).reshape(-1, *([1] * (values.ndim - 1)))
    mean = (w * means).sum(axis=0)
    second_moment = (w * (stds**2 + means**2)).sum(axis=0)
    std = np.sqrt(np.maximum(second_moment - mean**2, 0.0))
    return np.concatenate([mean, std], axis=-1).astype(np.float32)


# --------------------------------------------------------------------------- built-in poolings
def _keep(features: Tensor, padding_mask: Tensor) -> Tensor:
    """``(B, T, 1)`` float: 1 for tokens to keep, 0 for padding."""
    return (~padding_mask).unsqueeze(-1).to(features.dtype)


def mean_pooling(features: Tensor, padding_mask: Tensor | None = None) -> Tensor:
    """Mean over the tokens that are not padding.

    Args:
        features: float ``(B, T, C)``.
        padding_mask: bool ``(B, T)``, ``True`` = padding, or ``None``.

    Returns:
        ``(B, C)``.
    """
    if padding_mask is None:
        return features.mean(dim=1)
    summed = features.masked_fill(padding_mask.unsqueeze(-1), 0.0).sum(dim=1)
    return summed / _keep(features, padding_mask).sum(dim=1)


def max_pooling(features: Tensor, padding_mask: Tensor | None = None) -> Tensor:
    """Largest value of each channel over the tokens that are not padding.

    Args:
        features: float ``(B, T, C)``.
        padding_mask: bool ``(B, T)``, ``True`` = padding, or ``None``.

    Returns:
        ``(B, C)``.
    """
    if padding_mask is not None:
        features = features.masked_fill(padding_mask.unsqueeze(-1), float("-inf"))
    return features.amax(dim=1)


def first_pooling(features: Tensor, padding_mask: Tensor | None = None) -> Tensor:
    """The first token that is not padding (for BEATs: the lowest frequency patch of the first time step).

    Args:
        features: float ``(B, T, C)``.
        padding_mask: bool ``(B, T)``, ``True`` = padding, or ``None``.

    Returns:
        ``(B, C)``.
    """
    if padding_mask is None:
        return features[:, 0]
    index = (~padding_mask).int().argmax(dim=1)  # argmax returns the first maximum
    return features[torch.arange(features.shape[0], device=features.device), index]


def last_pooling(features: Tensor, padding_mask: Tensor | None = None) -> Tensor:
    """The last token that is not padding (for BEATs: the highest frequency patch of the last time step).

    Args:
        features: float ``(B, T, C)``.
        padding_mask: bool ``(B, T)``, ``True`` = padding, or ``None``.

    Returns:
        ``(B, C)``.
    """
    if padding_mask is None:
        return features[:, -1]
    index = features.shape[1] - 1 - (~padding_mask).flip(1).int().argmax(dim=1)
    return features[torch.arange(features.shape[0], device=features.device), index]


def meanstd_pooling(features: Tensor, padding_mask: Tensor | None = None) -> Tensor:
    """Mean and standard deviation over the tokens that are not padding, concatenated.

    The standard deviation is the population one (divided by the token count), so a
    single token gives 0, not NaN.

    Args:
        features: float ``(B, T, C)``.
        padding_mask: bool ``(B, T)``, ``True`` = padding, or ``None``.

    Returns:
        ``(B, 2 C)``: ``[mean, std]``.
    """
    mean = mean_pooling(features, padding_mask)
    squared = (features - mean.unsqueeze(1)).square()
    variance = mean_pooling(squared, padding_mask)
    return torch.cat([mean, variance.sqrt()], dim=-1)


max_pooling.combine_windows = _combine_max  # type: ignore[attr-defined]
first_pooling.combine_windows = _combine_first  # type: ignore[attr-defined]
last_pooling.combine_windows = _combine_last  # type: ignore[attr-defined]
meanstd_pooling.output_multiplier = 2  # type: ignore[attr-defined]
meanstd_pooling.combine_windows = _combine_meanstd  # type: ignore[attr-defined]

#: The poolings beats-extract registers through its ``beats`` entry point.
BUILTIN_POOLINGS: dict[str, PoolingFunction] = {
    "mean": mean_pooling,
    "max": max_pooling,
    "first": first_pooling,
    "last": last_pooling,
    "meanstd": meanstd_pooling,
}


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Pooling:
    """A pooling with what the library needs to know about it.

    Call it like its function: ``pooling(features (B, T, C), padding_mask (B, T) or None) -> (B, D)``.

    Attributes:
        name: the registered name, or the callable's ``__name__`` for one passed directly.
        function: the pooling callable.
        output_multiplier: ``D / C``.
        combine_windows: how the pooled vectors of a long recording's windows become one
            (see the module docstring).
        distribution: the distribution that registered it (``"beats-extract"`` for the
            built-ins), or ``"<callable>"`` for a callable passed directly.
    """

    name: str
    function: PoolingFunction
    output_multiplier: int = 1
    combine_windows: CombineFunction = weighted_mean
    distribution: str = "<callable>"

    def __call__(self, features: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Pool ``features (B, T, C)`` with ``padding_mask (B, T)`` (``True`` = padding) into ``(B, D)``."""
        return self.function(features, padding_mask)

    def output_dim(self, width: int) -> int:
        """``D`` for token features of width ``C = width``."""
        return self.output_multiplier * width

    @classmethod
    def from_callable(
        cls, function: PoolingFunction, name: str | None = None, distribution: str = "<callable>"
    ) -> Pooling:
        """Wrap a pooling callable, reading its optional ``output_multiplier`` and ``combine_windows``.

        Args:
            function: ``pool(features, padding_mask) -> pooled``.
            name: the name to show; the callable's ``__name__`` when ``None``.
            distribution: who registered it.

        Returns:
            The :class:`Pooling`.

        Raises:
            ConfigError: ``function`` is not callable, or its ``output_multiplier`` is not a
                positive int, or its ``combine_windows`` is not callable.
        """
        label = name or getattr(function, "__name__", type(function).__name__)
        where = f"pooling {label!r}" + ("" if distribution == "<callable>" else f" of {distribution!r}")
        if not callable(function):
            raise ConfigError(
                f"{where} is a {type(function).__name__}, not a callable pool(features, padding_mask)"
            )
        multiplier = getattr(function, "output_multiplier", 1)
        if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1:
            raise ConfigError(f"{where} has output_multiplier={multiplier!r}; it must be a positive int")
        combine = getattr(function, "combine_windows", weighted_mean)
        if not callable(combine):
            raise ConfigError(f"{where} has a combine_windows attribute that is not callable")
        return cls(label, function, multiplier, combine, distribution)


def list_poolings() -> dict[str, Pooling]:
    """The registered poolings: the built-ins, then those of installed plugins.

    Returns:
        name -> :class:`Pooling`, in registration order. A plugin that registers something
        unusable is left out with a :class:`~beats_core.errors.PluginWarning`.
    """
    import warnings

    from beats_core.errors import PluginWarning
    from beats_core.plugins import collect_registrations

    poolings: dict[str, Pooling] = {}
    for name, registration in collect_registrations("beats_poolings").items():
        try:
            poolings[name] = Pooling.from_callable(registration.value, name, registration.distribution)
        except ConfigError as e:
            warnings.warn(
                f"{e}; the pooling is ignored. Fix or uninstall {registration.distribution!r}.",
                PluginWarning,
                stacklevel=2,
            )
    return poolings


def get_pooling(pooling: str | PoolingFunction | Pooling) -> Pooling:
    """Resolve a pooling given by name, as a callable, or already resolved.

    This is the one way in for every consumer of poolings (feature extraction, a
    classification head): ``get_pooling("mean")(features, padding_mask)``.

    Args:
        pooling: a registered name (see :func:`list_poolings`: ``"mean"``, ``"max"``,
            ``"first"``, ``"last"``, ``"meanstd"`` and those of plugins), a callable
            ``pool(features (B, T, C), padding_mask (B, T) or None) -> (B, D)``, or a
            :class:`Pooling`.

    Returns:
        The :class:`Pooling`.

    Raises:
        UnknownPoolingError: the name is not registered (the message lists the registered
            names and the closest one).
        ConfigError: the callable is unusable.
    """
    if isinstance(pooling, Pooling):
        return pooling
    if isinstance(pooling, str):
        return lookup(
            pooling,
            list_poolings(),
            kind="pooling",
            error=UnknownPoolingError,
            advice="A plugin adds one through the beats_poolings hook; a callable can be passed directly.",
            order=list(list_poolings()).index,
        )
    return Pooling.from_callable(pooling)
