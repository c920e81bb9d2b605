"""Issue 21 #6: the admin's "Import flags" form, used as a person does, in Chromium.

The app serves a database of its own with the demo data. The super-admin's document is the
REST export of it, changed as staging would differ (a rollout, a rule's condition, a new
flag); it is pasted into the form's document field (a one-line input: Piccolo Admin 1.14's forms draw no
text area), dry-run, and applied with the dry run's
confirmation code, by clicks and typing only. The effects are then read back: the REST
export equals the document byte for byte, the audit rows name the admin and the document's
hash, a second apply changes nothing, a bad document or a stale code leaves everything as
it was, and prune (part of the code) archives what the document lacks.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import httpx
import pytest
from oidc_provider_mock import run_server_in_thread

from api.flags.promotion import canonical_json
from tests.e2e.test_admin_browser import ARGS, PEOPLE, Admin, Site
from tests.support.databases import fresh_database
from tests.support.env import ROOT
from tests.support.processes import child_env, run_release, start_app

pytestmark = pytest.mark.e2e
EXPORT = "/api/v1/admin/flags/export"
NEW_FLAG = "imported-banner"


def query(url: str, sql: str, *args: object) -> list[dict[str, Any]]:
    """SQL from a thread of its own: Playwright's sync API owns this thread's event loop."""

    async def run() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(url)
        try:
            return [dict(row) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


@pytest.fixture(name="url", scope="module")
def fx_url() -> str:
    url = fresh_database("import_form")
    released = run_release(url)
    assert released.returncode == 0, released.stderr
    return url


@pytest.fixture(name="site", scope="module")
def fx_site(url: str) -> Iterator[Site]:
    from playwright.sync_api import sync_playwright

    with run_server_in_thread() as provider:
        issuer = f"http://localhost:{provider.server_port}"
        subprocess.run(
            [sys.executable, "-m", "api.ops.demo"],
            cwd=ROOT,
            env=child_env(url, OIDC_ISSUER=issuer),
            check=True,
            capture_output=True,
        )
        for sub, email in PEOPLE.items():
            httpx.put(
                f"{issuer}/users/{sub}", json={"email": email, "email_verified": True}, timeout=5
            )
        app = start_app(url, env={"OIDC_ISSUER": issuer})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=ARGS
            )
            try:
                yield Site(app, issuer, browser)
            finally:
                browser.close()
                app.stop()


@pytest.fixture(name="admin", scope="module")
def fx_admin(site: Site) -> Admin:
    return Admin(site)


def export(admin: Admin) -> bytes:
    """The REST export, read with the super-admin's own session."""
    response = admin.page.request.get(f"{admin.base}{EXPORT}")
    assert response.status == 200, response.text()
    return bytes(response.body())


def flag_item(document: dict[str, Any], key: str) -> dict[str, Any]:
    return next(item for item in document["flags"] if item["key"] == key)


def staging(exported: bytes) -> dict[str, Any]:
    """The export as staging would differ: a rollout, a rule's condition, one new flag."""
    document = json.loads(exported)
    flag_item(document, "dark-mode")["rollout_percentage"] = "65.00"
    pricing = flag_item(document, "regional-pricing")
    pricing["rules"][0]["conditions"][0]["values"].append("IT")
    new = copy.deepcopy(flag_item(document, "export-pdf"))
    new.update(key=NEW_FLAG, name="Imported banner", enabled=True, description="From staging")
    new["schedules"] = []
    document["flags"] = sorted([*document["flags"], new], key=lambda item: item["key"])
    return document


def state(url: str) -> tuple[list[dict[str, Any]], int]:
    """Every flag's key and version, and how many audit rows there are."""
    flags = query(url, "SELECT key, version FROM feature_flags ORDER BY key")
    rules = query(url, "SELECT name, version FROM feature_flag_rules ORDER BY name")
    audits = query(url, "SELECT count(*) AS n FROM audit_logs")[0]["n"]
    return flags + rules, int(audits)


def open_form(admin: Admin) -> None:
    admin.page.goto(f"{admin.base}/admin/")
    admin.page.locator("a[href^='#/forms/']", has_text=re.compile("import flags", re.I)).click()
    admin.page.wait_for_selector("input[name=document]")
    admin.settled()


def submit(
    admin: Admin, document: str, *, apply: bool = False, code: str = "", prune: bool = False
) -> str:
    """Fill the form as a person does and submit it; the admin's answer (or its error)."""
    open_form(admin)
    admin.page.fill("input[name=document]", document)
    admin.choose("prune", "true" if prune else "false")
    admin.choose("apply", "true" if apply else "false")
    admin.type_into("confirmation", code)
    admin.page.click("[data-uitest=submit_custom_form_button]")
    shown = admin.page.locator("#success_message:visible, .errors li")
    shown.first.wait_for(timeout=30_000)
    return str(shown.first.inner_text())


def code_in(answer: str) -> str:
    found = re.search(r"Confirmation code: ([0-9a-f]{16})", answer)
    assert found, answer
    return found.group(1)


