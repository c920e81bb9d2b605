"""Every super-admin task in Piccolo Admin, done as a person does it: clicks and typing in
Chromium (Playwright + Debian's chromium), after the development provider's login form.

No request made by these tests creates or changes data: each effect comes from the admin's
own forms, and is then checked in the database and in what the affected person's own
browser session reads from the API (`/api/v1/features`, `/api/v1/auth/me`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

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
PEOPLE = {
    "admin": "admin@marketedge.example",
    "uma": "uma@acme.example",
    "dan": "dan@acme.example",
    "vic": "vic@globex.example",
}


def query(sql: str, *args: object) -> list[dict[str, Any]]:
    """SQL from a thread of its own: Playwright's sync API owns this thread's event loop."""

    async def run() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            return [dict(row) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def eventually(check: Callable[[], Any], timeout: float = 10) -> Any:
    """The value of `check()` once it is truthy; the API's caches follow within a second."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@dataclass
class Site:
    app: AppProcess
    issuer: str
    browser: Any


@pytest.fixture(name="site", scope="module")
def fx_site(database: str) -> Iterator[Site]:
    from playwright.sync_api import sync_playwright

    with run_server_in_thread() as provider:
        issuer = f"http://localhost:{provider.server_port}"
        subprocess.run(
            [sys.executable, "-m", "api.ops.demo"],
            cwd=ROOT,
            env=child_env(database, OIDC_ISSUER=issuer),
            check=True,
            capture_output=True,
        )
        for sub, email in PEOPLE.items():
            httpx.put(
                f"{issuer}/users/{sub}", json={"email": email, "email_verified": True}, timeout=5
            )
        app = start_app(database, env={"OIDC_ISSUER": issuer})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=ARGS
            )
            try:
                yield Site(app, issuer, browser)
            finally:
                browser.close()
                app.stop()


def sign_in(site: Site, subject: str, start: str) -> Any:
    page = site.browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{site.app.base_url}{start}")
    page.fill("input[name=sub]", subject)
    page.click("button[type=submit]:has-text('Authorize')")
    return page


