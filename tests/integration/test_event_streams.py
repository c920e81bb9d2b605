"""OFREP event streams (ADR-0008) against a real `python -m api.ops.serve` process: the
bulk answer advertises a URL with its own credential; the stream tells of changes within a
second, skips notices that change nothing, honours Last-Event-ID, beats, ends with the
session, and is capped per process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.auth.service import revoke_super_admin
from api.platform.db.sql import fetch
from tests.support.auth import SignedIn, sign_in
from tests.support.data import unique
from tests.support.processes import AppProcess, start_app

HEARTBEAT = 0.5


@pytest.fixture(name="server", scope="module")
def fx_server(database: str) -> Iterator[AppProcess]:
    env = {"EVENT_STREAMS_MAX": "3", "EVENT_STREAM_HEARTBEAT_SECONDS": str(HEARTBEAT)}
    app = start_app(database, env)
    yield app
    app.stop()


async def bulk(server: AppProcess, person: SignedIn) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, cookies=person.cookies) as client:
        return await client.post(
            "/ofrep/v1/evaluate/flags",
            json={"context": {}},
            headers=person.headers(server.base_url),
        )


async def stream_url(server: AppProcess, person: SignedIn) -> str:
    answer = await bulk(server, person)
    assert answer.status_code == 200, answer.text
    (advertised,) = answer.json()["eventStreams"]
    return str(advertised["url"])


@dataclass
class Reader:
    """An open stream's lines as they arrive (a background task reads them)."""

    response: httpx.Response
    lines: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)

    async def next_event(self, within: float) -> dict[str, str]:
        """The next block of `field: value` lines (an event, a comment or advice)."""
        block: dict[str, str] = {}
        async with asyncio.timeout(within):
            while True:
                line = await self.lines.get()
                if line is None:
                    raise EOFError("the stream ended")
                if not line:
                    if block:
                        return block
                    continue
                name, _, value = line.partition(":")
                block[name] = value.strip()

    async def next_data(self, within: float) -> dict[str, str]:
        """The next event with data, within `within` seconds in all (heartbeats keep coming,
        so the deadline is for the whole wait, not for each block)."""
        async with asyncio.timeout(within):
            while True:
                block = await self.next_event(within)
                if "data" in block:
                    return block

    async def until_closed(self, within: float) -> None:
        """Read on until the server ends the stream; TimeoutError if it does not."""
        async with asyncio.timeout(within):
            while await self.lines.get() is not None:
                pass


@pytest.fixture(name="open_stream")
async def fx_open_stream() -> AsyncIterator[object]:
    clients: list[httpx.AsyncClient] = []
    tasks: list[asyncio.Task[None]] = []

    async def opener(url: str, headers: dict[str, str] | None = None) -> Reader:
        client = httpx.AsyncClient(timeout=httpx.Timeout(5, read=None))
        clients.append(client)
        request = client.build_request("GET", url, headers=headers)
        response = await client.send(request, stream=True)
        reader = Reader(response)

        async def pump() -> None:
            try:
                async for line in response.aiter_lines():
                    reader.lines.put_nowait(line)
            except httpx.HTTPError:
                pass
            finally:
                reader.lines.put_nowait(None)

        if response.status_code == 200:
            tasks.append(asyncio.create_task(pump()))
        return reader

    yield opener
    for task in tasks:
        task.cancel()
    for client in clients:
        await client.aclose()


async def create_flag(server: AppProcess, admin: SignedIn) -> str:
    key = unique("streamed")
    async with httpx.AsyncClient(base_url=server.base_url, cookies=admin.cookies) as client:
        created = await client.post(
            "/api/v1/admin/feature-flags",
            json={"key": key, "name": "Streamed", "enabled": True, "rollout_percentage": 100},
            headers=admin.headers(server.base_url),
        )
    assert created.status_code == 201, created.text
    return key


