"""The application under test plus a bare Litestar JSON endpoint, served by one process.

The bare endpoint is the yardstick: the same server, interpreter, event loop and HTTP
parser, with none of our code, so the ratio measures what our code costs.

`PUT /bench/metrics/off` (and `/on`) switches the metrics' per-request work out of (and back
into) the hot path of this running process, and `GET /bench/metrics/served` says how many
requests the app answered in each state and for how long each state lasted.
`python -m bench.traffic --metrics-cost` flips the state every half second during one load
run and compares the two throughputs: the machine's drift and its neighbours' bursts fall on
both states alike, and what differs between two processes (hash seeds, memory layout, which
core) cannot read as the metrics' cost. These routes exist only in this benchmark app.
"""

from __future__ import annotations

import json
import time
from typing import Any

from litestar import Litestar, get
from litestar.types import ASGIApp, Receive, Scope, Send

SWITCH_PATH = "/bench/metrics/"


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, str]:
    return {"status": "ok"}


class _Uncounted:
    """Stands in for a cache's hit or miss counter: `inc()` does nothing."""

    def inc(self, amount: float = 1) -> None:
        pass


def _unobserved(scope: Scope, status: int, seconds: float) -> None:
    pass


class MetricsSwitch:
    """Everything metrics add per request: the request-duration histogram that the
    request-context middleware feeds and the cache counters. Each is a module global, looked
    up when called, so swapping the globals switches them in a running process; the gauges,
    sampled in the background every few seconds, stay."""

    def __init__(self) -> None:
        from api.auth import sessions
        from api.flags import store
        from api.hierarchy import me_cache
        from api.platform.http import request_context

        self._places: list[tuple[Any, str, Any]] = [
            (request_context, "observe_request", _unobserved),
            *(
                (module, name, _Uncounted())
                for module, names in (
                    (sessions, ("_SESSION_HIT", "_SESSION_MISS")),
                    (store, ("_RESULTS_HIT", "_RESULTS_MISS")),
                    (me_cache, ("_ME_HIT", "_ME_MISS")),
                )
                for name in names
            ),
        ]
        self._originals = [getattr(module, name) for module, name, _ in self._places]
        self.on = True
        self._since = time.perf_counter()
        self.served = {True: 0, False: 0}
        self.seconds = {True: 0.0, False: 0.0}

    def set(self, on: bool) -> None:
        now = time.perf_counter()
        self.seconds[self.on] += now - self._since
        self._since = now
        self.on = on
        for (module, name, stand_in), original in zip(self._places, self._originals, strict=True):
            setattr(module, name, original if on else stand_in)

    def report(self) -> dict[str, dict[str, float]]:
        self.set(self.on)  # closes the current state's time
        return {
            state: {"requests": self.served[on], "seconds": self.seconds[on]}
            for state, on in (("on", True), ("off", False))
        }

    def is_on(self) -> bool:
        return all(
            getattr(module, name) is original
            for (module, name, _), original in zip(self._places, self._originals, strict=True)
        )


def create_bench_app() -> ASGIApp:
    from api.app import create_app

    app = create_app()
    switch = MetricsSwitch()
    yardstick = Litestar([bare], openapi_config=None, logging_config=None)

    async def answer(send: Send, status: int, body: bytes = b"") -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bare":
            await yardstick(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith(SWITCH_PATH):
            state = scope["path"].removeprefix(SWITCH_PATH)
            if scope["method"] == "GET" and state == "served":
                await answer(send, 200, json.dumps(switch.report()).encode())
            elif scope["method"] == "PUT" and state in ("on", "off"):
                switch.set(state == "on")
                await answer(send, 204 if switch.is_on() == (state == "on") else 500)
            else:
                await answer(send, 404)
        else:
            try:
                await app(scope, receive, send)
            finally:
                # Counted in the state the request finished in, which is the state its
                # duration was (or was not) observed in: no await lies between the two.
                # (A request whose client left ends in an error, observed all the same.)
                switch.served[switch.on] += 1

    return dispatch