class Admin:
    """A super-admin's browser tab, with the gestures the admin's pages offer."""

    def __init__(self, site: Site) -> None:
        self.base = site.app.base_url
        self.page = sign_in(site, "admin", "/admin/")
        self.page.wait_for_url(f"{self.base}/admin/**")
        self.page.on("dialog", lambda dialog: dialog.accept())

    def menu(self, table_label: str) -> None:
        """Open a table from the sidebar, as a person would."""
        self.page.goto(f"{self.base}/admin/")
        # The sidebar's group headings are links too ("Feature flags"); tables link to #/...
        name = re.compile(f"^\\s*{re.escape(table_label)}\\s*$", re.IGNORECASE)
        self.page.locator("a[href^='#/']", has_text=name).first.click()
        self.page.wait_for_selector("[data-uitest=filter_button]")

    def filter(self, field: str, value: str) -> None:
        """Narrow the list with its filter sidebar, as on a table of many rows."""
        self.page.click("[data-uitest=filter_button]")
        match = self.page.locator(f".filter_wrapper select[name={field}__match]")
        if match.count():
            match.select_option("exact")
        self.page.locator(f".filter_wrapper input[name={field}]").fill(value)
        self.page.click("[data-uitest=submit_filter_button]")

    def row(self, text: str) -> Any:
        found = self.page.locator("table:not(.column_list) tbody tr", has_text=text).first
        found.wait_for()
        return found

    def open_row(self, table_label: str, link_text: str, by: str | None = None) -> None:
        self.menu(table_label)
        if by is not None:
            self.filter(by, link_text)
        self.row(link_text).locator("a").first.click()
        self.page.wait_for_selector("[data-uitest=save_button]")
        self.settled()

    def add_row(self, table_label: str) -> None:
        self.menu(table_label)
        self.page.locator("a.button", has_text=re.compile("add row", re.I)).click()
        self.page.wait_for_selector("[data-uitest=create_button]")
        self.settled()

    def settled(self) -> None:
        """Wait until the form's own requests (its schema, the row or the new row's defaults)
        are answered: values typed before they land are overwritten by them."""
        self.page.wait_for_load_state("networkidle")

    def pick(self, label: str, typed: str, choice: str) -> None:
        """A foreign-key picker: open it, type part of the name, click the match."""
        box = self.page.locator(f"label:has-text('{label}') + .key_search")
        box.locator("input[type=text]").click()
        box.locator("input[type=search]").fill(typed)
        box.locator(".results_list a", has_text=choice).first.click()

    def type_into(self, name: str, text: str) -> None:
        self.page.locator(f"input[name={name}], textarea[name={name}]").first.fill(text)

    def choose(self, name: str, value: str) -> None:
        self.page.select_option(f"select[name={name}]", value)

    def expiry(self, label: str, local_time: str) -> None:
        self.page.locator(f"label:has-text('{label}') + div input[type=datetime-local]").fill(
            local_time
        )

    def save(self) -> str:
        self.page.click("[data-uitest=save_button]")
        return self.message()

    def create(self) -> str:
        self.page.click("[data-uitest=create_button]")
        return self.message()

    def delete_row(self) -> None:
        """The row page's menu, then its Delete entry (the confirmation is accepted)."""
        self.page.click("[data-uitest=drop_down_button]")
        self.page.click("[data-uitest=delete_row_button]")

    def message(self) -> str:
        """The admin's answer to a save: its pop-up message and any errors by the form."""
        shown = self.page.locator("#message_popup, .message, .errors, ul.errors")
        shown.first.wait_for(timeout=10_000)
        time.sleep(0.3)
        return str(self.page.inner_text("#app"))


@pytest.fixture(name="admin", scope="module")
def fx_admin(site: Site) -> Admin:
    return Admin(site)


@pytest.fixture(name="uma", scope="module")
def fx_uma(site: Site) -> Any:
    page = sign_in(site, "uma", "/api/v1/auth/login?next=/")
    page.wait_for_url(f"{site.app.base_url}/")
    return page


def features(page: Any, base_url: str) -> dict[str, tuple[Any, str]]:
    """What the person's own session reads from GET /api/v1/features."""
    response = page.request.get(f"{base_url}/api/v1/features")
    assert response.status == 200, response.text()
    return {f["key"]: (f["value"], f["reason"]) for f in response.json()["flags"]}


def sees(page: Any, base_url: str, key: str, expected: tuple[Any, str] | None) -> bool:
    return bool(eventually(lambda: features(page, base_url).get(key) == expected))


def audited_by_admin(action: str, resource_id: object) -> bool:
    """An audit record of `action` on the row, with the super-admin as its actor."""
    return bool(
        query(
            "SELECT 1 FROM audit_logs a JOIN users u ON u.id = a.actor_id"
            " WHERE a.action = $1 AND a.resource_id = $2 AND u.email = $3",
            action,
            str(resource_id),
            PEOPLE["admin"],
        )
    )


def flag(key: str) -> dict[str, Any]:
    return query("SELECT * FROM feature_flags WHERE key = $1", key)[0]


TABLES = [
    "Audit Logs", "Feature Flag Overrides", "Feature Flag Rules", "Feature Flag Schedules",
    "Feature Flag Usage", "Feature Flags", "Segments", "Hierarchy Permission Overrides",
    "Organization Hierarchy", "User Hierarchy Assignments", "Users",
]  # fmt: skip
"""Every table in the sidebar."""