async def test_bulk_advertises_a_stream_url_with_its_own_credential(server: AppProcess) -> None:
    person = await sign_in()
    answer = await bulk(server, person)
    assert answer.status_code == 200
    body = answer.json()
    assert isinstance(body["flags"], list)
    (advertised,) = body["eventStreams"]
    assert advertised["type"] == "sse"
    assert advertised["inactivityDelaySec"] > 0
    url: str = advertised["url"]
    assert url.startswith(f"{server.base_url}/ofrep/v1/event-stream/")
    key = url.rsplit("/", 1)[1]
    assert key not in (person.token, person.csrf_token)
    assert len(key) == 64
    rows = await fetch(
        "SELECT stream_key_hash FROM user_sessions WHERE user_id = $1", person.user_id
    )
    assert rows[0]["stream_key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    # The key opens nothing but the stream: not a session cookie, not a bearer token.
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        as_bearer = await client.get("/api/v1/features", headers={"Authorization": f"Bearer {key}"})
    async with httpx.AsyncClient(base_url=server.base_url, cookies={"me_session": key}) as client:
        as_cookie = await client.get("/api/v1/features")
    assert as_cookie.status_code == 401
    assert as_bearer.status_code == 401


async def test_an_unknown_or_malformed_key_is_401(server: AppProcess) -> None:
    for key in ("0" * 64, "short", "x" * 500):
        answer = httpx.get(f"{server.base_url}/ofrep/v1/event-stream/{key}")
        assert answer.status_code == 401, key
        assert answer.json()["error"] == "not_authenticated"


async def test_a_flag_change_reaches_the_stream_within_a_second_with_the_new_etag(
    server: AppProcess, open_stream: object
) -> None:
    person, admin = await sign_in(), await sign_in(super_admin=True)
    url = await stream_url(server, person)
    front_end = "http://app.localhost:3000"  # FRONTEND_ORIGINS of the tests
    reader = await open_stream(url, {"Origin": front_end})  # type: ignore[operator]
    assert reader.response.status_code == 200
    assert reader.response.headers["access-control-allow-origin"] == front_end
    assert reader.response.headers["content-type"].startswith("text/event-stream")
    first = await reader.next_event(2)
    assert first["retry"].isdigit()
    started = time.monotonic()
    await create_flag(server, admin)
    event = await reader.next_data(1.0)
    elapsed = time.monotonic() - started
    assert "event" not in event  # unnamed: the provider listens to `message` only
    data = json.loads(event["data"])
    assert data["type"] == "refetchEvaluation"
    assert data["etag"] == (await bulk(server, person)).headers["etag"]
    assert event["id"] == data["etag"].strip('"')
    assert elapsed < 1.0


async def test_a_notice_that_changes_nothing_sends_no_event_but_heartbeats_go_on(
    server: AppProcess, open_stream: object
) -> None:
    person = await sign_in()
    reader = await open_stream(await stream_url(server, person))  # type: ignore[operator]
    await reader.next_event(2)  # retry advice
    await fetch("SELECT pg_notify('feature_flags_changed', '')")
    blocks = []
    deadline = time.monotonic() + 3 * HEARTBEAT + 0.5
    while time.monotonic() < deadline:
        try:
            blocks.append(await reader.next_event(deadline - time.monotonic()))
        except TimeoutError:
            break
    assert blocks, "no heartbeat"
    assert all("data" not in b for b in blocks)
    assert all(set(b) == {""} for b in blocks)  # `: heartbeat` comments only


async def test_last_event_id_behind_the_current_etag_gets_an_event_at_once(
    server: AppProcess, open_stream: object
) -> None:
    person = await sign_in()
    url = await stream_url(server, person)
    current = (await bulk(server, person)).headers["etag"].strip('"')
    behind = await open_stream(url, {"Last-Event-ID": "0" * 32})  # type: ignore[operator]
    event = await behind.next_data(1.0)
    assert event["id"] == current
    level = await open_stream(url, {"Last-Event-ID": current})  # type: ignore[operator]
    with pytest.raises(TimeoutError):
        await level.next_data(2 * HEARTBEAT)


async def test_logout_closes_the_stream_and_then_its_url_is_401(
    server: AppProcess, open_stream: object
) -> None:
    person = await sign_in()
    url = await stream_url(server, person)
    reader = await open_stream(url)  # type: ignore[operator]
    await reader.next_event(2)
    async with httpx.AsyncClient(base_url=server.base_url, cookies=person.cookies) as client:
        out = await client.post("/api/v1/auth/logout", headers=person.headers(server.base_url))
    assert out.status_code == 200
    await reader.until_closed(5)
    assert await status_of(url) == 401


async def test_demotion_closes_the_stream(server: AppProcess, open_stream: object) -> None:
    admin = await sign_in(super_admin=True)
    reader = await open_stream(await stream_url(server, admin))  # type: ignore[operator]
    await reader.next_event(2)
    assert await revoke_super_admin(admin.email, "test")  # the operator's command
    await reader.until_closed(5)


async def test_above_the_cap_the_answer_is_503_with_retry_after(
    server: AppProcess, open_stream: object
) -> None:
    person = await sign_in()
    url = await stream_url(server, person)
    await open_streams_become(server, 0)  # earlier tests' streams end as their clients go
    readers = [await open_stream(url) for _ in range(3)]  # type: ignore[operator]
    assert [r.response.status_code for r in readers] == [200, 200, 200]
    for reader in readers:
        await reader.next_event(2)
    await open_streams_become(server, 3)
    async with httpx.AsyncClient(timeout=2) as client:
        refused = await client.get(url)
    assert refused.status_code == 503
    assert refused.json()["error"] == "service_unavailable"
    assert int(refused.headers["retry-after"]) > 0
    await readers[0].response.aclose()
    await open_streams_become(server, 2)  # a stream that ends frees its place
    assert await status_of(url) == 200


async def open_streams_become(server: AppProcess, count: int, within: float = 5) -> None:
    """Wait until the process reports `count` open streams in its metrics."""
    async with asyncio.timeout(within), httpx.AsyncClient(base_url=server.base_url) as client:
        while True:
            scrape = (await client.get("/metrics")).text
            if f"marketedge_event_streams_open {float(count)}" in scrape:
                return
            await asyncio.sleep(0.05)


async def status_of(url: str) -> int:
    """The status a GET of `url` answers, without reading a stream's endless body."""
    async with httpx.AsyncClient(timeout=2) as client, client.stream("GET", url) as response:
        return response.status_code


async def test_an_override_that_expires_sends_an_event_though_nothing_was_written(
    server: AppProcess, open_stream: object
) -> None:
    person, admin = await sign_in(), await sign_in(super_admin=True)
    key = await create_flag(server, admin)
    expires = datetime.now(UTC) + timedelta(seconds=2)
    async with httpx.AsyncClient(base_url=server.base_url, cookies=admin.cookies) as client:
        made = await client.post(
            f"/api/v1/admin/feature-flags/{key}/overrides",
            json={"enabled": False, "user_id": person.user_id, "expires_at": expires.isoformat()},
            headers=admin.headers(server.base_url),
        )
    assert made.status_code == 201, made.text
    reader = await open_stream(await stream_url(server, person))  # type: ignore[operator]
    await reader.next_event(2)  # retry advice
    during = (await bulk(server, person)).headers["etag"]
    event = await reader.next_data(2 + 1.0)
    assert datetime.now(UTC) - expires < timedelta(seconds=1)
    after = await bulk(server, person)
    assert json.loads(event["data"])["etag"] == after.headers["etag"] != during
    (flag,) = [f for f in after.json()["flags"] if f["key"] == key]
    assert flag["value"] is True  # the override is over


async def test_sigterm_ends_every_stream_with_a_retry_hint_and_the_process_exits(
    database: str, open_stream: object
) -> None:
    """uvicorn waits for open responses before it shuts down: the streams must end first,
    each telling its client to come back (to another replica) shortly."""
    app = start_app(database)
    try:
        person = await sign_in()
        url = await stream_url(app, person)
        readers = [await open_stream(url) for _ in range(2)]  # type: ignore[operator]
        for reader in readers:
            await reader.next_event(2)
        app.process.send_signal(signal.SIGTERM)
        for reader in readers:
            hint = await reader.next_event(3)
            assert 500 <= int(hint["retry"]) <= 3_000
            await reader.until_closed(3)
        # uvicorn then shuts down (no response left to wait for) and re-raises the signal.
        assert await asyncio.to_thread(app.process.wait, 10) in (0, -signal.SIGTERM)
    finally:
        app.stop()


async def test_each_kind_of_change_sends_the_etag_the_next_bulk_answer_carries(
    server: AppProcess, open_stream: object
) -> None:
    """Definition changes are re-evaluated flag by flag from what the stream keeps; changes
    to what rules read about users (an override, the organisation by psql) fully. Either way
    the event's ETag is the one the refetch then gets, and a notice that changes nothing for
    this user sends nothing."""
    person, admin = await sign_in(), await sign_in(super_admin=True)
    key = await create_flag(server, admin)
    reader = await open_stream(await stream_url(server, person))  # type: ignore[operator]
    await reader.next_event(2)

    async def admin_call(method: str, path: str, body: dict[str, object]) -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.base_url, cookies=admin.cookies) as client:
            answer = await client.request(
                method, path, json=body, headers=admin.headers(server.base_url)
            )
        assert answer.status_code in (200, 201), answer.text
        return answer

    async def value_after_event() -> object:
        event = await reader.next_data(1.0)
        after = await bulk(server, person)
        assert json.loads(event["data"])["etag"] == after.headers["etag"]
        return next(f["value"] for f in after.json()["flags"] if f["key"] == key)

    flag_path = f"/api/v1/admin/feature-flags/{key}"
    await admin_call("PATCH", flag_path, {"version": 1, "enabled": False})
    assert await value_after_event() is False
    await admin_call("PATCH", flag_path, {"version": 2, "enabled": True})
    assert await value_after_event() is True
    await admin_call(
        "POST", f"{flag_path}/overrides", {"enabled": False, "user_id": person.user_id}
    )
    assert await value_after_event() is False
    other = await sign_in()
    await admin_call("POST", f"{flag_path}/overrides", {"enabled": True, "user_id": other.user_id})
    with pytest.raises(TimeoutError):  # someone else's override: this user's answer is the same
        await reader.next_data(1.0)
