"""The layout holds: no import cycles in api/, the platform imports no domain, few loose
modules.

The graph holds every `import` of an api module, top-level or inside a function: a
function-level import hides a cycle from Python, not from this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "api"
PLATFORM = "api.platform"
DOMAINS = ("api.auth", "api.hierarchy", "api.flags", "api.audit_log")
"""What the platform must never import: it is shared by them, so it cannot know them."""


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    names: set[str] = set()
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    elif node.module is None or node.level:
        return names
    else:
        candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    for name in candidates:
        if name in modules:
            names.add(name)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the api modules it imports, at any depth of the module's code."""
    paths = {_module(path): path for path in API.rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in paths.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[name] |= _imported(node, modules) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_api_has_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def platform_imports_of_domains(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (source, target)
        for source, targets in graph.items()
        if _within(source, PLATFORM)
        for target in targets
        if any(_within(target, domain) for domain in DOMAINS)
    )


def test_the_platform_imports_no_domain() -> None:
    assert platform_imports_of_domains(import_graph()) == []


def test_few_modules_lie_loose_at_the_top_of_api() -> None:
    """app.py (wiring) and migration_sql.py (imported by applied migrations, so it stays)."""
    loose = sorted(path.name for path in API.glob("*.py"))
    assert loose == ["__init__.py", "app.py", "migration_sql.py"]


def test_the_layering_check_sees_a_platform_module_importing_a_domain() -> None:
    graph = {"api.platform.db.audit": {"api.auth.identity"}, "api.auth.identity": set()}
    assert platform_imports_of_domains(graph) == [("api.platform.db.audit", "api.auth.identity")]


def test_the_check_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
