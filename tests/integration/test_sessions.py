"""Sessions, cookies, CSRF and rate limits (PRODUCT §5, F6)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from urllib.parse import quote

import httpx
import pytest

from api.app import create_app
from api.auth import rate_limit
from api.platform.config import Settings, get_settings
from api.platform.db.sql import fetch
from tests.integration.test_login import callback, start_login
from tests.support.auth import make_user, sign_in
from tests.support.bad_provider import CLIENT_ID, BadProvider, running
from tests.support.env import ROOT
from tests.support.http import SessionClient

SESSION_CHECK = "/api/v1/auth/session/check"
LOGOUT = "/api/v1/auth/logout"


async def test_idle_sessions_end(client: httpx.AsyncClient) -> None:
    signed_in = await sign_in()
    await fetch(
        "UPDATE user_sessions SET last_seen_at = now() - interval '61 minutes' WHERE user_id = $1",
        signed_in.user_id,
    )
    assert (await client.get(SESSION_CHECK, cookies=signed_in.cookies)).status_code == 401


async def test_sessions_end_at_their_absolute_lifetime(client: httpx.AsyncClient) -> None:
    signed_in = await sign_in()
    await fetch(
        "UPDATE user_sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
        signed_in.user_id,
    )
    assert (await client.get(SESSION_CHECK, cookies=signed_in.cookies)).status_code == 401


async def test_activity_keeps_a_session_alive(client: httpx.AsyncClient) -> None:
    signed_in = await sign_in()
    await fetch(
        "UPDATE user_sessions SET last_seen_at = now() - interval '59 minutes' WHERE user_id = $1",
        signed_in.user_id,
    )
    assert (await client.get(SESSION_CHECK, cookies=signed_in.cookies)).status_code == 200
    rows = await fetch(
        "SELECT last_seen_at > now() - interval '1 minute' AS touched FROM user_sessions"
        " WHERE user_id = $1",
        signed_in.user_id,
    )
    assert rows[0]["touched"]


async def test_a_deactivated_user_gets_401_on_the_next_request(client: httpx.AsyncClient) -> None:
    signed_in = await sign_in()
    assert (await client.get(SESSION_CHECK, cookies=signed_in.cookies)).status_code == 200
    await fetch("UPDATE users SET is_active = false WHERE id = $1", signed_in.user_id)
    assert (await client.get(SESSION_CHECK, cookies=signed_in.cookies)).status_code == 401


async def test_deactivation_by_any_writer_ends_sessions_for_good(client: httpx.AsyncClient) -> None:
    """Issue 11 #6: deactivating and reactivating (admin, psql) must not revive old cookies."""
    signed_in = await sign_in()
    other = await sign_in(signed_in.user_id)
    assert (await client.get(SESSION_CHECK, cookies=signed_in.cookies)).status_code == 200
    await fetch("UPDATE users SET is_active = false WHERE id = $1", signed_in.user_id)
    await fetch("UPDATE users SET is_active = true WHERE id = $1", signed_in.user_id)
    for who in (signed_in, other):
        assert (await client.get(SESSION_CHECK, cookies=who.cookies)).status_code == 401
    left = await fetch(
        "SELECT count(*) AS n FROM user_sessions WHERE user_id = $1", signed_in.user_id
    )
    assert left[0]["n"] == 0


async def test_demotion_switches_off_the_admin_mirror_and_promotion_back_on() -> None:
    from api.admin_ui.bridge import admin_user_id

    user_id = await make_user(super_admin=True)
    admin_id = await admin_user_id(user_id, None)

    async def mirror() -> tuple[bool, bool]:
        rows = await fetch("SELECT active, admin FROM admin_users WHERE id = $1", admin_id)
        return rows[0]["active"], rows[0]["admin"]

    assert await mirror() == (True, True)
    await fetch("UPDATE users SET is_super_admin = false WHERE id = $1", user_id)
    assert await mirror() == (False, False)
    await fetch("UPDATE users SET is_super_admin = true WHERE id = $1", user_id)
    assert await mirror() == (True, True)


