"""The package's modules import each other without loops (issue 11): the layers read one way,
plugin -> session -> collect -> checks -> sandbox/formats, never back. Imports inside functions
count too: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_corrsource"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "pytest_corrsource.sandbox.steps" in graph["pytest_corrsource.checks.run"]
    assert "pytest_corrsource.formats.tensors" in graph["pytest_corrsource.perturb"]


def test_no_import_loops() -> None:
    # A package's __init__ importing its own submodules (a curated face) is not a loop.
    graph = import_graph()
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert cycles(graph) == []


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_public_names_resolve_and_every_error_is_a_corrsource_error() -> None:
    import pytest_corrsource
    from pytest_corrsource.errors import CorrsourceError

    for name in pytest_corrsource.__all__:
        assert getattr(pytest_corrsource, name) is not None, name
    from pytest_corrsource.checks.api import CheckFailed, CheckSkipped
    from pytest_corrsource.formats import FormatError
    from pytest_corrsource.manifest import ManifestError
    from pytest_corrsource.safe_io import NotRegularFile
    from pytest_corrsource.sandbox.backends import SandboxUnavailable

    for error in (CheckFailed, CheckSkipped, FormatError, ManifestError, SandboxUnavailable):
        assert issubclass(error, CorrsourceError), error
    assert issubclass(NotRegularFile, OSError)  # built-in bases kept for existing handlers
