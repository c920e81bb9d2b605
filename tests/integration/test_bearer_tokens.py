"""Issue 19 item 8: a bearer token must be an access token for this API, and a machine
client must be on SERVICE_CLIENT_IDS, with no more scopes than that list allows it.

Replays the attack — an ID token sent as a bearer token, a made-up `…@clients` subject
naming any user over OFREP — with tokens the provider under the tests' control signs, and
with a real ID token from oidc-provider-mock. Every refusal is a plain 401.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread

from api.app import create_app
from api.auth.bearer import caller_from_bearer
from api.auth.identity import Caller, ServiceCaller
from api.flags.store import flag_cache
from api.platform.config import Settings, get_settings
from api.platform.db.sql import fetch
from tests.integration.test_login import SESSION, assert_refused, callback, start_login
from tests.support.auth import make_user
from tests.support.bad_provider import CLIENT_ID, BadProvider, running
from tests.support.data import make_flag
from tests.support.http import SessionClient

SERVICES = {
    "ci-deployer": frozenset({"flags:read", "flags:write"}),
    "reporting": frozenset({"flags:read"}),
}


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
        service_clients=SERVICES,
    )


@pytest.fixture(name="rp")
async def fx_rp(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50031))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


async def provisioned(rp: httpx.AsyncClient, provider: BadProvider) -> tuple[str, str]:
    """A person who logged in once: their subject, and the ID token the login carried."""
    login = await start_login(rp)
    claims = provider.claims(login.nonce)
    id_token = provider.sign(claims)
    response = await callback(rp, login, provider.issue_code(login.challenge, id_token))
    assert response.status_code == 302, response.text
    rp.cookies.clear()
    return claims["sub"], id_token


async def as_person(rp: httpx.AsyncClient, token: str) -> int:
    """A route any signed-in person may call; bearer callers need no CSRF token."""
    response = await rp.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 401), response.text
    return response.status_code


@pytest.fixture(name="target")
async def fx_target() -> tuple[int, str]:
    """Whom and what a machine client evaluates (the flag cache sees the new flag at once)."""
    target = await make_user(), await make_flag(rollout="100")
    flag_cache.invalidate()
    return target


async def as_service(rp: httpx.AsyncClient, token: str, target: tuple[int, str]) -> int:
    """OFREP naming a user: what a machine client may do."""
    user, key = target
    response = await rp.post(
        f"/ofrep/v1/evaluate/flags/{key}",
        json={"context": {"targetingKey": str(user)}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (200, 401), response.text
    if response.status_code == 200:
        assert response.json()["value"] is True
    return response.status_code


async def test_a_persons_access_token_is_accepted(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    sub, _ = await provisioned(rp, provider)
    for typ in ("JWT", None, "at+jwt", "application/at+jwt", "AT+JWT"):
        token = provider.sign(provider.access_claims(sub=sub), typ=typ)
        assert await as_person(rp, token) == 200, typ


async def test_the_id_token_of_a_login_is_no_bearer_token(
    rp: httpx.AsyncClient, target: tuple[int, str], provider: BadProvider, settings: Settings
) -> None:
    sub, id_token = await provisioned(rp, provider)
    assert await as_person(rp, id_token) == 401
    assert await as_service(rp, id_token, target) == 401
    # Even if the API's audience were the client id (configuration refuses that), the
    # nonce gives the ID token away.
    confused = replace(settings, oidc_audience=CLIENT_ID)
    assert await caller_from_bearer(id_token, confused) is None
    without_nonce = provider.sign(provider.claims("-", sub=sub, nonce=...))
    assert await caller_from_bearer(without_nonce, settings) is None  # aud is the client id


@pytest.mark.parametrize("claim", ["nonce", "at_hash", "c_hash"])
async def test_a_token_carrying_an_id_token_claim_is_refused(
    rp: httpx.AsyncClient, provider: BadProvider, claim: str
) -> None:
    sub, _ = await provisioned(rp, provider)
    token = provider.sign(provider.access_claims(sub=sub, **{claim: "x"}), typ="at+jwt")
    assert await as_person(rp, token) == 401


@pytest.mark.parametrize("typ", ["id_token+jwt", "logout+jwt", "secevent+jwt", "dpop+jwt", "JOSE"])
async def test_a_token_typed_as_something_else_is_refused(
    rp: httpx.AsyncClient, target: tuple[int, str], provider: BadProvider, typ: str
) -> None:
    sub, _ = await provisioned(rp, provider)
    assert await as_person(rp, provider.sign(provider.access_claims(sub=sub), typ=typ)) == 401
    service = provider.client_claims("reporting", scope="flags:read")
    assert await as_service(rp, provider.sign(service, typ=typ), target) == 401


@pytest.mark.parametrize(
    "audience", [CLIENT_ID, "other-api", ["other-api", "more"], None, 42], ids=repr
)
async def test_a_token_for_another_audience_is_refused(
    rp: httpx.AsyncClient, target: tuple[int, str], provider: BadProvider, audience: object
) -> None:
    sub, _ = await provisioned(rp, provider)
    token = provider.sign(provider.access_claims(sub=sub, aud=audience))
    assert await as_person(rp, token) == 401
    service = provider.client_claims("reporting", aud=audience, scope="flags:read")
    assert await as_service(rp, provider.sign(service), target) == 401


async def test_an_id_token_typed_as_an_access_token_is_no_login(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    login = await start_login(rp)
    token = provider.sign(provider.claims(login.nonce), typ="at+jwt")
    assert_refused(
        await callback(rp, login, provider.issue_code(login.challenge, token)), "wrong_token_type"
    )


CLIENT_TOKENS_REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("a client not on the list", {"sub": "stranger@clients", "azp": "stranger"}),
    ("an @clients subject naming another client", {"sub": "ci-deployer@clients"}),
    ("an @clients subject and no client", {"azp": ...}),
    ("client_id and azp disagree", {"client_id": "ci-deployer"}),
    ("client-credentials for a person's subject", {"sub": "auth0|someone"}),
    ("a client that is not a string", {"azp": ["reporting"], "sub": "x@clients"}),
    ("a scope that is not a string", {"scope": ["flags:read"]}),
    ("permissions that are not strings", {"permissions": [1, 2]}),
]


@pytest.mark.parametrize(
    "overrides",
    [case[1] for case in CLIENT_TOKENS_REFUSED],
    ids=[case[0] for case in CLIENT_TOKENS_REFUSED],
)
async def test_machine_client_tokens_not_on_the_list_or_inconsistent_are_refused(
    rp: httpx.AsyncClient, target: tuple[int, str], provider: BadProvider, overrides: dict[str, Any]
) -> None:
    claims = provider.client_claims("reporting", **{"scope": "flags:read", **overrides})
    assert await as_service(rp, provider.sign(claims), target) == 401


async def test_an_allow_listed_client_gets_only_the_scopes_both_grant(
    rp: httpx.AsyncClient, target: tuple[int, str], provider: BadProvider, settings: Settings
) -> None:
    cases = [
        ("ci-deployer", {"scope": "flags:read flags:write admin:all"}, {"flags:read", "flags:write"}),
        ("reporting", {"scope": "flags:read flags:write"}, {"flags:read"}),
        ("reporting", {"scope": "", "permissions": ["flags:read", "x"]}, {"flags:read"}),
        ("reporting", {"scope": "openid"}, set()),
        ("ci-deployer", {"scope": ...}, set()),
    ]  # fmt: skip
    for client, overrides, scopes in cases:
        token = provider.sign(provider.client_claims(client, **overrides))
        caller = await caller_from_bearer(token, settings)
        assert caller == ServiceCaller(client, frozenset(scopes)), (client, overrides)
        assert await as_service(rp, token, target) == 200


async def test_an_rfc_9068_client_token_is_recognised(
    rp: httpx.AsyncClient, target: tuple[int, str], provider: BadProvider, settings: Settings
) -> None:
    """RFC 9068 §2.2: `client_id` names the client, `sub` is that client id, no `gty`."""
    claims = provider.client_claims(
        "reporting", sub="reporting", azp=..., client_id="reporting", gty=..., scope="flags:read"
    )
    token = provider.sign(claims, typ="at+jwt")
    assert await caller_from_bearer(token, settings) == ServiceCaller(
        "reporting", frozenset({"flags:read"})
    )
    assert await as_service(rp, token, target) == 200
    stranger = provider.client_claims("stranger", sub="stranger", azp=..., client_id="stranger")
    assert await as_service(rp, provider.sign(stranger, typ="at+jwt"), target) == 401


async def test_a_persons_token_obtained_through_a_listed_client_stays_a_persons(
    rp: httpx.AsyncClient, provider: BadProvider, settings: Settings
) -> None:
    sub, _ = await provisioned(rp, provider)
    token = provider.sign(provider.access_claims(sub=sub, azp="reporting", scope="flags:read"))
    caller = await caller_from_bearer(token, settings)
    assert isinstance(caller, Caller)
    assert caller.via == "bearer"


@pytest.mark.parametrize("sub", ["nul\x00sub", "s" * 256, "lone \ud800"], ids=repr)
async def test_a_subject_no_user_can_have_is_a_401_not_a_422(
    rp: httpx.AsyncClient, provider: BadProvider, sub: str
) -> None:
    assert await as_person(rp, provider.sign(provider.access_claims(sub=sub))) == 401


@pytest.fixture(name="mock_issuer", scope="module")
def fx_mock_issuer() -> Iterator[str]:
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


async def test_a_real_providers_id_token_is_no_bearer_token(mock_issuer: str) -> None:
    """oidc-provider-mock, over HTTP: log in, then send the login's ID token as a bearer."""
    settings = replace(
        get_settings(), oidc_issuer=mock_issuer, oidc_audience="api", service_clients=SERVICES
    )
    sub = "id-token-as-bearer"
    claims = {"email": f"{sub}@example.test", "email_verified": True}
    assert httpx.put(f"{mock_issuer}/users/{sub}", json=claims, timeout=5).status_code == 204
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50032))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as rp:
        start = await rp.get("/api/v1/auth/login")
        async with httpx.AsyncClient(timeout=10) as browser:
            authorized = await browser.post(start.headers["location"], data={"sub": sub})
        done = await rp.get(httpx.URL(authorized.headers["location"]).raw_path.decode())
        assert done.status_code == 302, done.text
        rows = await fetch(
            "SELECT s.id_token FROM user_sessions s JOIN users u ON u.id = s.user_id"
            " WHERE u.oidc_subject = $1 AND u.oidc_issuer = $2",
            sub,
            mock_issuer,
        )
        id_token = rows[0]["id_token"]
        rp.cookies.clear()
        assert SESSION not in rp.cookies
        for audience in ("api", settings.oidc_client_id):
            confused = replace(settings, oidc_audience=audience)
            assert await caller_from_bearer(id_token, confused) is None
        assert await as_person(rp, id_token) == 401
