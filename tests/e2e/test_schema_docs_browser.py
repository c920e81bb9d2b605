"""The `/schema` docs UI renders in a real browser that can reach nothing but this app."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.processes import AppProcess, start_app

pytestmark = pytest.mark.e2e
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(name="app_server", scope="module")
def fx_app_server(database: str) -> Iterator[AppProcess]:
    app = start_app(database)
    yield app
    app.stop()


def test_the_docs_ui_renders_the_operations_offline(app_server: AppProcess) -> None:
    from playwright.sync_api import Route, sync_playwright

    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is installed by the test command"
    blocked: list[str] = []

    def only_this_app(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_this_app)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{app_server.base_url}/schema")
            operation = page.locator(".opblock-summary-path", has_text="/api/v1/features").first
            operation.wait_for(state="visible", timeout=15_000)
            assert page.get_by_text("MarketEdge Platform API").first.is_visible()
            assert errors == []
        finally:
            browser.close()
    assert blocked == []
