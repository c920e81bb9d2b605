"""Readiness tells a late event loop from a database outage (issue 19 #10)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import get

from api.app import create_app
from api.platform.config import get_settings
from tests.support.http import SessionClient
from tests.support.processes import free_port, start_app

STALL_SECONDS = 2.0


@get("/probe/stall", sync_to_thread=False)
def stall_the_loop() -> dict[str, str]:
    """A CPU-bound handler: it holds the event loop, as a costly request would."""
    time.sleep(STALL_SECONDS)
    return {"status": "done"}


@pytest.fixture(name="stall_client")
async def fx_stall_client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(get_settings(), extra_db_routes=[stall_the_loop])
    transport = httpx.ASGITransport(app=app)
    async with SessionClient(
        transport=transport, base_url="http://127.0.0.1:8000", timeout=30
    ) as client:
        yield client


@pytest.mark.parametrize("head_start", [0.0, 0.0005, 0.002])
async def test_a_stalled_event_loop_is_never_called_a_database_outage(
    stall_client: httpx.AsyncClient, head_start: float
) -> None:
    """The loop blocks for 2 s while /health/ready waits for the database's answer (longer
    than the check's 1.5 s timeout): the answer is ready, or at worst `event_loop_stalled`."""
    ready = asyncio.create_task(stall_client.get("/health/ready"))
    await asyncio.sleep(head_start)
    stalled = asyncio.create_task(stall_client.get("/probe/stall"))
    readiness, blocked = await ready, await stalled
    assert blocked.status_code == 200
    body = readiness.json()
    assert body.get("cause") != "database_unavailable", body
    assert body["database"] != "unavailable", body
    assert readiness.status_code == 200 or body["cause"] == "event_loop_stalled", body
    assert (await stall_client.get("/health/ready")).status_code == 200


def test_a_database_that_refuses_connections_is_still_database_unavailable() -> None:
    closed_port = free_port()
    app = start_app(f"postgresql://marketedge@127.0.0.1:{closed_port}/marketedge")
    try:
        started = time.monotonic()
        response = httpx.get(f"{app.base_url}/health/ready", timeout=5)
        elapsed = time.monotonic() - started
    finally:
        app.stop()
    assert response.status_code == 503
    assert response.json()["cause"] == "database_unavailable"
    assert response.json()["database"] == "unavailable"
    assert elapsed < 2