@pytest.mark.parametrize("table", TABLES)
def test_every_tables_list_shows_its_rows(admin: Admin, table: str) -> None:
    """A list that renders blank (a column the page cannot draw) is a broken admin page."""
    errors: list[str] = []

    def record(error: Any) -> None:
        errors.append(str(error))

    admin.page.on("pageerror", record)
    try:
        admin.menu(table)
        rows_or_none = "table:not(.column_list) tbody tr, p:has-text('No results found')"
        admin.page.locator(rows_or_none).first.wait_for(timeout=10_000)
    finally:
        admin.page.remove_listener("pageerror", record)
    assert not errors, errors


def test_a_flag_is_switched_off_and_on_in_its_edit_form(site: Site, admin: Admin, uma: Any) -> None:
    base = site.app.base_url
    assert features(uma, base)["team-sharing"] == (True, "DEFAULT")
    admin.open_row("Feature Flags", by="key", link_text="team-sharing")
    admin.choose("enabled", "false")
    admin.save()
    assert eventually(lambda: flag("team-sharing")["enabled"] is False)
    assert sees(uma, base, "team-sharing", (False, "DISABLED"))
    assert audited_by_admin("feature_flag.updated", "team-sharing")

    admin.open_row("Feature Flags", by="key", link_text="team-sharing")
    admin.choose("enabled", "true")
    admin.save()
    assert sees(uma, base, "team-sharing", (True, "DEFAULT"))


def test_rollout_is_changed_in_the_edit_form(site: Site, admin: Admin, uma: Any) -> None:
    base = site.app.base_url
    admin.open_row("Feature Flags", by="key", link_text="advanced-filters")
    admin.type_into("rollout_percentage", "100")
    admin.save()
    assert eventually(lambda: str(flag("advanced-filters")["rollout_percentage"]) == "100.00")
    assert sees(uma, base, "advanced-filters", (True, "DEFAULT"))

    admin.open_row("Feature Flags", by="key", link_text="advanced-filters")
    admin.type_into("rollout_percentage", "0")
    admin.save()
    assert sees(uma, base, "advanced-filters", (False, "DEFAULT"))


def test_a_bad_rollout_is_refused_with_a_sentence_by_the_form(admin: Admin) -> None:
    admin.open_row("Feature Flags", by="key", link_text="dark-mode")
    admin.type_into("rollout_percentage", "150")
    shown = admin.save()
    assert "Rollout Percentage field - must be within 0 and 100" in shown
    assert "{" not in shown.split("Rollout Percentage field")[1].splitlines()[0]
    assert str(flag("dark-mode")["rollout_percentage"]) == "50.00"


def test_a_flag_is_created_renamed_archived_and_unarchived(
    site: Site, admin: Admin, uma: Any
) -> None:
    base = site.app.base_url
    admin.add_row("Feature Flags")
    admin.type_into("key", "browser-made")
    admin.type_into("name", "Made in the browser")
    admin.choose("enabled", "true")
    admin.type_into("rollout_percentage", "100")
    assert "Successfully" in admin.create()
    created = eventually(lambda: query("SELECT * FROM feature_flags WHERE key = 'browser-made'"))
    admin_id = query("SELECT id FROM users WHERE email = $1", PEOPLE["admin"])[0]["id"]
    assert created[0]["created_by_id"] == admin_id
    assert sees(uma, base, "browser-made", (True, "DEFAULT"))
    assert audited_by_admin("feature_flag.created", "browser-made")

    admin.open_row("Feature Flags", by="key", link_text="browser-made")
    admin.type_into("name", "Renamed in the browser")
    admin.save()
    assert eventually(lambda: flag("browser-made")["name"] == "Renamed in the browser")

    admin.open_row("Feature Flags", by="key", link_text="browser-made")
    admin.choose("archived", "true")
    admin.save()
    assert sees(uma, base, "browser-made", None)

    admin.open_row("Feature Flags", by="key", link_text="browser-made")
    admin.choose("archived", "false")
    admin.save()
    assert sees(uma, base, "browser-made", (True, "DEFAULT"))
    assert flag("browser-made")["updated_by_id"] == admin_id


