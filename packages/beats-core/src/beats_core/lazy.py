"""Lazy package exports: the public names of a package, imported from their modules on first use.

Each beats package exposes its API at the package root without importing torch-heavy
modules at ``import`` time, so that ``import beats_data`` and the ``beats`` command start fast.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of a package with lazy exports.

    Use in a package's ``__init__.py``::

        __getattr__, __dir__ = lazy_exports(__name__, {"BEATs": ".model", "load_audio": "beats_core"}, __all__)

    Args:
        package: the package's ``__name__``.
        exports: public name -> the module that defines it, as ``import_module`` takes it with
            ``package`` as anchor: ``".model"`` for a sub-module, ``"beats_core"`` for a name
            re-exported from another package.
        names: every public name of the package (its ``__all__``), for ``dir()``.

    Returns:
        ``(__getattr__, __dir__)``: the first imports a name's module on first access and
        keeps the value in the package namespace; the second lists ``names`` sorted.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
