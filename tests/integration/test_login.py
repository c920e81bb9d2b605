"""The login callback (PRODUCT §5) against a provider that signs whatever we ask.

Every bad token, state or code is refused with a clear 4xx JSON, no session cookie is set
and no user or session row is written.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from api.app import create_app
from api.auth.oidc import provider_for
from api.platform.config import Settings, get_settings
from api.platform.db.sql import fetch
from tests.support.bad_provider import CLIENT_ID, BadProvider, running
from tests.support.http import SessionClient

PRELOGIN = "me_login"
SESSION = "me_session"


@pytest.fixture(name="provider")
def fx_provider() -> Iterator[BadProvider]:
    with running(BadProvider()) as provider:
        yield provider


@pytest.fixture(name="settings")
def fx_settings(provider: BadProvider) -> Settings:
    return replace(
        get_settings(),
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_audience="api",
        service_clients={"reporting-service": frozenset({"flags:read"})},
    )


@pytest.fixture(name="rp")
async def fx_rp(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50001))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


@dataclass
class PendingLogin:
    state: str
    nonce: str
    challenge: str
    binding: str


async def start_login(rp: httpx.AsyncClient, next_url: str = "/welcome") -> PendingLogin:
    response = await rp.get("/api/v1/auth/login", params={"next": next_url})
    assert response.status_code == 302, response.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}
    assert query["code_challenge_method"] == "S256"
    assert query["redirect_uri"] == "http://127.0.0.1:8000/api/v1/auth/callback"
    return PendingLogin(
        query["state"], query["nonce"], query["code_challenge"], response.cookies[PRELOGIN]
    )


async def callback(
    rp: httpx.AsyncClient, login: PendingLogin, code: str, *, state: str | None = None
) -> httpx.Response:
    params = {"code": code, "state": login.state if state is None else state}
    return await rp.get("/api/v1/auth/callback", params=params, cookies={PRELOGIN: login.binding})


async def counts(subject: str) -> tuple[int, int]:
    users = await fetch("SELECT count(*) AS n FROM users WHERE oidc_subject = $1", subject)
    sessions = await fetch(
        "SELECT count(*) AS n FROM user_sessions s JOIN users u ON u.id = s.user_id"
        " WHERE u.oidc_subject = $1",
        subject,
    )
    return users[0]["n"], sessions[0]["n"]


def assert_refused(response: httpx.Response, reason: str, status: int = 401) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["extra"]["reason"] == reason, body
    assert SESSION not in response.cookies
    assert not any(
        header.startswith(f"{SESSION}=") and "Max-Age=0" not in header
        for header in response.headers.get_list("set-cookie")
    )


async def test_a_good_login_starts_a_session_and_redirects_to_next(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    login = await start_login(rp, "/welcome?tab=1")
    claims = provider.claims(login.nonce)
    response = await callback(
        rp, login, provider.issue_code(login.challenge, provider.sign(claims))
    )
    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/welcome?tab=1"
    token = response.cookies[SESSION]
    check = await rp.get("/api/v1/auth/session/check", cookies={SESSION: token})
    assert check.status_code == 200
    assert check.json()["email"] == claims["email"]
    assert await counts(claims["sub"]) == (1, 1)


BAD_TOKENS: list[tuple[str, dict[str, Any], str, str]] = [
    ("bad signature", {}, "foreign-key", "bad_signature"),
    ("alg none", {}, "none", "bad_algorithm"),
    ("HS256 keyed with the public key", {}, "hs256-public-key", "bad_algorithm"),
    ("wrong issuer", {"iss": "http://evil.test"}, "rs256", "wrong_issuer"),
    ("wrong audience", {"aud": "someone-else"}, "rs256", "wrong_audience"),
    ("azp mismatch", {"aud": [CLIENT_ID, "other"], "azp": "other"}, "rs256", "wrong_azp"),
    ("expired", {"exp": int(time.time()) - 3600}, "rs256", "expired"),
    ("missing iat", {"iat": ...}, "rs256", "missing_iat"),
    ("iat in the future", {"iat": int(time.time()) + 3600}, "rs256", "bad_iat"),
    ("nonce mismatch", {"nonce": "replayed-nonce"}, "rs256", "nonce_mismatch"),
    ("missing sub", {"sub": ...}, "rs256", "missing_sub"),
    ("unknown kid", {}, "unknown-kid", "unknown_key"),
]


@pytest.mark.parametrize(
    ("overrides", "how", "reason"),
    [case[1:] for case in BAD_TOKENS],
    ids=[case[0] for case in BAD_TOKENS],
)
async def test_bad_id_tokens_are_refused_and_nothing_is_written(
    rp: httpx.AsyncClient,
    provider: BadProvider,
    settings: Settings,
    overrides: dict[str, Any],
    how: str,
    reason: str,
) -> None:
    provider_for(settings).jwks_refetch_interval = 0
    login = await start_login(rp)
    claims = provider.claims(login.nonce, **overrides)
    fetches_before = provider.jwks_fetches
    response = await callback(
        rp, login, provider.issue_code(login.challenge, provider.sign(claims, how=how))
    )
    assert_refused(response, reason)
    assert await counts(str(claims.get("sub", "-"))) == (0, 0)
    if reason == "unknown_key":
        assert provider.jwks_fetches >= fetches_before + 1  # re-fetched before refusing


async def test_a_rotated_key_is_fetched_and_accepted(
    rp: httpx.AsyncClient, provider: BadProvider, settings: Settings
) -> None:
    from joserfc.jwk import RSAKey

    login = await start_login(rp)
    await provider_for(settings).keys()  # cache holds only k1
    provider_for(settings).jwks_refetch_interval = 0
    provider.extra_keys.append(provider.key)
    provider.key = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    claims = provider.claims(login.nonce)
    response = await callback(
        rp, login, provider.issue_code(login.challenge, provider.sign(claims))
    )
    assert response.status_code == 302, response.text


async def login_with(rp: httpx.AsyncClient, provider: BadProvider, how: str) -> httpx.Response:
    login = await start_login(rp)
    token = provider.sign(provider.claims(login.nonce), how=how)
    return await callback(rp, login, provider.issue_code(login.challenge, token))


async def test_a_rotated_key_without_kid_is_fetched_and_accepted(
    rp: httpx.AsyncClient, provider: BadProvider, settings: Settings
) -> None:
    """Issue 11 item 13: tokens without `kid` after a rotation failed until a restart."""
    from joserfc.jwk import RSAKey

    assert (await login_with(rp, provider, "no-kid")).status_code == 302  # k1 is cached
    provider.key = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    provider_for(settings)._keys_at -= 3600  # the last fetch was long ago
    fetches = provider.jwks_fetches
    response = await login_with(rp, provider, "no-kid")
    assert response.status_code == 302, response.text
    assert provider.jwks_fetches == fetches + 1
    provider.extra_keys.append(RSAKey.generate_key(2048, parameters={"kid": "k3"}))
    provider_for(settings)._keys_at -= 3600
    response = await login_with(rp, provider, "no-kid")  # several keys published, none named
    assert response.status_code == 302, response.text


async def test_bad_signatures_refetch_the_keys_at_most_once_per_interval(
    rp: httpx.AsyncClient, provider: BadProvider, settings: Settings
) -> None:
    await provider_for(settings).keys()
    provider_for(settings)._keys_at -= 3600
    fetches = provider.jwks_fetches
    for _ in range(3):
        assert_refused(await login_with(rp, provider, "no-kid-foreign-key"), "bad_signature")
    assert provider.jwks_fetches == fetches + 1


async def test_unparseable_keys_are_skipped_and_login_still_works(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    provider.publish_unparseable_key = True
    login = await start_login(rp)
    claims = provider.claims(login.nonce)
    response = await callback(
        rp, login, provider.issue_code(login.challenge, provider.sign(claims))
    )
    assert response.status_code == 302, response.text


async def test_userinfo_naming_another_subject_is_refused(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    provider.userinfo_sub = "someone-else"
    login = await start_login(rp)
    claims = provider.claims(login.nonce)
    response = await callback(
        rp, login, provider.issue_code(login.challenge, provider.sign(claims))
    )
    assert_refused(response, "userinfo_sub_mismatch")
    assert await counts(claims["sub"]) == (0, 0)


async def test_state_missing_wrong_or_replayed_is_refused(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    login = await start_login(rp)
    code = provider.issue_code(login.challenge, provider.sign(provider.claims(login.nonce)))
    missing = await rp.get(
        "/api/v1/auth/callback", params={"code": code}, cookies={PRELOGIN: login.binding}
    )
    assert_refused(missing, "state_missing")
    assert_refused(await callback(rp, login, code, state="forged-state"), "state_invalid")
    assert (await callback(rp, login, code)).status_code == 302
    assert_refused(await callback(rp, login, code), "state_invalid")


async def test_state_from_another_browser_is_refused(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    login = await start_login(rp)
    code = provider.issue_code(login.challenge, provider.sign(provider.claims(login.nonce)))
    rp.cookies.clear()
    no_cookie = await rp.get("/api/v1/auth/callback", params={"code": code, "state": login.state})
    assert_refused(no_cookie, "state_unbound")
    other = await rp.get(
        "/api/v1/auth/callback",
        params={"code": code, "state": login.state},
        cookies={PRELOGIN: "another-browser"},
    )
    assert_refused(other, "state_invalid")


async def test_a_replayed_authorization_code_is_refused(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    first = await start_login(rp)
    claims = provider.claims(first.nonce)
    code = provider.issue_code(first.challenge, provider.sign(claims))
    assert (await callback(rp, first, code)).status_code == 302
    second = await start_login(rp)
    provider.codes[code].challenge = second.challenge  # even with a matching verifier
    assert_refused(await callback(rp, second, code), "code_rejected")


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/steal", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"],
)
async def test_next_pointing_elsewhere_is_refused(rp: httpx.AsyncClient, next_url: str) -> None:
    response = await rp.get("/api/v1/auth/login", params={"next": next_url})
    assert response.status_code == 400
    assert response.json()["extra"]["field"] == "next"
    assert PRELOGIN not in response.cookies


async def test_next_on_an_allowed_front_end_origin_is_accepted(rp: httpx.AsyncClient) -> None:
    response = await rp.get("/api/v1/auth/login", params={"next": "http://app.localhost:3000/home"})
    assert response.status_code == 302


async def test_provider_unreachable_is_a_clear_503(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    provider.down = True
    response = await rp.get("/api/v1/auth/login")
    assert response.status_code == 503
    assert response.json()["error"] == "upstream_unavailable"
    assert PRELOGIN not in response.cookies


async def test_provider_unreachable_at_callback_writes_nothing(
    rp: httpx.AsyncClient, provider: BadProvider, settings: Settings
) -> None:
    login = await start_login(rp)
    claims = provider.claims(login.nonce)
    code = provider.issue_code(login.challenge, provider.sign(claims))
    provider_for(settings)._keys = None
    provider.down = True
    response = await callback(rp, login, code)
    assert response.status_code in (401, 503), response.text
    assert SESSION not in response.cookies
    assert await counts(claims["sub"]) == (0, 0)


async def test_discovered_issuer_must_equal_the_configured_one(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    provider.discovery_issuer = "http://127.0.0.1:1/other"
    response = await rp.get("/api/v1/auth/login")
    assert response.status_code == 503
    assert "issuer" in response.json()["extra"]["reason"]


async def test_a_new_token_at_every_login(rp: httpx.AsyncClient, provider: BadProvider) -> None:
    sub = "same-person"
    tokens = []
    for _ in range(2):
        login = await start_login(rp)
        claims = provider.claims(login.nonce, sub=sub, email="same.person@bad-provider.test")
        response = await callback(
            rp, login, provider.issue_code(login.challenge, provider.sign(claims))
        )
        tokens.append(response.cookies[SESSION])
    assert tokens[0] != tokens[1]
    assert (await counts(sub))[0] == 1


async def test_bearer_tokens_are_verified_locally(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    login = await start_login(rp)
    claims = provider.claims(login.nonce)
    await callback(rp, login, provider.issue_code(login.challenge, provider.sign(claims)))
    now = int(time.time())
    good = provider.sign(
        {"iss": provider.issuer, "sub": claims["sub"], "aud": "api", "exp": now + 60}
    )
    me = await rp.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {good}"}
    )  # a bearer caller passes require_user without CSRF
    assert me.status_code == 200, me.text
    for bad in (
        provider.sign(
            {"iss": provider.issuer, "sub": claims["sub"], "aud": "other", "exp": now + 60}
        ),
        provider.sign(
            {"iss": provider.issuer, "sub": claims["sub"], "aud": "api", "exp": now - 600}
        ),
        provider.sign(
            {"iss": provider.issuer, "sub": claims["sub"], "aud": "api", "exp": now + 60},
            how="none",
        ),
    ):
        refused = await rp.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {bad}"})
        assert refused.status_code == 401


async def test_ofrep_with_a_service_token_must_name_whom_to_evaluate(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    from tests.support.auth import make_user
    from tests.support.data import make_flag

    key = await make_flag(rollout="100")
    subject = await make_user()
    now = int(time.time())
    service = provider.sign(
        {
            "iss": provider.issuer,
            "sub": "reporting-service@clients",
            "aud": "api",
            "exp": now + 60,
            "gty": "client-credentials",
            "azp": "reporting-service",
        }
    )
    headers = {"Authorization": f"Bearer {service}"}
    missing = await rp.post(
        f"/ofrep/v1/evaluate/flags/{key}", json={"context": {}}, headers=headers
    )
    assert missing.status_code == 400
    assert missing.json()["errorCode"] == "TARGETING_KEY_MISSING"
    named = await rp.post(
        f"/ofrep/v1/evaluate/flags/{key}",
        json={"context": {"targetingKey": str(subject)}},
        headers=headers,
    )
    assert named.status_code == 200, named.text
    assert named.json()["value"] is True
    forged = provider.sign(
        {
            "iss": provider.issuer,
            "sub": "x@clients",
            "aud": "api",
            "exp": now + 60,
            "gty": "client-credentials",
        },
        how="none",
    )
    refused = await rp.post(
        f"/ofrep/v1/evaluate/flags/{key}",
        json={"context": {}},
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert refused.status_code == 401
