"""Real traffic: N users with live sessions, every request from the next user.

`python -m bench.traffic [--quick] [--users 5000] [--seconds 10]` builds a database with
N users (each assigned in a small hierarchy, a live session and a CSRF token), 200 flags
(50 of them with 3 targeting rules each: e-mail domain, organisation plan, an e-mail regex)
and 1,000 overrides, starts one uvicorn process serving the app plus the bare Litestar
endpoint, and drives each endpoint with wrk (1 thread, 64 keep-alive connections; a Lua
script rotates the session cookie per request). Every endpoint is measured for one user
and for N users, next to the bare endpoint measured in the same run and the same way.

Targets (2 cores, one web process, N = 5,000): features >= 0.5 x bare and p99 <= 25 ms;
session check >= 0.6 x bare and p99 <= 15 ms; /me >= 0.3 x bare and p99 <= 40 ms; for one
user every endpoint's p99 within 3 x bare's p99.

`--metrics-cost` instead measures what the Prometheus metrics cost: the features and
session-check endpoints for N users, served by one process switched between its metrics'
per-request work on (as deployed) and off (bench/server.py), switched every half second
during one 60 s load run per endpoint; each state's throughput is what the server answered
in it per second spent in it. Target: with metrics >= 0.95 x without.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.common import BENCH_ENV, ROOT, Server, bench_database

LUA = ROOT / "bench" / "rotate.lua"
CONNECTIONS = 64


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    body: str = ""
    min_ratio: float | None = None
    max_p99_ms: float | None = None


ENDPOINTS = [
    Endpoint("session check", "GET", "/api/v1/auth/session/check", min_ratio=0.6, max_p99_ms=15),
    Endpoint("features (200 flags)", "GET", "/api/v1/features", min_ratio=0.5, max_p99_ms=25),
    Endpoint("/me", "GET", "/api/v1/auth/me", min_ratio=0.3, max_p99_ms=40),
    Endpoint("OFREP bulk (200 flags)", "POST", "/ofrep/v1/evaluate/flags", body='{"context":{}}'),
]
ONE_USER_P99_FACTOR = 3.0


@dataclass(frozen=True)
class Measured:
    rps: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    return found


def wrk_version() -> str:
    out = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True, check=False)
    return (out.stdout + out.stderr).strip().splitlines()[0]


async def load(url: str, users: int) -> list[tuple[str, str]]:
    """N users in an organization (three locations), sessions for each, 200 flags (50 with
    3 rules each), 1,000 overrides and a few permission overrides. Returns (token, csrf) per
    user. Sessions have their event-stream key, as a login gives them, so OFREP bulk answers
    carry `eventStreams` as in production."""
    from api.auth.sessions import csrf_token_for, hash_token, new_token, stream_key_for

    connection = await asyncpg.connect(url)
    try:
        # A benchmark's bulk load is not an administrative change: keep it out of the audit trail.
        await connection.execute("SELECT set_config('app.audit_by_app', 'on', false)")
        user_ids = [
            row["id"]
            for row in await connection.fetch(
                "INSERT INTO users (oidc_issuer, oidc_subject, email, name)"
                " SELECT 'bench', 'u' || i, 'u' || i || '@bench.test', 'User ' || i"
                " FROM generate_series(1, $1::int) AS i RETURNING id",
                users,
            )
        ]
        org = await connection.fetchval(
            "INSERT INTO organization_hierarchy (level, name, slug, settings) VALUES"
            " ('organization', 'Bench', 'bench', '{\"plan\": \"growth\"}') RETURNING id"
        )
        locations = [
            await connection.fetchval(
                "INSERT INTO organization_hierarchy (level, name, slug, parent_id) VALUES"
                " ('location', $1, $2, $3) RETURNING id",
                f"Location {i}",
                f"loc-{i}",
                org,
            )
            for i in range(3)
        ]
        await connection.executemany(
            "INSERT INTO user_hierarchy_assignments (user_id, node_id, role, is_primary)"
            " VALUES ($1, $2, $3, $4)",
            [(user, locations[n % 3], "user", True) for n, user in enumerate(user_ids)]
            + [(user, org, "viewer", False) for user in user_ids[::5]],
        )
        await connection.execute(
            "INSERT INTO feature_flags (key, name, enabled, rollout_percentage)"
            " SELECT 'flag-' || i, 'Flag ' || i, i % 10 <> 0, (i * 7) % 101 FROM"
            " generate_series(1, 200) AS i"
        )
        # 1,000 overrides: 800 for four users (the one-user case among them), 200 for nodes.
        await connection.execute(
            "INSERT INTO feature_flag_overrides (flag_id, user_id, variant, reason)"
            " SELECT f.id, u, CASE WHEN (f.id + u) % 2 = 0 THEN 'on' ELSE 'off' END, 'bench'"
            " FROM feature_flags f, unnest($1::int[]) AS u",
            user_ids[:4],
        )
        await connection.execute(
            "INSERT INTO feature_flag_overrides (flag_id, node_id, variant, reason)"
            " SELECT id, ($1::int[])[1 + id % 4], CASE WHEN id % 3 = 0 THEN 'on' ELSE 'off' END,"
            " 'bench' FROM feature_flags",
            [org, *locations],
        )
        await connection.execute(
            "INSERT INTO hierarchy_permission_overrides (user_id, node_id, permission, granted,"
            " reason) SELECT u, $2::int, 'view_reports', true, 'bench' FROM unnest($1::int[]) u",
            user_ids[::10],
            org,
        )
        ruled = await connection.fetch(
            "SELECT id FROM feature_flags WHERE key = ANY($1::text[]) ORDER BY id",
            [f"flag-{i}" for i in range(4, 201, 4)],
        )
        await add_rules(url, [row["id"] for row in ruled])
        tokens = [new_token() for _ in user_ids]
        await connection.executemany(
            "INSERT INTO user_sessions (token_hash, user_id, expires_at, stream_key_hash)"
            " VALUES ($1, $2, now() + interval '1 day', $3)",
            [
                (hash_token(t), u, hash_token(stream_key_for(t)))
                for t, u in zip(tokens, user_ids, strict=True)
            ],
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return [(token, csrf_token_for(token)) for token in tokens]


RULES = (
    ("internal", [{"attribute": "user.email_domain", "operator": "in",
                   "values": ["marketedge.test", "internal.test"]}]),
    ("enterprise", [{"attribute": "organization.settings.plan", "operator": "in",
                     "values": ["enterprise", "scale"]}]),
    ("beta-testers", [{"attribute": "user.email", "operator": "matches",
                       "values": [r"^u[0-9]*7@bench\.test$"]}]),
)  # fmt: skip
"""Each flag's rules in order: the first two never match a bench user (all three are read
for most users), the regex matches one user in ten."""


async def add_rules(url: str, flag_ids: list[int]) -> None:
    """Three targeting rules on each of `flag_ids`, through the query builder."""
    from piccolo.engine.postgres import PostgresEngine

    from tables.flags import FeatureFlagRule

    FeatureFlagRule._meta.db = PostgresEngine(config={"dsn": url})
    await FeatureFlagRule.insert(
        *[
            FeatureFlagRule(
                flag_id=flag_id, position=position, name=name, conditions=conditions, variant="on"
            )
            for flag_id in flag_ids
            for position, (name, conditions) in enumerate(RULES)
        ]
    )


def wrk_command(
    server: Server, endpoint: Endpoint, sessions: Path, seconds: float, connections: int
) -> list[str]:
    """wrk with one thread and `connections` connections, a cookie per request from
    `sessions` (bench/rotate.lua prints one JSON line of results at the end)."""
    return [
        wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        f"{server.base_url}{endpoint.path}",
        "--",
        str(sessions),
        endpoint.method,
        endpoint.path,
        endpoint.body,
        BENCH_ENV["PUBLIC_URL"],
    ]


def parse_wrk(out: str) -> Measured:
    result = json.loads(out.strip().splitlines()[-1])
    return Measured(
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        p999_ms=result["p999_us"] / 1000,
        errors=result["socket_errors"] + result["status_errors"],
    )


def drive(server: Server, endpoint: Endpoint, sessions: Path, seconds: float) -> Measured:
    """One wrk run: 1 thread, 64 connections, a cookie per request from `sessions`."""
    command = wrk_command(server, endpoint, sessions, seconds, CONNECTIONS)
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


async def serve_each_once(
    server: Server, endpoint: Endpoint, sessions: list[tuple[str, str]]
) -> None:
    """Every user's request once, 64 at a time, and each answered 200: the measured run then
    sees the steady state the target is about (each user's results cached), however slow the
    machine is at first evaluations. A timed warm-up assumed a rate this machine may not
    reach, and left cold users inside the measured run."""
    limit = asyncio.Semaphore(CONNECTIONS)
    headers = {"Origin": BENCH_ENV["PUBLIC_URL"], "Content-Type": "application/json"}

    retried = 0

    async def one(client: httpx.AsyncClient, token: str, csrf: str) -> None:
        nonlocal retried
        async with limit:
            request = client.build_request(
                endpoint.method,
                endpoint.path,
                content=endpoint.body or None,
                headers={**headers, "Cookie": f"me_session={token}", "X-CSRF-Token": csrf},
            )
            try:
                answer = await client.send(request)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # A kept-alive connection the server closed as our request went out (seen
                # about once in 20,000 warm-up requests; httpx names it either way): sent
                # again once, and counted.
                retried += 1
                answer = await client.send(request)
            if answer.status_code != 200:
                raise SystemExit(f"warm-up of {endpoint.path} answered {answer.status_code}")

    pool = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=server.base_url, limits=pool, timeout=30) as client:
        await asyncio.gather(*(one(client, token, csrf) for token, csrf in sessions))
    if retried:
        print(f"warm-up of {endpoint.path}: {retried} request(s) sent again (connection closed)")


def write_sessions(path: Path, sessions: list[tuple[str, str]]) -> Path:
    """The file rotate.lua reads: one "token csrf" line per user."""
    path.write_text("".join(f"{token} {csrf}\n" for token, csrf in sessions))
    return path


def measure(users: int, seconds: float, warmup: float) -> list[tuple[str, int, Measured, Measured]]:
    """(endpoint, users, measured, bare measured in the same run) for one and for N users."""
    url = bench_database("marketedge_bench_traffic")
    sessions = asyncio.run(load(url, users))
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        files = {}
        for count in (1, users):
            files[count] = write_sessions(Path(scratch) / f"sessions-{count}.txt", sessions[:count])
        server = Server(url)
        try:
            bare_endpoint = Endpoint("bare", "GET", "/bare")
            drive(server, bare_endpoint, files[1], warmup)
            bare = {count: drive(server, bare_endpoint, files[count], seconds) for count in files}
            for endpoint in ENDPOINTS:
                for count, path in files.items():
                    asyncio.run(serve_each_once(server, endpoint, sessions[:count]))
                    drive(server, endpoint, path, warmup)
                    results.append((endpoint.name, count, drive(server, endpoint, path, seconds)))
            bare_again = drive(server, bare_endpoint, files[users], seconds)
        finally:
            server.stop()
    # The yardstick is the mean of the bare runs before and after, so drift shows less.
    yardstick = {
        1: bare[1],
        users: Measured(
            (bare[users].rps + bare_again.rps) / 2,
            (bare[users].p50_ms + bare_again.p50_ms) / 2,
            (bare[users].p99_ms + bare_again.p99_ms) / 2,
            (bare[users].p999_ms + bare_again.p999_ms) / 2,
            bare[users].errors + bare_again.errors,
        ),
    }
    rows = [("bare endpoint", count, yardstick[count], yardstick[count]) for count in files]
    rows += [(name, count, m, yardstick[count]) for name, count, m in results]
    return rows


def verdicts(name: str, users: int, one: bool, m: Measured, bare: Measured) -> tuple[str, bool]:
    """The target for this row as text, and whether the measurement meets it."""
    if name == "bare endpoint":
        return "", True
    if one:
        limit = ONE_USER_P99_FACTOR * bare.p99_ms
        return f"p99 <= {ONE_USER_P99_FACTOR:g} x bare p99 ({limit:.1f} ms)", m.p99_ms <= limit
    endpoint = next(e for e in ENDPOINTS if e.name == name)
    if endpoint.min_ratio is None or endpoint.max_p99_ms is None:
        return "", True
    ok = m.rps / bare.rps >= endpoint.min_ratio and m.p99_ms <= endpoint.max_p99_ms
    return f">= {endpoint.min_ratio:g} x bare, p99 <= {endpoint.max_p99_ms:g} ms", ok


def print_traffic_table(rows: list[tuple[str, int, Measured, Measured]]) -> bool:
    print(
        "| endpoint | users | req/s | x bare | p50 ms | p99 ms | p99.9 ms | errors | target | met |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    all_met = True
    for name, users, m, bare in sorted(rows, key=lambda r: r[1]):
        target, ok = verdicts(name, users, users == 1, m, bare)
        ok = ok and m.errors == 0
        all_met &= ok
        print(
            f"| {name} | {users:,} | {m.rps:,.0f} | {m.rps / bare.rps:.2f} | {m.p50_ms:.1f}"
            f" | {m.p99_ms:.1f} | {m.p999_ms:.1f} | {m.errors} | {target} |"
            f" {'yes' if ok else 'NO'} |"
        )
    return all_met


METRICS_COST_ENDPOINTS = ("session check", "features (200 flags)")
METRICS_COST_MIN_RATIO = 0.95
METRICS_COST_SLOT_SECONDS = 0.5
"""How long each state lasts before the switch: short against the machine's drift and its
neighbours' bursts (seconds), long against a request (a few milliseconds), so that the few
requests a switch catches in flight weigh little."""


def observed_requests(server: Server, token: str, route: str) -> float:
    """How many requests to `route` the server's request-duration histogram has counted."""
    scrape = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    scrape.raise_for_status()
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
        if sample.name == "marketedge_http_request_duration_seconds_count"
        and sample.labels.get("route") == route
    )