def test_a_user_override_is_added_given_an_expiry_and_deleted(
    site: Site, admin: Admin, uma: Any
) -> None:
    base = site.app.base_url
    assert features(uma, base)["custom-branding"] == (False, "DEFAULT")
    admin.add_row("Feature Flag Overrides")
    admin.pick("Flag Id", "brand", "custom-branding")
    admin.pick("User Id", "uma", "uma@acme.example")
    admin.type_into("variant", "on")
    admin.type_into("reason", "pilot for Uma")
    assert "Successfully" in admin.create()
    assert sees(uma, base, "custom-branding", (True, "TARGETING_MATCH"))
    made = query("SELECT id FROM feature_flag_overrides WHERE reason = 'pilot for Uma'")[0]["id"]
    assert audited_by_admin("feature_flag_override.created", made)

    admin.open_row("Feature Flag Overrides", "pilot for Uma")
    admin.expiry("Expires At", "2031-06-01T12:00:00")
    admin.save()
    row = eventually(
        lambda: query(
            "SELECT o.* FROM feature_flag_overrides o JOIN users u ON u.id = o.user_id"
            " WHERE u.email = $1 AND o.expires_at IS NOT NULL",
            PEOPLE["uma"],
        )
    )
    assert row[0]["expires_at"].year == 2031

    admin.open_row("Feature Flag Overrides", "pilot for Uma")
    admin.delete_row()
    assert sees(uma, base, "custom-branding", (False, "DEFAULT"))
    assert not query("SELECT 1 FROM feature_flag_overrides WHERE reason = 'pilot for Uma'")
    assert audited_by_admin("feature_flag_override.updated", made)
    assert audited_by_admin("feature_flag_override.deleted", made)


def test_a_node_override_is_added_given_an_expiry_and_deleted(
    site: Site, admin: Admin, uma: Any
) -> None:
    base = site.app.base_url
    admin.add_row("Feature Flag Overrides")
    admin.pick("Flag Id", "legacy", "legacy-charts")
    admin.pick("Node Id", "Paris", "Acme Retail / Paris")
    admin.type_into("variant", "on")
    admin.type_into("reason", "Paris keeps legacy charts")
    admin.create()
    # legacy-charts is switched off: the kill switch beats the override.
    assert sees(uma, base, "legacy-charts", (False, "DISABLED"))
    admin.open_row("Feature Flags", by="key", link_text="legacy-charts")
    admin.choose("enabled", "true")
    admin.save()
    assert sees(uma, base, "legacy-charts", (True, "TARGETING_MATCH"))

    admin.open_row("Feature Flag Overrides", "Paris keeps legacy charts")
    admin.expiry("Expires At", "2031-01-02T08:30:00")
    admin.save()
    assert eventually(
        lambda: query(
            "SELECT 1 FROM feature_flag_overrides"
            " WHERE reason = 'Paris keeps legacy charts' AND expires_at IS NOT NULL"
        )
    )

    admin.open_row("Feature Flag Overrides", "Paris keeps legacy charts")
    admin.delete_row()
    assert sees(uma, base, "legacy-charts", (False, "DEFAULT"))


def test_the_tree_is_browsed_and_a_department_created_under_a_location(admin: Admin) -> None:
    admin.menu("Organization Hierarchy")
    listing = admin.page.inner_text("table:not(.column_list)")
    assert "Acme Retail / Paris / Analytics" in listing
    assert "NULL" not in listing.replace("\tNULL\t", "")  # only roots have no parent

    admin.add_row("Organization Hierarchy")
    admin.pick("Parent Id", "Paris", "Acme Retail / Paris")
    admin.choose("level", "department")
    admin.type_into("name", "Support")
    admin.type_into("slug", "support")
    assert "Successfully" in admin.create()
    node = eventually(lambda: query("SELECT * FROM organization_hierarchy WHERE slug = 'support'"))
    assert node[0]["full_name"] == "Acme Retail / Paris / Support"
    assert len(node[0]["path"]) == 3
    assert audited_by_admin("node.created", node[0]["id"])


