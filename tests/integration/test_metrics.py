"""`GET /metrics` (README "### Metrics"): who may scrape it, and that every fixed name moves
with known traffic. Scrapes are parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from litestar.types import ASGIApp
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.flags import scheduler
from api.flags.store import flag_cache
from api.flags.usage import usage
from api.hierarchy.me_cache import me_cache
from api.platform.config import get_settings
from api.platform.db.changes import listener
from api.platform.db.sql import fetch
from tests.integration.test_flag_usage import boolean_flag
from tests.integration.test_scheduled_changes import schedule, variant_flag
from tests.support.auth import make_user, sign_in

TOKEN = "scrape-token-0123456789abcdef"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


@pytest.fixture(name="token_client")
async def fx_token_client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(dataclasses.replace(get_settings(), metrics_token=TOKEN))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
    ) as client:
        yield client


async def client_of(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x")


async def test_a_token_is_required_when_one_is_set(token_client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        refused = await token_client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"] == "not_authenticated"
    allowed = await token_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200
    assert "marketedge_http_request_duration_seconds" in allowed.text


async def test_without_a_token_metrics_are_hidden_in_production_and_open_in_development(
    client: httpx.AsyncClient,
) -> None:
    production = create_app(dataclasses.replace(get_settings(), environment="production"))
    async with await client_of(production) as hidden:
        response = await hidden.get("/metrics")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    assert (await client.get("/metrics")).status_code == 200  # the tests' APP_ENV=development


async def test_request_durations_are_labelled_by_route_template_never_the_raw_path(
    client: httpx.AsyncClient,
) -> None:
    member = await sign_in()
    key, _ = await boolean_flag()
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(f"/api/v1/features/{key}", cookies=member.cookies)).is_success
    assert (await client.get("/no/such/route/12345")).status_code == 404
    after = await scrape(client)
    name = "marketedge_http_request_duration_seconds_count"
    route = "/api/v1/features/{key}"
    labels = {"method": "GET", "route": route, "status": "200"}
    assert value(after, name, **labels) - value(before, name, **labels) == 3
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, name, **unmatched) - value(before, name, **unmatched) == 1
    assert not any(key in dict(labels_).get("route", "") for _, labels_ in after)
    assert not any("12345" in dict(labels_).get("route", "") for _, labels_ in after)


async def test_flag_evaluations_are_counted_by_flag_variant_and_reason_at_flush(
    client: httpx.AsyncClient,
) -> None:
    await usage.flush()
    member = await sign_in()
    on_key, _ = await boolean_flag()
    off_key, _ = await boolean_flag(enabled=False)
    for _ in range(2):
        assert (await client.get("/api/v1/features", cookies=member.cookies)).is_success
    assert (await client.get(f"/api/v1/features/{on_key}", cookies=member.cookies)).is_success
    name = "marketedge_flag_evaluations_total"
    before = await scrape(client)
    assert value(before, name, flag=on_key, variant="on", reason="STATIC") == 0  # not yet flushed
    await usage.flush()
    after = await scrape(client)
    on = {k: v for k, v in after.items() if k[0] == name and ("flag", on_key) in k[1]}
    assert sum(on.values()) == 3
    assert value(after, name, flag=off_key, variant="off", reason="DISABLED") == 2
    assert value(after, "marketedge_usage_flush_pending_rows") == 0
    assert value(after, "marketedge_usage_flush_last_success_timestamp_seconds") > 0


@pytest.fixture(name="listening")
def fx_listening() -> Iterator[None]:
    listener.connected = True
    yield
    listener.connected = False
    flag_cache.invalidate()
    me_cache.changed(None)


async def test_cache_lookups_are_counted_as_hits_and_misses(
    client: httpx.AsyncClient, listening: None
) -> None:
    member = await sign_in()
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/api/v1/auth/me", cookies=member.cookies)).is_success
        assert (await client.get("/api/v1/features", cookies=member.cookies)).is_success
    after = await scrape(client)
    name = "marketedge_cache_requests_total"
    for cache in ("me", "flag_results"):
        misses = value(after, name, cache=cache, result="miss") - value(
            before, name, cache=cache, result="miss"
        )
        hits = value(after, name, cache=cache, result="hit") - value(
            before, name, cache=cache, result="hit"
        )
        assert (misses, hits) == (1, 2), cache
    session_lookups = sum(
        value(after, name, cache="sessions", result=r)
        - value(before, name, cache="sessions", result=r)
        for r in ("hit", "miss")
    )
    assert session_lookups >= 6


async def test_scheduled_changes_are_counted_pending_and_overdue(
    client: httpx.AsyncClient,
) -> None:
    author = await make_user(super_admin=True)
    flag = await variant_flag()
    await scheduler.count_schedules()
    gauge = "marketedge_scheduled_changes"
    before = await scrape(client)
    later = await schedule(flag["id"], "enable", author=author, at=timedelta(hours=1))
    stuck = await schedule(flag["id"], "enable", author=author, at=timedelta(minutes=-5))
    await scheduler.count_schedules()
    waiting = await scrape(client)
    assert value(waiting, gauge, status="pending") == value(before, gauge, status="pending") + 2
    assert value(waiting, gauge, status="overdue") == value(before, gauge, status="overdue") + 1
    applied = await scheduler.run_due_changes()
    assert stuck in [result.schedule_id for result in applied]
    await scheduler.count_schedules()
    after = await scrape(client)
    assert value(after, gauge, status="pending") == value(before, gauge, status="pending") + 1
    assert value(after, gauge, status="overdue") == 0  # every due change was applied
    done = "marketedge_scheduled_changes_applied_total"
    assert value(after, done, outcome="applied") >= value(before, done, outcome="applied") + 1
    await fetch("UPDATE feature_flag_schedules SET status = 'cancelled' WHERE id = $1", later)


async def test_pool_readiness_and_process_metrics_are_exposed(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/ready")).status_code == 200
    scraped = await scrape(client)
    assert value(scraped, "marketedge_readiness") == 1
    assert value(scraped, "marketedge_db_pool_connections", state="idle") >= 0
    assert ("marketedge_db_pool_connections", (("state", "in_use"),)) in scraped
    assert value(scraped, "process_resident_memory_bytes") > 0
    assert value(scraped, "python_info", **{k: v for k, v in _python_labels(scraped)}) == 1


def _python_labels(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float],
) -> tuple[tuple[str, str], ...]:
    return next(labels for name, labels in scraped if name == "python_info")


async def test_the_listener_gauge_falls_when_its_connection_is_killed_and_rises_again(
    client: httpx.AsyncClient,
) -> None:
    async def connected() -> float:
        return value(await scrape(client), "marketedge_listener_connected")

    async def becomes(expected: float) -> None:
        for _ in range(300):  # 15 s
            if await connected() == expected:
                return
            await asyncio.sleep(0.05)
        pytest.fail(f"marketedge_listener_connected never became {expected}")

    task = asyncio.create_task(listener.run_forever())
    try:
        await becomes(1)
        killed = await fetch(
            "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity"
            " WHERE application_name = 'marketedge-listener' AND datname = current_database()"
        )
        assert [row["killed"] for row in killed] == [True]
        await becomes(0)
        await becomes(1)  # reconnected after its one-second pause
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        listener.connected = False
        flag_cache.invalidate()
