"""Looking a name up among registered ones, with "did you mean" and the list of known names.

Models, dataset loaders, poolings and training presets are all registered by name; a name
that is not found raises the error of its kind (a subclass of
:class:`~beats_core.errors.UnknownNameError`) with the closest registered names and all of them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from beats_core.errors import UnknownNameError

__all__ = ["close_matches", "lookup"]

T = TypeVar("T")


def close_matches(name: str, known: Iterable[str], n: int = 1) -> list[str]:
    """The registered names closest to ``name``, compared case-insensitively, best first.

    Args:
        name: what was asked for.
        known: the registered names.
        n: how many to return at most.

    Returns:
        Up to ``n`` names of ``known``, as they are spelled there.
    """
    by_lower: dict[str, str] = {}
    for candidate in known:
        by_lower.setdefault(candidate.lower(), candidate)
    return [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.5)]


def lookup(
    name: str,
    registered: Mapping[str, T],
    *,
    kind: str,
    error: type[UnknownNameError],
    advice: str = "",
    order: Callable[[str], object] | None = None,
) -> T:
    """Return ``registered[name]``, or raise ``error`` saying what is registered instead.

    Args:
        name: the name asked for (case matters).
        registered: name -> registered object.
        kind: what the names are, for the message (``"model"``, ``"pooling"``, ...).
        error: the exception class to raise, a subclass of :class:`UnknownNameError`.
        advice: a sentence appended to the message: how to list the names or add one.
        order: a sort key for listing the names (default: alphabetical).

    Returns:
        The registered object.

    Raises:
        UnknownNameError: (``error``) the name is not registered; the message names the
            closest registered one and lists them all.
    """
    if name in registered:
        return registered[name]
    close = close_matches(str(name), registered)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    names = sorted(registered, key=order) if order is not None else sorted(registered)
    listing = ", ".join(repr(n) for n in names) if names else "none"
    message = f"unknown {kind} {name!r}.{hint} Registered {kind}s: {listing}."
    raise error(f"{message} {advice}".rstrip())
