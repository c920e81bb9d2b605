"""`python -m bench.usage_flush`: how long a flush of flag usage counts holds the event loop.

A busy process's 10 s: 5,000 users with distinct result sets of 200 flags, a tenth of them
counted twice. The flush's expansion (sets → flag, hour, variant rows) runs on the event
loop, so its time is time every request in flight waits; the statement itself is left out
(it runs in the database). Printed next to the same work done pair by pair, measured in the
same run, as a ratio. Target: under 50 ms, a two-hundredth of the 10 s flush period.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from typing import Any

from api.flags import usage as usage_module
from bench.common import Row, print_table

USERS = 5_000
FLAGS = 200
TARGET_MS = 50.0


def counted() -> tuple[usage_module.UsageCounter, list[list[tuple[int, str]]]]:
    counter = usage_module.UsageCounter()
    sets = []
    for user in range(USERS):
        variants = [
            (flag, "on" if user >> (flag % 13) & 1 else "off") for flag in range(1, FLAGS + 1)
        ]
        counter.count(counter.variant_set(variants))
        if user % 10 == 0:
            counter.count(counter.variant_set(variants))
        sets.append(variants)
    return counter, sets


async def flush_ms() -> float:
    async def no_statement(sql: str, *args: Any) -> list[Any]:
        return []

    usage_module.fetch = no_statement  # type: ignore[assignment]
    counter, _ = counted()
    started = time.perf_counter()
    await counter.flush()
    return (time.perf_counter() - started) * 1000


def pair_by_pair_ms() -> float:
    _, sets = counted()
    started = time.perf_counter()
    rows: Counter[tuple[int, str]] = Counter()
    for user, variants in enumerate(sets):
        for pair in variants:
            rows[pair] += 1 + (user % 10 == 0)
    return (time.perf_counter() - started) * 1000


def run() -> list[Row]:
    flush = statistics.median(asyncio.run(flush_ms()) for _ in range(5))
    naive = statistics.median(pair_by_pair_ms() for _ in range(5))
    name = f"usage flush ({USERS:,} sets x {FLAGS} flags)"
    return [
        Row(name, "event-loop time, median of 5", flush, "ms", f"<= {TARGET_MS:.0f} ms"),
        Row(name, "pair by pair, same run", naive, "ms"),
        Row(name, "ratio to pair by pair", flush / naive, "x"),
    ]


def main() -> int:
    rows = run()
    print_table(rows)
    return 0 if rows[0].value <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
