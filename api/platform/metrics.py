"""Prometheus metrics (README "### Metrics"): `GET /metrics` shows everything registered with
prometheus_client in this process, or, with `PROMETHEUS_MULTIPROC_DIR` set (several uvicorn
workers, `api/ops/serve.py`), the sum over every worker's files.

The names are fixed so dashboards can rely on them. The hot path pays one histogram
observation per request and one counter step per cache lookup; gauges are sampled by
callbacks (`on_sample`) that the app's assembly registers, every `SAMPLE_SECONDS` in each
process and once more just before a scrape, so nothing is computed per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import re
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.types import Scope
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from api.platform.background import running
from api.platform.config import settings_of
from api.platform.db.readiness import schema_gate
from api.platform.db.sql import engine
from api.platform.http.errors import NotAuthenticated, NotFound

logger = logging.getLogger("api.platform.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SAMPLE_SECONDS = 5.0
UNMATCHED = "unmatched"
"""The `route` of a request no route handled (404s, refusals before routing): one label
value, so scanning for random paths cannot grow the series."""

HTTP_DURATION = Histogram(
    "marketedge_http_request_duration_seconds",
    "Time from a request's arrival to its response's last byte, by route template.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CACHE_REQUESTS = Counter(
    "marketedge_cache_requests",
    "Lookups in a per-process cache, by cache and result (hit or miss).",
    ["cache", "result"],
)
LISTENER_CONNECTED = Gauge(
    "marketedge_listener_connected",
    "1 while the LISTEN connection is up (caches trusted), 0 while requests go to the database.",
    multiprocess_mode="livemin",  # any worker without it shows as 0
)
DB_POOL_CONNECTIONS = Gauge(
    "marketedge_db_pool_connections",
    "Connections of the database pool, by state (in_use or idle).",
    ["state"],
    multiprocess_mode="livesum",
)
READINESS = Gauge(
    "marketedge_readiness",
    "1 when the database is reachable and every migration has run (the /health/ready answer).",
    multiprocess_mode="livemin",
)

_samplers: list[Callable[[], None]] = []


def on_sample(sampler: Callable[[], None]) -> None:
    """Run `sampler()` (cheap and synchronous: it sets gauges) periodically and before every
    scrape; the app's assembly registers the domain's samplers here."""
    _samplers.append(sampler)


def sample() -> None:
    for sampler in _samplers:
        try:
            sampler()
        except Exception:  # a broken sampler must not break the scrape
            logger.exception("metrics sampler %r failed", sampler)


def _sample_pool() -> None:
    pool: Any = engine().pool
    size, idle = (pool.get_size(), pool.get_idle_size()) if pool is not None else (0, 0)
    DB_POOL_CONNECTIONS.labels("in_use").set(size - idle)
    DB_POOL_CONNECTIONS.labels("idle").set(idle)


def _sample_readiness() -> None:
    status = schema_gate.last_status
    if status is not None:  # None: reset by a notice; the next check says
        READINESS.set(1 if status.ready else 0)


on_sample(_sample_pool)
on_sample(_sample_readiness)


class SampledCount:
    """A counter step a cache lookup can afford: an integer held by this process, added to
    its Prometheus counter when gauges are sampled (every `SAMPLE_SECONDS` and before a
    scrape). prometheus_client's own `inc()` (checks and a lock, in multiprocess mode a
    write to a memory-mapped file) costs several times that on every lookup, of which a
    features request makes two (`python -m bench.traffic --metrics-cost`). Another worker's
    scrape sees these counts up to `SAMPLE_SECONDS` late, and a killed worker loses what it
    had not yet added."""

    __slots__ = ("_counter", "_published", "count")

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._published = 0
        self.count = 0

    def inc(self) -> None:
        self.count += 1

    def publish(self) -> None:
        count = self.count
        if count != self._published:
            self._counter.inc(count - self._published)
            self._published = count


_sampled_counts: list[SampledCount] = []


def cache_counters(cache: str) -> tuple[SampledCount, SampledCount]:
    """The (hit, miss) counts of one cache, bound once so a lookup pays one `inc()`."""
    counts = (
        SampledCount(CACHE_REQUESTS.labels(cache, "hit")),
        SampledCount(CACHE_REQUESTS.labels(cache, "miss")),
    )
    _sampled_counts.extend(counts)
    return counts


def _publish_counts() -> None:
    for count in _sampled_counts:
        count.publish()


on_sample(_publish_counts)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def exposition() -> bytes:
    """Everything registered, in the text format; all workers' sums in multiprocess mode."""
    sample()
    if not multiprocess_mode():
        return generate_latest(REGISTRY)
    forget_dead_workers()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    # The answering worker's own process_* and python_* (they cannot be summed).
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return generate_latest(registry)


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The scrape. `METRICS_TOKEN` set: a matching bearer token or 401. Unset: open in
    development, 404 in production (metrics name flags and routes; not for the world)."""
    settings = settings_of(request)
    token = settings.metrics_token
    if token is None:
        if settings.environment != "development":
            raise NotFound("No such page")
    else:
        sent = request.headers.get("authorization", "")
        scheme, _, credential = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode(), token.encode()
        ):
            raise NotAuthenticated(
                "A metrics bearer token is required",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


class DurationSeries:
    """One series of the request histogram, observed the cheap way: the bucket found by
    bisection, then the two steps `Histogram.observe` itself takes (the bucket's count and
    the sum), without its per-call checks and linear scan. It reaches into the child's
    `_upper_bounds`, `_buckets` and `_sum`, which a unit test holds equal to `observe()`
    (tests/unit/test_metrics_series.py), so an upgrade of prometheus_client that changes
    them fails there, not in production."""

    __slots__ = ("_bounds", "_buckets", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._bounds = child._upper_bounds
        self._buckets = child._buckets
        self._sum = child._sum

    def observe(self, seconds: float) -> None:
        self._buckets[bisect_left(self._bounds, seconds)].inc(1)
        self._sum.inc(seconds)


_duration_series: dict[tuple[str, str, int], DurationSeries] = {}
"""Bounded as the series are: HTTP methods the parser knows, route templates, statuses."""


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    """A finished HTTP request's duration under its route template (Litestar puts it in the
    scope when it routes), never the raw path. Called by the request-context middleware,
    which already times every request and sees its status."""
    fields: dict[str, Any] = scope  # type: ignore[assignment]
    key = (fields["method"], fields.get("path_template") or UNMATCHED, status)
    series = _duration_series.get(key)
    if series is None:  # labels() checks and locks: paid once per series, not per request
        child = HTTP_DURATION.labels(key[0], key[1], str(status))
        series = _duration_series[key] = DurationSeries(child)
    series.observe(seconds)


async def _sample_periodically() -> None:
    while True:
        await asyncio.sleep(SAMPLE_SECONDS)
        with contextlib.suppress(Exception):  # the answer itself says what is wrong
            await schema_gate.status()  # cached: at most one check per READY_TTL_SECONDS
        sample()


@asynccontextmanager
async def metrics_sampler(_: Litestar) -> AsyncIterator[None]:
    """Keep this process's gauges fresh for scrapes answered by another worker."""
    sample()
    try:
        async with running(_sample_periodically()):
            yield
    finally:
        sample()  # what this worker counted since the last sample outlives it


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def forget_dead_workers() -> None:
    """`mark_process_dead` for every worker whose files remain but whose process has exited
    (uvicorn replaces a dead worker): its live gauges leave the scrape, its counts stay."""
    directory = os.environ[MULTIPROC_ENV]
    found = (_LIVE_GAUGE_FILE.match(name) for name in os.listdir(directory))
    pids = {int(match.group(1)) for match in found if match}
    for pid in pids - {os.getpid()}:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:  # alive, someone else's
            pass
