"""Issue 21, "How it will be checked": staging (A) holds the demo data, production (B) the
same people and hierarchy with no flags. The CLI, with `DATABASE_URL` alone, exports A and
dry-runs and applies the document to B; then every demo person's `/api/v1/features` and
OFREP bulk answers are the same on A and B (the real app, its pool pointed at each database
in turn), a second import changes nothing, and the CLI round-trips.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.flags.store import flag_cache
from api.ops.demo import USERS
from api.platform.db.sql import engine
from tests.e2e.test_entry_point_environments import ISSUER, run_alone
from tests.support.auth import sign_in
from tests.support.databases import fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ACTOR = next(email for _, email, _, super_admin, *_ in USERS if super_admin)
FLAG_TABLES = (
    "feature_flag_usage",
    "feature_flag_overrides",
    "feature_flag_rules",
    "feature_flag_schedules",
    "feature_flags",
    "segments",
)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def sql(url: str, statement: str) -> list[Any]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(statement))
    finally:
        await connection.close()


@pytest.fixture(name="databases", scope="module")
def fx_databases() -> Iterator[tuple[str, str]]:
    """A: released, demo data. B: released, the same demo people and hierarchy, no flags."""
    urls = fresh_database("promotion_a"), fresh_database("promotion_b")
    for url in urls:
        ok(run_alone("api.ops.release", DATABASE_URL=url))
        ok(run_alone("api.ops.demo", DATABASE_URL=url, OIDC_ISSUER=ISSUER))
    return urls


@asynccontextmanager
async def serving(url: str) -> AsyncIterator[None]:
    """The app's pool on `url` for the block, then back on the test database."""
    db = engine()
    home = db.config["dsn"]
    await db.close_connection_pool()
    db.config["dsn"] = url
    await db.start_connection_pool(min_size=0, max_size=4)
    flag_cache.invalidate()
    try:
        yield
    finally:
        await db.close_connection_pool()
        db.config["dsn"] = home
        await db.start_connection_pool(min_size=0, max_size=10)
        flag_cache.invalidate()


async def answers(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """Every demo person's /api/v1/features and OFREP bulk answers on `url`'s database."""
    seen: dict[str, Any] = {}
    async with serving(url):
        for sub, email, *_ in USERS:
            rows = await sql(url, f"SELECT id FROM users WHERE oidc_subject = '{sub}'")
            person = await sign_in(int(rows[0]["id"]))
            features = await client.get("/api/v1/features", cookies=person.cookies)
            assert features.status_code == 200, features.text
            bulk = await client.post(
                "/ofrep/v1/evaluate/flags",
                json={"context": {"country": "DE", "appVersion": "2.0.0"}},
                cookies=person.cookies,
                headers=person.headers(),
            )
            assert bulk.status_code == 200, bulk.text
            seen[email] = {"features": features.json(), "ofrep": bulk.json()["flags"]}
    return seen


def without_user_overrides(seen: dict[str, Any], user_overridden: set[tuple[str, str]]) -> Any:
    """The answers but those a user override decides on A (user overrides stay behind)."""
    out = json.loads(json.dumps(seen))
    for email, flag in user_overridden:
        features = out[email]["features"]
        features["flags"] = [f for f in features["flags"] if f["key"] != flag]
        out[email]["ofrep"] = [f for f in out[email]["ofrep"] if f["key"] != flag]
    return out


async def test_a_demo_export_applied_to_an_empty_production_serves_everyone_the_same(
    client: httpx.AsyncClient, databases: tuple[str, str], tmp_path: Path
) -> None:
    url_a, url_b = databases
    for table in FLAG_TABLES:
        await sql(url_b, f"DELETE FROM {table}")
    empty = await answers(client, url_b)  # the app really serves B's database
    assert all(seen["features"]["flags"] == [] for seen in empty.values())
    export = ["--actor", ACTOR, "--include-node-overrides"]
    exported = ok(run_alone("api.flags.export", *export, DATABASE_URL=url_a))
    assert ok(run_alone("api.flags.export", *export, DATABASE_URL=url_a)) == exported
    document = tmp_path / "flags.json"
    document.write_text(exported)

    dry = json.loads(
        ok(run_alone("api.flags.import", str(document), "--actor", ACTOR, DATABASE_URL=url_b))
    )
    assert dry["dry_run"]
    assert dry["changes"]
    assert await sql(url_b, "SELECT key FROM feature_flags") == []  # a dry run writes nothing
    applied = json.loads(
        ok(
            run_alone(
                "api.flags.import", str(document), "--actor", ACTOR, "--apply", DATABASE_URL=url_b
            )
        )
    )
    assert applied["changes"] == dry["changes"]
    audits = await sql(url_b, "SELECT count(*) AS n FROM audit_logs")
    again = json.loads(
        ok(
            run_alone(
                "api.flags.import", str(document), "--actor", ACTOR, "--apply", DATABASE_URL=url_b
            )
        )
    )
    assert again["changes"] == []
    assert await sql(url_b, "SELECT count(*) AS n FROM audit_logs") == audits
    # The CLI round-trips: B exports what A did.
    assert ok(run_alone("api.flags.export", *export, DATABASE_URL=url_b)) == exported

    overridden = await sql(
        url_a,
        "SELECT u.email, f.key FROM feature_flag_overrides o JOIN users u ON u.id = o.user_id"
        " JOIN feature_flags f ON f.id = o.flag_id",
    )
    user_overridden = {(row["email"], row["key"]) for row in overridden}
    assert user_overridden == {("uma@acme.example", "beta-reports")}  # the demo's one
    on_a, on_b = await answers(client, url_a), await answers(client, url_b)
    flags = len(json.loads(exported)["flags"])
    assert flags >= 15
    assert all(len(seen["features"]["flags"]) == flags for seen in on_b.values())
    assert without_user_overrides(on_a, user_overridden) == without_user_overrides(
        on_b, user_overridden
    )


def test_the_cli_refuses_an_actor_who_is_not_a_super_admin(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    url_a, _ = databases
    refused = run_alone("api.flags.export", "--actor", "uma@acme.example", DATABASE_URL=url_a)
    assert refused.returncode == 1
    assert "not an active super-admin" in refused.stderr
    document = tmp_path / "bad.json"
    document.write_text('{"format": 1, "flags": [], "segments": [], "x": 1}')
    bad = run_alone("api.flags.import", str(document), "--actor", ACTOR, DATABASE_URL=url_a)
    assert bad.returncode == 1
    assert "invalid_document" in bad.stderr
