"""OFREP event streams at scale: N streams on one process, fan-out, replicas, the refetch storm.

`python -m bench.streams [--quick] [--streams 10000] [--replica-streams 1000]` builds the
database of bench.traffic (N users, each with a live session; 200 flags, 50 with rules),
starts one uvicorn process with the production protocol and limits (MAX_CONNECTIONS and
EVENT_STREAMS_MAX raised to hold N streams: every open stream holds one of MAX_CONNECTIONS),
and measures, in one run:

1. memory per stream: (server RSS with N streams open - RSS before) / N, every user's
   flags already evaluated and cached before, so only the streams are counted;
2. fan-out: a flag change through the admin REST API (super-admin), then the time from the
   PATCH being sent to each of the N clients reading its `refetchEvaluation` event;
3. `/api/v1/features` throughput (wrk, as bench.traffic drives it) with the N streams open,
   against the same run before they were opened;
4. two replicas on one database: a change written through one reaches streams held on the
   other (the first process's streams closed first, so the figure is the replica's);
5. the refetch storm: on the next change every client re-POSTs its OFREP bulk request at
   once (`?flagConfigEtag=` and `If-None-Match`, as the official web provider does), over a
   pool of keep-alive connections; commit to each refetch answered, errors, and whether
   /health/ready (polled every 50 ms) answered 503 meanwhile.

The clients are bench/stream_client.py processes (raw asyncio streams on uvloop, one HTTP/1.1
connection per stream), on the same machine, so times are compared on one wall clock.

Targets (issue 22): memory <= 20 KiB per stream; fan-out p99 <= 1 s; features with streams
>= 0.9 x without; replica p99 <= 1 s; storm p99 <= 2 s with no errors and no 503.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import psutil

from bench.common import BENCH_ENV, ROOT, Flip, Server, admin_session, bench_database, flip_flag
from bench.traffic import ENDPOINTS, Measured, describe_generator, drive, load, serve_each_once
from bench.traffic import write_sessions as write_wrk_sessions

FEATURES = next(e for e in ENDPOINTS if e.path == "/api/v1/features")
STREAMS_PER_CLIENT = 5_000
"""Streams held by one client process (each is one socket there: keep under ulimit -n)."""
REFETCH_CONNECTIONS = 512
"""Keep-alive connections the storm's refetches share, over all client processes. A server
holding 10,000 streams cannot also take 10,000 new connections under a 20,000 fd limit;
browsers would each bring one, a proxy in front pools them like this."""
SPARE_CONNECTIONS = 2_000
"""MAX_CONNECTIONS above the streams: wrk's, the refetch pool, the health poller."""
READY_POLL_SECONDS = 0.05
METRICS_TOKEN = secrets.token_hex(16)
"""/metrics answers 404 in production without METRICS_TOKEN: the open-stream gauge is read."""

MEMORY_TARGET_KIB = 20.0
FAN_OUT_TARGET_MS = 1_000.0
THROUGHPUT_TARGET = 0.9
REPLICA_TARGET_MS = 1_000.0
STORM_TARGET_MS = 2_000.0


class Clients:
    """Stream-client processes sharing `sessions`; a command goes to each, and each answers."""

    def __init__(self, sessions: list[tuple[str, str]], scratch: Path, name: str) -> None:
        count = max(1, math.ceil(len(sessions) / STREAMS_PER_CLIENT))
        per = math.ceil(len(sessions) / count)
        self.processes: list[subprocess.Popen[str]] = []
        for n in range(count):
            share = sessions[n * per : (n + 1) * per]
            path = write_wrk_sessions(scratch / f"{name}-{n}.txt", share)
            self.processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.stream_client",
                        str(path),
                        BENCH_ENV["PUBLIC_URL"],
                        str(REFETCH_CONNECTIONS // count),
                    ],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )

    def command(self, **command: Any) -> list[dict[str, Any]]:
        line = json.dumps(command) + "\n"
        for process in self.processes:
            stdin: TextIO = process.stdin  # type: ignore[assignment]
            stdin.write(line)
            stdin.flush()
        answers = []
        for process in self.processes:
            stdout: TextIO = process.stdout  # type: ignore[assignment]
            answer = stdout.readline()
            if not answer:
                raise RuntimeError(f"a stream client ended during {command['cmd']}")
            answers.append(json.loads(answer))
        return answers

    def total(self, key: str, **command: Any) -> int:
        return sum(int(answer[key]) for answer in self.command(**command))

    def stop(self) -> None:
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def open_streams(server: Server) -> float:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    scrape = httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=10).text
    for line in scrape.splitlines():
        if line.startswith("marketedge_event_streams_open "):
            return float(line.split()[1])
    return 0.0


