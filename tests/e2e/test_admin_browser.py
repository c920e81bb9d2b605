"""The admin in a real browser (Playwright + Debian's Chromium), reached through the
development provider's login form, with screenshots kept for the README."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from oidc_provider_mock import run_server_in_thread

from tests.support.env import ROOT
from tests.support.processes import AppProcess, child_env, start_app

pytestmark = pytest.mark.e2e
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "docs"


@pytest.fixture(name="site", scope="module")
def fx_site(database: str) -> Iterator[tuple[AppProcess, str]]:
    with run_server_in_thread() as provider:
        issuer = f"http://localhost:{provider.server_port}"
        subprocess.run(
            [sys.executable, "-m", "api.demo"],
            cwd=ROOT,
            env=child_env(database, OIDC_ISSUER=issuer),
            check=True,
            capture_output=True,
        )
        for sub, email in (
            ("admin", "admin@marketedge.example"),
            ("vic", "vic@globex.example"),
            ("uma", "uma@acme.example"),
        ):
            httpx.put(
                f"{issuer}/users/{sub}", json={"email": email, "email_verified": True}, timeout=5
            )
        app = start_app(database, env={"OIDC_ISSUER": issuer})
        yield app, issuer
        app.stop()


def log_in(page: object, base_url: str, subject: str, start: str) -> None:
    page.goto(f"{base_url}{start}")  # type: ignore[attr-defined]
    page.fill("input[name=sub]", subject)  # type: ignore[attr-defined]
    page.click("button[type=submit]:has-text('Authorize')")  # type: ignore[attr-defined]


def query(sql: str, *args: object) -> list[dict[str, object]]:
    """SQL from a thread of its own: Playwright's sync API owns this thread's event loop."""

    async def run() -> list[dict[str, object]]:
        connection = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            return [dict(row) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def features_of(app: AppProcess, email: str) -> dict[str, dict[str, object]]:
    """What the user's own GET /api/v1/features says, through a session of theirs."""
    from api.auth.sessions import hash_token, new_token

    token = new_token()
    query(
        "INSERT INTO user_sessions (token_hash, user_id, expires_at)"
        " SELECT $1, id, now() + interval '1 hour' FROM users WHERE email = $2",
        hash_token(token),
        email,
    )
    response = httpx.get(
        f"{app.base_url}/api/v1/features", cookies={"me_session": token}, timeout=10
    )
    return {
        f["key"]: {"value": f["value"], "reason": f["reason"]} for f in response.json()["flags"]
    }


def test_super_admin_edits_flags_in_the_browser_and_everything_is_audited(
    site: tuple[AppProcess, str],
) -> None:
    from playwright.sync_api import sync_playwright

    app, issuer = site
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        try:
            admin = browser.new_page(viewport={"width": 1280, "height": 800})
            log_in(admin, app.base_url, "admin", "/admin/")
            admin.wait_for_url(f"{app.base_url}/admin/**")
            admin.goto(f"{app.base_url}/admin/#/feature_flags")
            admin.wait_for_selector("text=new-dashboard")
            admin.screenshot(path=str(SCREENSHOTS / "admin-flag-list.png"))

            # Switch `team-sharing` off through the edit form.
            flag_id = query("SELECT id FROM feature_flags WHERE key = 'team-sharing'")[0]["id"]
            admin.goto(f"{app.base_url}/admin/#/feature_flags/{flag_id}")
            admin.wait_for_selector("select[name=enabled]")
            admin.select_option("select[name=enabled]", "false")
            admin.screenshot(path=str(SCREENSHOTS / "admin-flag-edit.png"))
            admin.click("button:has-text('Save')")
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and features_of(app, "uma@acme.example")["team-sharing"]["reason"] != "DISABLED"
            ):
                time.sleep(0.2)
            assert features_of(app, "uma@acme.example")["team-sharing"] == {
                "value": False,
                "reason": "DISABLED",
            }

            # An expiring user override, through the admin's own API from the admin page.
            ids = query(
                "SELECT (SELECT id FROM feature_flags WHERE key = 'legacy-charts') AS flag,"
                " (SELECT id FROM users WHERE email = 'uma@acme.example') AS uma"
            )[0]  # fmt: skip
            query("UPDATE feature_flags SET enabled = true WHERE key = 'legacy-charts'")
            csrf = next(c["value"] for c in admin.context.cookies() if c["name"] == "csrftoken")
            expires = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
            created = admin.request.post(
                f"{app.base_url}/admin/api/tables/feature_flag_overrides/",
                data={
                    "flag": ids["flag"],
                    "user": ids["uma"],
                    "enabled": True,
                    "reason": "pilot",
                    "created_at": datetime.now(UTC).isoformat(),
                    "expires_at": expires,
                },
                headers={
                    "X-CSRFToken": csrf,
                    "Origin": app.base_url,  # as the page's own fetch() sends it
                    "Referer": f"{app.base_url}/admin/",
                },
            )
            assert created.status in (200, 201), created.text()
            assert features_of(app, "uma@acme.example")["legacy-charts"] == {
                "value": True,
                "reason": "TARGETING_MATCH",
            }

            admin.goto(f"{app.base_url}/admin/#/audit_logs")
            admin.wait_for_selector("text=feature_flag_override.insert")
            admin.screenshot(path=str(SCREENSHOTS / "admin-audit-log.png"))
            assert admin.locator("text=feature_flag.update").count() >= 1

            # The admin's own logout ends the session and leads to the provider's logout.
            admin.on("dialog", lambda dialog: dialog.accept())
            admin.click("text=oidc-user")
            admin.click("[data-uitest=logout_button]")
            admin.wait_for_url(f"{issuer}/oauth2/end_session**")
            assert admin.request.get(f"{app.base_url}/api/v1/auth/session/check").status == 401

            viewer = browser.new_context().new_page()
            log_in(viewer, app.base_url, "vic", "/api/v1/auth/login?next=/")
            viewer.wait_for_url(f"{app.base_url}/")
            response = viewer.goto(f"{app.base_url}/admin/")
            assert response is not None
            assert response.status == 403
        finally:
            browser.close()
    audit = query(
        "SELECT a.action, u.email FROM audit_logs a JOIN users u ON u.id = a.actor_id"
        " WHERE a.action IN ('feature_flag.update', 'feature_flag_override.insert')"
        " AND u.email = 'admin@marketedge.example' ORDER BY a.id"
    )
    assert [(a["action"], a["email"]) for a in audit] == [
        ("feature_flag.update", "admin@marketedge.example"),
        ("feature_flag_override.insert", "admin@marketedge.example"),
    ]
    assert all(
        (SCREENSHOTS / name).stat().st_size > 10_000
        for name in ("admin-flag-list.png", "admin-flag-edit.png", "admin-audit-log.png")
    )
