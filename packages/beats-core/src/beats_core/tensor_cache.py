"""Caching of constant tensors (windows, filter banks, position buckets) that is safe for training.

A tensor made inside ``torch.inference_mode()`` is an *inference tensor*: autograd refuses
to save it for a backward pass. A constant cached the first time it is needed would
otherwise make a model that ran inference first (feature extraction) fail later when it
is trained in the same process.
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

    Args:
        maxsize: how many results to keep.

    Returns:
        A decorator for functions of hashable arguments that return constant tensors.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.lru_cache(maxsize=maxsize)
        @functools.wraps(function)
        def cached(*args: P.args, **kwargs: P.kwargs) -> R:
            with torch.inference_mode(False), torch.no_grad():
                return function(*args, **kwargs)

        return cached

    return decorate