def me(page: Any, base_url: str) -> dict[str, Any]:
    response = page.request.get(f"{base_url}/api/v1/auth/me")
    assert response.status == 200, response.text()
    return dict(response.json())


def test_a_role_is_assigned_at_a_node(site: Site, admin: Admin, uma: Any) -> None:
    base = site.app.base_url
    admin.add_row("User Hierarchy Assignments")
    admin.pick("User Id", "Uma", "uma@acme.example")
    admin.pick("Node Id", "London / Sales", "Acme Retail / London / Sales")
    admin.choose("role", "department_lead")
    assert "Successfully" in admin.create()
    assert eventually(
        lambda: any(
            a["role"] == "department_lead" and a["node_name"] == "Sales"
            for a in me(uma, base)["assignments"]
        )
    )
    granted_by = query(
        "SELECT u.email FROM user_hierarchy_assignments a JOIN users u ON u.id = a.granted_by_id"
        " WHERE a.role = 'department_lead' AND a.user_id = (SELECT id FROM users WHERE email = $1)",
        PEOPLE["uma"],
    )
    assert granted_by == [{"email": PEOPLE["admin"]}]
    made = query("SELECT id FROM user_hierarchy_assignments WHERE role = 'department_lead'")
    assert audited_by_admin("assignment.created", made[-1]["id"])


def test_a_permission_override_is_added(site: Site, admin: Admin, uma: Any) -> None:
    base = site.app.base_url

    def permissions_at_analytics() -> list[str]:
        return next(
            a["effective_permissions"]
            for a in me(uma, base)["assignments"]
            if a["node_name"] == "Analytics"
        )

    assert "export_data" not in permissions_at_analytics()
    admin.add_row("Hierarchy Permission Overrides")
    admin.pick("User Id", "uma@", "uma@acme.example")
    admin.pick("Node Id", "Paris", "Acme Retail / Paris")
    admin.choose("permission", "export_data")
    admin.choose("granted", "true")
    admin.type_into("reason", "quarterly export")
    assert "Successfully" in admin.create()
    assert eventually(lambda: "export_data" in permissions_at_analytics())
    made = query("SELECT id FROM hierarchy_permission_overrides WHERE reason = 'quarterly export'")
    assert audited_by_admin("permission_override.created", made[0]["id"])


def test_a_users_names_and_active_flag_are_edited(site: Site, admin: Admin) -> None:
    base = site.app.base_url
    dan = sign_in(site, "dan", "/api/v1/auth/login?next=/")
    dan.wait_for_url(f"{base}/")
    admin.open_row("Users", PEOPLE["dan"], by="email")
    admin.type_into("given_name", "Daniel")
    admin.save()
    assert eventually(
        lambda: (
            query("SELECT given_name FROM users WHERE email = $1", PEOPLE["dan"])
            == [{"given_name": "Daniel"}]
        )
    )
    assert dan.request.get(f"{base}/api/v1/auth/session/check").status == 200
    dan_id = query("SELECT id FROM users WHERE email = $1", PEOPLE["dan"])[0]["id"]
    assert eventually(lambda: audited_by_admin("user.updated", dan_id))

    admin.open_row("Users", PEOPLE["dan"], by="email")
    admin.choose("is_active", "false")
    admin.save()
    assert eventually(lambda: dan.request.get(f"{base}/api/v1/auth/session/check").status == 401)
    admin.open_row("Users", PEOPLE["dan"], by="email")
    admin.choose("is_active", "true")
    admin.save()
    assert eventually(
        lambda: (
            query("SELECT is_active FROM users WHERE email = $1", PEOPLE["dan"])
            == [{"is_active": True}]
        )
    )
    # Super-admin is granted only by the audited command: the form refuses the change.
    assert "Is Super Admin field - cannot be changed here" in _try_promote(admin)
    assert query("SELECT is_super_admin FROM users WHERE email = $1", PEOPLE["dan"]) == [
        {"is_super_admin": False}
    ]


