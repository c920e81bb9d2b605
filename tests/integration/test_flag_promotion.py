"""Issue 21: export, dry run and import of flag configuration, over HTTP.

The shared test database holds other tests' flags too, so each test works on flags of its
own (unique keys) and picks them out of the export.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from api.flags.promotion import MAX_FLAGS, canonical_json
from api.flags.store import flag_cache
from api.platform.db.sql import fetch
from tests.integration.test_bearer_tokens import (  # the bad provider and its app
    fx_provider,  # noqa: F401
    fx_rp,  # noqa: F401
    fx_settings,  # noqa: F401
)
from tests.support.auth import SignedIn, sign_in
from tests.support.bad_provider import BadProvider
from tests.support.data import unique

ADMIN = "/api/v1/admin"
EXPORT, IMPORT = f"{ADMIN}/flags/export", f"{ADMIN}/flags/import"
SCHEMA = json.loads(Path("docs/flags-export.schema.json").read_text())


@pytest.fixture(autouse=True)
def fresh_flag_cache() -> None:
    flag_cache.invalidate()


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def build_staging(client: httpx.AsyncClient, admin: SignedIn) -> tuple[str, str]:
    """A string flag with a segment rule, a split rule and a pending change, through REST."""
    kw: dict[str, Any] = {"cookies": admin.cookies, "headers": admin.headers()}
    segment = unique("seg")
    seg = await _ok(
        await client.post(
            f"{ADMIN}/segments",
            json={
                "key": segment,
                "name": "Example staff",
                "conditions": [
                    {"attribute": "user.email_domain", "operator": "in", "values": ["example.test"]}
                ],
            },
            **kw,
        ),
        201,
    )
    key = unique("checkout")
    await _ok(
        await client.post(
            f"{ADMIN}/feature-flags",
            json={
                "key": key,
                "name": "Checkout",
                "description": "New checkout",
                "enabled": True,
                "rollout_percentage": "40",
                "flag_type": "string",
                "variants": {"old": "v1", "new": "v2", "beta": "v3"},
                "default_variant": "new",
                "off_variant": "old",
            },
            **kw,
        ),
        201,
    )
    await _ok(
        await client.post(
            f"{ADMIN}/feature-flags/{key}/rules",
            json={"name": "staff", "position": 1, "segment_id": seg["id"], "variant": "beta"},
            **kw,
        ),
        201,
    )
    await _ok(
        await client.post(
            f"{ADMIN}/feature-flags/{key}/rules",
            json={"name": "half", "position": 2, "split": {"old": 1, "new": 1}},
            **kw,
        ),
        201,
    )
    await _ok(
        await client.post(
            f"{ADMIN}/feature-flags/{key}/schedules",
            json={
                "action": "set_rollout",
                "run_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
                "rollout_percentage": "80",
            },
            **kw,
        ),
        201,
    )
    return key, segment


def only(document: dict[str, Any], keys: set[str], segments: set[str]) -> dict[str, Any]:
    return {
        "format": document["format"],
        "flags": [f for f in document["flags"] if f["key"] in keys],
        "segments": [s for s in document["segments"] if s["key"] in segments],
    }


def renamed(document: dict[str, Any], suffix: str) -> dict[str, Any]:
    """The document as another environment would see it fresh: every key new."""
    out = copy.deepcopy(document)
    for flag in out["flags"]:
        flag["key"] += suffix
        for rule in flag["rules"]:
            if rule["segment"]:
                rule["segment"] += suffix
    for segment in out["segments"]:
        segment["key"] += suffix
    return out


async def post_import(
    client: httpx.AsyncClient, admin: SignedIn, document: Any, **params: str
) -> httpx.Response:
    body = document if isinstance(document, bytes) else canonical_json(document)
    return await client.post(
        IMPORT,
        content=body,
        params=params,
        cookies=admin.cookies,
        headers={**admin.headers(), "Content-Type": "application/json"},
    )


async def audit_count() -> int:
    return int((await fetch("SELECT count(*) AS n FROM audit_logs"))[0]["n"])


async def test_an_export_is_canonical_schema_valid_and_leaves_out_ids_and_user_overrides(
    client: httpx.AsyncClient,
) -> None:
    admin = await sign_in(super_admin=True)
    key, segment = await build_staging(client, admin)
    first = await client.get(EXPORT, cookies=admin.cookies)
    second = await client.get(EXPORT, cookies=admin.cookies)
    assert first.status_code == 200, first.text
    assert first.content == second.content
    document = first.json()
    jsonschema.validate(document, SCHEMA)
    assert canonical_json(document) == first.content
    flag = next(f for f in document["flags"] if f["key"] == key)
    assert [r["name"] for r in flag["rules"]] == ["staff", "half"]
    assert flag["rules"][0]["segment"] == segment
    assert flag["schedules"][0]["action"] == "set_rollout"
    assert flag["rollout_percentage"] == "40.00"
    text = first.text
    for leaked in ('"id"', '"version"', '"created_at"', '"updated_at"', '"user_id"'):
        assert leaked not in text
    assert "node_overrides" not in flag
    schema = await client.get("/api/v1/schemas/flags-export.json")
    assert schema.status_code == 200
    assert schema.json() == SCHEMA


async def test_node_overrides_are_exported_by_path_only_when_asked(
    client: httpx.AsyncClient,
) -> None:
    from tests.support.data import make_tree

    admin = await sign_in(super_admin=True)
    tree = await make_tree()
    key, _ = await build_staging(client, admin)
    await fetch(
        "INSERT INTO feature_flag_overrides (flag_id, node_id, variant)"
        " SELECT id, $2, 'beta' FROM feature_flags WHERE key = $1",
        key,
        tree.dept_a1,
    )
    document = (
        await client.get(EXPORT, params={"include": "node_overrides"}, cookies=admin.cookies)
    ).json()
    jsonschema.validate(document, SCHEMA)
    flag = next(f for f in document["flags"] if f["key"] == key)
    (override,) = flag["node_overrides"]
    assert override["node"].count("/") == 2
    assert override["variant"] == "beta"
    assert "node_id" not in json.dumps(override)


async def test_a_document_imported_under_new_keys_recreates_it_and_twice_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    admin = await sign_in(super_admin=True)
    key, segment = await build_staging(client, admin)
    exported = (await client.get(EXPORT, cookies=admin.cookies)).json()
    document = renamed(only(exported, {key}, {segment}), "-prod")
    before = await audit_count()
    dry = await _ok(await post_import(client, admin, document, dry_run="true"))
    assert dry["dry_run"]
    assert not dry["applied"]
    kinds = sorted((c["kind"], c["action"]) for c in dry["changes"])
    assert kinds == [
        ("flag", "created"),
        ("rule", "created"),
        ("rule", "created"),
        ("schedule", "created"),
        ("segment", "created"),
    ]
    assert await audit_count() == before  # a dry run writes nothing
    assert not await fetch("SELECT 1 FROM feature_flags WHERE key = $1", key + "-prod")

    applied = await _ok(await post_import(client, admin, document))
    assert [c["kind"] for c in applied["changes"]] == [c["kind"] for c in dry["changes"]]
    rows = await fetch(
        "SELECT action, actor_id, after::jsonb ->> 'import_sha256' AS sha FROM audit_logs"
        " ORDER BY id DESC LIMIT 5"
    )
    digest = hashlib.sha256(canonical_json(document)).hexdigest()
    assert {(r["actor_id"], r["sha"]) for r in rows} == {(admin.user_id, digest)}
    assert applied["document_sha256"] == digest

    again_before = await audit_count()
    versions = await fetch("SELECT version FROM feature_flags WHERE key = $1", key + "-prod")
    again = await _ok(await post_import(client, admin, document))
    assert again["changes"] == []
    assert await audit_count() == again_before
    assert (
        await fetch("SELECT version FROM feature_flags WHERE key = $1", key + "-prod") == versions
    )

    # The copy exports exactly as the original, keys aside.
    reexported = (await client.get(EXPORT, cookies=admin.cookies)).json()
    assert only(reexported, {key + "-prod"}, {segment + "-prod"}) == document


async def test_a_changed_rollout_and_a_changed_rule_are_exactly_two_changes(
    client: httpx.AsyncClient,
) -> None:
    admin = await sign_in(super_admin=True)
    key, segment = await build_staging(client, admin)
    document = only((await client.get(EXPORT, cookies=admin.cookies)).json(), {key}, {segment})
    document["flags"][0]["rollout_percentage"] = "55.00"
    document["flags"][0]["rules"][1]["split"] = {"old": 3, "new": 1}
    dry = await _ok(await post_import(client, admin, document, dry_run="true"))
    assert [(c["kind"], c["key"], c["fields"]) for c in dry["changes"]] == [
        (
            "flag",
            key,
            {"rollout_percentage": {"before": "40.00", "after": "55.00"}},
        ),
        (
            "rule",
            "half",
            {"split": {"before": {"old": 1, "new": 1}, "after": {"old": 3, "new": 1}}},
        ),
    ]
    (row,) = await fetch("SELECT rollout_percentage FROM feature_flags WHERE key = $1", key)
    assert str(row["rollout_percentage"]) == "40.00"  # a dry run writes nothing


async def test_one_bad_rule_leaves_everything_untouched_and_names_the_rule(
    client: httpx.AsyncClient,
) -> None:
    admin = await sign_in(super_admin=True)
    key, segment = await build_staging(client, admin)
    document = renamed(
        only((await client.get(EXPORT, cookies=admin.cookies)).json(), {key}, {segment}), "-b"
    )
    document["flags"][0]["rules"][1]["split"] = {"nonexistent": 1}
    before = await audit_count()
    refused = await post_import(client, admin, document)
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["extra"]["flag"] == key + "-b"
    assert body["extra"]["rule"] == "half"
    assert "half" in body["detail"]
    assert await audit_count() == before
    assert not await fetch("SELECT 1 FROM feature_flags WHERE key = $1", key + "-b")
    assert not await fetch("SELECT 1 FROM segments WHERE key = $1", segment + "-b")


async def test_prune_archives_flags_missing_from_the_document_and_deletes_nothing(
    client: httpx.AsyncClient,
) -> None:
    admin = await sign_in(super_admin=True)
    key, segment = await build_staging(client, admin)
    exported = (await client.get(EXPORT, cookies=admin.cookies)).json()
    document = only(exported, {key}, {segment})
    others = {f["key"] for f in exported["flags"]} - {key}
    kept = await _ok(await post_import(client, admin, document, dry_run="true"))
    assert {a["key"] for a in kept["left_alone"] if a["reason"] == "not_in_document"} >= others
    count = (await fetch("SELECT count(*) AS n FROM feature_flags"))[0]["n"]
    pruned = await _ok(await post_import(client, admin, document, prune="true"))
    archived = {c["key"] for c in pruned["changes"] if c["action"] == "archived"}
    assert archived == others
    assert (await fetch("SELECT count(*) AS n FROM feature_flags"))[0]["n"] == count
    live = await fetch("SELECT key FROM feature_flags WHERE NOT archived")
    assert [r["key"] for r in live] == [key]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(format=2), "format"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["flags"].append(d["flags"][0]), "twice"),
        (lambda d: d.update(flags=[d["flags"][0]] * (MAX_FLAGS + 1)), "limit"),
    ],
    ids=["unknown format", "unknown field", "a flag twice", "too many flags"],
)
async def test_a_malformed_document_is_a_422_before_anything_is_written(
    client: httpx.AsyncClient, mutate: Any, needle: str
) -> None:
    admin = await sign_in(super_admin=True)
    key, segment = await build_staging(client, admin)
    document = only((await client.get(EXPORT, cookies=admin.cookies)).json(), {key}, {segment})
    mutate(document)
    refused = await post_import(client, admin, document)
    assert refused.status_code == 422, refused.text
    assert needle in refused.text


async def test_people_who_are_not_super_admins_may_neither_export_nor_import(
    client: httpx.AsyncClient,
) -> None:
    person = await sign_in()
    assert (await client.get(EXPORT, cookies=person.cookies)).status_code == 403
    refused = await post_import(client, person, {"format": 1, "flags": [], "segments": []})
    assert refused.status_code == 403
    assert (await client.get(EXPORT)).status_code == 401


# ---- machine clients (CI) ------------------------------------------------------------------


async def test_machine_clients_export_with_flags_read_and_import_with_flags_write(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    """ci-deployer may use flags:read and flags:write, reporting only flags:read
    (test_bearer_tokens.SERVICES); scopes come from `scope` or Auth0's `permissions`."""

    def bearer(client: str, **claims: Any) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {provider.sign(provider.client_claims(client, **claims))}"
        }

    key = unique("ci")
    document = {
        "format": 1,
        "segments": [],
        "flags": [
            {
                "key": key,
                "name": "CI",
                "description": "",
                "type": "boolean",
                "variants": {"on": True, "off": False},
                "default_variant": "on",
                "off_variant": "off",
                "enabled": True,
                "rollout_percentage": "10.00",
                "rollout_split": None,
                "rules": [],
                "schedules": [],
            }
        ],
    }
    body = canonical_json(document)
    json_type = {"Content-Type": "application/json"}
    reader = bearer("reporting", scope="flags:read")
    writer = bearer("ci-deployer", permissions=["flags:read", "flags:write"])
    unscoped = bearer("ci-deployer", scope="openid")

    assert (await rp.get(EXPORT, headers=reader)).status_code == 200
    assert (await rp.get(EXPORT, headers=writer)).status_code == 200
    assert (await rp.get(EXPORT, headers=unscoped)).status_code == 403
    for headers in (reader, unscoped):
        refused = await rp.post(IMPORT, content=body, headers={**headers, **json_type})
        assert refused.status_code == 403, refused.text
    assert not await fetch("SELECT 1 FROM feature_flags WHERE key = $1", key)
    dry = await rp.post(
        IMPORT, content=body, params={"dry_run": "true"}, headers={**writer, **json_type}
    )
    assert dry.status_code == 200, dry.text
    applied = await rp.post(IMPORT, content=body, headers={**writer, **json_type})
    assert applied.status_code == 200, applied.text
    (row,) = await fetch(
        "SELECT actor_id, actor_email, after::jsonb ->> 'import_sha256' AS sha FROM audit_logs"
        " WHERE action = 'feature_flag.created' AND resource_id = $1",
        key,
    )
    assert row["actor_id"] is None
    assert row["actor_email"] == "client:ci-deployer"
    assert row["sha"] == hashlib.sha256(body).hexdigest()
    (flag,) = await fetch("SELECT created_by_id FROM feature_flags WHERE key = $1", key)
    assert flag["created_by_id"] is None


