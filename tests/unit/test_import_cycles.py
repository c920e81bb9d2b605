"""No import cycles in api/: each module imports only what sits below it.

The graph holds every `import` of an api module, top-level or inside a function; a
function-level import may close a cycle only when its line carries a `# cycle:` comment
saying why it must stay.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "api"
AWAITING_THE_HOT_PATH_OWNER: dict[tuple[str, str], str] = {}
"""Edges in files frozen for the hot-path work; each names the change that removes it."""


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
    """Module -> the api modules it imports, leaving out excused function-level imports."""
    paths = {_module(path): path for path in API.rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in paths.items():
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source, str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if node.col_offset > 0 and "# cycle:" in lines[node.lineno - 1]:
                continue
            graph[name] |= _imported(node, modules) - {name}
    for source, target in AWAITING_THE_HOT_PATH_OWNER:
        graph[source].discard(target)
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


def test_edges_awaiting_the_hot_path_owner_still_exist() -> None:
    """Once one is gone, drop it from the list, so the list never hides a new cycle."""
    for source, target in AWAITING_THE_HOT_PATH_OWNER:
        path = ROOT / (source.replace(".", "/") + ".py")
        assert f"from {target} import" in path.read_text(), (source, target)


def test_the_check_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