async def test_logout_ends_the_session_server_side(client: httpx.AsyncClient) -> None:
    signed_in = await sign_in()
    response = await client.post(LOGOUT, cookies=signed_in.cookies, headers=signed_in.headers())
    assert response.status_code == 200
    assert response.json()["logged_out"] is True
    assert any(
        "me_session=" in h and "Max-Age=0" in h for h in response.headers.get_list("set-cookie")
    )
    assert (await client.get(SESSION_CHECK, cookies=signed_in.cookies)).status_code == 401
    rows = await fetch(
        "SELECT count(*) AS n FROM user_sessions WHERE user_id = $1", signed_in.user_id
    )
    assert rows[0]["n"] == 0


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "csrf_token"),
        ({"X-CSRF-Token": "wrong", "Origin": "http://127.0.0.1:8000"}, "csrf_token"),
        ({"Origin": "http://127.0.0.1:8000"}, "csrf_token"),
        ({"X-CSRF-Token": "{token}", "Origin": "https://evil.example"}, "csrf_origin"),
        ({"X-CSRF-Token": "{token}"}, "csrf_origin"),
    ],
    ids=["nothing", "wrong-token", "no-token", "foreign-origin", "no-origin"],
)
async def test_unsafe_requests_need_the_csrf_token_and_an_allowed_origin(
    client: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    signed_in = await sign_in()
    sent = {k: v.replace("{token}", signed_in.csrf_token) for k, v in headers.items()}
    response = await client.post(LOGOUT, cookies=signed_in.cookies, headers=sent)
    assert response.status_code == 403
    assert response.json()["extra"]["reason"] == reason
    assert (await client.get(SESSION_CHECK, cookies=signed_in.cookies)).status_code == 200


async def test_the_cross_site_front_end_origin_may_post(client: httpx.AsyncClient) -> None:
    signed_in = await sign_in()
    response = await client.post(
        LOGOUT, cookies=signed_in.cookies, headers=signed_in.headers("http://app.localhost:3000")
    )
    assert response.status_code == 200


async def test_cors_allows_credentials_for_front_end_origins_only(
    client: httpx.AsyncClient,
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-csrf-token",
    }
    allowed = await client.options(
        LOGOUT, headers={"Origin": "http://app.localhost:3000", **preflight}
    )
    assert allowed.headers["access-control-allow-origin"] == "http://app.localhost:3000"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    foreign = await client.options(LOGOUT, headers={"Origin": "https://evil.example", **preflight})
    assert foreign.headers.get("access-control-allow-origin") != "https://evil.example"


@pytest.fixture(name="provider")
def fx_provider() -> Iterator[BadProvider]:
    with running(BadProvider()) as provider:
        yield provider


async def _login_set_cookie(settings: Settings, provider: BadProvider) -> str:
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50002))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as rp:
        response = await rp.get("/api/v1/auth/login")
        from urllib.parse import parse_qs, urlsplit

        query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
        prelogin = next(iter(response.cookies.keys()))
        code = provider.issue_code(
            query["code_challenge"], provider.sign(provider.claims(query["nonce"]))
        )
        done = await rp.get(
            "/api/v1/auth/callback",
            params={"code": code, "state": query["state"]},
            cookies={prelogin: response.cookies[prelogin]},
        )
        assert done.status_code == 302, done.text
        return next(h for h in done.headers.get_list("set-cookie") if "session=" in h)


async def test_same_site_deployment_cookie_attributes(provider: BadProvider) -> None:
    settings = replace(get_settings(), oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID)
    header = await _login_set_cookie(settings, provider)
    assert header.startswith("me_session=")
    assert "HttpOnly" in header
    assert "samesite=lax" in header.lower()
    assert "Path=/" in header
    assert "Secure" not in header


async def test_cross_site_deployment_cookie_attributes(provider: BadProvider) -> None:
    settings = replace(
        get_settings(),
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        public_url="https://api.example.test",
        session_cookie_samesite="none",
    )
    header = await _login_set_cookie(settings, provider)
    assert header.startswith("__Host-me_session=")
    for attribute in ("httponly", "secure", "samesite=none", "path=/"):
        assert attribute in header.lower()
    assert "Domain" not in header


@pytest.fixture(name="strict_limit")
def fx_strict_limit() -> Iterator[None]:
    saved = rate_limit.auth_limiter.limit
    rate_limit.auth_limiter.limit = 3
    yield
    rate_limit.auth_limiter.limit = saved


@pytest.fixture(name="remote_client")
async def fx_remote_client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))  # type: ignore[arg-type]
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


