"""Each entry point runs with the least environment its job needs (issue 20, deliverable 1).

A migration job holds the database secret and nothing else; the demo loader adds only the
issuer its users are keyed to; the super-admin command needs only the database. The web
process, which does need the OIDC settings, refuses in one line naming what is missing.
Every process here starts from an empty environment plus `PATH`.
"""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest

from api.platform.db.readiness import known_migrations
from tests.support.databases import fresh_database
from tests.support.env import ROOT
from tests.support.pgbouncer import PgBouncer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ISSUER = "https://login.marketedge.test/"


def run_alone(module: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m module args` with `PATH` and the given variables, nothing inherited."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def applied_migrations(url: str) -> set[str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT name FROM migration WHERE app_name = 'marketedge'")
    finally:
        await connection.close()
    return {row["name"] for row in rows}


def head() -> set[str]:
    return {migration for app, migration in known_migrations() if app == "marketedge"}


@pytest.fixture(name="released", scope="module")
def fx_released() -> tuple[str, subprocess.CompletedProcess[str]]:
    """A fresh database and the release step's run on it with `DATABASE_URL` alone."""
    url = fresh_database("marketedge_minimal_env")
    return url, run_alone("api.ops.release", DATABASE_URL=url)


async def test_release_step_needs_only_database_url(
    released: tuple[str, subprocess.CompletedProcess[str]],
) -> None:
    url, result = released
    assert result.returncode == 0, result.stdout + result.stderr
    assert "schema at head" in result.stderr
    assert await applied_migrations(url) == head()


async def test_demo_data_needs_only_the_database_and_the_issuer(
    released: tuple[str, subprocess.CompletedProcess[str]],
) -> None:
    url, _ = released
    result = run_alone("api.ops.demo", DATABASE_URL=url, OIDC_ISSUER=ISSUER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "admin@marketedge.example" in result.stdout
    connection = await asyncpg.connect(url)
    try:
        issuers = await connection.fetch("SELECT DISTINCT oidc_issuer FROM users")
    finally:
        await connection.close()
    assert [row["oidc_issuer"] for row in issuers] == [ISSUER]


def test_demo_data_without_the_issuer_names_it(
    released: tuple[str, subprocess.CompletedProcess[str]],
) -> None:
    url, _ = released
    result = run_alone("api.ops.demo", DATABASE_URL=url)
    assert result.returncode == 2
    assert result.stderr == "configuration error: OIDC_ISSUER is required but not set\n"


def test_super_admin_command_needs_only_the_database(
    released: tuple[str, subprocess.CompletedProcess[str]],
) -> None:
    url, _ = released
    granted = run_alone("api.auth.super_admins", "grant", "ops@example.com", DATABASE_URL=url)
    assert granted.returncode == 0, granted.stdout + granted.stderr
    listed = run_alone("api.auth.super_admins", "list", DATABASE_URL=url)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "ops@example.com (pending first login)" in listed.stdout.splitlines()


@pytest.mark.parametrize(
    ("missing", "line"),
    [
        ("PUBLIC_URL", "configuration error: PUBLIC_URL is required but not set"),
        ("OIDC_ISSUER", "configuration error: OIDC_ISSUER is required but not set"),
        ("OIDC_CLIENT_ID", "configuration error: OIDC_CLIENT_ID is required but not set"),
        ("OIDC_CLIENT_SECRET", "configuration error: OIDC_CLIENT_SECRET is required but not set"),
    ],
)
def test_web_process_refuses_in_one_line_without_its_variables(
    released: tuple[str, subprocess.CompletedProcess[str]], missing: str, line: str
) -> None:
    url, _ = released
    web = {
        "DATABASE_URL": url,
        "PUBLIC_URL": "https://api.marketedge.test",
        "OIDC_ISSUER": ISSUER,
        "OIDC_CLIENT_ID": "marketedge",
        "OIDC_CLIENT_SECRET": "web-only-secret",
    }
    del web[missing]
    result = run_alone("api.ops.serve", **web)
    assert result.returncode == 2
    assert result.stderr == line + "\n"


def test_release_step_refuses_a_bad_database_url_in_one_line() -> None:
    result = run_alone("api.ops.release", DATABASE_URL="mysql://db/marketedge")
    assert result.returncode == 2
    assert result.stderr == (
        "configuration error: DATABASE_URL: must be a postgres:// or postgresql:// URL\n"
    )


async def test_through_a_pooler_the_jobs_need_only_the_two_database_urls(
    pooler: PgBouncer,
) -> None:
    direct = fresh_database("marketedge_minimal_env_pooled")
    urls = {"DATABASE_URL": pooler.url_for(direct), "DATABASE_DIRECT_URL": direct}
    release = run_alone("api.ops.release", **urls)
    assert release.returncode == 0, release.stdout + release.stderr
    assert "Unable to fetch server version" not in release.stderr
    assert await applied_migrations(direct) == head()
    demo = run_alone("api.ops.demo", **urls, OIDC_ISSUER=ISSUER)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    listed = run_alone("api.auth.super_admins", "list", **urls)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert listed.stdout.splitlines() == ["admin@marketedge.example"]
