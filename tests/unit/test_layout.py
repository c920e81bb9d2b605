"""The layout holds: no import cycles in api/, the platform imports no domain, few loose
modules.

The graph holds every `import` of an api module, top-level or inside a function: a
function-level import hides a cycle from Python, not from this test.
"""

from __future__ import annotations

import ast
import re
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


# ---- each domain has its parts, and data access only in its queries ------------------------

PARTS = ("routes", "service", "rules", "queries", "schemas", "admin_ui")
ABSENT = {
    "api.auth": {"admin_ui"},
    "api.audit_log": {"service", "rules", "admin_ui"},
}
"""Parts a domain truly lacks. Auth shows no table in Piccolo Admin (sessions, logins in
flight and pending grants are not shown; users belong to the hierarchy's admin_ui). The
audit log is read-only: nothing to write, nothing to validate, and the admin's read-only
table is configured in api/admin_ui/config.py."""
SQL_CALLS = frozenset({"fetch", "raw", "engine"})
RAW_BUILDER = frozenset({"WhereRaw", "QueryString"})
BUILDER_CALLS = frozenset({"select", "insert", "update", "delete", "exists", "count", "objects"})
WRITERS = ("service",)
"""Besides `queries`, the part that may use the query builder: the service writes."""
SQL_TEXT = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\s", re.ASCII)


def missing_parts(package: Path) -> set[str]:
    present = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir()}
    return {part for part in PARTS if part not in present}


def _table_names(tree: ast.Module) -> set[str]:
    """Names bound by `from tables... import X` (the table classes)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tables")
        for alias in node.names
        if alias.name[:1].isupper()
    }


def data_access(source: str, *, builder_allowed: bool) -> list[str]:
    """What in `source` is data access outside a `queries` module: raw SQL calls (`fetch`,
    `.raw`, `engine()`), raw fragments, SQL text, and (unless allowed) builder calls on a
    table class. One line each: "line: what"."""
    tree = ast.parse(source)
    tables = _table_names(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in SQL_CALLS or name in RAW_BUILDER:
                found.append(f"{node.lineno}: {name}()")
            elif (
                not builder_allowed
                and isinstance(func, ast.Attribute)
                and func.attr in BUILDER_CALLS
                and isinstance(func.value, ast.Name)
                and func.value.id in tables
            ):
                found.append(f"{node.lineno}: {func.value.id}.{func.attr}()")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL_TEXT.match(node.value)
        ):
            found.append(f"{node.lineno}: SQL text")
    return found


def _part(path: Path, package: Path) -> str:
    return path.relative_to(package).parts[0].removesuffix(".py")


def domain_data_access() -> list[str]:
    found: list[str] = []
    for domain in DOMAINS:
        package = ROOT / domain.replace(".", "/")
        for path in sorted(package.rglob("*.py")):
            part = _part(path, package)
            if part == "queries":
                continue
            for hit in data_access(path.read_text(), builder_allowed=part in WRITERS):
                found.append(f"{path.relative_to(ROOT)}:{hit}")
    return found


def test_each_domain_has_its_parts() -> None:
    for domain in DOMAINS:
        package = ROOT / domain.replace(".", "/")
        assert missing_parts(package) == ABSENT.get(domain, set()), domain


def test_a_part_said_absent_is_absent() -> None:
    """No empty placeholder: a part listed as absent does not exist."""
    for domain, absent in ABSENT.items():
        package = ROOT / domain.replace(".", "/")
        assert absent <= missing_parts(package), domain


def test_data_access_lives_in_the_domains_queries_modules() -> None:
    """SQL (and builder reads) only in `queries`; the service writes with the builder."""
    assert domain_data_access() == []


def test_the_data_access_check_sees_sql_outside_queries() -> None:
    source = (
        "from tables.users import User\n"
        "from api.platform.db.sql import fetch, engine\n"
        'LOOKUP = "SELECT id FROM users"\n'
        "async def f():\n"
        "    await fetch(LOOKUP)\n"
        "    await User.select(User.id)\n"
        '    await User.raw("DELETE FROM users")\n'
        "    async with engine().transaction():\n"
        "        pass\n"
        "    selection = {1}.update({2})  # not a table: no finding\n"
    )
    assert data_access(source, builder_allowed=False) == [
        "3: SQL text",
        "5: fetch()",
        "6: User.select()",
        "7: raw()",
        "7: SQL text",
        "8: engine()",
    ]
    assert data_access(source, builder_allowed=True) == [
        "3: SQL text",
        "5: fetch()",
        "7: raw()",
        "7: SQL text",
        "8: engine()",
    ]


def test_the_parts_check_sees_a_missing_part(tmp_path: Path) -> None:
    for part in ("routes.py", "service.py", "schemas.py"):
        (tmp_path / part).write_text("")
    (tmp_path / "queries").mkdir()
    assert missing_parts(tmp_path) == {"rules", "admin_ui"}
