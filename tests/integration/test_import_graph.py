"""The packages import each other in one direction and no module imports itself in a circle.

Every ``import`` of every module is read with ``ast``: at module level, inside functions and
under ``if TYPE_CHECKING:`` alike, so that no circle hides behind an import deferred to call
time. The package boundaries of the architecture are checked too: beats-core imports no
sibling, beats-data and beats-extract only beats-core, beats-train no umbrella.
"""

from __future__ import annotations

import ast
from pathlib import Path

import testkit

PACKAGES = testkit.REPO_ROOT / "packages"

#: What each package may import besides itself.
ALLOWED = {
    "beats_core": set(),
    "beats_data": {"beats_core"},
    "beats_extract": {"beats_core"},
    "beats_train": {"beats_core", "beats_data", "beats_extract"},
    "beats_trainer": {"beats_core", "beats_data", "beats_extract", "beats_train"},
}


def _modules() -> dict[str, Path]:
    modules = {}
    for source in PACKAGES.glob("*/src"):
        for path in source.rglob("*.py"):
            parts = path.relative_to(source).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
    return {target for target in found if target in modules and target != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_graph_sees_imports_inside_functions():
    graph = _graph()
    assert len(graph) > 60
    assert "beats_core.download" in graph["beats_core.commands"]  # imported inside a command function


def test_no_module_imports_itself_through_others():
    cycles = _cycles(_graph())
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(cycle) for cycle in cycles)


def test_packages_import_only_what_the_architecture_allows():
    wrong = []
    for name, targets in _graph().items():
        own = name.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != own and other not in ALLOWED[own]:
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong
