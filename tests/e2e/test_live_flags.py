"""A flag change reaches every open browser within a second (issue 22): the official OFREP
web provider in `examples/spa/`, and the home page at `/`, both in Chromium behind nginx over
TLS, follow a flag flipped by a super-admin on the *other* replica.

Replica A serves the browser through nginx (the same-site shape of the README: the page at
https://app.zebra.associates, the API at https://api.zebra.associates). Replica B, on the same
database, takes the super-admin's writes; its commits reach A by NOTIFY. The page polls every
10 minutes, so only the event stream can bring a change within the second. The browser is
driven by clicks and typing; what the test reads is what the pages show, plus A's metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread
from prometheus_client.parser import text_string_to_metric_families

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

FRONT_END, API = "app.zebra.associates", "api.zebra.associates"
POLLING_FRONT_END, CAPPED_API = "poll.zebra.associates", "capped.zebra.associates"
"""The fallback's pair: a page polling every second, before a replica holding one stream."""
FLAG = "new-dashboard"  # on for everyone in the demo data
FLIPS = 5
WITHIN = 1.0


@dataclass(frozen=True)
class Deployment:
    port: int
    replica_a: AppProcess
    """Behind nginx, serving the browser."""
    replica_b: AppProcess
    """Reached directly, taking the super-admin's writes."""
    replica_c: AppProcess
    """Behind nginx too, with EVENT_STREAMS_MAX=1."""

    def url(self, host: str) -> str:
        return f"https://{host}:{self.port}"


@pytest.fixture(name="deployment", scope="module")
def fx_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    url = fresh_database("marketedge_live_flags")
    assert run_release(url).returncode == 0
    prefix = tmp_path_factory.mktemp("live")
    port = free_port()
    with run_server_in_thread() as provider:
        issuer = f"http://localhost:{provider.server_port}"
        load_demo(url, issuer, {"alice": "alice@acme.example", "admin": "admin@marketedge.example"})
        apps: list[AppProcess] = []
        nginx: Nginx | None = None
        try:
            servers = ""
            for api_host, page_host, poll_ms, extra in (
                (API, FRONT_END, 600_000, {}),
                (CAPPED_API, POLLING_FRONT_END, 1_000, {"EVENT_STREAMS_MAX": "1"}),
            ):
                api = f"https://{api_host}:{port}"
                app = start_app(
                    url,
                    env={
                        "OIDC_ISSUER": issuer,
                        "PUBLIC_URL": api,
                        "FRONTEND_ORIGINS": f"https://{page_host}:{port}",
                        "TRUSTED_PROXIES": "127.0.0.1",
                        **extra,
                    },
                )
                apps.append(app)
                app_port = int(app.base_url.rsplit(":", 1)[1])
                config = json.dumps({"apiBaseUrl": api, "pollIntervalMs": poll_ms})
                servers += API_SERVER.format(port=port, host=api_host, app_port=app_port)
                servers += PAGE_SERVER.format(
                    port=port, host=page_host, root=SPA, vendor=VENDOR, config=config
                )
            apps.append(start_app(url, env={"OIDC_ISSUER": issuer}))
            self_signed_certificate(prefix, [FRONT_END, API, POLLING_FRONT_END, CAPPED_API])
            nginx = Nginx(prefix, port, tls_config(prefix, servers))
            yield Deployment(port, apps[0], apps[2], apps[1])
        finally:
            if nginx:
                nginx.stop()
            for app in apps:
                app.stop()


@pytest.fixture(name="chromium", scope="module")
def fx_chromium() -> Iterator[Any]:
    with chromium_launcher() as chromium:
        yield chromium


def super_admin_on(replica: AppProcess) -> httpx.Client:
    """The demo's super-admin signed in on `replica` through the OpenID Provider's form."""
    client = httpx.Client(base_url=replica.base_url, timeout=10)
    start = client.get("/api/v1/auth/login", params={"next": "/"})
    assert start.status_code == 302, start.text
    authorized = httpx.post(start.headers["location"], data={"sub": "admin"}, timeout=10)
    assert authorized.status_code == 302, authorized.text
    back = httpx.URL(authorized.headers["location"])
    assert client.get(back.raw_path.decode()).status_code == 302
    check = client.get("/api/v1/auth/session/check")
    assert check.json()["email"] == "admin@marketedge.example"
    client.headers.update({"X-CSRF-Token": check.json()["csrf_token"], "Origin": replica.base_url})
    return client


def flip(admin: httpx.Client) -> bool:
    """Switch FLAG the other way; the new `enabled`, committed when this returns."""
    flag = admin.get(f"/api/v1/admin/feature-flags/{FLAG}").json()
    changed = admin.patch(
        f"/api/v1/admin/feature-flags/{FLAG}",
        json={"version": flag["version"], "enabled": not flag["enabled"]},
    )
    assert changed.status_code == 200, changed.text
    return bool(changed.json()["enabled"])


def open_streams(replica: AppProcess) -> float:
    scrape = httpx.get(f"{replica.base_url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(scrape):
        if family.name == "marketedge_event_streams_open":
            return sum(sample.value for sample in family.samples)
    raise AssertionError("marketedge_event_streams_open is not exported")


def wait_until(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def sign_in_to_the_spa(page: Any, deployment: Deployment, host: str = FRONT_END) -> None:
    front_end = deployment.url(host)
    page.goto(f"{front_end}/")
    page.wait_for_selector("#login:not([hidden])")
    page.click("#login")
    page.fill("input[name=sub]", "alice")
    page.click("button[type=submit]:has-text('Authorize')")
    page.wait_for_url(f"{front_end}/")
    page.wait_for_selector("#ofrep-status:has-text('Provider')")
    assert page.inner_text("#ofrep-status") == "Provider ready"


def spa_value(page: Any) -> str:
    """What the provider serves for FLAG, as the OFREP list shows it ("true", "false")."""
    return str(page.inner_text(f"#ofrep li[data-key='{FLAG}']")).split(": ", 1)[1].split(" (")[0]


def home_value(page: Any) -> str:
    return str(page.inner_text(f"#flags tr[data-flag='{FLAG}'] td:nth-child(2)"))


def test_flips_on_the_other_replica_reach_both_pages_within_a_second_and_logout_ends_it(
    deployment: Deployment, chromium: Any
) -> None:
    context = browser_context(chromium, None)
    streams: list[str] = []
    context.on(
        "request",
        lambda request: streams.append(request.url) if "/event-stream/" in request.url else None,
    )
    try:
        spa = context.new_page()
        sign_in_to_the_spa(spa, deployment)
        home = context.new_page()
        home.goto(f"{deployment.url(API)}/")
        home.wait_for_selector("#live:has-text('Live')")
        assert spa_value(spa) == "true"  # the demo's new dashboard is on for everyone
        assert home_value(home) == "on"
        wait_until(lambda: open_streams(deployment.replica_a) == 2, 5, "two streams on A")

        admin = super_admin_on(deployment.replica_b)
        seen: list[float] = []
        for flip_number in range(1, FLIPS + 1):
            before = time.time()
            enabled = flip(admin)
            spa.wait_for_function(
                "n => document.getElementById('ofrep-updates').textContent"
                ".startsWith(`Updated ${n} time`)",
                arg=flip_number,
                polling=25,
                timeout=5_000,
            )
            stamp = spa.inner_text("#ofrep-updates").rsplit(" ", 1)[1]
            seen.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() - before)
            assert spa_value(spa) == json.dumps(enabled)
            home.wait_for_function(
                "([key, word]) => document.querySelector(`#flags tr[data-flag='${key}'] "
                "td:nth-child(2)`)?.textContent === word",
                arg=[FLAG, "on" if enabled else "off"],
                polling=25,  # not per animation frame: a tab behind another gets few of them
                timeout=5_000,
            )
            seen.append(time.time() - before)
        # every one of the five flips, on both pages
        assert max(seen) < WITHIN, " ".join(f"{s:.3f}" for s in seen)
        admin.close()

        # Logout: the server ends the session's streams, the home page's included (the SPA's
        # provider closes its own), and the stream's URL refuses from then on.
        spa.click("#logout")
        spa.wait_for_selector("#login:not([hidden])")
        wait_until(lambda: open_streams(deployment.replica_a) == 0, 5, "streams still open")
        home.wait_for_selector("#live:has-text('stopped')", timeout=10_000)
        assert streams
        key = streams[0].rsplit("/", 1)[1]
        refused = httpx.get(f"{deployment.replica_a.base_url}/ofrep/v1/event-stream/{key}")
        assert refused.status_code == 401
    finally:
        context.close()


def test_a_page_refused_a_stream_falls_back_to_polling(
    deployment: Deployment, chromium: Any
) -> None:
    """Above EVENT_STREAMS_MAX a stream answers 503 with Retry-After, and the official
    provider polls instead: on the capped replica the first tab holds the one stream, the
    second is refused and still sees a change, by its one-second polling."""
    context = browser_context(chromium, None)
    try:
        first = context.new_page()
        sign_in_to_the_spa(first, deployment, POLLING_FRONT_END)
        wait_until(lambda: open_streams(deployment.replica_c) == 1, 5, "the first tab's stream")
        second = context.new_page()
        refusals: list[int] = []
        second.on(
            "response",
            lambda r: refusals.append(r.status) if "/event-stream/" in r.url else None,
        )
        second.goto(f"{deployment.url(POLLING_FRONT_END)}/")
        second.wait_for_selector("#ofrep-status:has-text('Provider ready')")
        wait_until(lambda: 503 in refusals, 5, "the second tab's stream was not refused")
        admin = super_admin_on(deployment.replica_b)
        enabled = flip(admin)
        admin.close()
        for page in (first, second):
            page.wait_for_function(
                "document.getElementById('ofrep-updates').textContent.startsWith('Updated')",
                timeout=5_000,
            )
            assert spa_value(page) == json.dumps(enabled)
        assert open_streams(deployment.replica_c) == 1
    finally:
        context.close()
