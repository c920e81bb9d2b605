"""Operating it (PRODUCT §7, F1, F7): real release processes, real app servers, real outages."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from api.platform.db.readiness import known_migrations
from tests.support.databases import PrivateServer, fresh_database
from tests.support.env import ROOT
from tests.support.pgbouncer import PgBouncer
from tests.support.processes import AppProcess, child_env, run_release, start_app

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DB_ROUTE = "/api/v1/auth/session/check"


def wait_for(url: str, status: int, within: float) -> float:
    """Seconds until `url` answers `status`; fails after `within` seconds."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < within:
        try:
            last = httpx.get(url, timeout=within).status_code
        except httpx.HTTPError as exc:
            last = repr(exc)
        if last == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{url} still answered {last} after {within}s")


def migration_rows(database_url: str) -> list[tuple[str, int]]:
    script = (
        "import asyncio, asyncpg, sys\n"
        "async def main():\n"
        "    c = await asyncpg.connect(sys.argv[1])\n"
        "    rows = await c.fetch('SELECT name, count(*) AS n FROM migration GROUP BY name')\n"
        "    print(';'.join(f\"{r['name']}={r['n']}\" for r in rows))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, database_url], capture_output=True, text=True, check=True
    ).stdout.strip()
    return [(item.split("=")[0], int(item.split("=")[1])) for item in out.split(";") if item]


@pytest.fixture(name="app_process")
def fx_app_process() -> Iterator[list[AppProcess]]:
    started: list[AppProcess] = []
    yield started
    for process in started:
        process.stop()


def test_four_concurrent_releases_on_an_empty_database_record_each_migration_once() -> None:
    url = fresh_database("marketedge_concurrent_release")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: run_release(url), range(4)))
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(migration_rows(url))
    expected = {migration for app, migration in known_migrations() if app == "marketedge"}
    assert expected <= set(rows)
    assert all(count == 1 for count in rows.values()), rows


def test_concurrent_releases_through_the_pooler_take_the_lock_directly(
    pooler: PgBouncer,
) -> None:
    direct = fresh_database("marketedge_pooled_release")
    through_pooler = pooler.url_for(direct)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(
            pool.map(lambda _: run_release(through_pooler, DATABASE_DIRECT_URL=direct), range(3))
        )
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
    rows = dict(migration_rows(direct))
    expected = {migration for app, migration in known_migrations() if app == "marketedge"}
    assert expected <= set(rows)
    assert all(count == 1 for count in rows.values()), rows


def test_one_migration_behind_is_not_ready_then_recovers_after_release(
    app_process: list[AppProcess],
) -> None:
    url = fresh_database("marketedge_behind")
    first, *rest = [migration for app, migration in known_migrations() if app == "marketedge"]
    piccolo = str(Path(sys.executable).parent / "piccolo")
    subprocess.run(
        [piccolo, "migrations", "forwards", "marketedge", first],
        cwd=ROOT,
        env=child_env(url),
        capture_output=True,
        text=True,
        check=True,
    )
    app = start_app(url)
    app_process.append(app)

    ready = httpx.get(f"{app.base_url}/health/ready", timeout=5)
    assert ready.status_code == 503
    body = ready.json()
    assert body["cause"] == "schema_not_ready"
    assert body["pending_migrations"] == [f"marketedge:{migration}" for migration in rest]

    gated = httpx.get(f"{app.base_url}{DB_ROUTE}", timeout=5)
    assert gated.status_code == 503
    assert gated.json()["error"] == "schema_not_ready"
    assert gated.json()["extra"]["pending_migrations"] == body["pending_migrations"]
    assert httpx.get(f"{app.base_url}/health", timeout=5).status_code == 200

    release = run_release(url)
    assert release.returncode == 0, release.stdout + release.stderr
    assert wait_for(f"{app.base_url}/health/ready", 200, within=5) < 5
    assert wait_for(f"{app.base_url}{DB_ROUTE}", 401, within=5) < 5


@pytest.fixture(name="private_server")
def fx_private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServer]:
    server = PrivateServer(tmp_path_factory.mktemp("pg") / "data")
    yield server
    server.destroy()


def test_postgres_stopped_under_a_running_app_gives_fast_503s_and_recovers(
    private_server: PrivateServer, app_process: list[AppProcess]
) -> None:
    url = private_server.url("marketedge")
    assert run_release(url).returncode == 0
    app = start_app(url)
    app_process.append(app)
    wait_for(f"{app.base_url}/health/ready", 200, within=5)
    assert httpx.get(f"{app.base_url}{DB_ROUTE}", timeout=5).status_code == 401

    private_server.stop()
    assert httpx.get(f"{app.base_url}/health", timeout=2).status_code == 200
    for path, code in (
        ("/health/ready", "database_unavailable"),
        (DB_ROUTE, "database_unavailable"),
    ):
        started = time.monotonic()
        response = httpx.get(f"{app.base_url}{path}", timeout=5)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, (path, response.text)
        assert code in response.text
        assert elapsed < 2, (path, elapsed)

    private_server.start()
    assert wait_for(f"{app.base_url}/health/ready", 200, within=5) < 5
    assert wait_for(f"{app.base_url}{DB_ROUTE}", 401, within=5) < 5


def test_the_app_starts_while_the_database_is_down(
    private_server: PrivateServer, app_process: list[AppProcess]
) -> None:
    url = private_server.url("marketedge")
    assert run_release(url).returncode == 0
    private_server.stop()
    app = start_app(url)
    app_process.append(app)
    assert httpx.get(f"{app.base_url}/health", timeout=2).status_code == 200
    not_ready = httpx.get(f"{app.base_url}/health/ready", timeout=3)
    assert not_ready.status_code == 503
    assert not_ready.json()["cause"] == "database_unavailable"
    private_server.start()
    assert wait_for(f"{app.base_url}/health/ready", 200, within=5) < 5


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("OIDC_ISSUER", "", "OIDC_ISSUER is required"),
        ("PUBLIC_URL", "not a url", "PUBLIC_URL"),
        ("SESSION_IDLE_MINUTES", "ten", "SESSION_IDLE_MINUTES"),
    ],
)
def test_bad_configuration_stops_start_up_with_one_line(
    variable: str, value: str, message: str
) -> None:
    env = child_env(fresh_database("marketedge_config"), **{variable: value})
    result = subprocess.run(
        [sys.executable, "-m", "api.ops.serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
