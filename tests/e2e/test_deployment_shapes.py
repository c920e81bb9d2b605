"""The two deployment shapes of the README (issue 20 #5), driven in Chromium over HTTPS
through Debian's nginx, with `examples/spa/` as the front end.

Same-site: the page at https://app.zebra.associates, the API at https://api.zebra.associates,
the browser's default settings. Cross-site: the page at https://app.zebra.test, the API at
https://api.marketedge.test; it works once third-party cookies are allowed, and without that
the session cookie is never sent (the page stays signed out after a successful login).
Chromium resolves every name to 127.0.0.1 (`--host-resolver-rules`); nginx answers them all
on one port with a self-signed certificate made here. The browser is driven only by clicks
and typing; the assertions read what the page shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from oidc_provider_mock import run_server_in_thread

from tests.support.databases import fresh_database
from tests.support.deployment import (
    API_SERVER,
    PAGE_SERVER,
    SPA,
    VENDOR,
    Nginx,
    browser_context,
    chromium_launcher,
    load_demo,
    self_signed_certificate,
    tls_config,
)
from tests.support.processes import AppProcess, free_port, run_release, start_app

pytestmark = [pytest.mark.e2e]


@dataclass(frozen=True)
class Shape:
    name: str
    front_end: str
    api: str
    hostile: str
    """A page on an origin the API does not list, as close to the front end as possible."""
    samesite: str
    new_name: str


SAME_SITE = Shape(
    "same-site",
    "app.zebra.associates",
    "api.zebra.associates",
    "hostile.zebra.associates",  # same site, so even the Lax cookie rides its requests
    "lax",
    "Acme Retail (same-site)",
)
CROSS_SITE = Shape(
    "cross-site",
    "app.zebra.test",
    "api.marketedge.test",
    "hostile.test",
    "none",
    "Acme Retail (cross-site)",
)

HOSTILE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>hostile</title></head><body>
<button id="steal" type="button">Read their session</button>
<p id="stolen">nothing yet</p>
<form id="forge" method="post" action="{api}/api/v1/auth/logout">
  <button id="forge-submit" type="submit">Log them out</button>
</form>
<script>
document.getElementById('steal').onclick = async () => {{
  try {{
    const r = await fetch('{api}/api/v1/auth/session/check', {{credentials: 'include'}});
    document.getElementById('stolen').textContent = 'read: ' + await r.text();
  }} catch (error) {{
    document.getElementById('stolen').textContent = 'blocked: ' + error;
  }}
}};
</script></body></html>
"""


@dataclass(frozen=True)
class Deployment:
    port: int
    issuer: str

    def url(self, host: str) -> str:
        return f"https://{host}:{self.port}"


