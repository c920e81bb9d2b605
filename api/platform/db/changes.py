"""One LISTEN connection per process, turning database notices into cache invalidations.

Triggers (migrations) notify `feature_flags_changed` on writes to flags, overrides and
assignments, and `sessions_changed` when sessions end or users are deactivated, demoted or
renamed, and `me_changed` (payload: a user id, or empty for "everyone") when what `/me`
describes changes. Caches may only trust themselves while `listener.connected` is true: if
the connection drops they fall back to the database until it is back.

The listener needs a session of its own, so it connects to `DATABASE_DIRECT_URL` when set
(LISTEN does not work through a transaction-pooling PgBouncer), else to `DATABASE_URL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar

from api.platform.background import running
from api.platform.db.sql import engine

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

    def _fire_all(self) -> None:
        for callbacks in self._callbacks.values():
            for callback in callbacks:
                callback(None)

    def _disconnected(self) -> None:
        self.connected = False
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


@asynccontextmanager
async def change_listener(_: Litestar) -> AsyncIterator[None]:
    try:
        async with running(listener.run_forever()):
            yield
    finally:
        listener.connected = False
