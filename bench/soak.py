"""Mixed traffic for a while: session check, features and /me driven together by wrk
(64 connections in all, every request from the next of N users), plus one admin flag write
per second, which empties every user's evaluated flags. Zero errors and resident-memory
growth under 10 % are the targets.

    python -m bench.soak [--seconds 60] [--users 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from bench.common import Row, Server, admin_session, bench_database, flip_flag, print_table
from bench.traffic import (
    ENDPOINTS,
    describe_generator,
    drive,
    load,
    parse_wrk,
    write_sessions,
    wrk_command,
)

SOAKED = ("session check", "features (200 flags)", "/me")
CONNECTIONS = (22, 21, 21)


def run(seconds: float = 60.0, users: int = 1000) -> list[Row]:
    url = bench_database("marketedge_bench_soak")
    sessions = asyncio.run(load(url, users))
    admin_token, csrf = asyncio.run(admin_session(url))
    endpoints = [e for e in ENDPOINTS if e.name in SOAKED]
    server = Server(url)
    process = psutil.Process(server.pid)
    writes = {"ok": 0, "failed": 0}
    stop = threading.Event()

    def admin_writes() -> None:
        with httpx.Client(base_url=server.base_url, cookies={"me_session": admin_token}) as client:
            while not stop.is_set():
                writes["ok" if flip_flag(client, csrf).ok else "failed"] += 1
                stop.wait(1.0)

    try:
        with tempfile.TemporaryDirectory() as scratch:
            rotation = write_sessions(Path(scratch) / "sessions.txt", sessions)
            for endpoint in endpoints:  # every user served once before memory is measured
                drive(server, endpoint, rotation, 2.0 + users / 500)
            rss_start = process.memory_info().rss
            writer = threading.Thread(target=admin_writes)
            writer.start()
            runs = [
                subprocess.Popen(
                    wrk_command(server, endpoint, rotation, seconds, connections),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for endpoint, connections in zip(endpoints, CONNECTIONS, strict=True)
            ]
            measured = [parse_wrk(run.communicate()[0]) for run in runs]
        stop.set()
        writer.join()
        time.sleep(0.5)
        rss_end = process.memory_info().rss
    finally:
        stop.set()
        server.stop()
    rows = [
        Row("soak", f"{e.name} req/s", m.rps, f"req/s, p99 {m.p99_ms:.1f} ms")
        for e, m in zip(endpoints, measured, strict=True)
    ]
    errors = sum(m.errors for m in measured) + writes["failed"]
    growth = (rss_end - rss_start) / rss_start * 100
    rows += [
        Row("soak", "duration", seconds, f"s at {sum(CONNECTIONS)} connections, {users:,} users"),
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
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    print(describe_generator(), flush=True)
    print_table(run(args.seconds, args.users))