def wait_for_streams(server: Server, count: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while open_streams(server) != count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{open_streams(server):.0f} streams open, {count} expected")
        time.sleep(0.2)


@dataclass
class Spread:
    """Milliseconds from a change's PATCH being sent, over the clients; `missing` had none."""

    values: list[float]
    missing: int

    @classmethod
    def of(cls, flip: Flip, times: list[float], missing: int) -> Spread:
        return cls([(t - flip.sent) * 1000 for t in times], missing)

    def p(self, q: float) -> float:
        return percentile(self.values, q) if self.values else math.inf

    def text(self) -> str:
        return (
            f"p50 {self.p(50):,.0f} ms, p99 {self.p(99):,.0f} ms, max {self.p(100):,.0f} ms"
            f" ({len(self.values):,} received, {self.missing} missing)"
        )


class ReadinessPoll:
    """GET /health/ready every READY_POLL_SECONDS in a thread, counting the answers."""

    def __init__(self, server: Server) -> None:
        self.statuses: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(server.base_url,))
        self._thread.start()

    def _run(self, base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=5) as client:
            while not self._stop.is_set():
                try:
                    status = str(client.get("/health/ready").status_code)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self._stop.wait(READY_POLL_SECONDS)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.statuses


@dataclass
class Result:
    streams: int
    replica_streams: int
    wrk_users: int
    rss_before: int
    rss_with: int
    without: Measured
    with_streams: Measured
    fan_out: Spread
    fan_out_patch_ms: float
    replica: Spread
    storm: Spread
    storm_errors: int
    storm_resent: int
    storm_statuses: dict[int, int]
    ready: dict[str, int]