def test_a_document_is_dry_run_then_applied_once_with_its_code(admin: Admin, url: str) -> None:
    document = staging(export(admin))
    text = canonical_json(document).decode()
    sha = hashlib.sha256(text.encode()).hexdigest()
    before = state(url)

    dry = submit(admin, text)
    assert f"Dry run of document sha256 {sha}: nothing was written." in dry, dry
    assert "3 items would change:" in dry, dry
    assert "flag dark-mode: changed" in dry
    assert '      rollout_percentage: "50.00" -> "65.00"' in dry
    assert "rule eu-countries of flag regional-pricing: changed" in dry
    assert '"values": ["FR", "DE", "ES", "IT"]' in dry
    assert f"flag {NEW_FLAG}: created" in dry
    assert "items left alone (unchanged):" in dry
    assert "\n  flag new-dashboard\n" in dry
    assert state(url) == before  # a dry run writes nothing

    # Apply without the code, or with a made-up one: refused, nothing written.
    assert "first submit a dry run" in submit(admin, text, apply=True)
    stale = submit(admin, text, apply=True, code="0123456789abcdef")
    assert "Nothing was written: the confirmation code '0123456789abcdef'" in stale, stale
    assert state(url) == before

    code = code_in(dry)
    last_audit = query(url, "SELECT max(id) AS id FROM audit_logs")[0]["id"]
    applied = submit(admin, text, apply=True, code=code)
    assert f"Applied document sha256 {sha}" in applied, applied
    assert "3 items changed:" in applied

    # Exactly as the document says, read back through the REST export.
    assert export(admin) == canonical_json(document)
    audits = query(
        url,
        "SELECT a.action, u.email, a.actor_email, a.after->>'import_sha256' AS sha"
        " FROM audit_logs a JOIN users u ON u.id = a.actor_id WHERE a.id > $1 ORDER BY a.id",
        last_audit,
    )
    assert [row["action"] for row in audits] == [
        "feature_flag.updated",  # dark-mode's rollout
        "feature_flag.created",  # the new flag
        "feature_flag_rule.updated",  # regional-pricing's rule
    ]
    assert {(row["email"], row["actor_email"], row["sha"]) for row in audits} == {
        (PEOPLE["admin"], PEOPLE["admin"], sha)
    }
    assert len(query(url, "SELECT id FROM audit_logs WHERE id > $1", last_audit)) == 3

    # The old code no longer matches: the flags moved (nothing would change now).
    after = state(url)
    assert "is not this document's dry run" in submit(admin, text, apply=True, code=code)
    again = submit(admin, text)
    assert "Nothing would change." in again, again
    assert "Nothing changed." in submit(admin, text, apply=True, code=code_in(again))
    assert state(url) == after  # no version bump, no audit row
    assert export(admin) == canonical_json(document)


def test_a_bad_rule_is_named_and_nothing_is_written(admin: Admin, url: str) -> None:
    exported = export(admin)
    document = json.loads(exported)
    flag_item(document, "dark-mode")["rollout_percentage"] = "80.00"  # before the bad item
    flag_item(document, "regional-pricing")["rules"][0]["segment"] = "no-such-segment"
    text = json.dumps(document, indent=2)
    before = state(url)

    dry = submit(admin, text)
    sentence = (
        "flag 'regional-pricing' rule 'eu-countries': No segment named 'no-such-segment'"
        " here or in the document"
    )
    assert sentence in dry, dry
    assert sentence in submit(admin, text, apply=True, code="0123456789abcdef")
    assert state(url) == before
    assert export(admin) == exported
    not_json = submit(admin, "{not json")
    assert "The document is not JSON" in not_json, not_json


BODY_LIMIT = 1_048_576
"""MAX_REQUEST_BODY_BYTES (its default): it bounds this form's request as every body."""


def form_body_bytes(document: str) -> int:
    """The size of the request the admin's JavaScript sends (JSON.stringify of the fields)."""
    fields = {"document": document, "prune": "false", "apply": "false", "confirmation": ""}
    return len(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())


def test_a_document_filling_the_request_bound_is_read_and_one_byte_more_is_refused(
    admin: Admin, url: str
) -> None:
    exported = export(admin).decode().rstrip("\n")  # the one-line input drops line breaks
    fits = exported + " " * (BODY_LIMIT - form_body_bytes(exported))
    assert form_body_bytes(fits) == BODY_LIMIT
    before = state(url)

    answer = submit(admin, fits)
    assert "Dry run of document sha256" in answer, answer[:300]
    assert "Nothing would change." in answer
    over = submit(admin, fits + " ")
    assert "The request body is too large" in over, over[:300]
    assert state(url) == before


def test_prune_archives_what_the_document_lacks_and_is_part_of_the_code(
    admin: Admin, url: str
) -> None:
    document = json.loads(export(admin))
    document["flags"] = [item for item in document["flags"] if item["key"] != "legacy-charts"]
    text = canonical_json(document).decode()
    kept = submit(admin, text)
    assert "\n  flag legacy-charts\n" in kept.split("left alone (not in the document, kept):")[1]

    dry = submit(admin, text, prune=True)
    assert (
        "1 item would change:\n  flag legacy-charts: archived\n      archived: false -> true"
        in (dry)
    ), dry
    code = code_in(dry)
    before = state(url)
    # The code was for pruning: without prune it is not this dry run's.
    assert "is not this document's dry run" in submit(admin, text, apply=True, code=code)
    assert state(url) == before

    assert "1 item changed:" in submit(admin, text, apply=True, code=code, prune=True)
    archived = query(url, "SELECT archived FROM feature_flags WHERE key = 'legacy-charts'")
    assert archived == [{"archived": True}]  # archived, never deleted
