"""Every raw SQL statement left in api/ is prepared against the migrated schema.

The query builder names columns through the table classes, so a renamed column fails at
import or in the tests that reach it. Raw SQL is only text: this test finds each statement
passed to `fetch` (or a Piccolo `raw`/asyncpg `execute`) anywhere in api/, resolves it
(a string literal, or a module constant it names), and asks Postgres to prepare it, so a
stale column or table name fails the suite instead of a request in production.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import asyncpg
import pytest

API = Path(__file__).resolve().parents[2] / "api"
SQL_CALLS = {"fetch", "_execute", "raw", "execute"}
RUNNERS = {"api/platform/db/sql.py", "api/migration_sql.py"}
"""The helpers themselves, which run what they are given (migrations are checked by running)."""


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(API.parent).with_suffix("").parts)


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def raw_statements() -> list[tuple[str, str]]:
    """(where, SQL) for every statement handed to a raw-SQL call in api/."""
    found: list[tuple[str, str]] = []
    for path in sorted(API.rglob("*.py")):
        if path.relative_to(API.parent).as_posix() in RUNNERS:
            continue
        tree = ast.parse(path.read_text(), str(path))
        module = None
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _called_name(node) in SQL_CALLS and node.args):
                continue
            where = f"{_module_name(path)}:{node.lineno}"
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((where, first.value))
            elif isinstance(first, ast.Name | ast.Attribute):
                module = module or importlib.import_module(_module_name(path))
                value = eval(compile(ast.Expression(first), where, "eval"), vars(module))  # noqa: S307
                assert isinstance(value, str), f"{where}: {ast.unparse(first)} is not SQL text"
                found.append((where, value))
            else:
                pytest.fail(f"{where}: SQL built at run time; name it as a constant instead")
    return found


STATEMENTS = raw_statements()


def test_raw_sql_is_rare_and_named() -> None:
    """The query builder says plain reads and writes; what is left is counted here."""
    assert 0 < len(STATEMENTS) <= 26, [where for where, _ in STATEMENTS]


@pytest.mark.parametrize(("where", "sql"), STATEMENTS, ids=[w for w, _ in STATEMENTS])
async def test_raw_statement_prepares_against_the_schema(
    database: str, where: str, sql: str
) -> None:
    connection = await asyncpg.connect(database)
    try:
        await connection.prepare(sql)
    finally:
        await connection.close()
