"""OFREP event streams (ADR-0008): tell open browsers when their bulk evaluation changed.

A bulk answer advertises a stream URL carrying the session's stream key
(`api.auth.sessions.stream_key_for`). Each open stream is a small queue of encoded SSE
frames, grouped by user. A committed change reaches the hub through the one change
mechanism (`api.platform.db.changes`: at commit in the writer's process, by NOTIFY on every
other replica), after the flag cache has dropped what it held; one fan-out task then
computes each distinct user's new bulk ETag once (which also warms the cache for the
refetches to come) and queues an event only to that user's streams whose ETag moved.

Sessions are re-checked in one query on every `sessions_changed` notice and every
heartbeat: a stream whose session ended, or whose user was demoted or deactivated, is
closed, and its URL then answers 401. An idle stream gets a comment line every
EVENT_STREAM_HEARTBEAT_SECONDS, so that proxies and browsers do not call it dead. At
shutdown (SIGTERM, before uvicorn waits for open responses to finish) every stream ends
with a `retry:` hint, so clients move to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar
from prometheus_client import Counter, Gauge, Histogram

from api.auth.sessions import live_session_roles
from api.flags.store import (
    CHANNEL,
    DEFINITION_TABLES,
    FlagResults,
    Plan,
    Tracked,
    flag_cache,
    plan_for,
    retracked,
    tracked_flags,
)
from api.platform.background import running
from api.platform.config import Settings, settings_of
from api.platform.db.changes import listener

RETRY_MS = 3_000
"""The reconnection delay advised to clients (SSE `retry:`)."""
SHUTDOWN_RETRY_MS = (500, 3_000)
"""At shutdown each client is told to come back after a random delay in this range, so the
streams of a replica do not all land on the next one in the same instant."""
INACTIVITY_DELAY_SEC = 120
"""Advertised `inactivityDelaySec`: a hidden page may close its stream after this long."""
FAN_OUT_CONCURRENCY = 16
"""Users evaluated at once by a fan-out (each is one small query on a cache miss)."""
YIELD_EVERY = 256
"""Users re-evaluated between two yields to the event loop during a fan-out."""
QUEUE_LIMIT = 8
"""Frames waiting for a slow client; past it the oldest event is dropped (the newest ETag
is all a client needs)."""
logger = logging.getLogger("api.flags.streams")

STREAMS_OPEN = Gauge(
    "marketedge_event_streams_open",
    "OFREP event streams open on this process",
    multiprocess_mode="livesum",
)
EVENTS_SENT = Counter(
    "marketedge_event_stream_events_total", "refetchEvaluation events written to streams"
)
DELIVERY_SECONDS = Histogram(
    "marketedge_event_stream_delivery_seconds",
    "From a change's commit reaching this process to its event written on the socket",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

STREAM_PATH = "/ofrep/v1/event-stream/"
"""Where a session's stream is, followed by its key (the route in api/flags/routes/ofrep.py)."""
_encode = msgspec.json.encode
CLOSE = b""
"""Queued to end a stream."""


def event_frame(etag: bytes) -> bytes:
    """An unnamed SSE event (the provider listens only to `message`), its id the ETag."""
    data = _encode({"type": "refetchEvaluation", "etag": etag.decode()})
    return b"id: " + etag.strip(b'"') + b"\ndata: " + data + b"\n\n"