def readme_ci_job() -> dict[str, Any]:
    """The CI job of README's "Promoting flags between environments", as YAML."""
    readme = Path("README.md").read_text()
    section = readme[readme.index("### Promoting flags between environments") :]
    block = section[
        section.index("```yaml\n") + 8 : section.index("\n```", section.index("```yaml"))
    ]
    job: dict[str, Any] = yaml.safe_load(block)
    return job


def curl_request(command: str) -> tuple[str, str, bool]:
    """Method, path and query, and whether it sends flags.json, of a step's one curl."""
    command = command.replace("\\\n", " ")
    (url,) = re.findall(r'"\$[A-Z_]+_URL(/[^"]+)"', command)
    method = "POST" if "-X POST" in command else "GET"
    return method, url, "--data-binary @flags.json" in command


async def test_the_readme_ci_job_promotes_with_the_real_endpoints(
    rp: httpx.AsyncClient, provider: BadProvider
) -> None:
    steps = readme_ci_job()["jobs"]["promote"]["steps"]
    requests = [curl_request(step["run"]) for step in steps]
    assert requests == [
        ("GET", "/api/v1/admin/flags/export", False),
        ("POST", "/api/v1/admin/flags/import?dry_run=true", True),
        ("POST", "/api/v1/admin/flags/import", True),
    ]
    token = provider.sign(provider.client_claims("ci-deployer", scope="flags:read flags:write"))
    auth = {"Authorization": f"Bearer {token}"}
    flags_json = b""
    for method, url, sends in requests:
        if sends:
            answer = await rp.post(
                url, content=flags_json, headers={**auth, "Content-Type": "application/json"}
            )
        else:
            answer = await rp.request(method, url, headers=auth)
        assert answer.status_code == 200, answer.text
        if method == "GET":
            flags_json = answer.content
        else:
            assert answer.json()["changes"] == []  # staging and production are one here


