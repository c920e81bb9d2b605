"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams (cheap per request, so
it leaves the CPU to the server). Prints one JSON line: requests/s, latencies, errors."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import uvloop


async def worker(
    host: str,
    port: int,
    request: bytes,
    stop_at: float,
    record_from: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (now := time.perf_counter()) < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            done = time.perf_counter()
            if now >= record_from:
                latencies.append(done - now)
                if status >= 400:
                    errors.append(status)
    finally:
        writer.close()


async def main(
    url: str, seconds: float, connections: int, warmup: float, headers: dict[str, str]
) -> None:
    parts = urlsplit(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"GET {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n{extra}\r\n"
    ).encode()
    start = time.perf_counter()
    record_from, stop_at = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    errors: list[int] = []
    await asyncio.gather(
        *(
            worker(
                parts.hostname or "127.0.0.1",
                parts.port or 80,
                request,
                stop_at,
                record_from,
                latencies,
                errors,
            )
            for _ in range(connections)
        )
    )
    latencies.sort()
    count = len(latencies)
    pick = lambda q: latencies[min(count - 1, int(q * count))] * 1000 if count else float("nan")  # noqa: E731
    print(
        json.dumps(
            {
                "requests": count,
                "rps": count / seconds,
                "p50_ms": pick(0.50),
                "p99_ms": pick(0.99),
                "errors": len(errors),
                "error_statuses": sorted(set(errors)),
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--headers", default="{}")
    args = parser.parse_args()
    uvloop.run(
        main(args.url, args.seconds, args.connections, args.warmup, json.loads(args.headers))
    )