async def test_auth_endpoints_are_rate_limited_per_client_ip(
    strict_limit: None, remote_client: httpx.AsyncClient, app: object
) -> None:
    statuses = [
        (await remote_client.get("/api/v1/auth/login?next=//x")).status_code for _ in range(5)
    ]
    assert statuses[:3] == [400, 400, 400]
    assert statuses[3:] == [429, 429]
    limited = await remote_client.get("/api/v1/auth/login")
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"] == "rate_limited"
    other = httpx.ASGITransport(app=app, client=("203.0.113.8", 40000))  # type: ignore[arg-type]
    async with SessionClient(transport=other, base_url="http://127.0.0.1:8000") as neighbour:
        assert (await neighbour.get("/api/v1/auth/login?next=//x")).status_code == 400


def test_forwarded_for_is_trusted_only_from_configured_proxies() -> None:
    from types import SimpleNamespace

    from api.platform.http.client_ip import client_ip

    def conn(peer: str, forwarded: str) -> object:
        return SimpleNamespace(
            client=SimpleNamespace(host=peer), headers={"x-forwarded-for": forwarded}
        )

    plain = get_settings()
    proxied = replace(plain, trusted_proxies=(__import__("ipaddress").ip_network("10.0.0.0/8"),))
    assert client_ip(conn("198.51.100.1", "1.2.3.4"), plain) == "198.51.100.1"  # type: ignore[arg-type]
    assert client_ip(conn("10.0.0.5", "1.2.3.4"), proxied) == "1.2.3.4"  # type: ignore[arg-type]
    assert client_ip(conn("10.0.0.5", "1.2.3.4, 10.0.0.9"), proxied) == "1.2.3.4"  # type: ignore[arg-type]
    assert client_ip(conn("198.51.100.1", "1.2.3.4"), proxied) == "198.51.100.1"  # type: ignore[arg-type]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.auth.super_admins", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


async def test_super_admin_cli_grants_and_revokes_with_audit(client: httpx.AsyncClient) -> None:
    user_id = await make_user(email=f"cli-{id(client)}@example.test")
    email = f"cli-{id(client)}@example.test"
    signed_in = await sign_in(user_id)
    granted = run_cli("grant", email)
    assert granted.returncode == 0, granted.stderr
    check = await client.get(SESSION_CHECK, cookies=signed_in.cookies)
    assert check.json()["is_super_admin"] is True
    assert run_cli("revoke", email).returncode == 0
    check = await client.get(SESSION_CHECK, cookies=signed_in.cookies)
    assert check.json()["is_super_admin"] is False
    actions = await fetch(
        "SELECT action FROM audit_logs WHERE resource_type = 'user' AND resource_id = $1 ORDER BY id",
        str(user_id),
    )
    assert [row["action"] for row in actions] == [
        "user.insert",  # make_user's own INSERT, recorded by the trigger
        "super_admin.granted",
        "super_admin.revoked",
    ]
    assert run_cli("grant", "not-an-email").returncode == 2


async def test_a_pending_grant_links_only_to_a_verified_email(provider: BadProvider) -> None:
    email = f"future-admin-{provider.port}@bad-provider.test"
    assert run_cli("grant", email).returncode == 0
    settings = replace(get_settings(), oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50003))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as rp:
        unverified = await start_login(rp)
        claims = provider.claims(
            unverified.nonce, email=email, email_verified=False, sub="unverified-one"
        )
        done = await callback(
            rp, unverified, provider.issue_code(unverified.challenge, provider.sign(claims))
        )
        assert done.status_code == 302
        check = await rp.get(SESSION_CHECK, cookies={"me_session": done.cookies["me_session"]})
        assert check.json()["is_super_admin"] is False
        verified = await start_login(rp)
        claims = provider.claims(
            verified.nonce, email=email, email_verified=True, sub="verified-one"
        )
        done = await callback(
            rp, verified, provider.issue_code(verified.challenge, provider.sign(claims))
        )
        check = await rp.get(SESSION_CHECK, cookies={"me_session": done.cookies["me_session"]})
        assert check.json()["is_super_admin"] is True


