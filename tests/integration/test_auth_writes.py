"""Auth's one write path (api/auth/service.py): a write that finds nothing to change writes,
records and announces nothing — a logout with an unknown cookie does not make every replica
drop its session cache, a second grant adds no audit record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from api.auth import service
from api.auth.service import Grant
from api.auth.sessions import session_cache
from api.platform.db.changes import listener
from api.platform.db.sql import engine, fetch
from tests.support.auth import make_user, sign_in


@pytest.fixture(name="notices")
async def fx_notices() -> AsyncIterator[list[str]]:
    """`sessions_changed` notices as another replica would receive them."""
    connection = await asyncpg.connect(engine().config["dsn"])
    seen: list[str] = []
    await connection.add_listener("sessions_changed", lambda *args: seen.append(args[3]))
    yield seen
    await connection.close()


async def _settle() -> None:
    await asyncio.sleep(0.3)


async def test_ending_no_session_notifies_no_replica_and_keeps_the_cache(
    notices: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener, "connected", True)
    generation = session_cache.generation
    assert await service.end_session("no-such-token") is False
    assert await service.end_user_sessions(await make_user()) == 0
    await _settle()
    assert notices == []
    assert session_cache.generation == generation  # this process dropped nothing either

    person = await sign_in()
    assert await service.end_session(person.token) is True
    assert session_cache.generation == generation + 1  # dropped at commit
    for _ in range(40):
        if notices:
            break
        await asyncio.sleep(0.05)
    assert notices == ["user_sessions"]


async def _grant_records(email: str) -> list[str]:
    rows = await fetch(
        "SELECT action FROM audit_logs WHERE action LIKE 'super_admin.%'"
        " AND (after->>'email') = $1 ORDER BY id",
        email,
    )
    return [row["action"] for row in rows]


async def test_a_grant_or_revoke_that_changes_nothing_records_nothing() -> None:
    email = f"grant-{id(object())}@example.test"
    await make_user(email=email)
    assert await service.grant_super_admin(email, "test") is Grant.granted
    assert await service.grant_super_admin(email.upper(), "test") is Grant.already
    assert await service.revoke_super_admin(email, "test") is True
    assert await service.revoke_super_admin(email, "test") is False
    assert await _grant_records(email) == ["super_admin.granted", "super_admin.revoked"]


async def test_a_pending_grant_is_recorded_once() -> None:
    email = f"pending-{id(object())}@example.test"
    assert await service.grant_super_admin(email, "test") is Grant.pending
    assert await service.grant_super_admin(email, "test") is Grant.already_pending
    assert await service.revoke_super_admin(email, "test") is True
    assert await _grant_records(email) == ["super_admin.granted_pending", "super_admin.revoked"]


@pytest.mark.parametrize(
    "address", ["not-an-email", '"quoted"@example.test', "a@localhost", "x@" + "d" * 300 + ".test"]
)
async def test_a_grant_names_only_an_address_a_verified_login_can_bring(address: str) -> None:
    from api.platform.http.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        await service.grant_super_admin(address, "test")
    assert refused.value.extra == {"field": "email"}
