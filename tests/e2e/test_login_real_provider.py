"""The whole login against a real OpenID Provider process (oidc-provider-mock), over HTTP
and in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread

from api.app import create_app
from api.platform.config import get_settings
from tests.support.processes import AppProcess, start_app

pytestmark = pytest.mark.e2e
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(name="issuer", scope="module")
def fx_issuer() -> Iterator[str]:
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def set_claims(issuer: str, sub: str, **claims: Any) -> None:
    response = httpx.put(f"{issuer}/users/{sub}", json=claims, timeout=5)
    assert response.status_code == 204


@pytest.fixture(name="rp")
async def fx_rp(issuer: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = replace(get_settings(), oidc_issuer=issuer)
    transport = httpx.ASGITransport(app=create_app(settings), client=("127.0.0.1", 50010))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


async def test_login_session_check_logout_over_http(rp: httpx.AsyncClient, issuer: str) -> None:
    set_claims(
        issuer, "alice-http", email="Alice.HTTP@Example.test", email_verified=True, name="Alice"
    )
    start = await rp.get("/api/v1/auth/login", params={"next": "/"})
    assert start.status_code == 302
    assert start.headers["location"].startswith(f"{issuer}/")
    async with httpx.AsyncClient(timeout=10) as browser:
        form = await browser.get(start.headers["location"])
        assert form.status_code == 200
        assert 'name="sub"' in form.text
        authorized = await browser.post(start.headers["location"], data={"sub": "alice-http"})
    assert authorized.status_code == 302
    back = httpx.URL(authorized.headers["location"])
    assert str(back).startswith("http://127.0.0.1:8000/api/v1/auth/callback")
    done = await rp.get(back.raw_path.decode())
    assert done.status_code == 302, done.text
    assert done.headers["location"] == "/"

    check = await rp.get("/api/v1/auth/session/check")
    assert check.status_code == 200
    body = check.json()
    assert body["email"] == "alice.http@example.test"
    out = await rp.post(
        "/api/v1/auth/logout",
        headers={"X-CSRF-Token": body["csrf_token"], "Origin": "http://127.0.0.1:8000"},
    )
    assert out.status_code == 200
    assert out.json()["end_session_url"].startswith(f"{issuer}/oauth2/end_session?")
    assert (await rp.get("/api/v1/auth/session/check")).status_code == 401


@pytest.fixture(name="app_server")
def fx_app_server(issuer: str, database: str) -> Iterator[AppProcess]:
    app = start_app(database, env={"OIDC_ISSUER": issuer})
    yield app
    app.stop()


def test_login_and_logout_in_a_real_browser(app_server: AppProcess, issuer: str) -> None:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is installed by the test command"
    set_claims(issuer, "bob-browser", email="bob.browser@example.test", email_verified=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{app_server.base_url}/")
            page.click("#login")
            page.fill("input[name=sub]", "bob-browser")
            page.click("button[type=submit]:has-text('Authorize')")
            page.wait_for_url(f"{app_server.base_url}/")
            assert page.inner_text("#who") == "bob.browser@example.test"
            assert page.get_by_text("No organization yet").is_visible()
            assert page.locator("#super-admin").count() == 0
            check = page.request.get(f"{app_server.base_url}/api/v1/auth/session/check")
            assert check.status == 200
            page.click("#logout")
            page.wait_for_url(f"{issuer}/oauth2/end_session**")
            check = page.request.get(f"{app_server.base_url}/api/v1/auth/session/check")
            assert check.status == 401
        finally:
            browser.close()