@pytest.fixture(name="deployment", scope="module")
def fx_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The demo data, the OpenID Provider, one web process per shape and nginx before them."""
    url = fresh_database("marketedge_deployment_shapes")
    assert run_release(url).returncode == 0
    prefix = tmp_path_factory.mktemp("shapes")
    port = free_port()
    shapes = (SAME_SITE, CROSS_SITE)
    with run_server_in_thread() as server:
        issuer = f"http://localhost:{server.server_port}"
        load_demo(url, issuer, {"alice": "alice@acme.example"})
        apps: list[AppProcess] = []
        nginx: Nginx | None = None
        try:
            servers = []
            for shape in shapes:
                api = f"https://{shape.api}:{port}"
                app = start_app(
                    url,
                    env={
                        "OIDC_ISSUER": issuer,
                        "PUBLIC_URL": api,
                        "FRONTEND_ORIGINS": f"https://{shape.front_end}:{port}",
                        "SESSION_COOKIE_SAMESITE": shape.samesite,
                        "TRUSTED_PROXIES": "127.0.0.1",
                    },
                )
                apps.append(app)
                app_port = int(app.base_url.rsplit(":", 1)[1])
                hostile_root = prefix / f"hostile-{shape.name}"
                hostile_root.mkdir()
                (hostile_root / "index.html").write_text(HOSTILE_PAGE.format(api=api))
                config = json.dumps({"apiBaseUrl": api})
                servers += [
                    API_SERVER.format(port=port, host=shape.api, app_port=app_port),
                    PAGE_SERVER.format(
                        port=port, host=shape.front_end, root=SPA, vendor=VENDOR, config=config
                    ),
                    PAGE_SERVER.format(
                        port=port, host=shape.hostile, root=hostile_root, vendor=VENDOR,
                        config=config,
                    ),
                ]  # fmt: skip
            self_signed_certificate(
                prefix, [name for s in shapes for name in (s.front_end, s.api, s.hostile)]
            )
            nginx = Nginx(prefix, port, tls_config(prefix, "".join(servers)))
            yield Deployment(port, issuer)
        finally:
            if nginx:
                nginx.stop()
            for app in apps:
                app.stop()


@pytest.fixture(name="chromium", scope="module")
def fx_chromium() -> Iterator[Any]:
    with chromium_launcher() as chromium:
        yield chromium


def log_in(page: Any, deployment: Deployment, shape: Shape) -> None:
    front_end = deployment.url(shape.front_end)
    page.goto(f"{front_end}/")
    page.wait_for_selector("#login:not([hidden])")
    assert page.inner_text("#session") == "Signed out"
    page.click("#login")
    page.fill("input[name=sub]", "alice")
    page.click("button[type=submit]:has-text('Authorize')")
    page.wait_for_url(f"{front_end}/")


def drive_the_whole_shape(context: Any, deployment: Deployment, shape: Shape) -> None:
    page = context.new_page()
    log_in(page, deployment, shape)
    page.wait_for_function("document.getElementById('session').textContent.startsWith('Signed in')")
    assert page.inner_text("#session") == "Signed in as alice@acme.example"

    # The features list and the OFREP provider's values agree, flag by flag.
    page.wait_for_selector("#ofrep-status:has-text('Provider')")
    assert page.inner_text("#ofrep-status") == "Provider ready"
    features = page.locator("#features li").all_inner_texts()
    assert len(features) >= 17, features
    chart_theme = page.inner_text("#features li[data-key='chart-theme']")
    assert '"palette":"vivid"' in chart_theme  # Alice is Acme staff: the segment rule's variant
    assert chart_theme.endswith("(TARGETING_MATCH)")
    for key in ("chart-theme", "export-csv", "max-dashboard-widgets", "report-sample-rate"):
        feature = page.inner_text(f"#features li[data-key='{key}']")
        evaluated = page.inner_text(f"#ofrep li[data-key='{key}']")
        assert feature.split(" (")[0] == evaluated.split(" (")[0], (feature, evaluated)

    # A CSRF-protected write that Alice, Acme's organization admin, may make.
    page.wait_for_selector("#rename-section:not([hidden])")
    page.fill("#new-name", shape.new_name)
    page.click("#rename-submit")
    page.wait_for_selector("#rename-result:not(:empty)")
    assert page.inner_text("#rename-result") == f"Renamed to {shape.new_name}"
    page.reload()
    page.wait_for_selector("#rename-section:not([hidden])")
    assert page.inner_text("#node-name") == shape.new_name

    # A page on an origin the API does not list: it cannot read the session, and a forged
    # write carrying the cookie is refused.
    hostile = context.new_page()
    hostile.goto(f"{deployment.url(shape.hostile)}/")
    hostile.click("#steal")
    hostile.wait_for_selector("#stolen:has-text('blocked')")
    hostile.click("#forge-submit")
    hostile.wait_for_load_state()
    refusal = json.loads(hostile.inner_text("body"))
    assert refusal["status_code"] == 403, refusal
    assert refusal["detail"] == "Missing or wrong X-CSRF-Token header"
    page.reload()
    page.wait_for_function("document.getElementById('session').textContent.startsWith('Signed in')")

    # Logout ends the session for good.
    page.click("#logout")
    page.wait_for_selector("#login:not([hidden])")
    assert page.inner_text("#session") == "Signed out"
    page.reload()
    page.wait_for_selector("#login:not([hidden])")
    assert page.inner_text("#session") == "Signed out"


def test_same_site_shape_works_with_the_browser_defaults(
    deployment: Deployment, chromium: Any
) -> None:
    context = browser_context(chromium, None)
    try:
        drive_the_whole_shape(context, deployment, SAME_SITE)
    finally:
        context.close()


def test_cross_site_shape_works_once_third_party_cookies_are_allowed(
    deployment: Deployment, chromium: Any, tmp_path: Path
) -> None:
    context = browser_context(chromium, tmp_path / "profile")
    try:
        drive_the_whole_shape(context, deployment, CROSS_SITE)
    finally:
        context.close()


def test_cross_site_shape_with_the_browser_defaults_never_sends_the_session_cookie(
    deployment: Deployment, chromium: Any
) -> None:
    context = browser_context(chromium, None)
    try:
        page = context.new_page()
        log_in(page, deployment, CROSS_SITE)
        # The login itself succeeded: the API's own site has the session...
        api = context.new_page()
        api.goto(f"{deployment.url(CROSS_SITE.api)}/api/v1/auth/session/check")
        assert json.loads(api.inner_text("body"))["email"] == "alice@acme.example"
        # ...but the front end's calls arrive without the cookie.
        page.reload()
        page.wait_for_selector("#login:not([hidden])")
        assert page.inner_text("#session") == "Signed out"
    finally:
        context.close()
