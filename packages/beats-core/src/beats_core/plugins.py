"""The plugin manager: finds built-in and third-party plugins through entry points.

Every package of beats, and any third-party package, registers a module under the
``beats`` entry-point group. :func:`get_plugin_manager` loads each entry point in
its own ``try``/``except``, so one broken plugin produces a
:class:`~beats_core.errors.PluginWarning` naming its distribution while everything
else keeps working. :func:`collect_registrations` calls one registration hook on
every plugin, one implementation at a time, and merges the returned mappings.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from beats_core import hookspecs
from beats_core.errors import PluginError, PluginWarning

__all__ = [
    "BUILTIN_DISTRIBUTIONS",
    "BeatsPluginManager",
    "Registration",
    "collect_registrations",
    "get_plugin_manager",
]

ENTRY_POINT_GROUP = "beats"

#: Distributions whose plugins are the project's own built-ins, in load order.
BUILTIN_DISTRIBUTIONS = ("beats-core", "beats-data", "beats-extract", "beats-train", "beats-trainer")


@dataclass(frozen=True)
class Registration:
    """One object registered under a name by a plugin.

    Attributes:
        name: the name users refer to it by.
        value: the registered object (a ModelInfo, a loader, a pooling, ...).
        distribution: the name of the distribution that registered it, e.g.
            ``"beats-core"`` or ``"my-beats-plugin"``; ``"<local>"`` for plugins
            registered in-process with ``get_plugin_manager().register(...)``.
    """

    name: str
    value: Any
    distribution: str

    @property
    def builtin(self) -> bool:
        """Whether the registration comes from one of the beats packages."""
        return self.distribution in BUILTIN_DISTRIBUTIONS


class BeatsPluginManager(pluggy.PluginManager):
    """A pluggy plugin manager that remembers which distribution each plugin came from."""

    def __init__(self) -> None:
        super().__init__("beats")
        self.add_hookspecs(hookspecs)
        self._distributions: dict[str, str] = {}

    def register_entry_point(self, entry_point: EntryPoint) -> None:
        """Load one entry point and register it; a failure becomes a warning.

        Args:
            entry_point: an entry point of the ``beats`` group.
        """
        distribution = _distribution_name(entry_point)
        try:
            plugin = entry_point.load()
            unknown = sorted(
                attr for attr in dir(plugin) if attr.startswith("beats_") and not hasattr(hookspecs, attr)
            )
            if unknown:
                known = sorted(attr for attr in dir(hookspecs) if attr.startswith("beats_"))
                raise PluginError(f"it implements unknown hooks {unknown} (known hooks: {known})")
            name = self.register(plugin, name=f"{distribution}:{entry_point.name}")
        except Exception as e:  # a third-party plugin can fail in any way
            warnings.warn(
                f"beats plugin {entry_point.name!r} ({entry_point.value}) from distribution "
                f"{distribution!r} failed to load and is ignored: {type(e).__name__}: {e}. "
                f"Reinstall or upgrade {distribution!r}, or uninstall it "
                f"(`pip uninstall {distribution}`).",
                PluginWarning,
                stacklevel=2,
            )
            return
        if name is not None:
            self._distributions[name] = distribution

    def distribution_of(self, plugin: object) -> str:
        """Return the distribution that registered ``plugin`` (``"<local>"`` if registered in-process)."""
        return self._distributions.get(self.get_name(plugin) or "", "<local>")


def _distribution_name(entry_point: EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return dist.name if dist is not None else "<unknown>"


def _load_order(entry_point: EntryPoint) -> tuple[int, str, str]:
    distribution = _distribution_name(entry_point)
    if distribution in BUILTIN_DISTRIBUTIONS:
        return (BUILTIN_DISTRIBUTIONS.index(distribution), "", entry_point.name)
    return (len(BUILTIN_DISTRIBUTIONS), distribution, entry_point.name)


@functools.cache
def get_plugin_manager() -> BeatsPluginManager:
    """Return the process-wide plugin manager, loading every ``beats`` entry point once.

    Built-ins are loaded first (beats-core, beats-data, beats-extract,
    beats-train), then third-party plugins sorted by distribution name, so that the
    first registration of a name is deterministic. A plugin that fails to import,
    or implements a hook with a wrong signature, is reported with a
    :class:`~beats_core.errors.PluginWarning` and left out.

    Call ``get_plugin_manager.cache_clear()`` after installing a plugin in a
    running process to find it.

    Returns:
        The plugin manager.
    """
    manager = BeatsPluginManager()
    seen: set[tuple[str, str]] = set()
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=_load_order):
        key = (_distribution_name(entry_point), entry_point.name)
        if key in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(key)
        manager.register_entry_point(entry_point)
    manager.check_pending()
    return manager


def collect_registrations(hook_name: str, **kwargs: Any) -> dict[str, Registration]:
    """Call a registration hook on every plugin and merge the mappings they return.

    Each implementation is called on its own: one that raises, or returns something
    that is not a mapping, is reported with a
    :class:`~beats_core.errors.PluginWarning` naming its distribution and
    skipped. A name registered twice keeps its first registration (built-ins
    come first) and the duplicate is reported with a warning.

    Args:
        hook_name: the hook to call, e.g. ``"beats_poolings"``.
        **kwargs: the hook's arguments, by keyword.

    Returns:
        name -> :class:`Registration`, in registration order.
    """
    manager = get_plugin_manager()
    hook_caller = getattr(manager.hook, hook_name)
    registrations: dict[str, Registration] = {}
    for impl in hook_caller.get_hookimpls():  # registration order: built-ins first
        distribution = manager.distribution_of(impl.plugin)
        try:
            result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as e:
            warnings.warn(
                f"beats plugin {impl.plugin_name!r} from distribution {distribution!r} raised "
                f"{type(e).__name__}: {e} in {hook_name}(); its registrations are ignored. "
                f"Upgrade or uninstall {distribution!r}.",
                PluginWarning,
                stacklevel=2,
            )
            continue
        if result is None:
            continue
        if not isinstance(result, Mapping):
            warnings.warn(
                f"beats plugin {impl.plugin_name!r} from distribution {distribution!r} returned "
                f"{type(result).__name__} from {hook_name}(), expected a mapping of names; ignored.",
                PluginWarning,
                stacklevel=2,
            )
            continue
        for name, value in result.items():
            taken = registrations.get(name)
            if taken is not None:
                warnings.warn(
                    f"beats plugin {impl.plugin_name!r} from distribution {distribution!r} registers "
                    f"{name!r} in {hook_name}(), a name already taken by distribution "
                    f"{taken.distribution!r}; the first registration is kept. Rename it in the plugin.",
                    PluginWarning,
                    stacklevel=2,
                )
                continue
            registrations[name] = Registration(name=name, value=value, distribution=distribution)
    return registrations
