"""Flag evaluations counted in memory and written in batches (docs/FLAGS.md "Usage").

A request pays one dictionary update: it counts the `VariantSet` of the result set it
served, a key made once per evaluated result set (and kept with the cached results), not
each flag. The flusher expands the counted sets into (flag, hour, variant) rows every
`USAGE_FLUSH_SECONDS` and at shutdown, and adds them to `feature_flag_usage` in one
statement. Counts a flush could not write are kept for the next one (up to
`MAX_PENDING_ROWS` rows; past that the oldest hours are dropped, and logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from litestar import Litestar
from prometheus_client import Counter, Gauge

from api.flags import queries
from api.platform.background import running
from api.platform.config import settings_of
from api.platform.db.readiness import DATABASE_ERRORS

logger = logging.getLogger("api.flags.usage")

VariantSet = bytes
"""The (flag id, variant) pairs of one evaluated result set: a 4-byte layout id (which flags,
in which order) and one byte per flag, the index of its variant in the layout. Interned:
equal sets share one object whose hash is computed once, and bytes cost the garbage
collector nothing however many cached results hold one. Sets of one layout have one length,
so a flush counts a flag's variants over thousands of sets with `bytes.count`."""
Row = tuple[int, int, str]
"""(flag id, hour as epoch seconds, variant)."""

EVALUATIONS = Counter(
    "marketedge_flag_evaluations",
    "Flag evaluations served, by flag key, variant and OpenFeature reason (counted at flush).",
    ["flag", "variant", "reason"],
)
PENDING_ROWS = Gauge(
    "marketedge_usage_flush_pending_rows",
    "Usage rows a flush could not write yet, kept for the next one (bounded by MAX_PENDING_ROWS).",
    multiprocess_mode="livesum",
)
LAST_SUCCESS = Gauge(
    "marketedge_usage_flush_last_success_timestamp_seconds",
    "When this process's usage flush last succeeded (epoch seconds; the oldest worker's shows).",
    multiprocess_mode="livemin",
)

HOUR = 3600
INTERN_LIMIT = 10_000
"""Distinct sets remembered for sharing; past it the memory starts afresh (equal sets still
count together: they compare equal)."""
MAX_PENDING_ROWS = 100_000
"""Rows kept while the database is unreachable; about 100 bytes each."""
LAYOUT_LIMIT = 256
"""Layouts remembered (one per set of flags served; a flag created or deleted makes one)."""
NOT_COUNTED = 255
"""The variant byte of a flag with more variants than a byte can name (never, at 50)."""


class Layout:
    """Which flags a set holds, in order, and each flag's variant names by index."""

    __slots__ = ("flag_ids", "id", "indexes", "names", "prefix", "reasons")

    def __init__(self, layout_id: int, flag_ids: tuple[int, ...]) -> None:
        self.id = layout_id
        self.prefix = layout_id.to_bytes(4, "big")
        self.flag_ids = flag_ids
        self.names: list[list[str]] = [[] for _ in flag_ids]
        self.reasons: list[list[str]] = [[] for _ in flag_ids]
        """The OpenFeature reason of each index: one variant served for two reasons has two."""
        self.indexes: list[dict[tuple[str, str], int]] = [{} for _ in flag_ids]

    def index(self, position: int, variant: str, reason: str = "") -> int:
        found = self.indexes[position].get((variant, reason))
        if found is not None:
            return found
        names = self.names[position]
        if len(names) >= NOT_COUNTED:
            return NOT_COUNTED
        names.append(variant)
        self.reasons[position].append(reason)
        self.indexes[position][(variant, reason)] = len(names) - 1
        return len(names) - 1


class Tally:
    """One hour's counts: per counted set, and per single flag evaluation."""

    __slots__ = ("hour", "sets", "singles")

    def __init__(self, hour: int) -> None:
        self.hour = hour
        self.sets: dict[VariantSet, list[float]] = {}
        """set → [count, last evaluated at (epoch seconds)]"""
        self.singles: dict[tuple[int, str, str], list[float]] = {}
        """(flag id, variant, reason) → [count, last evaluated at]"""