def _try_promote(admin: Admin) -> str:
    admin.open_row("Users", PEOPLE["dan"], by="email")
    admin.choose("is_super_admin", "true")
    return admin.save()


def test_the_audit_log_reads_who_changed_what_and_offers_no_writes(admin: Admin) -> None:
    admin.open_row("Feature Flags", by="key", link_text="export-pdf")
    admin.choose("enabled", "true")
    admin.save()
    assert eventually(lambda: audited_by_admin("feature_flag.updated", "export-pdf"))
    admin.menu("Audit Logs")
    admin.filter("resource_id", "export-pdf")
    listing = admin.row("enabled: false → true").inner_text()
    assert "feature_flag.updated" in listing
    assert "admin@marketedge.example" in listing
    assert admin.page.locator("a.button", has_text=re.compile("add row", re.I)).is_hidden()

    admin.page.locator("table a", has_text="feature_flag.updated").first.click()
    admin.page.wait_for_selector("h1:has-text('View')")
    assert admin.page.locator("[data-uitest=save_button]").is_hidden()
    assert admin.page.locator("[data-uitest=drop_down_button]").is_hidden()
    assert "→" in admin.page.input_value("textarea[name=changes]")


def test_a_flags_overrides_are_one_click_away(admin: Admin) -> None:
    admin.open_row("Feature Flags", by="key", link_text="beta-reports")
    admin.page.click("text=Overrides of this flag")
    admin.page.wait_for_selector("table:not(.column_list) tbody tr")
    assert "uma@acme.example" in admin.page.inner_text("table:not(.column_list)")


COLOURS = {"blue": "#00f", "green": "#0f0", "red": "#f00"}


def test_a_string_flag_with_three_variants_is_made_in_the_form(
    site: Site, admin: Admin, uma: Any
) -> None:
    base = site.app.base_url
    admin.add_row("Feature Flags")
    admin.type_into("key", "banner-colour")
    admin.type_into("name", "Banner colour")
    admin.choose("enabled", "true")
    admin.type_into("rollout_percentage", "100")
    admin.choose("flag_type", "string")
    admin.type_into("variants", json.dumps(COLOURS))
    admin.type_into("default_variant", "green")
    admin.type_into("off_variant", "blue")
    assert "Successfully" in admin.create()
    made = eventually(lambda: query("SELECT * FROM feature_flags WHERE key = 'banner-colour'"))
    assert json.loads(made[0]["variants"]) == COLOURS
    assert made[0]["flag_type"] == "string"
    assert sees(uma, base, "banner-colour", ("#0f0", "DEFAULT"))
    assert audited_by_admin("feature_flag.created", "banner-colour")
    # A weighted split of the rollout, typed into the flag's own form: all weight on red.
    admin.open_row("Feature Flags", "banner-colour", by="key")
    admin.type_into("rollout_split", json.dumps({"pink": 1}))
    assert "Rollout Split field" in admin.save()
    admin.type_into("rollout_split", json.dumps({"blue": 0, "red": 1}))
    assert "Successfully" in admin.save()
    assert sees(uma, base, "banner-colour", ("#f00", "SPLIT"))
    assert json.loads(flag("banner-colour")["rollout_split"]) == {"blue": 0, "red": 1}
    admin.open_row("Feature Flags", "banner-colour", by="key")
    admin.type_into("rollout_split", "null")
    assert "Successfully" in admin.save()
    assert sees(uma, base, "banner-colour", ("#0f0", "DEFAULT"))


