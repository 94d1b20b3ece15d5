"""The package's shape as ARCHITECTURE.md states it: no import circles, layers that point one way.

Imports are read from the source (every ``import`` statement, at module level or inside a function),
so a lazy import that closes a circle counts as one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_certload"

#: modules over ~400 lines that are one idea each (ARCHITECTURE.md says why)
ONE_IDEA = {
    "pytest_certload.thresholds": "k6's threshold grammar and its evaluation",
    "pytest_certload.engine.http": "the lean HTTP/1.1 client of the measured hot path",
    "pytest_certload.stack.docker": "the testcontainers stack provider",
}
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every pytest_certload module ``path`` imports (``from a import b`` counts a.b when a module)."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES and m != here}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def _resolved(name: str) -> set[str]:
    """A module's imports, where importing ``a.b`` also runs ``a`` (the package's __init__)."""
    out = set()
    for target in GRAPH[name]:
        parts = target.split(".")
        out.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return {m for m in out if m in MODULES and m != name and not name.startswith(m + ".")}


def find_cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(_resolved(node)):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(MODULES):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_import_circle() -> None:
    cycle = find_cycle()
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_checker_sees_a_circle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: a made-up back edge is found."""
    monkeypatch.setitem(GRAPH, "pytest_certload.stats.samples", {"pytest_certload.runner"})
    assert find_cycle() is not None


@pytest.mark.parametrize(
    "core",
    [m for m in sorted(MODULES) if not m.startswith(("pytest_certload.xdist", "pytest_certload.plugin"))],
)
def test_core_never_imports_the_glue_or_xdist(core: str) -> None:
    """The xdist package and plugin.py sit on top: nothing below imports them."""
    assert not {m for m in GRAPH[core] if m.startswith(("pytest_certload.xdist", "pytest_certload.plugin"))}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small_unless_one_idea(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES or name in ONE_IDEA, (
        f"{name} has {lines} lines: split it by idea, or add it to ONE_IDEA (and ARCHITECTURE.md) saying why"
    )
