"""New hand-written migrations share one runner (`api.migration_sql`); applied ones stay as
they were applied."""

from __future__ import annotations

import ast
from pathlib import Path

from api.migration_sql import sql_migration

MIGRATIONS = Path(__file__).resolve().parents[2] / "piccolo_migrations"
LAST_WITH_ITS_OWN_RUNNER = "marketedge_2026_11_25t12_10_00_000000.py"
"""Migrations up to this one were applied with a runner of their own; they stay as they are."""


def _defines_a_runner(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.ClassDef) for node in tree.body) and any(
        isinstance(node, ast.Attribute) and node.attr == "add_raw" for node in ast.walk(tree)
    )


def test_only_applied_migrations_carry_their_own_runner() -> None:
    newer = sorted(
        p for p in MIGRATIONS.glob("marketedge_*.py") if p.name > LAST_WITH_ITS_OWN_RUNNER
    )
    own = [path.name for path in newer if _defines_a_runner(path)]
    assert not own, f"use api.migration_sql.sql_migration in {own}"


async def test_sql_migration_runs_its_statements_as_one_raw_step() -> None:
    forwards = sql_migration("2099-01-01T00:00:00:000000", "probe", ["SELECT 1", "SELECT 2"])
    manager = await forwards()
    assert (manager.migration_id, manager.app_name, manager.description) == (
        "2099-01-01T00:00:00:000000",
        "marketedge",
        "probe",
    )
    assert len(manager.raw) == 1
