"""The in-process evaluation counter (api/flags/usage.py): O(1) per request, expanded into
(flag, hour, variant) rows at flush, never losing counts to a failed flush."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from typing import Any

import pytest

from api.flags import queries as flag_queries
from api.flags import usage as usage_module
from api.flags.usage import HOUR, UsageCounter

T0 = 1_800_000_000.0 - 1_800_000_000.0 % HOUR + 60  # one minute into an hour


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Statement:
    """Stands in for the usage statement's `fetch` (api/flags/queries.py `add_usage`):
    records each flush's rows, or fails while told to."""

    def __init__(self) -> None:
        self.rows: list[dict[tuple[int, datetime, str], tuple[int, datetime]]] = []
        self.failing: BaseException | None = None

    async def __call__(self, sql: str, *columns: list[Any]) -> list[Any]:
        if self.failing is not None:
            raise self.failing
        ids, hours, variants, counts, lasts = columns
        self.rows.append(
            {
                (i, h, v): (c, t)
                for i, h, v, c, t in zip(ids, hours, variants, counts, lasts, strict=True)
            }
        )
        return []


@pytest.fixture(name="clock")
def fx_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock(T0)
    monkeypatch.setattr(usage_module.time, "time", clock)
    return clock


@pytest.fixture(name="statement")
def fx_statement(monkeypatch: pytest.MonkeyPatch) -> Statement:
    statement = Statement()
    monkeypatch.setattr(flag_queries, "fetch", statement)
    return statement


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


HOUR0 = at(T0 - 60)


def test_equal_result_sets_share_one_key_and_errors_are_left_out() -> None:
    counter = UsageCounter()
    first = counter.variant_set([(1, "on"), (2, "blue"), (None, None)])
    second = counter.variant_set(iter([(1, "on"), (2, "blue")]))
    assert first is second
    assert first != counter.variant_set([(1, "off"), (2, "blue")])
    assert not gc.is_tracked(first)  # a cache full of them costs the collector nothing


async def test_a_counted_set_becomes_one_row_per_flag_and_variant(
    clock: Clock, statement: Statement
) -> None:
    counter = UsageCounter()
    alice = counter.variant_set([(1, "on"), (2, "blue")])
    bob = counter.variant_set([(1, "off"), (2, "blue")])
    for _ in range(3):
        counter.count(alice)
    clock.now += 5
    counter.count(bob)
    clock.now += 5
    counter.count_one(2, "green")
    counter.count_one(None, None)  # FLAG_NOT_FOUND: nothing was served
    assert counter.pending == 3 * 2 + 2 + 1
    assert await counter.flush() == 4
    assert statement.rows == [
        {
            (1, HOUR0, "on"): (3, at(T0)),
            (1, HOUR0, "off"): (1, at(T0 + 5)),
            (2, HOUR0, "blue"): (4, at(T0 + 5)),
            (2, HOUR0, "green"): (1, at(T0 + 10)),
        }
    ]
    assert counter.pending == 0
    assert await counter.flush() == 0
    assert len(statement.rows) == 1  # nothing to say: no statement


async def test_counts_are_kept_by_the_hour_they_happened_in(
    clock: Clock, statement: Statement
) -> None:
    counter = UsageCounter()
    key = counter.variant_set([(7, "on")])
    counter.count(key)
    clock.now += HOUR
    counter.count(key)
    counter.count(key)
    await counter.flush()
    assert statement.rows == [
        {(7, HOUR0, "on"): (1, at(T0)), (7, at(T0 - 60 + HOUR), "on"): (2, at(T0 + HOUR))}
    ]


async def test_a_failed_flush_keeps_every_count_for_the_next(
    clock: Clock, statement: Statement
) -> None:
    counter = UsageCounter()
    key = counter.variant_set([(1, "on"), (2, "off")])
    counter.count(key)
    statement.failing = ConnectionRefusedError("no database")
    with pytest.raises(ConnectionRefusedError):
        await counter.flush()
    counter.count(key)  # counting goes on meanwhile
    counter.count_one(1, "on")
    with pytest.raises(ConnectionRefusedError):
        await counter.flush()
    assert counter.pending == 5
    statement.failing = None
    await counter.flush()
    assert statement.rows == [{(1, HOUR0, "on"): (3, at(T0)), (2, HOUR0, "off"): (2, at(T0))}]


async def test_a_flush_cancelled_at_shutdown_keeps_its_counts(
    clock: Clock, statement: Statement
) -> None:
    counter = UsageCounter()
    counter.count(counter.variant_set([(1, "on")]))
    statement.failing = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError):
        await counter.flush()
    statement.failing = None
    await counter.flush()
    assert statement.rows == [{(1, HOUR0, "on"): (1, at(T0))}]


async def test_counts_waiting_for_the_database_are_bounded(
    clock: Clock, statement: Statement, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(usage_module, "MAX_PENDING_ROWS", 3)
    counter = UsageCounter()
    statement.failing = OSError("no database")
    for _ in range(5):  # one row per hour; the oldest hours are given up first
        counter.count_one(1, "on")
        with pytest.raises(OSError, match="no database"):
            await counter.flush()
        clock.now += HOUR
    assert counter.dropped == 2
    statement.failing = None
    await counter.flush()
    assert sorted(h for _, h, _ in statement.rows[0]) == [
        at(T0 - 60 + hour * HOUR) for hour in (2, 3, 4)
    ]


async def test_a_flush_of_thousands_of_sets_of_200_flags_counts_every_pair(
    clock: Clock, statement: Statement
) -> None:
    """5,000 users with distinct sets (a busy process's 10 s), 200 flags each: every pair
    is counted, with the time of its latest evaluation."""
    counter = UsageCounter()
    for user in range(5000):
        variants = [(flag, "on" if user >> (flag % 13) & 1 else "off") for flag in range(1, 201)]
        key = counter.variant_set(variants)
        counter.count(key)
        if user % 10 == 0:
            clock.now += 1
            counter.count(key)  # counted twice, later
    assert len(counter._tally.sets) == 5000
    await counter.flush()  # its event-loop time is measured by `python -m bench.usage_flush`
    [rows] = statement.rows
    assert sum(count for count, _ in rows.values()) == (5000 + 500) * 200
    on = {flag for flag, _, variant in rows if variant == "on"}
    assert on == set(range(1, 201))
    # flag 1's "on" (users with bit 1 set): the latest evaluation is a repeated one
    assert rows[(1, HOUR0, "on")] == (
        sum(1 + (u % 10 == 0) for u in range(5000) if u >> 1 & 1),
        at(T0 + 500),
    )


def test_a_flag_with_more_variants_than_a_byte_names_is_left_out() -> None:
    counter = UsageCounter()
    for n in range(260):
        counter.variant_set([(1, f"v{n}"), (2, "on")])
    key = counter.variant_set([(1, "v259"), (2, "on")])
    counter.count(key)
    assert counter.pending == 1  # flag 2 only
