"""Bodies bounded before parsing, and security headers on every response (issue 11 #7, #9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from api.app import create_app
from api.platform.config import get_settings
from api.platform.http.limits import nesting_exceeds
from tests.support.auth import sign_in
from tests.support.data import make_tree
from tests.support.http import SessionClient

DEEP = "[" * 1000 + "]" * 1000  # ~2 KB that made the parsers recurse into a 500
OFREP = "/ofrep/v1/evaluate/flags"


def json_body(inner: str) -> dict[str, str]:
    return {"content": '{"context": {"deep": ' + inner + "}}"}


@pytest.mark.parametrize(
    ("body", "limit", "too_deep"),
    [
        (b'{"a": [[[]]]}', 4, False),
        (b'{"a": [[[[]]]]}', 4, True),
        (b'{"a": "[[[[[[[[[[{{{{{{{{"}', 2, False),
        (b'{"a": "\\"[[[[[[[[", "b": [[[1]]]}', 4, False),
        (b'{"a": "\\\\", "b": [[[[1]]]]}', 3, True),
        (b"not json at all", 1, False),
    ],
)
def test_nesting_scan_counts_only_structure_outside_strings(
    body: bytes, limit: int, too_deep: bool
) -> None:
    assert nesting_exceeds(body, limit) is too_deep


async def test_deep_json_to_ofrep_is_a_400_not_a_500(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    response = await client.post(
        OFREP, **json_body(DEEP), cookies=member.cookies, headers=member.headers()
    )  # type: ignore[arg-type]
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"
    assert response.json()["extra"] == {"limit": 32}
    assert response.headers["x-request-id"] == response.json()["request_id"]


async def test_deep_json_in_node_settings_is_a_400_not_a_500(client: httpx.AsyncClient) -> None:
    tree = await make_tree()
    admin = await sign_in(super_admin=True)
    response = await client.patch(
        f"/api/v1/hierarchy/nodes/{tree.org}",
        content='{"settings": {"x": ' + DEEP + "}}",
        headers={**admin.headers(), "Content-Type": "application/json"},
        cookies=admin.cookies,
    )
    assert response.status_code == 400, response.text


async def test_brackets_inside_strings_are_not_nesting(client: httpx.AsyncClient) -> None:
    member = await sign_in()
    response = await client.post(
        OFREP,
        json={"context": {"note": "[" * 1000}},
        cookies=member.cookies,
        headers=member.headers(),
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path", [OFREP, "/admin/api/tables/feature_flags/", "/no/such/route", "/api/v1/auth/logout"]
)
async def test_limits_hold_on_every_route_and_the_admin_mount(
    client: httpx.AsyncClient, path: str
) -> None:
    too_deep = await client.post(path, **json_body(DEEP))  # type: ignore[arg-type]
    assert too_deep.status_code == 400, too_deep.text
    too_big = await client.post(
        path, content=b"{" + b" " * 1_100_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert too_big.status_code == 413, too_big.text
    assert too_big.json()["error"] == "payload_too_large"


async def test_streamed_bodies_are_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 65_536

    response = await client.post(OFREP, content=chunks())
    assert response.status_code == 413


async def test_limits_come_from_settings() -> None:
    settings = replace(get_settings(), max_request_body_bytes=100, max_json_depth=2)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50010))
    async with SessionClient(transport=transport, base_url="http://127.0.0.1:8000") as rp:
        assert (await rp.post(OFREP, content=b"[[[1]]]")).status_code == 400
        assert (await rp.post(OFREP, content=b" " * 101)).status_code == 413


# ---- security headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/", "/admin/", "/admin/api/tables/", "/schema", "/schema/openapi.json",
             "/health", "/api/v1/auth/me", "/no/such/route"],
)  # fmt: skip
async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in response.headers  # PUBLIC_URL is http here


async def test_errors_and_the_admin_carry_them_too(client: httpx.AsyncClient) -> None:
    admin = await sign_in(super_admin=True)
    for response in (
        await client.post(OFREP, **json_body(DEEP)),  # type: ignore[arg-type]
        await client.get("/admin/", cookies=admin.cookies),
        await client.post("/api/v1/auth/logout"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff", response.request.url
        assert response.headers["x-frame-options"] == "DENY"


async def test_hsts_when_public_url_is_https() -> None:
    settings = replace(get_settings(), public_url="https://api.example.com")
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50011))
    async with SessionClient(transport=transport, base_url="https://api.example.com") as rp:
        for path in ("/health", "/no/such/route"):
            response = await rp.get(path)
            assert response.headers["strict-transport-security"] == "max-age=31536000"
