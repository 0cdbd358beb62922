"""Caching of constant tensors (windows, filter banks, position buckets) that is safe for training and export.

A tensor made inside ``torch.inference_mode()`` is an *inference tensor*: autograd refuses
to save it for a backward pass. A constant cached the first time it is needed would
otherwise make a model that ran inference first (feature extraction) fail later when it
is trained in the same process.

Under :func:`torch.export.export` (and the ONNX exporter built on it) the cache is bypassed:
the constant is computed in the traced graph, where its arguments may be symbolic (a
sequence length that varies from call to call), and no traced tensor is left in the cache.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch

__all__ = ["tensor_cache"]

P = ParamSpec("P")
R = TypeVar("R")


def tensor_cache(maxsize: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Like :func:`functools.lru_cache`, with the function run outside inference mode and without grad.

    While a model is being exported (:func:`torch.compiler.is_exporting`), the function is
    called directly, without the cache. The decorated function keeps ``cache_clear()``.

    Args:
        maxsize: how many results to keep.

    Returns:
        A decorator for functions of hashable arguments that return constant tensors.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.lru_cache(maxsize=maxsize)
        def cached(*args: P.args, **kwargs: P.kwargs) -> R:
            with torch.inference_mode(False), torch.no_grad():
                return function(*args, **kwargs)

        @functools.wraps(function)
        def constant(*args: P.args, **kwargs: P.kwargs) -> R:
            if torch.compiler.is_exporting():
                return function(*args, **kwargs)
            return cached(*args, **kwargs)

        constant.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return constant

    return decorate
