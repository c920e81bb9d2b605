"""Mixed traffic for a while: session check, features and /me at 64 connections, plus one
admin write per second. Zero errors and resident-memory growth under 10 % are the targets.

    python -m bench.soak [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time

import asyncpg
import httpx
import psutil

from bench.common import ROOT, Row, Server, bench_database, print_table
from bench.flags import load


async def admin_session(url: str) -> tuple[str, str]:
    from api.auth.sessions import csrf_token_for, hash_token, new_token

    token = new_token()
    connection = await asyncpg.connect(url)
    try:
        admin = await connection.fetchval(
            "INSERT INTO users (oidc_issuer, oidc_subject, email, is_super_admin)"
            " VALUES ('bench', 'soak-admin', 'soak-admin@bench.test', true) RETURNING id"
        )
        await connection.execute(
            "INSERT INTO user_sessions (token_hash, user_id, expires_at)"
            " VALUES ($1, $2, now() + interval '1 day')",
            hash_token(token),
            admin,
        )
    finally:
        await connection.close()
    return token, csrf_token_for(token)


def run(seconds: float = 60.0) -> list[Row]:
    url = bench_database("marketedge_bench_soak")
    user_token = asyncio.run(load(url))
    admin_token, csrf = asyncio.run(admin_session(url))
    server = Server(url)
    process = psutil.Process(server.pid)
    writes = {"ok": 0, "failed": 0}
    stop = threading.Event()

    def admin_writes() -> None:
        with httpx.Client(base_url=server.base_url, cookies={"me_session": admin_token}) as client:
            headers = {"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:8000"}
            while not stop.is_set():
                flag = client.get("/api/v1/admin/feature-flags/flag-1").json()
                response = client.patch(
                    "/api/v1/admin/feature-flags/flag-1",
                    json={"version": flag["version"], "enabled": not flag["enabled"]},
                    headers=headers,
                )
                writes["ok" if response.status_code == 200 else "failed"] += 1
                stop.wait(1.0)

    paths = ["/api/v1/auth/session/check", "/api/v1/features", "/api/v1/auth/me"]
    try:
        warm = [
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.load",
                    server.base_url + p,
                    "--seconds",
                    "3",
                    "--connections",
                    "8",
                    "--warmup",
                    "0",
                    "--headers",
                    json.dumps({"Cookie": f"me_session={user_token}"}),
                ],
                cwd=ROOT,
                capture_output=True,
                check=True,
            )
            for p in paths
        ]
        assert warm
        rss_start = process.memory_info().rss
        writer = threading.Thread(target=admin_writes)
        writer.start()
        loads = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.load",
                    server.base_url + path,
                    "--seconds",
                    str(seconds),
                    "--connections",
                    str(connections),
                    "--warmup",
                    "0",
                    "--headers",
                    json.dumps({"Cookie": f"me_session={user_token}"}),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for path, connections in zip(paths, (22, 21, 21), strict=True)
        ]
        outputs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in loads]
        stop.set()
        writer.join()
        time.sleep(0.5)
        rss_end = process.memory_info().rss
    finally:
        stop.set()
        server.stop()
    rows = [
        Row("soak", f"{path} req/s", out["rps"], f"req/s, p99 {out['p99_ms']:.1f} ms")
        for path, out in zip(paths, outputs, strict=True)
    ]
    errors = sum(out["errors"] for out in outputs) + writes["failed"]
    growth = (rss_end - rss_start) / rss_start * 100
    rows += [
        Row("soak", "duration", seconds, "s at 64 connections"),
        Row("soak", "admin writes (1/s)", writes["ok"], "ok"),
        Row("soak", "errors", errors, "", "0"),
        Row(
            "soak", "resident memory start / end", rss_start / 2**20, f"/ {rss_end / 2**20:.1f} MiB"
        ),
        Row("soak", "resident memory growth", growth, "%", "< 10"),
    ]
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    print_table(run(parser.parse_args().seconds))
