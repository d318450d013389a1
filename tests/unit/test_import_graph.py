"""No import circle among the shim's modules, typing-only imports included.

A circle means modules that know each other's insides: none of them can be read, tested or
replaced alone. The graph is read from the source with `ast` (every ``import`` and
``from … import``, wherever it stands: inside functions and ``if TYPE_CHECKING:`` too), so
a circle that Python tolerates at run time still fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

SHIM = Path(__file__).resolve().parents[2] / "shim"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SHIM.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        yield base
        # `from shim.legacy import routes` imports the module shim.legacy.routes
        yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in SHIM.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = {
            target
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            for target in _imported(node, package)
        }
        graph[name] = {target for target in found if target in files and target != name}
    return graph


def circles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_every_module() -> None:
    graph = import_graph()
    assert "shim.legacy.table" in graph["shim.access"]
    assert "shim.keys" in graph["shim.legacy.table"]
    assert len(graph) == len(list(SHIM.rglob("*.py")))


def test_circles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_no_import_circle_among_shim_modules() -> None:
    found = circles(import_graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)
