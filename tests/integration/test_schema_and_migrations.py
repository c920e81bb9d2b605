"""The schema travels only through migrations, and code and database agree (F2, F3, F8)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from piccolo.apps.migrations.commands.new import AutoMigrationManager
from piccolo.conf.apps import Finder

from api.platform.db.readiness import check_schema, known_migrations
from api.platform.db.sql import fetch
from tables.enums import NodeLevel, Permission, Role
from tables.piccolo_app import APP_CONFIG, APP_NAME
from tests.support.auth import make_user
from tests.support.databases import fresh_database
from tests.support.env import ROOT
from tests.support.processes import run_release


async def drift_statements() -> list[str]:
    """What Piccolo would generate now; empty when the tables match the migrations."""
    manager = AutoMigrationManager(auto_input="n")
    statements = []
    for app_config in Finder().get_app_configs():
        for alter in await manager.get_alter_statements(app_config):
            statements.extend(alter.statements)
    return statements


async def test_table_classes_match_the_migrations() -> None:
    assert await drift_statements() == []


DRIFT_CHECK = """
import asyncio
from piccolo.apps.migrations.commands.new import AutoMigrationManager
from piccolo.conf.apps import Finder

async def main():
    manager = AutoMigrationManager(auto_input="n")
    for app_config in Finder().get_app_configs():
        for alter in await manager.get_alter_statements(app_config):
            print("\\n".join(alter.statements))

