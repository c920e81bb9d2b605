"""`make screenshots`: refresh the admin's pictures in docs/ from a real run of the admin.

Kept out of the test suite so that `make test` leaves the tree as it found it. Runs the
release step, the demo data, a development provider and the app on a database of its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.support.env import ROOT, apply_test_env

PAGES = {
    "admin-flag-list.png": "#/feature_flags",
    "admin-flag-edit.png": None,  # the edit form of `checkout-button-color`, reached by a click
    "admin-override-list.png": "#/feature_flag_overrides",
    "admin-rule-list.png": "#/feature_flag_rules",
    "admin-segment-list.png": "#/segments",
    "admin-schedule-list.png": "#/feature_flag_schedules",
    "admin-hierarchy.png": "#/organization_hierarchy",
    "admin-audit-log.png": "#/audit_logs",
}


def main() -> None:
    apply_test_env()
    import httpx
    from oidc_provider_mock import run_server_in_thread
    from playwright.sync_api import sync_playwright

    from api.ops.demo import PROVIDER_USERS
    from tests.support.databases import fresh_database
    from tests.support.processes import child_env, run_release, start_app

    database = fresh_database("marketedge_screenshots")
    if run_release(database).returncode != 0:
        sys.exit("the release step failed")
    with run_server_in_thread() as provider:
        issuer = f"http://localhost:{provider.server_port}"
        env = child_env(database, OIDC_ISSUER=issuer)
        subprocess.run([sys.executable, "-m", "api.ops.demo"], cwd=ROOT, env=env, check=True)
        for claims in PROVIDER_USERS:  # verified e-mails and names, as `make run` has them
            profile = {k: v for k, v in claims.items() if k != "sub"}
            httpx.put(f"{issuer}/users/{claims['sub']}", json=profile, timeout=5)
        app = start_app(database, env={"OIDC_ISSUER": issuer})
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium"),
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{app.base_url}/admin/")
                page.fill("input[name=sub]", "admin")
                page.click("button[type=submit]:has-text('Authorize')")
                page.wait_for_url(f"{app.base_url}/admin/**")
                for name, route in PAGES.items():
                    if route is None:
                        page.goto(f"{app.base_url}/admin/#/feature_flags")
                        page.locator("table a", has_text="checkout-button-color").first.click()
                        page.wait_for_selector("[data-uitest=save_button]")
                    else:
                        page.goto(f"{app.base_url}/admin/{route}")
                        page.wait_for_selector("table:not(.column_list) tbody tr")
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(ROOT / "docs" / name))
                    print(f"docs/{name}")
                browser.close()
        finally:
            app.stop()


if __name__ == "__main__":
    main()
