"""Issue 11 item 1: an e-mail address belongs to whoever the provider has verified it for.

Replays the attack: an unverified sign-up with someone else's address must not receive a
super-admin grant made by e-mail, nor block the verified owner's login with 409.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest

from api.app import create_app
from api.platform.config import get_settings
from api.platform.db.sql import fetch
from tests.integration.test_login import callback, start_login
from tests.integration.test_sessions import SESSION_CHECK, run_cli
from tests.support.bad_provider import CLIENT_ID, BadProvider, running
from tests.support.http import SessionClient


@pytest.fixture(name="provider")
def fx_provider() -> Iterator[BadProvider]:
    with running(BadProvider()) as provider:
        yield provider


@pytest.fixture(name="rp")
async def fx_rp(provider: BadProvider) -> AsyncIterator[httpx.AsyncClient]:
    settings = replace(get_settings(), oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50011))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


async def log_in(
    rp: httpx.AsyncClient, provider: BadProvider, sub: str, email: str, *, verified: bool
) -> httpx.Response:
    login = await start_login(rp)
    claims = provider.claims(login.nonce, sub=sub, email=email, email_verified=verified)
    return await callback(rp, login, provider.issue_code(login.challenge, provider.sign(claims)))


async def is_super_admin(rp: httpx.AsyncClient, response: httpx.Response) -> bool:
    check = await rp.get(SESSION_CHECK, cookies={"me_session": response.cookies["me_session"]})
    assert check.status_code == 200, check.text
    return bool(check.json()["is_super_admin"])


async def stored_email(provider: BadProvider, sub: str) -> str | None:
    rows = await fetch(
        "SELECT email FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2",
        provider.issuer,
        sub,
    )
    return rows[0]["email"] if rows else None


async def test_an_unverified_login_never_receives_a_grant_nor_blocks_the_owner(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    email = f"boss-{provider.port}@victim.test"
    squatter = await log_in(rp, provider, "squatter", email, verified=False)
    assert squatter.status_code == 302, squatter.text
    assert await stored_email(provider, "squatter") is None  # an unverified address is not kept

    granted = run_cli("grant", email)
    assert granted.returncode == 0, granted.stderr
    assert "first login" in granted.stdout  # nobody verified holds it: the grant waits
    assert not await is_super_admin(rp, squatter)

    again = await log_in(rp, provider, "squatter", email, verified=False)
    assert not await is_super_admin(rp, again)  # a pending grant never links unverified

    owner = await log_in(rp, provider, "owner", email, verified=True)
    assert owner.status_code == 302, owner.text  # not 409 email_in_use
    assert await is_super_admin(rp, owner)
    assert await stored_email(provider, "owner") == email
    assert not await is_super_admin(rp, squatter)


async def test_a_verified_login_takes_its_address_from_an_older_row(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    """Rows written before this rule may hold an unverified address: the owner takes it."""
    email = f"legacy-{provider.port}@victim.test"
    legacy = await fetch(
        "INSERT INTO users (oidc_issuer, oidc_subject, email) VALUES ($1, 'legacy', $2)"
        " RETURNING id",
        provider.issuer,
        email,
    )
    owner = await log_in(rp, provider, "legacy-owner", email, verified=True)
    assert owner.status_code == 302, owner.text
    assert await stored_email(provider, "legacy-owner") == email
    assert await stored_email(provider, "legacy") is None
    audit = await fetch(
        "SELECT action FROM audit_logs WHERE resource_type = 'user' AND resource_id = $1",
        str(legacy[0]["id"]),
    )
    # The legacy row's own insert is recorded by the audit trigger like any other write.
    assert sorted(row["action"] for row in audit) == ["user.email_released", "user.insert"]


async def test_a_cli_grant_reaches_only_a_verified_address(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    email = f"verified-{provider.port}@victim.test"
    owner = await log_in(rp, provider, "verified-owner", email, verified=True)
    assert run_cli("grant", email).returncode == 0
    assert await is_super_admin(rp, owner)
    unverified_later = await log_in(rp, provider, "verified-owner", email, verified=False)
    assert await stored_email(provider, "verified-owner") is None
    assert run_cli("revoke", email).returncode == 0
    assert await is_super_admin(rp, unverified_later)  # revoke by address misses: no address


async def test_a_grant_never_trusts_an_address_stored_before_verification_was_recorded(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    """A row written before e-mails were stored only when verified still holds its address,
    with `email_verified` false: a grant by that address waits for the verified owner."""
    email = f"legacy-{provider.port}@victim.test"
    legacy = await fetch(
        "INSERT INTO users (oidc_issuer, oidc_subject, email) VALUES ($1, 'squatter', $2)"
        " RETURNING id, email_verified",
        provider.issuer,
        email,
    )
    assert legacy[0]["email_verified"] is False
    granted = run_cli("grant", email)
    assert granted.returncode == 0
    assert "first login" in granted.stdout
    rows = await fetch("SELECT is_super_admin FROM users WHERE id = $1", legacy[0]["id"])
    assert rows[0]["is_super_admin"] is False
    owner = await log_in(rp, provider, "the-real-owner", email, verified=True)
    assert await is_super_admin(rp, owner)
    rows = await fetch("SELECT is_super_admin, email FROM users WHERE id = $1", legacy[0]["id"])
    assert (rows[0]["is_super_admin"], rows[0]["email"]) == (False, None)