def scraped(server: Server, token: str, name: str) -> dict[str, float]:
    """One metric's samples from a scrape, by their labels: what the run left behind."""
    scrape = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    scrape.raise_for_status()
    return {
        ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scrape.text)
        for sample in family.samples
        if sample.name == name
    }


def switch_metrics(server: Server, on: bool) -> None:
    """Metrics' per-request work into or out of the running server (bench/server.py)."""
    state = "on" if on else "off"
    httpx.put(f"{server.base_url}/bench/metrics/{state}", timeout=10).raise_for_status()


def served(server: Server) -> dict[str, dict[str, float]]:
    """Requests the server's app answered, and seconds spent, with metrics on and off."""
    answer = httpx.get(f"{server.base_url}/bench/metrics/served", timeout=10)
    answer.raise_for_status()
    result: dict[str, dict[str, float]] = answer.json()
    return result


@dataclass(frozen=True)
class Cost:
    """One endpoint's load run, the server switched every `METRICS_COST_SLOT_SECONDS`."""

    endpoint: Endpoint
    run: Measured
    rps_on: float
    rps_off: float
    quarters: list[float]
    """The ratio (on / off) within each quarter of the run: how steady the figure is."""


def measure_metrics_cost(users: int, seconds: float, warmup: float) -> list[Cost]:
    """For N users, one wrk run per endpoint while the server's metrics are switched on
    and off every half second (on, off, off, on, ...): the throughput in each state is
    what the server answered in it, per second spent in it."""
    url = bench_database("marketedge_bench_metrics_cost")
    sessions = asyncio.run(load(url, users))
    token = secrets.token_hex(16)
    endpoints = [e for e in ENDPOINTS if e.name in METRICS_COST_ENDPOINTS]
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        path = write_sessions(Path(scratch) / "sessions.txt", sessions)
        server = Server(url, METRICS_TOKEN=token)
        try:
            for endpoint in endpoints:
                asyncio.run(serve_each_once(server, endpoint, sessions))
                drive(server, endpoint, path, warmup)
                counted = observed_requests(server, token, endpoint.path)
                command = wrk_command(server, endpoint, path, seconds, CONNECTIONS)
                slots: list[tuple[bool, dict[str, dict[str, float]]]] = []
                before = served(server)
                with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as wrk:
                    index = 0
                    while wrk.poll() is None:
                        on = index % 4 in (0, 3)
                        switch_metrics(server, on)
                        time.sleep(METRICS_COST_SLOT_SECONDS)
                        slots.append((on, served(server)))
                        index += 1
                    out = wrk.communicate()[0]
                switch_metrics(server, True)
                # The switch really is on (or off): the histogram counted exactly the
                # requests answered while it was on.
                counted = observed_requests(server, token, endpoint.path) - counted
                answered_on = slots[-1][1]["on"]["requests"] - before["on"]["requests"]
                if counted != answered_on or answered_on < users:
                    raise SystemExit(
                        f"{endpoint.path}: {counted} observed,"
                        f" {answered_on} answered with metrics on"
                    )
                cost = _cost(endpoint, parse_wrk(out), before, slots)
                print(
                    f"{endpoint.name}: {cost.rps_on:,.0f} req/s with metrics, {cost.rps_off:,.0f}"
                    f" without; by quarter {', '.join(f'{q:.3f}' for q in cost.quarters)}",
                    flush=True,
                )
                results.append(cost)
            print(
                f"  listener: {scraped(server, token, 'marketedge_listener_connected')};"
                f" cache lookups: {scraped(server, token, 'marketedge_cache_requests_total')}",
                flush=True,
            )
        finally:
            server.stop()
    return results


