"""Checking configuration values against their type annotations: one set of rules for every config.

Configurations come from checkpoint ``cfg`` dicts, YAML and JSON files and the command line,
so a value may arrive as a close relative of its type. The rules, for every configuration
of the project (:class:`~beats_core.config.BEATsConfig` and beats-train's configs):

* ``bool``: ``True``/``False``, or the integers 0 and 1 (some writers store flags as ints);
* ``int``: an integer, or a float with no fractional part (``12.0``); never a bool;
* ``float``: an int or a float, or a string that parses as one (YAML reads ``1e-4``, written
  without a dot, as a string); never a bool, never NaN;
* ``str``: a string;
* ``X | None``: ``None``, or a value of ``X``;
* ``tuple[A, B]``: a list or tuple of as many values, each checked;
* a configuration class (anything with ``from_dict``): an instance, or a mapping of its fields.

Anything else is passed through unchanged.
"""

from __future__ import annotations

import contextlib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from beats_core.errors import ConfigError

__all__ = ["coerce"]


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``hint`` and return it normalised.

    Args:
        value: the value as given.
        hint: the resolved annotation (``int``, ``float | None``, ``tuple[int, int]``, a
            configuration class, ...), e.g. from ``typing.get_type_hints``.
        where: how the message names the field, e.g. ``"TrainingConfig.learning_rate"``.

    Returns:
        The value, converted where the rules above allow (``12.0`` -> ``12``, ``1`` -> ``True``,
        ``"1e-4"`` -> ``0.0001``, a mapping -> a configuration).

    Raises:
        ConfigError: the value does not fit; the message names the field, the value and the
            type expected.
    """
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        if len(options) == 1:
            return coerce(value, options[0], where)
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        _fail(where, value, "must be true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        _fail(where, value, "must be a whole number")
    if hint is float:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
            return float(value)
        _fail(where, value, "must be a number")
    if hint is str:
        if isinstance(value, str):
            return value
        _fail(where, value, "must be a string")
    if typing.get_origin(hint) is tuple and args and Ellipsis not in args:
        if isinstance(value, list | tuple) and len(value) == len(args):
            return tuple(
                coerce(item, arg, f"{where}[{i}]")
                for i, (item, arg) in enumerate(zip(value, args, strict=True))
            )
        kind = "numbers" if all(arg in (int, float) for arg in args) else "values"
        _fail(where, value, f"must be a list of {len(args)} {kind}")
    if isinstance(hint, type) and hasattr(hint, "from_dict"):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            try:
                return hint.from_dict(value)
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from e
        _fail(where, value, f"must be a {hint.__name__} or a mapping of its fields")
    return value


def _fail(where: str, value: Any, requirement: str) -> typing.NoReturn:
    raise ConfigError(f"{where}={value!r} {requirement}")