async def test_new_users_join_the_organization_claiming_their_domain(provider: BadProvider) -> None:
    domain = f"acme{provider.port}.test"
    org = await fetch(
        "INSERT INTO organization_hierarchy (level, name, slug, email_domains)"
        " VALUES ('organization', 'Acme', $1, ARRAY[$2::varchar]) RETURNING id",
        f"acme-{provider.port}",
        domain,
    )
    settings = replace(get_settings(), oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50004))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as rp:
        for sub, email, verified, expected in (
            ("claimed-1", f"ann@{domain}", True, [("viewer", org[0]["id"], True)]),
            ("claimed-unverified", f"bob@{domain}", False, []),
            ("elsewhere", f"cy@other-{provider.port}.test", True, []),
        ):
            login = await start_login(rp)
            claims = provider.claims(login.nonce, sub=sub, email=email, email_verified=verified)
            done = await callback(
                rp, login, provider.issue_code(login.challenge, provider.sign(claims))
            )
            assert done.status_code == 302
            rows = await fetch(
                "SELECT a.role, a.node_id, a.is_primary FROM user_hierarchy_assignments a"
                " JOIN users u ON u.id = a.user_id WHERE u.oidc_subject = $1 AND u.oidc_issuer = $2",
                sub,
                provider.issuer,
            )
            assert [(r["role"], r["node_id"], r["is_primary"]) for r in rows] == expected


async def test_email_and_names_are_refreshed_at_each_login(provider: BadProvider) -> None:
    settings = replace(get_settings(), oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50005))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as rp:
        for email, name in (("Old@Example.TEST", "Old Name"), ("new@example.test", "New Name")):
            login = await start_login(rp)
            claims = provider.claims(login.nonce, sub="refresh-me", email=email, name=name)
            await callback(rp, login, provider.issue_code(login.challenge, provider.sign(claims)))
            rows = await fetch(
                "SELECT email, name FROM users WHERE oidc_subject = 'refresh-me' AND oidc_issuer = $1",
                provider.issuer,
            )
            assert (rows[0]["email"], rows[0]["name"]) == (email.lower(), name)


async def test_names_and_email_refreshed_at_login_are_audited(provider: BadProvider) -> None:
    """Issue 11 #8: the login's update of e-mail and names leaves an audit row."""
    settings = replace(get_settings(), oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50006))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as rp:
        for email, given in (("audit-me@example.test", "Ann"), ("renamed@example.test", "Anna")):
            login = await start_login(rp)
            claims = provider.claims(
                login.nonce, sub="audit-me", email=email, given_name=given, family_name="Lee"
            )
            await callback(rp, login, provider.issue_code(login.challenge, provider.sign(claims)))
    user_id = (
        await fetch(
            "SELECT id FROM users WHERE oidc_subject = 'audit-me' AND oidc_issuer = $1",
            provider.issuer,
        )
    )[0]["id"]
    rows = await fetch(
        "SELECT action, before, after FROM audit_logs WHERE resource_type = 'user'"
        " AND resource_id = $1 AND action = 'user.update'",
        str(user_id),
    )
    assert len(rows) == 1
    before, after = json.loads(rows[0]["before"]), json.loads(rows[0]["after"])
    assert (before["email"], before["given_name"]) == ("audit-me@example.test", "Ann")
    assert (after["email"], after["given_name"]) == ("renamed@example.test", "Anna")


async def test_the_admin_logout_cookie_leads_only_to_the_providers_end_session(
    provider: BadProvider,
) -> None:
    """Issue 11 #12: a planted `me_admin_logout` that merely starts with the issuer (here
    `http://127.0.0.1:PORT`, no path) must not redirect off-site."""
    settings = replace(get_settings(), oidc_issuer=provider.issuer, oidc_client_id=CLIENT_ID)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50007))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as rp:
        for target, followed in (
            (f"{provider.issuer}.evil.example/x", False),
            (f"{provider.issuer}@evil.example/x", False),
            (f"{provider.issuer}/logout.evil.example", False),
            ("//evil.example/", False),
            (f"{provider.issuer}/logout?client_id=c&id_token_hint=t", True),
            ("/", True),
        ):
            rp.cookies.set("me_admin_logout", quote(target, safe=""))
            page = await rp.get("/admin/")
            assert page.status_code == 302
            expected = target if followed else "/api/v1/auth/login?next=/admin/"
            assert page.headers["location"] == expected, target
