"""GET /api/v1/features (200 flags, 1,000 overrides) with a valid session vs the bare
endpoint in the same server, 64 connections.

Target (2 cores): features >= 0.5 x bare requests/s, p99 <= 25 ms.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from bench.common import Row, bench_database, print_table, versus_bare


async def load(url: str) -> str:
    from api.auth.sessions import hash_token, new_token

    connection = await asyncpg.connect(url)
    try:
        # A benchmark's bulk load is not an administrative change: keep it out of the audit trail.
        await connection.execute("SELECT set_config('app.audit_by_app', 'on', false)")
        users = await connection.fetch(
            "INSERT INTO users (oidc_issuer, oidc_subject, email) SELECT 'bench', 'u' || i, 'u'"
            " || i || '@bench.test'"
            " FROM generate_series(1, 1000) AS i RETURNING id"
        )
        org = await connection.fetchval(
            "INSERT INTO organization_hierarchy (level, name, slug) VALUES ('organization',"
            " 'Bench', 'bench') RETURNING id"
        )
        location = await connection.fetchval(
            "INSERT INTO organization_hierarchy (level, name, slug, parent_id) VALUES"
            " ('location', 'L', 'l', $1) RETURNING id",
            org,
        )
        await connection.execute(
            "INSERT INTO user_hierarchy_assignments (user_id, node_id, role, is_primary)"
            " SELECT id, $1, 'user', true FROM users WHERE oidc_issuer = 'bench'",
            location,
        )
        await connection.execute(
            "INSERT INTO feature_flags (key, name, enabled, rollout_percentage)"
            " SELECT 'flag-' || i, 'Flag ' || i, i % 10 <> 0, (i * 7) % 101 FROM"
            " generate_series(1, 200) AS i"
        )
        # 1,000 overrides: 800 for users (the benchmark user among them), 200 for nodes.
        await connection.execute(
            "INSERT INTO feature_flag_overrides (flag_id, user_id, enabled, reason)"
            " SELECT f.id, u.id, (f.id + u.id) % 2 = 0, 'bench' FROM"
            " (SELECT id, row_number() OVER (ORDER BY id) AS n FROM feature_flags) f"
            " JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users WHERE oidc_issuer"
            " = 'bench') u"
            " ON u.n <= 4 AND f.n <= 200"
        )
        await connection.execute(
            "INSERT INTO feature_flag_overrides (flag_id, node_id, enabled, reason)"
            " SELECT id, CASE WHEN id % 2 = 0 THEN $1::int ELSE $2::int END, id % 3 = 0, 'bench'"
            " FROM"
            " feature_flags"
            " ORDER BY id LIMIT 200",
            org,
            location,
        )
        count = await connection.fetchval("SELECT count(*) FROM feature_flag_overrides")
        assert count == 1000, count
        token = new_token()
        await connection.execute(
            "INSERT INTO user_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, now() +"
            " interval '1 day')",
            hash_token(token),
            users[0]["id"],
        )
    finally:
        await connection.close()
    return token


def run(quick: bool = False) -> list[Row]:
    url = bench_database("marketedge_bench_flags")
    token = asyncio.run(load(url))
    return versus_bare("features (200 flags)", url, "/api/v1/features", token, quick)


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