def test_a_rule_on_the_organisations_plan_is_added(site: Site, admin: Admin, uma: Any) -> None:
    base = site.app.base_url
    plan = {"attribute": "organization.settings.plan", "operator": "in", "values": ["enterprise"]}
    admin.add_row("Feature Flag Rules")
    admin.pick("Flag Id", "banner", "banner-colour")
    admin.type_into("name", "enterprise-red")
    admin.type_into("position", "10")
    admin.type_into("conditions", json.dumps([{**plan, "operator": "bogus"}]))
    admin.type_into("variant", "red")
    shown = admin.create()
    assert "Conditions field - condition 1: operator 'bogus' is not one of" in shown
    admin.type_into("conditions", json.dumps([plan]))
    assert "Successfully" in admin.create()
    # Uma's organisation, Acme Retail, is on the enterprise plan.
    assert sees(uma, base, "banner-colour", ("#f00", "TARGETING_MATCH"))
    rule = query("SELECT * FROM feature_flag_rules WHERE name = 'enterprise-red'")[0]
    assert json.loads(rule["conditions"]) == [plan]
    assert audited_by_admin("feature_flag_rule.created", rule["id"])
    # Found again in the rules' list, opened by its name, and pointed at another variant.
    admin.open_row("Feature Flag Rules", "enterprise-red")
    admin.type_into("variant", "blue")
    assert "Successfully" in admin.save()
    assert sees(uma, base, "banner-colour", ("#00f", "TARGETING_MATCH"))
    assert audited_by_admin("feature_flag_rule.updated", rule["id"])


def test_a_segment_is_made_and_used_by_a_rule(site: Site, admin: Admin, uma: Any) -> None:
    base = site.app.base_url
    domain = {"attribute": "user.email_domain", "operator": "in", "values": ["acme.example"]}
    admin.add_row("Segments")
    admin.type_into("key", "acme-people")
    admin.type_into("name", "Acme people")
    admin.type_into("conditions", json.dumps([domain]))
    assert "Successfully" in admin.create()
    segment = eventually(lambda: query("SELECT * FROM segments WHERE key = 'acme-people'"))[0]
    assert audited_by_admin("segment.created", segment["id"])

    admin.add_row("Feature Flag Rules")
    admin.pick("Flag Id", "banner", "banner-colour")
    admin.type_into("name", "acme-blue")
    admin.type_into("position", "1")
    admin.pick("Segment Id", "acme", "acme-people")
    admin.type_into("conditions", "[]")
    admin.type_into("variant", "blue")
    assert "Successfully" in admin.create()
    assert sees(uma, base, "banner-colour", ("#00f", "TARGETING_MATCH"))
    rule = query("SELECT * FROM feature_flag_rules WHERE name = 'acme-blue'")[0]
    assert rule["segment_id"] == segment["id"]
    assert audited_by_admin("feature_flag_rule.created", rule["id"])


def test_an_override_names_one_of_the_flags_variants(site: Site, admin: Admin, uma: Any) -> None:
    base = site.app.base_url
    admin.add_row("Feature Flag Overrides")
    admin.pick("Flag Id", "banner", "banner-colour")
    admin.pick("User Id", "uma", "uma@acme.example")
    admin.type_into("variant", "pink")
    admin.type_into("reason", "Uma likes green")
    shown = admin.create()
    assert "Variant field - must be one of the flag's variants: blue, green, red" in shown
    admin.type_into("variant", "green")
    assert "Successfully" in admin.create()
    assert sees(uma, base, "banner-colour", ("#0f0", "TARGETING_MATCH"))
    made = query("SELECT * FROM feature_flag_overrides WHERE reason = 'Uma likes green'")[0]
    assert made["variant"] == "green"
    assert audited_by_admin("feature_flag_override.created", made["id"])


