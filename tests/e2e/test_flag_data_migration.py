"""Boolean flags and overrides written before variants existed keep answering as before.

A database is migrated up to the last migration before variants, filled the old way (an
override's `enabled`), then the release step runs the rest; the app then serves the same
answers, now with variant names, and the old rows read as `on`/`off` everywhere.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.auth.sessions import cookie_name, hash_token, new_token
from api.flags.evaluate import in_rollout
from api.platform.config import get_settings
from tests.support.databases import fresh_database
from tests.support.env import ROOT
from tests.support.processes import child_env, run_release, start_app

pytestmark = pytest.mark.e2e
BEFORE_VARIANTS = "2026-11-25T13:18:02:439715"


async def test_boolean_flags_and_overrides_are_carried_over_to_variants() -> None:
    url = fresh_database("marketedge_before_variants")
    piccolo = str(Path(sys.executable).parent / "piccolo")
    subprocess.run(  # noqa: ASYNC221 -- the test waits for the migration, nothing else runs
        [piccolo, "migrations", "forwards", "marketedge", BEFORE_VARIANTS],
        cwd=ROOT, env=child_env(url), capture_output=True, text=True, check=True,
    )  # fmt: skip
    db = await asyncpg.connect(url)
    try:
        org = await db.fetchval(
            "INSERT INTO organization_hierarchy (level, name, slug) VALUES"
            " ('organization', 'Old Co', 'old-co') RETURNING id"
        )
        users = [
            await db.fetchval(
                "INSERT INTO users (oidc_issuer, oidc_subject, email, name) VALUES"
                " ('http://issuer.test/', $1, $2, $1) RETURNING id",
                sub,
                f"{sub}@old.example",
            )
            for sub in ("pinned-on", "pinned-off", "by-org", "by-rollout")
        ]
        for user in users:
            await db.execute(
                "INSERT INTO user_hierarchy_assignments (user_id, node_id, role, is_primary)"
                " VALUES ($1, $2, 'viewer', true)",
                user, org,
            )  # fmt: skip
        flag = await db.fetchval(
            "INSERT INTO feature_flags (key, name, enabled, rollout_percentage) VALUES"
            " ('old-flag', 'Old flag', true, 50) RETURNING id"
        )
        await db.executemany(
            "INSERT INTO feature_flag_overrides (flag_id, user_id, node_id, enabled)"
            " VALUES ($1, $2, $3, $4)",
            [(flag, users[0], None, True), (flag, users[1], None, False)],
        )
        assert run_release(url).returncode == 0
        overrides = await db.fetch(
            "SELECT user_id, variant FROM feature_flag_overrides ORDER BY user_id"
        )
        assert [(r["user_id"], r["variant"]) for r in overrides] == [
            (users[0], "on"),
            (users[1], "off"),
        ]
        migrated = await db.fetchrow(
            "SELECT flag_type, variants::text, default_variant, off_variant, rollout_split"
            " FROM feature_flags WHERE id = $1",
            flag,
        )
        assert dict(migrated) == {
            "flag_type": "boolean",
            "variants": '{"on": true, "off": false}',
            "default_variant": "on",
            "off_variant": "off",
            "rollout_split": None,
        }
        sessions = []
        for user in users:
            token = new_token()
            await db.execute(
                "INSERT INTO user_sessions (token_hash, user_id, expires_at)"
                " VALUES ($1, $2, now() + interval '1 hour')",
                hash_token(token), user,
            )  # fmt: skip
            sessions.append(token)
    finally:
        await db.close()

    app = start_app(url)
    try:
        answers = []
        for token in sessions:
            cookies = {cookie_name(get_settings()): token}
            got = httpx.get(f"{app.base_url}/api/v1/features/old-flag", cookies=cookies)
            assert got.status_code == 200, got.text
            answers.append(got.json())
    finally:
        app.stop()
    assert answers[0] == {"key": "old-flag", "value": True, "variant": "on",
                          "reason": "TARGETING_MATCH"}  # fmt: skip
    assert answers[1] == {"key": "old-flag", "value": False, "variant": "off",
                          "reason": "TARGETING_MATCH"}  # fmt: skip
    for user, answer in zip(users[2:], answers[2:], strict=True):
        inside = in_rollout("old-flag", user, Decimal(50))
        assert (answer["value"], answer["variant"], answer["reason"]) == (
            inside, "on" if inside else "off", "SPLIT")  # fmt: skip