async def test_a_document_at_the_flag_bound_dry_runs_within_the_request_budget(
    client: httpx.AsyncClient,
) -> None:
    """MAX_FLAGS boolean flags, each with one rule (407 kB): measured 7.2 s on the 2-core
    development machine (dry run), under a 1 MiB body; one more flag is a 422."""
    import time

    admin = await sign_in(super_admin=True)
    prefix = unique("bound")
    flag = {
        "name": "Bound",
        "description": "",
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "default_variant": "on",
        "off_variant": "off",
        "enabled": True,
        "rollout_percentage": "50.00",
        "rollout_split": None,
        "schedules": [],
        "rules": [
            {
                "name": "staff",
                "position": 0,
                "conditions": [
                    {"attribute": "user.email_domain", "operator": "in", "values": ["x.test"]}
                ],
                "segment": None,
                "variant": "on",
                "split": None,
            }
        ],
    }
    document = {
        "format": 1,
        "segments": [],
        "flags": [{"key": f"{prefix}-{i:04d}", **flag} for i in range(MAX_FLAGS)],
    }
    body = canonical_json(document)
    assert len(body) < 1_048_576
    started = time.perf_counter()
    dry = await _ok(await post_import(client, admin, body, dry_run="true"))
    elapsed = time.perf_counter() - started
    print(f"dry run of {MAX_FLAGS} flags, {len(body)} bytes: {elapsed:.1f} s")
    assert len(dry["changes"]) == 2 * MAX_FLAGS
    assert elapsed < 60
    assert not await fetch("SELECT 1 FROM feature_flags WHERE key LIKE $1", prefix + "%")
    document["flags"].append({"key": f"{prefix}-over", **flag})
    assert (await post_import(client, admin, document)).status_code == 422