class UsageCounter:
    def __init__(self) -> None:
        self._tally = Tally(-1)
        self._closed: list[Tally] = []
        self._pending: dict[Row, list[float]] = {}
        """Expanded rows that a flush could not write: row → [count, last evaluated at]."""
        self._interned: dict[VariantSet, VariantSet] = {}
        self._layouts: dict[bytes, Layout] = {}
        self._layout_of: dict[tuple[int, ...], Layout] = {}
        self._next_layout = 0
        self.dropped = 0
        """Evaluations given up on since start (the database stayed out of reach too long)."""
        self.flag_keys: Callable[[], Mapping[int, str]] = dict
        """Flag id → key, for the evaluations metric's `flag` label (the flag cache's)."""

    def variant_set(
        self, pairs: Iterable[tuple[int | None, str | None] | tuple[int | None, str | None, str]]
    ) -> VariantSet:
        """The key of a result set: its (flag id, variant[, reason]) triples, errors left out."""
        served = [
            (pair[0], pair[1], pair[2] if len(pair) > 2 else "")
            for pair in pairs
            if pair[0] is not None and pair[1]
        ]
        flag_ids = tuple(flag_id for flag_id, _, _ in served)
        layout = self._layout_of.get(flag_ids) or self._new_layout(flag_ids)
        key = layout.prefix + bytes(
            layout.index(position, variant, reason)
            for position, (_, variant, reason) in enumerate(served)
        )
        interned = self._interned.get(key)
        if interned is not None:
            return interned
        if len(self._interned) >= INTERN_LIMIT:
            self._interned.clear()
        self._interned[key] = key
        return key

    def _new_layout(self, flag_ids: tuple[int, ...]) -> Layout:
        if len(self._layouts) >= LAYOUT_LIMIT:  # the oldest goes; its sets are long gone
            oldest = self._layouts.pop(next(iter(self._layouts)))
            self._layout_of.pop(oldest.flag_ids, None)
        self._next_layout += 1
        layout = Layout(self._next_layout, flag_ids)
        self._layouts[layout.prefix] = layout
        self._layout_of[flag_ids] = layout
        return layout

    def _now(self) -> tuple[Tally, float]:
        now = time.time()
        tally = self._tally
        if now - tally.hour >= HOUR or now < tally.hour:
            if tally.sets or tally.singles:
                self._closed.append(tally)
            tally = self._tally = Tally(int(now) // HOUR * HOUR)
        return tally, now

    def count(self, results: VariantSet) -> None:
        """One request served every flag of `results`: O(1), whatever the number of flags."""
        tally, now = self._now()
        entry = tally.sets.get(results)
        if entry is None:
            tally.sets[results] = [1, now]
        else:
            entry[0] += 1
            entry[1] = now

    def count_one(self, flag_id: int | None, variant: str | None, reason: str = "") -> None:
        """One request served one flag (an error, with no flag or variant, is not counted)."""
        if flag_id is None or not variant:
            return
        tally, now = self._now()
        entry = tally.singles.get((flag_id, variant, reason))
        if entry is None:
            tally.singles[(flag_id, variant, reason)] = [1, now]
        else:
            entry[0] += 1
            entry[1] = now

    @property
    def pending(self) -> int:
        """Evaluations counted and not yet written (a flag served in a set counts once)."""
        tallies = [*self._closed, self._tally]
        in_sets = sum(
            int(entry[0]) * (len(key) - 4 - key.count(NOT_COUNTED, 4))
            for t in tallies
            for key, entry in t.sets.items()
        )
        singles = sum(int(entry[0]) for t in tallies for entry in t.singles.values())
        return in_sets + singles + sum(int(entry[0]) for entry in self._pending.values())

    def _take(self) -> tuple[list[Tally], dict[Row, list[float]]]:
        tallies = [*self._closed, self._tally]
        self._closed = []
        self._tally = Tally(self._tally.hour)
        pending, self._pending = self._pending, {}
        return tallies, pending

    def _keep(self, rows: dict[Row, list[float]]) -> None:
        """Rows a flush could not write wait for the next one, within MAX_PENDING_ROWS."""
        for row, (count, last) in rows.items():
            entry = self._pending.get(row)
            if entry is None:
                self._pending[row] = [count, last]
            else:
                entry[0] += count
                entry[1] = max(entry[1], last)
        if len(self._pending) > MAX_PENDING_ROWS:
            ordered = sorted(self._pending, key=lambda row: row[1])
            for row in ordered[: len(self._pending) - MAX_PENDING_ROWS]:
                self.dropped += int(self._pending.pop(row)[0])
            logger.error("flag usage: %d evaluations dropped in all (no database)", self.dropped)

    async def flush(self) -> int:
        """Write everything counted so far in one statement; returns the rows written. On
        failure (or cancellation) the counts are kept for the next flush and the error raised."""
        tallies, rows = self._take()
        try:
            await self._expand(tallies, rows)
            if not rows:
                self._flushed()
                return 0
            ordered = sorted(rows.items())
            await queries.add_usage(
                [row[0] for row, _ in ordered],
                [datetime.fromtimestamp(row[1], UTC) for row, _ in ordered],
                [row[2] for row, _ in ordered],
                [int(entry[0]) for _, entry in ordered],
                [datetime.fromtimestamp(entry[1], UTC) for _, entry in ordered],
            )
            self._flushed()
            return len(ordered)
        except BaseException:
            # Tallies not yet expanded go back as they were; expanded rows wait as rows.
            self._closed = [*tallies, *self._closed]
            self._keep(rows)
            PENDING_ROWS.set(len(self._pending))
            raise

    def _flushed(self) -> None:
        PENDING_ROWS.set(len(self._pending))
        LAST_SUCCESS.set(time.time())

    def _count_served(self, served: dict[tuple[int, str, str], int]) -> None:
        """Add one expanded tally to the evaluations metric (each tally is expanded once)."""
        keys = self.flag_keys()
        for (flag_id, variant, reason), count in served.items():
            EVALUATIONS.labels(keys.get(flag_id, str(flag_id)), variant, reason).inc(count)

    async def _expand(self, tallies: list[Tally], rows: dict[Row, list[float]]) -> None:
        """Move the tallies' counts into `rows`, by (flag, hour, variant), taking each tally
        off `tallies` as it lands (so an interruption loses or doubles nothing).

        Sets of one layout counted equally often are joined, oldest first; a flag's column
        is a strided slice, its variants' counts `bytes.count` and their latest evaluation
        `bytes.rfind`: C speed, a few milliseconds for thousands of sets of 200 flags."""
        while tallies:
            tally = tallies[0]
            expanded: dict[Row, list[float]] = {}
            served: dict[tuple[int, str, str], int] = {}
            groups: dict[tuple[bytes, int], list[tuple[float, VariantSet]]] = {}
            for key, (count, at) in tally.sets.items():
                groups.setdefault((key[:4], int(count)), []).append((at, key))
            for (prefix, count), members in groups.items():
                layout = self._layouts.get(prefix)
                if layout is None:  # counted by a request that outlived LAYOUT_LIMIT changes
                    self.dropped += count * len(members)
                    continue
                members.sort()
                joined = b"".join(key for _, key in members)
                stride = 4 + len(layout.flag_ids)
                for position, flag_id in enumerate(layout.flag_ids):
                    column = joined[4 + position :: stride]
                    reasons = layout.reasons[position]
                    for index, variant in enumerate(layout.names[position]):
                        mark = bytes((index,))
                        found = column.count(mark)
                        if found:
                            at = members[column.rfind(mark)][0]
                            _add(expanded, (flag_id, tally.hour, variant), found * count, at)
                            label = (flag_id, variant, reasons[index])
                            served[label] = served.get(label, 0) + found * count
                await asyncio.sleep(0)
            for single, (count, at) in tally.singles.items():
                _add(expanded, (single[0], tally.hour, single[1]), int(count), at)
                served[single] = served.get(single, 0) + int(count)
            for row, (count, at) in expanded.items():
                _add(rows, row, int(count), at)
            tallies.pop(0)
            self._count_served(served)


def _add(rows: dict[Row, list[float]], row: Row, count: int, at: float) -> None:
    entry = rows.get(row)
    if entry is None:
        rows[row] = [count, at]
    else:
        entry[0] += count
        entry[1] = max(entry[1], at)


usage = UsageCounter()


async def flush_periodically(interval: float) -> None:
    """Flush every `interval` seconds until cancelled; a failed flush is retried next time."""
    while True:
        await asyncio.sleep(interval)
        try:
            await usage.flush()
        except DATABASE_ERRORS as error:
            logger.warning(
                "flag usage kept for the next flush: %s: %s", type(error).__name__, error
            )
        except Exception:
            logger.exception("flag usage kept for the next flush")


@asynccontextmanager
async def usage_flusher(app: Litestar) -> AsyncIterator[None]:
    """Flush this process's counts periodically and once more at graceful shutdown (before
    the pool closes: this lifespan step is entered after it)."""
    try:
        async with running(flush_periodically(settings_of(app).usage_flush_seconds)):
            yield
    finally:
        try:
            await usage.flush()
        except DATABASE_ERRORS as error:
            logger.error("flag usage lost at shutdown (%d evaluations): %s", usage.pending, error)
