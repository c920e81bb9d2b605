"""Costly patterns under load: does matching hold the event loop?

`python -m bench.regex [--quick]` serves a worst-case rule set at the limits (docs/FLAGS.md,
Limits): 20 flags, each with two rules whose `matches` patterns are the costliest kind the
per-pattern limit allows (`(.{1,10}){1,10}x0`, RE2 program size 925), up to the per-rule
and per-flag totals. It measures, in one run:

- in process, the time of one evaluation of every flag for `{"q": "日" * 4096}` (fresh
  random CJK text each time, so RE2's DFA cache cannot help), and
- the same load with a short `q` (matching cheap), measured in the same run, as the
  baseline the server's own queueing gives;
- against one uvicorn process, OFREP bulk requests with such contexts from 4 concurrent
  clients while a probe reads `/health` every 20 ms: the probe's p50 / p99.

Target (issue 19): `/health` p99 <= 200 ms while it runs. Exits 1 if missed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from bench.common import Row, Server, bench_database, print_table

FLAGS = 20
PATTERN = "(.{1,10}){1,10}x0"
RULE = [{"attribute": "context.q", "operator": "matches", "values": [PATTERN, PATTERN]}]
CLIENTS = 4
HEALTH_EVERY = 0.02
TARGET_HEALTH_P99_MS = 200.0


def cjk(n: int) -> str:
    return "".join(chr(random.randrange(0x4E00, 0x9FFF)) for _ in range(n))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def evaluation_ms(rounds: int) -> tuple[float, float]:
    """Mean and max time of one evaluation of the rule set, in process."""
    from decimal import Decimal

    from api.flags.conditions import compile_conditions
    from api.flags.evaluate import EvaluationContext, FlagDefinition, Rule, evaluate_flag

    flags = [
        FlagDefinition(
            id=n,
            key=f"re-{n}",
            name="re",
            enabled=True,
            rollout_percentage=Decimal(100),
            archived=False,
            version=1,
            rules=tuple(Rule(f"r{i}", compile_conditions(RULE), variant="on") for i in (1, 2)),
        )
        for n in range(FLAGS)
    ]
    now = datetime.now(UTC)
    times = []
    for _ in range(rounds):
        context = EvaluationContext(1, attributes={"q": cjk(4096)})
        started = time.perf_counter()
        for flag in flags:
            evaluate_flag(flag, context, (), now)
        times.append((time.perf_counter() - started) * 1000)
    return sum(times) / len(times), max(times)


async def load(url: str) -> tuple[str, str]:
    """One user with a session, and the worst-case flags; returns (token, csrf)."""
    from api.auth.sessions import csrf_token_for, hash_token, new_token

    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SELECT set_config('app.audit_by_app', 'on', false)")
        user = await connection.fetchval(
            "INSERT INTO users (oidc_issuer, oidc_subject, email, name)"
            " VALUES ('bench', 'r', 'r@bench.test', 'R') RETURNING id"
        )
        for n in range(FLAGS):
            flag = await connection.fetchval(
                "INSERT INTO feature_flags (key, name, enabled, rollout_percentage)"
                " VALUES ($1, 'Regex', true, 100) RETURNING id",
                f"re-{n}",
            )
            for i in (1, 2):
                await connection.execute(
                    "INSERT INTO feature_flag_rules (flag_id, name, position, conditions,"
                    " variant) VALUES ($1, $2, $3, $4::jsonb, 'on')",
                    flag,
                    f"r{i}",
                    i,
                    json.dumps(RULE),
                )
        token = new_token()
        await connection.execute(
            "INSERT INTO user_sessions (token_hash, user_id, expires_at)"
            " VALUES ($1, $2, now() + interval '1 day')",
            hash_token(token),
            user,
        )
    finally:
        await connection.close()
    return token, csrf_token_for(token)


async def drive(base_url: str, token: str, csrf: str, seconds: float, text: int) -> dict[str, Any]:
    cookies = {"me_session": token}
    headers = {"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:8000"}
    deadline = time.monotonic() + seconds
    ofrep: list[float] = []
    health: list[float] = []
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=base_url, cookies=cookies, timeout=30) as client:

        async def evaluate() -> None:
            while time.monotonic() < deadline:
                body = {"context": {"q": cjk(text)}}
                started = time.perf_counter()
                answer = await client.post("/ofrep/v1/evaluate/flags", json=body, headers=headers)
                ofrep.append((time.perf_counter() - started) * 1000)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        async def probe() -> None:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as own:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    await own.get("/health")
                    health.append((time.perf_counter() - started) * 1000)
                    await asyncio.sleep(HEALTH_EVERY)

        await asyncio.gather(probe(), *(evaluate() for _ in range(CLIENTS)))
    return {"ofrep": ofrep, "health": health, "statuses": statuses}


def main(argv: list[str] | None = None) -> bool:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    seconds = 8.0 if quick else 30.0
    mean, worst = evaluation_ms(20 if quick else 100)
    url = bench_database("bench_regex")
    token, csrf = asyncio.run(load(url))
    server = Server(url)
    try:
        baseline = asyncio.run(drive(server.base_url, token, csrf, seconds / 2, 8))
        measured = asyncio.run(drive(server.base_url, token, csrf, seconds, 4096))
    finally:
        server.stop()
    health, ofrep = measured["health"], measured["ofrep"]
    health_p99 = percentile(health, 0.99)
    rows = [
        Row(
            "regex",
            "baseline: OFREP bulk, q of 8 characters, p50",
            percentile(baseline["ofrep"], 0.5),
            "ms",
        ),
        Row("regex", "baseline: /health p99", percentile(baseline["health"], 0.99), "ms"),
        Row("regex", "one evaluation, 20 flags at the limits, mean", mean, "ms"),
        Row("regex", "one evaluation, 20 flags at the limits, max", worst, "ms"),
        Row(
            "regex",
            f"OFREP bulk, q of 4096 CJK ({len(ofrep)} requests), p50",
            percentile(ofrep, 0.5),
            "ms",
        ),
        Row("regex", "OFREP bulk under load, p99", percentile(ofrep, 0.99), "ms"),
        Row("regex", "/health while it runs, p50", percentile(health, 0.5), "ms"),
        Row(
            "regex",
            "/health while it runs, p99",
            health_p99,
            "ms",
            f"<= {TARGET_HEALTH_P99_MS:.0f} ms",
        ),
    ]
    print_table(rows)
    print(f"OFREP statuses: {measured['statuses']}")
    return health_p99 <= TARGET_HEALTH_P99_MS and set(measured["statuses"]) == {200}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
