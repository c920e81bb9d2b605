"""Effective-permission checks and GET /api/v1/auth/me at 10k and at 100k nodes.

Builds, in the embedded Postgres, 1,000 organizations x 10 locations x 10 departments
(111,000 nodes), 200,000 users, 500,000 assignments and 50,000 overrides — first a tenth of
it, measured, then the rest, measured again — and prints p50/p99 and the growth ratio.
Targets (2 cores): p99 of one check <= 2 ms; 100k/10k growth ratio <= 1.5.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from typing import Any

import asyncpg
import httpx

from bench.common import BENCH_ENV, Row, Server, bench_database, print_table

PERMISSIONS = [
    "read",
    "write",
    "delete",
    "admin",
    "manage_users",
    "manage_settings",
    "view_reports",
    "export_data",
]
ROLES = ["org_admin", "location_manager", "department_lead", "user", "viewer"]


def progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / total)
    sys.stderr.write(f"\r{label:<28} [{'#' * filled}{'.' * (width - filled)}] {done:>7,}/{total:,}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


async def grow(connection: asyncpg.Connection, orgs: range, users: range, scale: float) -> None:
    """Add organizations `orgs` (each 10 x 10) and users `users` with their share of the
    assignments (2.5 per user) and overrides (0.25 per user)."""
    # A benchmark's bulk load is not an administrative change: keep it out of the audit trail.
    await connection.execute("SELECT set_config('app.audit_by_app', 'on', false)")
    steps = 10
    chunk = max(1, len(orgs) // steps)
    total = len(orgs)
    for start in range(orgs.start, orgs.stop, chunk):
        stop = min(start + chunk, orgs.stop)
        await connection.execute(
            "INSERT INTO organization_hierarchy (level, name, slug)"
            " SELECT 'organization', 'Org ' || i, 'org-' || i FROM generate_series($1::int,"
            " $2::int) i",
            start,
            stop - 1,
        )
        await connection.execute(
            "INSERT INTO organization_hierarchy (level, name, slug, parent_id)"
            " SELECT 'location', 'Location ' || l, 'loc-' || l, o.id FROM organization_hierarchy o,"
            " generate_series(1, 10) l WHERE o.level = 'organization' AND o.slug = ANY("
            " SELECT 'org-' || i FROM generate_series($1::int, $2::int) i)",
            start,
            stop - 1,
        )
        await connection.execute(
            "INSERT INTO organization_hierarchy (level, name, slug, parent_id)"
            " SELECT 'department', 'Department ' || d, 'dep-' || d, loc.id FROM"
            " organization_hierarchy loc"
            " JOIN organization_hierarchy o ON o.id = loc.parent_id, generate_series(1, 10) d"
            " WHERE loc.level = 'location' AND o.slug = ANY(SELECT 'org-' || i FROM"
            " generate_series($1::int, $2::int) i)",
            start,
            stop - 1,
        )
        progress("organizations (x111 nodes)", stop - orgs.start, total)
    await connection.execute(
        "INSERT INTO users (oidc_issuer, oidc_subject, email)"
        " SELECT 'bench', 'user-' || i, 'user-' || i || '@bench.test' FROM"
        " generate_series($1::int, $2::int) i",
        users.start,
        users.stop - 1,
    )
    progress("users", len(users), len(users))
    max_node = await connection.fetchval("SELECT max(id) FROM organization_hierarchy")
    low, high = await connection.fetchrow(
        "SELECT min(id), max(id) FROM users WHERE oidc_issuer = 'bench' AND oidc_subject ="
        " ANY($1::text[])",
        [f"user-{users.start}", f"user-{users.stop - 1}"],
    )
    rows = int(len(users) * 2.5)
    for done in range(0, rows, rows // steps):
        await connection.execute(
            "INSERT INTO user_hierarchy_assignments (user_id, node_id, role)"
            " SELECT $1::int + floor(random() * ($2::int - $1::int + 1))::int,"
            " 1 + floor(random() * $3::int)::int, ($4::text[])[1 + floor(random() * 5)::int]"
            " FROM generate_series(1, $5::int) ON CONFLICT DO NOTHING",
            low,
            high,
            max_node,
            ROLES,
            rows // steps,
        )
        progress("assignments", done + rows // steps, rows)
    overrides = int(len(users) * 0.25)
    await connection.execute(
        "INSERT INTO hierarchy_permission_overrides (user_id, node_id, permission, granted,"
        " reason, expires_at)"
        " SELECT $1::int + floor(random() * ($2::int - $1::int + 1))::int, 1 + floor(random() *"
        " $3::int)::int,"
        " ($4::text[])[1 + floor(random() * 8)::int], random() < 0.5, 'bench',"
        " CASE WHEN random() < 0.2 THEN now() - interval '1 day' END"
        " FROM generate_series(1, $5::int) ON CONFLICT DO NOTHING",
        low,
        high,
        max_node,
        PERMISSIONS,
        overrides,
    )
    progress("overrides", overrides, overrides)
    await connection.execute("ANALYZE")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_checks(url: str, samples: int) -> list[float]:
    """Latency (ms) of one effective-permission check, the function the guards use."""
    os.environ["DATABASE_URL"] = url
    from api.hierarchy.access import check_permission
    from api.platform.db.sql import engine
    from tables.enums import Permission

    db = engine()
    db.config["dsn"] = url
    await db.start_connection_pool(min_size=1, max_size=2)
    connection = await asyncpg.connect(url)
    try:
        pairs = await connection.fetch(
            "SELECT a.user_id, CASE WHEN random() < 0.5 THEN a.node_id"
            " ELSE (SELECT id FROM organization_hierarchy OFFSET floor(random() * 1000)::int"
            " LIMIT 1) END AS node_id"
            " FROM user_hierarchy_assignments a ORDER BY random() LIMIT $1",
            samples,
        )
    finally:
        await connection.close()
    latencies = []
    for index, pair in enumerate(pairs):
        permission = Permission(PERMISSIONS[index % len(PERMISSIONS)])
        started = time.perf_counter()
        await check_permission(pair["user_id"], pair["node_id"], permission, is_super_admin=False)
        latencies.append((time.perf_counter() - started) * 1000)
    await db.close_connection_pool()
    return latencies[samples // 10 :]  # the first tenth warms caches


async def sessions_for(url: str, count: int) -> list[str]:
    from api.auth.sessions import hash_token, new_token

    connection = await asyncpg.connect(url)
    try:
        users = await connection.fetch(
            "SELECT user_id FROM (SELECT DISTINCT user_id FROM user_hierarchy_assignments) u"
            " ORDER BY random() LIMIT $1",
            count,
        )
        tokens = [new_token() for _ in users]
        await connection.executemany(
            "INSERT INTO user_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, now() +"
            " interval '1 day')",
            [(hash_token(t), u["user_id"]) for t, u in zip(tokens, users, strict=True)],
        )
    finally:
        await connection.close()
    return tokens


def measure_me(url: str, tokens: list[str]) -> list[float]:
    server = Server(url)
    latencies = []
    try:
        with httpx.Client(base_url=server.base_url) as client:
            for round_ in range(3):
                for token in tokens:
                    started = time.perf_counter()
                    response = client.get("/api/v1/auth/me", cookies={"me_session": token})
                    assert response.status_code == 200, response.text
                    if round_:
                        latencies.append((time.perf_counter() - started) * 1000)
    finally:
        server.stop()
    return latencies


def run(quick: bool = False) -> list[Row]:
    os.environ.update(BENCH_ENV)
    url = bench_database("marketedge_bench_permissions")
    scale = 0.1 if quick else 1.0
    orgs, users = int(1000 * scale), int(200_000 * scale)
    results: dict[str, dict[str, float]] = {}

    async def phase(first: bool) -> dict[str, Any]:
        connection = await asyncpg.connect(url)
        try:
            if first:
                await grow(connection, range(1, orgs // 10 + 1), range(1, users // 10 + 1), scale)
            else:
                await grow(
                    connection,
                    range(orgs // 10 + 1, orgs + 1),
                    range(users // 10 + 1, users + 1),
                    scale,
                )
            nodes = await connection.fetchval("SELECT count(*) FROM organization_hierarchy")
            counts = await connection.fetchrow(
                "SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM"
                " user_hierarchy_assignments) AS a,"
                " (SELECT count(*) FROM hierarchy_permission_overrides) AS o"
            )
        finally:
            await connection.close()
        checks = await measure_checks(url, 2200)
        tokens = await sessions_for(url, 200)
        return {"nodes": nodes, "counts": dict(counts), "checks": checks, "tokens": tokens}

    for label, first in (("small", True), ("large", False)):
        data = asyncio.run(phase(first))
        me = measure_me(url, data["tokens"])
        results[label] = {
            "nodes": data["nodes"],
            "users": data["counts"]["users"],
            "assignments": data["counts"]["a"],
            "overrides": data["counts"]["o"],
            "check_p50": statistics.median(data["checks"]),
            "check_p99": percentile(data["checks"], 0.99),
            "me_p50": statistics.median(me),
            "me_p99": percentile(me, 0.99),
        }
    small, large = results["small"], results["large"]
    rows = []
    for data in (small, large):
        name = f"permissions at {data['nodes']:,.0f} nodes"
        rows += [
            Row(name, "nodes / users", data["nodes"], f"/ {data['users']:,.0f} users"),
            Row(
                name,
                "assignments / overrides",
                data["assignments"],
                f"/ {data['overrides']:,.0f} overrides",
            ),
            Row(name, "one check p50", data["check_p50"], "ms"),
            Row(name, "one check p99", data["check_p99"], "ms", "<= 2"),
            Row(name, "GET /auth/me p50", data["me_p50"], "ms"),
            Row(name, "GET /auth/me p99", data["me_p99"], "ms"),
        ]
    rows += [
        Row(
            "permissions growth",
            "check p50 large/small",
            large["check_p50"] / small["check_p50"],
            "x",
            "<= 1.5",
        ),
        Row(
            "permissions growth",
            "check p99 large/small",
            large["check_p99"] / small["check_p99"],
            "x",
            "<= 1.5",
        ),
        Row(
            "permissions growth",
            "/me p50 large/small",
            large["me_p50"] / small["me_p50"],
            "x",
            "<= 1.5",
        ),
    ]
    return rows


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
