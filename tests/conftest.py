"""Shared fixtures: a real, freshly migrated Postgres and the app in the test's event loop."""

from __future__ import annotations

import os

from tests.support.env import apply_test_env

apply_test_env()

from tests.support.databases import fresh_database, stop_test_server  # noqa: E402

os.environ["DATABASE_URL"] = fresh_database("marketedge_test")

from collections.abc import AsyncIterator  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from litestar.types import ASGIApp  # noqa: E402

from api.app import create_app  # noqa: E402
from api.ops.release import run_release  # noqa: E402
from api.platform.config import get_settings  # noqa: E402
from tests.support.http import SessionClient  # noqa: E402


@pytest.fixture(name="database", scope="session", autouse=True)
async def fx_database() -> AsyncIterator[str]:
    """The test database, migrated by the real release step, with a connection pool."""
    from piccolo.engine import engine_finder

    assert await run_release()
    engine = engine_finder()
    await engine.start_connection_pool(min_size=0, max_size=10)
    yield os.environ["DATABASE_URL"]
    await engine.close_connection_pool()


@pytest.fixture(name="app", scope="session")
def fx_app() -> ASGIApp:
    return create_app(get_settings())


@pytest.fixture(name="client")
async def fx_client(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """`make test` leaves no Postgres running (the next run starts it again)."""
    stop_test_server()