def measure(streams: int, replica_streams: int, wrk_users: int, seconds: float) -> Result:
    url = bench_database("marketedge_bench_streams")
    sessions = asyncio.run(load(url, max(streams, wrk_users, replica_streams)))
    admin_token, csrf = asyncio.run(admin_session(url))
    env = {
        "MAX_CONNECTIONS": str(streams + SPARE_CONNECTIONS),
        "EVENT_STREAMS_MAX": str(streams),
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    server = Server(url, **env)
    process = psutil.Process(server.pid)
    admin = httpx.Client(base_url=server.base_url, cookies={"me_session": admin_token}, timeout=30)
    try:
        with tempfile.TemporaryDirectory() as scratch_dir:
            scratch = Path(scratch_dir)
            rotation = write_wrk_sessions(scratch / "wrk.txt", sessions[:wrk_users])
            asyncio.run(serve_each_once(server, FEATURES, sessions[:wrk_users]))
            drive(server, FEATURES, rotation, 2.0)
            without = drive(server, FEATURES, rotation, seconds)

            print(f"opening {streams:,} streams ...", file=sys.stderr, flush=True)
            clients = Clients(sessions[:streams], scratch, "streams")
            try:
                bulked = clients.total("ok", cmd="bulk", port=server.port, connections=16)
                if bulked != streams:
                    raise RuntimeError(f"{streams - bulked} bulk requests failed")
                time.sleep(1.0)
                rss_before = process.memory_info().rss
                opened = clients.total("open", cmd="open", port=server.port)
                if opened != streams:
                    raise RuntimeError(f"{streams - opened} streams did not open")
                wait_for_streams(server, streams)
                time.sleep(1.0)
                rss_with = process.memory_info().rss
                # Warmed again as before the run without: the sessions cached then have
                # expired while the streams opened (bench.traffic warms before every run).
                asyncio.run(serve_each_once(server, FEATURES, sessions[:wrk_users]))
                drive(server, FEATURES, rotation, 2.0)
                with_streams = drive(server, FEATURES, rotation, seconds)

                print("fan-out ...", file=sys.stderr, flush=True)
                clients.command(cmd="arm", refetch=False)
                flip = flip_flag(admin, csrf)
                answers = clients.command(cmd="collect", within=120)
                fan_out = Spread.of(
                    flip,
                    [t for a in answers for t in a["received"]],
                    sum(a["missing"] for a in answers) + (0 if flip.ok else streams),
                )

                print("refetch storm ...", file=sys.stderr, flush=True)
                clients.command(cmd="arm", refetch=True)
                poll = ReadinessPoll(server)
                storm_flip = flip_flag(admin, csrf, "flag-2")  # a state no client has seen
                answers = clients.command(cmd="collect", within=120)
                ready = poll.stop()
                storm = Spread.of(
                    storm_flip,
                    [t for a in answers for t in a["refetched"]],
                    sum(a["missing"] for a in answers),
                )
                statuses: dict[int, int] = {}
                for answer in answers:
                    for status in answer["refetch_statuses"]:
                        statuses[status] = statuses.get(status, 0) + 1
                    for error in answer["errors"]:
                        print(f"storm: {error}", file=sys.stderr)
                storm_resent = sum(a["resent"] for a in answers)
                storm_errors = storm.missing + sum(
                    n for status, n in statuses.items() if status not in (200, 304)
                )
                clients.command(cmd="close")
            finally:
                clients.stop()
            wait_for_streams(server, 0)

            print(f"two replicas, {replica_streams:,} streams ...", file=sys.stderr, flush=True)
            replica = Server(url, **env)
            others = Clients(sessions[:replica_streams], scratch, "replica")
            try:
                others.total("ok", cmd="bulk", port=replica.port, connections=16)
                others.total("open", cmd="open", port=replica.port)
                wait_for_streams(replica, replica_streams)
                others.command(cmd="arm", refetch=False)
                replica_flip = flip_flag(admin, csrf, "flag-3")  # written through the first process
                answers = others.command(cmd="collect", within=30)
                across = Spread.of(
                    replica_flip,
                    [t for a in answers for t in a["received"]],
                    sum(a["missing"] for a in answers),
                )
                others.command(cmd="close")
            finally:
                others.stop()
                replica.stop()
    finally:
        admin.close()
        server.stop()
    return Result(
        streams,
        replica_streams,
        wrk_users,
        rss_before,
        rss_with,
        without,
        with_streams,
        fan_out,
        (flip.answered - flip.sent) * 1000,
        across,
        storm,
        storm_errors,
        storm_resent,
        statuses,
        ready,
    )


def rows(r: Result) -> list[tuple[str, int, str, str, bool]]:
    """(measurement, streams, figure, target, met) for the table."""
    per_stream = (r.rss_with - r.rss_before) / r.streams / 1024
    ratio = r.with_streams.rps / r.without.rps
    refused = r.ready.get("503", 0)
    ready = ", ".join(f"{status}: {n}" for status, n in sorted(r.ready.items()))
    statuses = ", ".join(f"{status}: {n:,}" for status, n in sorted(r.storm_statuses.items()))
    return [
        (
            "memory per stream",
            r.streams,
            f"{per_stream:.1f} KiB (server RSS {r.rss_before / 2**20:,.0f}"
            f" -> {r.rss_with / 2**20:,.0f} MiB)",
            f"<= {MEMORY_TARGET_KIB:g} KiB",
            per_stream <= MEMORY_TARGET_KIB,
        ),
        (
            "fan-out: PATCH sent -> event read",
            r.streams,
            f"{r.fan_out.text()}; the PATCH took {r.fan_out_patch_ms:.0f} ms",
            f"p99 <= {FAN_OUT_TARGET_MS:,.0f} ms",
            r.fan_out.p(99) <= FAN_OUT_TARGET_MS and r.fan_out.missing == 0,
        ),
        (
            f"features req/s ({r.wrk_users:,} users), with / without streams",
            r.streams,
            f"{r.with_streams.rps:,.0f} / {r.without.rps:,.0f} = {ratio:.2f} x"
            f" (p99 {r.with_streams.p99_ms:.1f} / {r.without.p99_ms:.1f} ms,"
            f" errors {r.with_streams.errors + r.without.errors})",
            f">= {THROUGHPUT_TARGET:g} x",
            ratio >= THROUGHPUT_TARGET and r.with_streams.errors + r.without.errors == 0,
        ),
        (
            "two replicas: written on one, streams on the other",
            r.replica_streams,
            r.replica.text(),
            f"p99 <= {REPLICA_TARGET_MS:,.0f} ms",
            r.replica.p(99) <= REPLICA_TARGET_MS and r.replica.missing == 0,
        ),
        (
            "refetch storm: PATCH sent -> refetch answered",
            r.streams,
            f"{r.storm.text()}; answers {statuses}; errors {r.storm_errors}"
            f" ({r.storm_resent} sent again on a closed keep-alive connection);"
            f" /health/ready {ready}",
            f"p99 <= {STORM_TARGET_MS:,.0f} ms, no errors, no 503",
            r.storm.p(99) <= STORM_TARGET_MS and r.storm_errors == 0 and refused == 0,
        ),
    ]


def print_streams_table(result: Result) -> bool:
    print("| measurement | streams | figure | target | met |")
    print("|---|---:|---|---|---|")
    all_met = True
    for name, streams, figure, target, met in rows(result):
        all_met &= met
        print(f"| {name} | {streams:,} | {figure} | {target} | {'yes' if met else 'NO'} |")
    return all_met


def main(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 s wrk runs and 1,000 users")
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--replica-streams", type=int, default=1_000)
    args = parser.parse_args(argv)
    if not 1 <= args.streams <= 15_000:
        parser.error("--streams: 1 to 15,000 (the server holds one socket per stream)")
    seconds = 3.0 if args.quick else 10.0
    wrk_users = 1_000 if args.quick else 5_000
    replica_streams = min(args.replica_streams, args.streams)
    print(
        f"{describe_generator()}; {seconds:g} s per run; {args.streams:,} streams",
        flush=True,
    )
    result = measure(args.streams, replica_streams, wrk_users, seconds)
    return print_streams_table(result)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
