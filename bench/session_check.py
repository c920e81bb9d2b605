"""GET /api/v1/auth/session/check with a valid session vs the bare endpoint, same server.

Target (2 cores): session check ≥ 0.5 x bare requests/s, p99 ≤ 25 ms at 64 connections.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from bench.common import Row, bench_database, print_table, versus_bare


async def make_session(url: str) -> str:
    from api.auth.sessions import hash_token, new_token

    token = new_token()
    connection = await asyncpg.connect(url)
    try:
        user = await connection.fetchval(
            "INSERT INTO users (oidc_issuer, oidc_subject, email) VALUES ('bench', 'bench',"
            " 'bench@example.test')"
            " ON CONFLICT (oidc_issuer, oidc_subject) DO UPDATE SET email = EXCLUDED.email"
            " RETURNING id"
        )
        await connection.execute(
            "INSERT INTO user_sessions (token_hash, user_id, expires_at) VALUES ($1, $2, now() +"
            " interval '1 day')",
            hash_token(token),
            user,
        )
    finally:
        await connection.close()
    return token


def run(quick: bool = False) -> list[Row]:
    url = bench_database("marketedge_bench_session")
    token = asyncio.run(make_session(url))
    return versus_bare("session check", url, "/api/v1/auth/session/check", token, quick)


if __name__ == "__main__":
    print_table(run(quick="--quick" in sys.argv))
