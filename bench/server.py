"""The application under test plus a bare Litestar JSON endpoint, served by one process.

The bare endpoint is the yardstick: the same server, interpreter, event loop and HTTP
parser, with none of our code, so the ratio measures what our code costs.

With `BENCH_METRICS=off` the process serves the app without its metrics on the hot path
(`python -m bench.traffic --metrics-cost` compares it with one that has them).
"""

from __future__ import annotations

import os

from litestar import Litestar, get
from litestar.types import ASGIApp, Receive, Scope, Send

METRICS_SWITCH = "BENCH_METRICS"


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, str]:
    return {"status": "ok"}


class _Uncounted:
    """Stands in for a cache's hit or miss counter: `inc()` does nothing."""

    def inc(self, amount: float = 1) -> None:
        pass


def _unobserved(scope: Scope, status: int, seconds: float) -> None:
    pass


def switch_metrics_off() -> None:
    """Everything metrics add per request, gone: the request-duration histogram that the
    request-context middleware feeds and the cache counters. Done before the app's modules
    are imported, since they bind both when imported; the gauges, sampled in the background
    every few seconds, stay. Checked after the app is built (`metrics_are_off`)."""
    from api.platform import metrics

    metrics.observe_request = _unobserved
    metrics.cache_counters = lambda cache: (_Uncounted(), _Uncounted())  # type: ignore[assignment,return-value]


def metrics_are_off() -> bool:
    from api.auth import sessions
    from api.flags import store
    from api.hierarchy import me_cache
    from api.platform.http import request_context

    counters = (sessions._SESSION_HIT, store._RESULTS_HIT, me_cache._ME_HIT)
    return request_context.observe_request is _unobserved and all(
        isinstance(counter, _Uncounted) for counter in counters
    )


def create_bench_app() -> ASGIApp:
    off = os.environ.get(METRICS_SWITCH, "on") == "off"
    if off:
        switch_metrics_off()
    from api.app import create_app

    app = create_app()
    if off and not metrics_are_off():
        raise RuntimeError("the app was imported before its metrics could be switched off")
    yardstick = Litestar([bare], openapi_config=None, logging_config=None)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bare":
            await yardstick(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