class EventStream:
    """One open stream: whose it is, the last ETag it was told, and its frames to write."""

    __slots__ = ("etag", "is_super_admin", "queue", "session_id", "until", "user_id")

    def __init__(
        self, user_id: int, session_id: int, is_super_admin: bool, etag: bytes, until: float
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.is_super_admin = is_super_admin
        self.etag = etag
        self.until = until
        """When the user's results stop holding without any change being written (an
        override's expiry, else the cache's lifetime): the stream looks again then."""
        self.queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()

    def send(self, frame: bytes, since: float) -> None:
        if self.queue.qsize() >= QUEUE_LIMIT:
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait((frame, since))

    def close(self, frame: bytes = CLOSE) -> None:
        """End the stream after `frame` (a last `retry:` hint, or nothing)."""
        if frame:
            self.queue.put_nowait((frame, 0.0))
        self.queue.put_nowait((CLOSE, 0.0))


class StreamHub:
    """Every stream of this process, by user; one fan-out task per burst of changes."""

    def __init__(self) -> None:
        self.by_user: dict[int, dict[EventStream, None]] = {}
        self.tracked: dict[int, Tracked] = {}
        """Each connected user's evaluation, kept for the next fan-out."""
        self.count = 0
        self.settings: Settings | None = None
        self.closing = False
        self.heartbeat = 15.0
        self._flags_since: float | None = None
        self._payloads: set[str | None] = set()
        self._sessions_dirty = False
        self._fan_out: asyncio.Task[None] | None = None
        self._session_check: asyncio.Task[None] | None = None

    def add(self, stream: EventStream, tracked: Tracked) -> None:
        self.tracked[stream.user_id] = tracked
        self.by_user.setdefault(stream.user_id, {})[stream] = None
        self.count += 1
        STREAMS_OPEN.inc()

    def remove(self, stream: EventStream) -> None:
        streams = self.by_user.get(stream.user_id)
        if streams is None or stream not in streams:
            return  # removed already (a stream can be closed by the hub, then end itself)
        del streams[stream]
        if not streams:
            del self.by_user[stream.user_id]
            self.tracked.pop(stream.user_id, None)
        self.count -= 1
        STREAMS_OPEN.dec()

    def streams(self) -> list[EventStream]:
        return [s for streams in self.by_user.values() for s in streams]

    # ---- flags --------------------------------------------------------------------------

    async def track(self, user_id: int) -> Tracked:
        """The user's evaluation for a stream about to open: the one kept for their other
        streams while it holds, else a full one."""
        tracked = self.tracked.get(user_id)
        if tracked is None or time.monotonic() >= tracked.results.until:
            tracked = await tracked_flags(user_id)
        return tracked

    def flags_changed(self, payload: str | None = None) -> None:
        """A committed change may alter bulk results (callback of the change mechanism;
        `payload` names the table written, None when unknown)."""
        if not self.by_user:
            return
        if self._flags_since is None:
            self._flags_since = time.perf_counter()
        self._payloads.add(payload)
        self._fan_out = _restart(self._fan_out, self._fan_out_changes)

    async def _fan_out_changes(self) -> None:
        while self._flags_since is not None:
            since, self._flags_since = self._flags_since, None
            payloads, self._payloads = self._payloads, set()
            if payloads <= DEFINITION_TABLES:
                await self._retrack_everyone(since)
                continue
            gate = asyncio.Semaphore(FAN_OUT_CONCURRENCY)
            users = list(self.by_user.items())
            await asyncio.gather(*(self._tell(u, s, gate, since) for u, s in users))

    async def _retrack_everyone(self, since: float) -> None:
        """Definitions changed, users did not: each user's kept evaluation, brought to the new
        definitions without a query, flag by flag only where a definition was replaced."""
        try:
            definitions = await flag_cache.live()
        except Exception:  # the next change, or the clients' own polls, catch up
            logger.warning("event stream fan-out failed", exc_info=True)
            return
        generation = flag_cache.generation  # after the reload, which may have moved it
        plans: dict[int, tuple[tuple[Any, ...], Plan]] = {}
        for done, (user_id, streams) in enumerate(list(self.by_user.items()), 1):
            tracked = self.tracked.get(user_id)
            if tracked is not None and user_id in self.by_user:
                before = tracked.definitions
                if before is definitions:
                    continue  # nothing replaced (the second notice of the same change)
                plan = plans.get(id(before))
                if plan is None or plan[0] is not before:
                    plan = plans[id(before)] = (before, plan_for(before, definitions))
                tracked = self.tracked[user_id] = retracked(
                    tracked, definitions, plan[1], generation
                )
                self._notify(streams, tracked.results, since)
            if done % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # requests and heartbeats go on meanwhile

    async def _tell(
        self,
        user_id: int,
        streams: dict[EventStream, None],
        gate: asyncio.Semaphore,
        since: float,
    ) -> None:
        """The user's new ETag, from a full evaluation (what rules read about them may have
        changed), to each of their streams it is news to."""
        async with gate:
            try:
                tracked = await tracked_flags(user_id)
            except Exception:  # the next change, or the client's own poll, catches up
                logger.warning("event stream fan-out failed", exc_info=True)
                return
        if user_id in self.by_user:
            self.tracked[user_id] = tracked
            self._notify(streams, tracked.results, since)

    @staticmethod
    def _notify(streams: dict[EventStream, None], results: FlagResults, since: float) -> None:
        frame = b""
        for stream in list(streams):
            stream.until = results.until
            if stream.etag != results.etag:
                stream.etag = results.etag
                frame = frame or event_frame(results.etag)
                stream.send(frame, since)

    # ---- sessions -----------------------------------------------------------------------

    def sessions_changed(self, _payload: str | None = None) -> None:
        """Sessions ended or roles changed somewhere: re-check the streams' sessions."""
        if not self.by_user:
            return
        self._sessions_dirty = True
        self._session_check = _restart(self._session_check, self._check_sessions)

    async def _check_sessions(self) -> None:
        while self._sessions_dirty and self.settings is not None:
            self._sessions_dirty = False
            streams = self.streams()
            try:
                live = await live_session_roles({s.session_id for s in streams}, self.settings)
            except Exception:  # checked again at the next heartbeat
                logger.warning("event stream session check failed", exc_info=True)
                return
            for stream in streams:
                role = live.get(stream.session_id)
                if role is None or role != stream.is_super_admin:
                    self.remove(stream)
                    stream.close()

    async def check_sessions_forever(self) -> None:
        """Idle and absolute expiry end sessions without a notice: look every heartbeat."""
        while True:
            await asyncio.sleep(self.heartbeat)
            self.sessions_changed()

    def close_all(self) -> None:
        """Shutdown: every stream ends with a hint to reconnect shortly (elsewhere)."""
        self.closing = True
        for stream in self.streams():
            self.remove(stream)
            stream.close(b"retry: %d\n\n" % random.randint(*SHUTDOWN_RETRY_MS))


def _restart(
    task: asyncio.Task[None] | None, work: Callable[[], Awaitable[None]]
) -> asyncio.Task[None] | None:
    """The running task (which loops while work is marked), or a new one."""
    if task is not None and not task.done():
        return task
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a change applied outside any loop (a command): nobody streams
        return None
    return loop.create_task(work())  # type: ignore[arg-type]


hub = StreamHub()
listener.on_payload(CHANNEL, hub.flags_changed)
listener.on_payload("sessions_changed", hub.sessions_changed)


async def frames(stream: EventStream, first: bytes) -> AsyncIterator[bytes]:
    """The stream's bytes: `first`, then events as they come, an event when the user's
    results lapse into new ones (an override expired: nothing was written, so no notice
    comes), and a heartbeat when idle."""
    try:
        yield first
        beat = time.monotonic() + hub.heartbeat
        while True:
            wait = min(beat, stream.until) - time.monotonic()
            try:
                frame, since = await asyncio.wait_for(stream.queue.get(), max(wait, 0.0))
            except TimeoutError:
                if time.monotonic() >= stream.until:
                    frame, since = await _lapsed(stream), time.perf_counter()
                else:
                    frame, since = b": heartbeat\n\n", 0.0
                if not frame:
                    continue
            if not frame:
                return
            yield frame
            beat = time.monotonic() + hub.heartbeat
            if since:
                EVENTS_SENT.inc()
                DELIVERY_SECONDS.observe(time.perf_counter() - since)
    finally:
        hub.remove(stream)


async def _lapsed(stream: EventStream) -> bytes:
    """The event to send now that the stream's results have lapsed, or b"" if they are the
    same (the usual case: only the cache's lifetime ended)."""
    try:
        tracked = await tracked_flags(stream.user_id)
    except Exception:  # looked at again after a heartbeat
        logger.warning("event stream re-evaluation failed", exc_info=True)
        stream.until = time.monotonic() + hub.heartbeat
        return b""
    if stream.user_id in hub.by_user:
        hub.tracked[stream.user_id] = tracked
    flags = tracked.results
    stream.until = flags.until
    if flags.etag == stream.etag:
        return b""
    stream.etag = flags.etag
    return event_frame(flags.etag)


@asynccontextmanager
async def event_streams(app: Litestar) -> AsyncIterator[None]:
    """Re-checks sessions while serving; on SIGTERM/SIGINT closes every stream first, since
    uvicorn waits for open responses to finish before it shuts the app down."""
    hub.settings = settings_of(app)
    hub.heartbeat = hub.settings.event_stream_heartbeat_seconds
    hub.closing = False
    restore = _chain_exit_signals(hub.close_all)
    try:
        async with running(hub.check_sessions_forever()):
            yield
    finally:
        restore()
        hub.close_all()


def _chain_exit_signals(action: Callable[[], None]) -> Callable[[], None]:
    """Run `action` on the loop when an exit signal arrives, then the handler already set
    (uvicorn's). Returns how to put the old handlers back."""
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            old = signal.getsignal(sig)

            def handler(signum: int, frame: Any, old: Any = old) -> None:
                loop.call_soon_threadsafe(action)
                if callable(old):
                    old(signum, frame)

            signal.signal(sig, handler)
            previous[sig] = old
        except ValueError:  # not the main thread (tests running the app in a thread)
            break

    def restore() -> None:
        for sig, old in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, old)

    return restore