asyncio.run(main())
"""


def test_a_column_added_without_a_migration_is_detected(tmp_path: Path) -> None:
    """A copy of the project whose User class gained a column nobody generated a migration for."""
    for part in ("api", "tables", "piccolo_migrations"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "piccolo_conf.py", tmp_path / "piccolo_conf.py")
    users = tmp_path / "tables" / "users.py"
    source = users.read_text()
    anchor = "    is_active = Boolean(default=True, null=False)\n"
    assert anchor in source
    users.write_text(source.replace(anchor, anchor + "    nickname = Varchar(length=50)\n", 1))
    result = subprocess.run(
        [sys.executable, "-c", DRIFT_CHECK],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "nickname" in result.stdout


def test_the_app_config_lists_every_table_module() -> None:
    table_names = {table._meta.tablename for table in APP_CONFIG.table_classes}
    assert {
        "users",
        "organization_hierarchy",
        "user_hierarchy_assignments",
        "hierarchy_permission_overrides",
        "feature_flags",
        "feature_flag_overrides",
        "audit_logs",
        "user_sessions",
    } <= table_names


async def test_the_test_database_is_at_head() -> None:
    status = await check_schema()
    assert status.ready, status
    assert len(known_migrations()) >= 2


def test_all_migrations_apply_to_an_empty_database_and_rerun_is_a_no_op() -> None:
    url = fresh_database("marketedge_empty_apply")
    first = run_release(url)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_release(url)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already complete" in second.stdout or "No migrations" in second.stdout


@pytest.mark.parametrize(
    ("table", "column", "enum", "setup"),
    [
        ("organization_hierarchy", "level", NodeLevel, "node"),
        ("user_hierarchy_assignments", "role", Role, "assignment"),
        ("hierarchy_permission_overrides", "permission", Permission, "override"),
    ],
)
async def test_every_enum_value_round_trips_and_others_are_refused(
    table: str, column: str, enum: type, setup: str
) -> None:
    values = [member.value for member in enum]
    stored = await fetch(
        "SELECT array_agg(v) AS values FROM unnest($1::text[]) AS v WHERE v ~ '^[a-z_]+$'",
        values,
    )
    assert stored[0]["values"] == values
    constraint = await fetch(
        "SELECT pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c"
        " JOIN pg_class t ON t.oid = c.conrelid WHERE t.relname = $1 AND c.contype = 'c'"
        " AND pg_get_constraintdef(c.oid) LIKE '%' || $2 || '%'",
        table,
        column,
    )
    definitions = " ".join(row["definition"] for row in constraint)
    for value in values:
        assert f"'{value}'" in definitions
    assert values == [value.lower() for value in values]


async def test_enum_columns_store_exactly_the_python_values() -> None:
    user_id = await make_user()
    org = await fetch(
        "INSERT INTO organization_hierarchy (level, name, slug) VALUES ($1, 'Enum Org',"
        " 'enum-org-' || $2) RETURNING id, level",
        NodeLevel.organization.value,
        str(user_id),
    )
    assert org[0]["level"] == "organization"
    for role in Role:
        other = await make_user()
        row = await fetch(
            "INSERT INTO user_hierarchy_assignments (user_id, node_id, role) VALUES ($1, $2, $3)"
            " RETURNING role",
            other,
            org[0]["id"],
            role.value,
        )
        assert Role(row[0]["role"]) is role
    for permission in Permission:
        row = await fetch(
            "INSERT INTO hierarchy_permission_overrides (user_id, node_id, permission, granted)"
            " VALUES ($1, $2, $3, true) RETURNING permission",
            user_id,
            org[0]["id"],
            permission.value,
        )
        assert Permission(row[0]["permission"]) is permission
    with pytest.raises(asyncpg.CheckViolationError):
        await fetch(
            "INSERT INTO user_hierarchy_assignments (user_id, node_id, role) VALUES ($1, $2, $3)",
            await make_user(),
            org[0]["id"],
            "ORG_ADMIN",
        )


async def test_audit_log_is_append_only() -> None:
    rows = await fetch(
        "INSERT INTO audit_logs (action, resource_type) VALUES ('probe', 'test') RETURNING id"
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await fetch("UPDATE audit_logs SET action = 'changed' WHERE id = $1", rows[0]["id"])
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await fetch("DELETE FROM audit_logs WHERE id = $1", rows[0]["id"])


async def test_deleting_a_user_keeps_their_audit_rows() -> None:
    user_id = await make_user()
    rows = await fetch(
        "INSERT INTO audit_logs (actor_id, actor_email, action, resource_type)"
        " VALUES ($1, 'gone@example.test', 'probe', 'test') RETURNING id",
        user_id,
    )
    await fetch("DELETE FROM users WHERE id = $1", user_id)
    kept = await fetch("SELECT actor_id, actor_email FROM audit_logs WHERE id = $1", rows[0]["id"])
    assert kept[0]["actor_id"] is None
    assert kept[0]["actor_email"] == "gone@example.test"


async def test_hierarchy_refuses_cycles_and_bad_nesting() -> None:
    suffix = str(await make_user())
    org = (
        await fetch(
            "INSERT INTO organization_hierarchy (level, name, slug) VALUES"
            " ('organization', 'O', 'cyc-' || $1) RETURNING id",
            suffix,
        )
    )[0]["id"]
    loc = (
        await fetch(
            "INSERT INTO organization_hierarchy (level, name, slug, parent_id) VALUES"
            " ('location', 'L', 'l', $1) RETURNING id, path",
            org,
        )
    )[0]
    assert loc["path"] == [org, loc["id"]]
    dept = (
        await fetch(
            "INSERT INTO organization_hierarchy (level, name, slug, parent_id) VALUES"
            " ('department', 'D', 'd', $1) RETURNING id",
            loc["id"],
        )
    )[0]["id"]
    with pytest.raises(asyncpg.CheckViolationError):
        await fetch(
            "UPDATE organization_hierarchy SET parent_id = $1 WHERE id = $2", dept, loc["id"]
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await fetch(
            "INSERT INTO organization_hierarchy (level, name, slug, parent_id) VALUES"
            " ('location', 'Nested', 'nested', $1)",
            loc["id"],
        )


async def test_no_schema_changing_endpoint_exists(client: object) -> None:
    """F8: no debug or emergency endpoint that runs DDL — every route is listed here."""
    from api.app import create_app

    app: object = create_app()
    while not hasattr(app, "routes"):  # through the outer ASGI wrappers to Litestar
        app = app.app  # type: ignore[attr-defined]
    paths = {route.path for route in app.routes}
    assert not {p for p in paths if "emergency" in p or "debug" in p or "migrate" in p}


def test_migrations_are_excluded_from_nothing_but_lint() -> None:
    """Every migration module imports cleanly (a broken chain fails here, not in production)."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from api.platform.db.readiness import known_migrations; print(len(known_migrations()))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == len(known_migrations())
    assert APP_NAME == "marketedge"
