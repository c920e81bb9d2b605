"""Issue 19 item 7: identity claims are stored whole or the login is refused, never cut.

Replays the attack — a verified `"x…@acme.example"@attacker.example`, which cutting to 320
characters once turned into an Acme address — and its relatives, through the real login
flow against the provider that signs whatever we ask. A refused login answers 401
`login_failed` naming the claim, sets no session cookie and writes no row. A NUL anywhere
(claims, the callback's query, `next`) gets the same answers as any other bad input, never
the database's 422.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread

from api.app import create_app
from api.platform.config import get_settings
from api.platform.db.sql import fetch
from tests.integration.test_login import (
    PRELOGIN,
    SESSION,
    assert_refused,
    callback,
    start_login,
)
from tests.support.bad_provider import CLIENT_ID, BadProvider, running
from tests.support.data import unique
from tests.support.http import SessionClient


@pytest.fixture(name="provider")
def fx_provider() -> Iterator[BadProvider]:
    with running(BadProvider()) as provider:
        yield provider


@pytest.fixture(name="rp")
async def fx_rp(provider: BadProvider) -> AsyncIterator[httpx.AsyncClient]:
    settings = replace(get_settings(), oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50021))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


async def log_in(rp: httpx.AsyncClient, provider: BadProvider, **claims: Any) -> httpx.Response:
    login = await start_login(rp)
    token = provider.sign(provider.claims(login.nonce, **claims))
    return await callback(rp, login, provider.issue_code(login.challenge, token))


async def written() -> tuple[int, int, int]:
    """Users, sessions and assignments: a refused login changes none of them."""
    rows = await fetch(
        "SELECT (SELECT count(*) FROM users) AS u, (SELECT count(*) FROM user_sessions) AS s,"
        " (SELECT count(*) FROM user_hierarchy_assignments) AS a"
    )
    return rows[0]["u"], rows[0]["s"], rows[0]["a"]


async def organization_claiming(domain: str) -> int:
    rows = await fetch(
        "INSERT INTO organization_hierarchy (level, name, slug, email_domains)"
        " VALUES ('organization', $1, $1, ARRAY[$2::varchar]) RETURNING id",
        unique("claims-org"),
        domain,
    )
    return int(rows[0]["id"])


async def stored(provider: BadProvider, sub: str) -> dict[str, Any] | None:
    rows = await fetch(
        "SELECT email, name, given_name, family_name FROM users"
        " WHERE oidc_issuer = $1 AND oidc_subject = $2",
        provider.issuer,
        sub,
    )
    return dict(rows[0]) if rows else None


def assert_claim_refused(response: httpx.Response, claim: str, reason: str) -> None:
    assert_refused(response, reason)
    body = response.json()
    assert body["error"] == "login_failed"
    assert body["extra"]["claim"] == claim
    assert f"`{claim}`" in body["detail"]


async def test_the_quoted_address_that_truncation_made_an_acme_one_is_refused(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    domain = f"acme-{provider.port}.example"
    await organization_claiming(domain)
    local = "x" * (319 - len(f"@{domain}"))  # cut to 320 characters it ended in @acme…
    attack = f'"{local}@{domain}"@attacker.example'
    assert attack[:320].endswith(f"@{domain}")
    before = await written()
    response = await log_in(rp, provider, sub="truncation-attack", email=attack)
    assert_claim_refused(response, "email", "claim_too_long")
    assert await written() == before
    short = await log_in(rp, provider, sub="quoted-attack", email=f'"x@{domain}"@attacker.example')
    assert_claim_refused(short, "email", "claim_malformed")
    assert await written() == before


TOO_LONG, MALFORMED = "claim_too_long", "claim_malformed"
BAD_EMAILS = [
    ("255 characters", "a" * 64 + "@" + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".example",
     TOO_LONG),
    ("local part of 65", "a" * 65 + "@example.test", TOO_LONG),
    ("two @", "a@b@example.test", MALFORMED),
    ("no @", "nobody.example.test", MALFORMED),
    ("quoted local part", '"john doe"@example.test', MALFORMED),
    ("quoted @ inside", '"a@example.test"@example.test', MALFORMED),
    ("comment", "john(comment)@example.test", MALFORMED),
    ("address literal", "john@[127.0.0.1]", MALFORMED),
    ("single-label domain", "john@localhost", MALFORMED),
    ("empty local part", "@example.test", MALFORMED),
    ("leading dot", ".john@example.test", MALFORMED),
    ("double dot", "jo..hn@example.test", MALFORMED),
    ("trailing dot in domain", "john@example.test.", MALFORMED),
    ("label with a leading hyphen", "john@-example.test", MALFORMED),
    ("space", "john doe@example.test", MALFORMED),
    ("surrounding spaces", " john@example.test ", MALFORMED),
    ("non-ASCII local part", "jöhn@example.test", MALFORMED),
    ("Kelvin sign that lowers to k", "john@\u212aontoso.test", MALFORMED),
    ("display name", "John <john@example.test>", MALFORMED),
    ("newline", "john@example.test\nbcc@example.test", MALFORMED),
    ("not a string", 42, MALFORMED),
]  # fmt: skip


@pytest.mark.parametrize(
    ("email", "reason"), [case[1:] for case in BAD_EMAILS], ids=[case[0] for case in BAD_EMAILS]
)
async def test_an_email_that_is_not_a_plain_address_within_254_characters_is_refused(
    rp: httpx.AsyncClient, provider: BadProvider, email: object, reason: str
) -> None:
    before = await written()
    assert_claim_refused(await log_in(rp, provider, email=email), "email", reason)
    assert await written() == before


@pytest.mark.parametrize("email", ["typed-subject", '"x"@example.test', "a\x00@b.test", 42])
async def test_an_unverified_address_is_dropped_whatever_it_is(
    rp: httpx.AsyncClient, provider: BadProvider, email: object
) -> None:
    """Nothing stores or believes it (oidc-provider-mock sends the typed subject as one)."""
    sub = unique("unverified")
    response = await log_in(rp, provider, sub=sub, email=email, email_verified=False)
    assert response.status_code == 302, response.text
    assert (await stored(provider, sub) or {"email": "?"})["email"] is None
    rows = await fetch(
        "SELECT s.claims FROM user_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE u.oidc_subject = $1",
        sub,
    )
    assert "email" not in json.loads(rows[0]["claims"])


async def test_an_email_at_the_limits_is_stored_whole(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    domain = "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + "." + f"p{provider.port}.test"
    local = "A" * (254 - len(domain) - 1 - 1) + "+"
    email = f"{local}@{domain}"
    assert len(email) == 254
    assert len(local) <= 64
    response = await log_in(rp, provider, sub="longest-email", email=email)
    assert response.status_code == 302, response.text
    assert (await stored(provider, "longest-email") or {})["email"] == email.lower()


@pytest.mark.parametrize("claim", ["name", "given_name", "family_name"])
async def test_a_name_longer_than_its_column_is_refused(
    rp: httpx.AsyncClient, provider: BadProvider, claim: str
) -> None:
    before = await written()
    response = await log_in(rp, provider, **{claim: "N" * 201})
    assert_claim_refused(response, claim, "claim_too_long")
    assert await written() == before


async def test_names_and_subject_at_their_column_size_are_stored_whole(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    sub = f"s{provider.port}-" + "x" * (255 - len(f"s{provider.port}-"))
    names = {"name": "é" * 200, "given_name": "G" * 200, "family_name": "F" * 200}
    response = await log_in(rp, provider, sub=sub, **names)
    assert response.status_code == 302, response.text
    row = await stored(provider, sub)
    assert row is not None
    assert {k: row[k] for k in names} == names


async def test_a_subject_longer_than_its_column_is_refused(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    before = await written()
    assert_claim_refused(await log_in(rp, provider, sub="s" * 256), "sub", "claim_too_long")
    assert await written() == before


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", "nul\x00sub"),
        ("email", "nul\x00@example.test"),
        ("name", "Nul\x00Name"),
        ("given_name", "Nul\x00"),
        ("family_name", "\x00"),
        ("name", "lone \ud800 surrogate"),
        ("name", "escape \x1b[31m"),
        ("name", 42),
        ("email", ["a@example.test"]),
    ],
    ids=str.split("nul-sub nul-email nul-name nul-given nul-family surrogate escape number list"),
)
async def test_claims_postgres_could_not_store_refuse_the_login_not_422(
    rp: httpx.AsyncClient, provider: BadProvider, claim: str, value: object
) -> None:
    before = await written()
    response = await log_in(rp, provider, **{claim: value})
    assert_claim_refused(response, claim, "claim_malformed")
    assert await written() == before


async def test_a_bad_claim_from_userinfo_refuses_the_login(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    provider.userinfo_extra = {"name": "From\x00UserInfo"}
    before = await written()
    assert_claim_refused(await log_in(rp, provider), "name", "claim_malformed")
    provider.userinfo_extra = {"email": '"' + "u" * 300 + '"@example.test'}
    assert_claim_refused(await log_in(rp, provider), "email", "claim_too_long")
    assert await written() == before


async def test_claims_outside_the_identity_never_stop_a_login(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    response = await log_in(rp, provider, auth_time="\x00", locale="x\x00y", picture="\ud800")
    assert response.status_code == 302, response.text


@pytest.mark.parametrize("param", ["code", "state", "error"])
async def test_a_nul_in_the_callbacks_query_is_a_login_failure(
    rp: httpx.AsyncClient, provider: BadProvider, param: str
) -> None:
    login = await start_login(rp)
    code = provider.issue_code(login.challenge, provider.sign(provider.claims(login.nonce)))
    query = {"code": code, "state": login.state, param: f"{'x' if param == 'error' else ''}\x00"}
    response = await rp.get(
        "/api/v1/auth/callback", params=query, cookies={PRELOGIN: login.binding}
    )
    assert_refused(response, "callback_malformed")
    assert (await callback(rp, login, code)).status_code == 302  # the state was not consumed


async def test_a_provider_error_is_repeated_only_when_it_is_a_plain_code(
    rp: httpx.AsyncClient,
) -> None:
    plain = await rp.get("/api/v1/auth/callback", params={"error": "access_denied"})
    assert_refused(plain, "provider_error")
    assert plain.json()["detail"] == "The provider answered: access_denied"
    long = await rp.get("/api/v1/auth/callback", params={"error": "e" * 101})
    assert_refused(long, "provider_error")
    assert long.json()["detail"] == "The provider answered with an error"


@pytest.mark.parametrize("next_url", ["/home\x00", "/a\x00b", "/\x7f"])
async def test_a_nul_in_next_is_the_usual_bad_next(rp: httpx.AsyncClient, next_url: str) -> None:
    response = await rp.get("/api/v1/auth/login", params={"next": next_url})
    assert response.status_code == 400, response.text
    assert response.json()["extra"]["field"] == "next"
    assert PRELOGIN not in response.cookies
    assert SESSION not in response.cookies


@pytest.fixture(name="mock_issuer", scope="module")
def fx_mock_issuer() -> Iterator[str]:
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


async def test_a_real_provider_verifying_the_long_quoted_address_gets_no_login(
    mock_issuer: str,
) -> None:
    """oidc-provider-mock over HTTP, as a provider that verifies very long addresses would."""
    domain = f"acme-mock-{uuid.uuid4().hex[:8]}.example"
    await organization_claiming(domain)
    attack = '"' + "x" * (319 - len(f"@{domain}")) + f'@{domain}"@attacker.example'
    profiles = {
        "mock-attacker": {"email": attack, "email_verified": True},
        "mock-long-name": {"email": "ok@example.test", "email_verified": True, "name": "n" * 201},
    }
    for sub, claims in profiles.items():
        assert httpx.put(f"{mock_issuer}/users/{sub}", json=claims, timeout=5).status_code == 204
    settings = replace(get_settings(), oidc_issuer=mock_issuer)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50022))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as rp:

        async def log_in_as(sub: str) -> httpx.Response:
            start = await rp.get("/api/v1/auth/login")
            async with httpx.AsyncClient(timeout=10) as browser:
                authorized = await browser.post(start.headers["location"], data={"sub": sub})
            return await rp.get(httpx.URL(authorized.headers["location"]).raw_path.decode())

        before = await written()
        assert_claim_refused(await log_in_as("mock-attacker"), "email", "claim_too_long")
        assert_claim_refused(await log_in_as("mock-long-name"), "name", "claim_too_long")
        assert await written() == before
        typed = await log_in_as(unique("typed"))  # its e-mail claim is the subject, unverified
        assert typed.status_code == 302, typed.text