def test_a_change_is_scheduled_and_cancelled(admin: Admin) -> None:
    admin.add_row("Feature Flag Schedules")
    admin.pick("Flag Id", "banner", "banner-colour")
    admin.choose("action", "set_default_variant")
    admin.type_into("variant", "red")
    admin.expiry("Run At", "2031-03-01T09:00:00")
    admin.type_into("note", "spring campaign")
    assert "Successfully" in admin.create()
    made = eventually(
        lambda: query("SELECT * FROM feature_flag_schedules WHERE note = 'spring campaign'")
    )[0]
    assert (made["status"], made["variant"], made["run_at"].year) == ("pending", "red", 2031)
    admin_id = query("SELECT id FROM users WHERE email = $1", PEOPLE["admin"])[0]["id"]
    assert made["created_by_id"] == admin_id
    assert audited_by_admin("feature_flag_schedule.created", made["id"])

    admin.open_row("Feature Flag Schedules", "spring campaign")
    admin.choose("status", "cancelled")
    admin.save()
    assert eventually(
        lambda: (
            query("SELECT status FROM feature_flag_schedules WHERE id = $1", made["id"])
            == [{"status": "cancelled"}]
        )
    )
    assert audited_by_admin("feature_flag_schedule.cancelled", made["id"])
    assert flag("banner-colour")["default_variant"] == "green"


def test_the_stale_flags_form_answers_with_a_table(admin: Admin) -> None:
    # Arranged in the database, as the demo data is: a flag nobody evaluated for 40 days.
    query(
        "INSERT INTO feature_flags (key, name, created_at, rollout_changed_at)"
        " VALUES ('forgotten-flag', 'Forgotten', now() - interval '40 days',"
        " now() - interval '40 days') ON CONFLICT (key) DO NOTHING"
    )
    admin.page.goto(f"{admin.base}/admin/")
    admin.page.locator("a[href^='#/forms/']", has_text=re.compile("stale flags", re.I)).click()
    admin.type_into("days", "30")
    admin.page.click("[data-uitest=submit_custom_form_button]")
    answer = admin.page.locator("#success_message")
    answer.wait_for()
    lines = answer.inner_text().splitlines()
    assert lines[1].split()[:2] == ["flag", "why"]
    assert any(
        line.split()[:2] == ["forgotten-flag", "not_evaluated,"] and "rollout_settled" in line
        for line in lines[3:]
    ), lines
    assert not any(line.startswith("banner-colour") for line in lines)


def test_what_a_user_sees_is_a_table(admin: Admin) -> None:
    admin.page.goto(f"{admin.base}/admin/")
    admin.page.locator("a[href^='#/forms/']", has_text=re.compile("what a user sees", re.I)).click()
    admin.type_into("email", PEOPLE["uma"])
    admin.page.click("[data-uitest=submit_custom_form_button]")
    answer = admin.page.locator("#success_message")
    answer.wait_for()
    lines = answer.inner_text().splitlines()
    assert lines[1].split() == ["flag", "variant", "value", "reason"]
    assert any(line.split()[:2] == ["beta-reports", "on"] for line in lines[3:])


def test_the_admin_names_the_person_and_its_logout_reaches_the_provider(site: Site) -> None:
    admin = Admin(site)
    menu = admin.page.locator("[data-uitest=nav_dropdown_button]")
    assert eventually(lambda: menu.get_attribute("title") == PEOPLE["admin"])
    assert "oidc-user" not in admin.page.inner_text("#nav")
    admin.page.click("[data-uitest=nav_dropdown_button]")
    admin.page.click("[data-uitest=logout_button]")
    admin.page.wait_for_url(f"{site.issuer}/oauth2/end_session**")
    status = admin.page.request.get(f"{site.app.base_url}/api/v1/auth/session/check").status
    assert status == 401


def test_a_viewer_gets_403_from_the_admin(site: Site) -> None:
    viewer = sign_in(site, "vic", "/api/v1/auth/login?next=/")
    viewer.wait_for_url(f"{site.app.base_url}/")
    response = viewer.goto(f"{site.app.base_url}/admin/")
    assert response is not None
    assert response.status == 403
