"""One LISTEN connection per process, turning database notices into cache invalidations.

Triggers (migrations) notify `feature_flags_changed` on writes to flags, overrides and
assignments, and `sessions_changed` when sessions end or users are deactivated, demoted or
renamed, and `me_changed` (payload: a user id, or empty for "everyone") when what `/me`
describes changes. Caches may only trust themselves while `listener.connected` is true: if
the connection drops they fall back to the database until it is back.

One change mechanism: a write announces what it changed (`announce`, inside
`change_transaction`), and the writer's own process applies it to its caches at commit,
before it answers (read-your-writes, logout and demotion included); the database's triggers
NOTIFY the same channels, which reach every other replica (and psql's writes) through the
listener. Both paths call the same callbacks.

The listener needs a session of its own, so it connects to `DATABASE_DIRECT_URL` when set
(LISTEN does not work through a transaction-pooling PgBouncer), else to `DATABASE_URL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import asyncpg
from litestar import Litestar

from api.platform.background import running
from api.platform.db.sql import engine
from api.platform.metrics import LISTENER_CONNECTED

logger = logging.getLogger("api.platform.db.changes")


class Listener:
    def __init__(self) -> None:
        self.connected = False
        self._callbacks: dict[str, list[Callable[[str | None], None]]] = {}

    def on(self, channel: str, callback: Callable[[], None]) -> None:
        """`callback()` on every notice of `channel`, and whenever notices may have been lost."""
        self.on_payload(channel, lambda _: callback())

    def on_payload(self, channel: str, callback: Callable[[str | None], None]) -> None:
        """`callback(payload)` on every notice; `callback(None)` when notices may have been
        lost (the connection came up or went down), meaning "anything may have changed"."""
        self._callbacks.setdefault(channel, []).append(callback)

    def deliver(self, channel: str, payload: str | None) -> None:
        """Apply a change to this process's caches now, exactly as its NOTIFY would."""
        for callback in self._callbacks.get(channel, ()):
            callback(payload)

    def _fire_all(self) -> None:
        for callbacks in self._callbacks.values():
            for callback in callbacks:
                callback(None)

    def _disconnected(self) -> None:
        self.connected = False
        LISTENER_CONNECTED.set(0)
        self._fire_all()

    async def run_forever(self) -> None:
        from api.platform.config import get_settings

        dsn = get_settings().database_direct_url or engine().config["dsn"]
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(
                    dsn, timeout=2, server_settings={"application_name": "marketedge-listener"}
                )
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                for channel, callbacks in self._callbacks.items():
                    await connection.add_listener(
                        channel,
                        lambda _c, _p, _ch, payload, cbs=callbacks: [cb(payload) for cb in cbs],
                    )
                self._fire_all()  # anything may have changed while nobody listened
                self.connected = True
                LISTENER_CONNECTED.set(1)
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=2)
                    if not lost.is_set():
                        async with asyncio.timeout(2):
                            await connection.execute("SELECT 1")  # notices a dead socket
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                logger.info("change listener disconnected: %s", type(exc).__name__)
            finally:
                self._disconnected()
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close()
            await asyncio.sleep(1)


listener = Listener()

_announced: ContextVar[list[tuple[str, str | None]] | None] = ContextVar(
    "announced_changes", default=None
)


def announce(channel: str, payload: str | None = None) -> None:
    """This transaction changed what `channel`'s caches hold (`payload` as its trigger sends
    it, None for "anything"): applied here when the enclosing `change_transaction` commits,
    at once outside one (the write has then committed already)."""
    pending = _announced.get()
    if pending is None:
        listener.deliver(channel, payload)
    elif (channel, payload) not in pending:
        pending.append((channel, payload))


@asynccontextmanager
async def change_transaction() -> AsyncIterator[None]:
    """A write transaction whose announced changes reach this process's caches after it
    commits and before the block's caller goes on; nothing is applied on a rollback. Nested,
    it joins the outer one, which applies everything at its commit."""
    if _announced.get() is not None:
        async with engine().transaction():
            yield
        return
    pending: list[tuple[str, str | None]] = []
    token = _announced.set(pending)
    try:
        async with engine().transaction():
            yield
    finally:
        _announced.reset(token)
    for channel, payload in pending:
        listener.deliver(channel, payload)


@asynccontextmanager
async def change_listener(_: Litestar) -> AsyncIterator[None]:
    try:
        async with running(listener.run_forever()):
            yield
    finally:
        listener.connected = False
        LISTENER_CONNECTED.set(0)