def _cost(
    endpoint: Endpoint,
    run: Measured,
    before: dict[str, dict[str, float]],
    slots: list[tuple[bool, dict[str, dict[str, float]]]],
) -> Cost:
    """Throughput per state from the server's counts; the first slot (wrk still connecting
    in it) and the last (wrk stopping in it) are left out."""
    rates: list[tuple[bool, float, float]] = []  # (on, requests, seconds) per slot
    previous = before
    for on, now in slots:
        state = "on" if on else "off"
        rates.append(
            (
                on,
                now[state]["requests"] - previous[state]["requests"],
                now[state]["seconds"] - previous[state]["seconds"],
            )
        )
        previous = now
    kept = rates[1:-1]
    if len(kept) < 16:  # each quarter at least one whole on, off, off, on
        raise SystemExit("--metrics-cost needs runs of at least 10 s")

    def rps(part: list[tuple[bool, float, float]], state: bool) -> float:
        return sum(r for o, r, _ in part if o is state) / sum(s for o, _, s in part if o is state)

    quarter = 4 * (len(kept) // 16)  # whole blocks: any four slots in a row hold both states
    parts = [kept[i * quarter : (i + 1) * quarter] for i in range(4)]
    quarters = [rps(part, True) / rps(part, False) for part in parts]
    on_rps, off_rps = rps(kept, True), rps(kept, False)
    return Cost(endpoint, run, on_rps, off_rps, quarters)


def print_metrics_cost_table(users: int, rows: list[Cost]) -> bool:
    print(
        "| endpoint | users | req/s with metrics | req/s without | ratio | by quarter"
        " | p99 ms (whole run) | errors | target | met |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---|---|")
    all_met = True
    for cost in rows:
        ratio = cost.rps_on / cost.rps_off
        ok = ratio >= METRICS_COST_MIN_RATIO and cost.run.errors == 0
        all_met &= ok
        print(
            f"| {cost.endpoint.name} | {users:,} | {cost.rps_on:,.0f} | {cost.rps_off:,.0f}"
            f" | {ratio:.3f} | {min(cost.quarters):.3f}-{max(cost.quarters):.3f}"
            f" | {cost.run.p99_ms:.1f} | {cost.run.errors}"
            f" | >= {METRICS_COST_MIN_RATIO:g} x without | {'yes' if ok else 'NO'} |"
        )
    return all_met


def describe_generator() -> str:
    return (
        f"load generator: {wrk_version()} ({wrk_binary()}), 1 thread, {CONNECTIONS}"
        " connections; the session cookie rotates per request"
    )


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 s per run instead of 10 s")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument(
        "--metrics-cost",
        action="store_true",
        help="compare features and session check with and without metrics, in one run",
    )
    args = parser.parse_args(argv)
    if args.metrics_cost:  # one long run per endpoint, the metrics switched within it
        seconds = args.seconds or (20.0 if args.quick else 60.0)
        print(f"{describe_generator()}; {seconds:g} s per run", flush=True)
        cost = measure_metrics_cost(args.users, seconds, warmup=2.0)
        return print_metrics_cost_table(args.users, cost)
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    print(f"{describe_generator()}; {seconds:g} s per run", flush=True)
    rows = measure(args.users, seconds, warmup=1.0 if args.quick else 2.0)
    return print_traffic_table(rows)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
