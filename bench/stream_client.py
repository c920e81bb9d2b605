"""The client side of bench.streams: thousands of OFREP event streams in one cheap process.

`python -m bench.stream_client SESSIONS_FILE` reads "token csrf" lines, then obeys one JSON
command per line on stdin and answers one JSON line on stdout (bench/streams.py drives it):

- `bulk`: every session POSTs its OFREP bulk evaluation once (keep-alive connections) and
  keeps the answer's ETag and the path of its advertised `eventStreams` URL;
- `open`: every session opens its stream (one HTTP/1.1 connection each) on the given port;
- `arm`: forget what was received; with `refetch`, each session re-POSTs its bulk request on
  its next event, as the official web provider does (`?flagConfigEtag=` + `If-None-Match`);
- `collect`: wait until every stream has had an event since `arm` (or `within` seconds), and
  answer the wall-clock receive times (and refetch answer times) for the coordinator;
- `close`: end every stream.

Raw asyncio streams on uvloop, not httpx: a stream costs this process one task and one
socket, and reading an event one `readline` per line, so the server is what gets measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import uvloop

OPEN_AT_ONCE = 100
"""Streams being opened at the same time (each open is a session query on the server)."""


@dataclass
class Session:
    token: str
    csrf: str
    etag: str = ""
    """The ETag of the last bulk answer (sent back as If-None-Match)."""
    pending_etag: str = ""
    """The ETag the last event announced (sent as ?flagConfigEtag=)."""
    stream_path: str = ""
    received: float | None = None
    refetched: float | None = None
    refetch_status: int = 0
    task: asyncio.Task[None] | None = None
    writer: asyncio.StreamWriter | None = None


@dataclass
class Client:
    sessions: list[Session]
    origin: str
    host: str = "127.0.0.1"
    port: int = 0
    refetch: bool = False
    refetch_connections: int = 64
    refetch_queue: asyncio.Queue[Session] = field(default_factory=asyncio.Queue)
    refetch_workers: list[asyncio.Task[None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    resent: int = 0
    """Requests sent again after a kept-alive connection closed before any answer."""
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever an event is read or a refetch answered (collect waits on it)."""

    # ---- one HTTP/1.1 request on a kept-alive connection -------------------------------

    def bulk_request(self, session: Session, flag_config_etag: str | None) -> bytes:
        path = "/ofrep/v1/evaluate/flags"
        headers = [
            f"Host: {self.host}:{self.port}",
            f"Cookie: me_session={session.token}",
            f"X-CSRF-Token: {session.csrf}",
            f"Origin: {self.origin}",
            "Content-Type: application/json",
            "Content-Length: 14",
        ]
        if flag_config_etag is not None:
            path += "?flagConfigEtag=" + quote(flag_config_etag, safe="")
            if session.etag:
                headers.append(f"If-None-Match: {session.etag}")
        return (f"POST {path} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + (
            b'{"context":{}}'
        )

    async def exchange(
        self, connection: list[Any], request: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Send `request` on the worker's connection (opened on first use) and read the
        answer (Content-Length or chunked body)."""
        reused = bool(connection)
        if not connection:
            connection.extend(await asyncio.open_connection(self.host, self.port))
        reader, writer = connection
        writer.write(request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (OSError, asyncio.IncompleteReadError) as error:
            if not reused or (isinstance(error, asyncio.IncompleteReadError) and error.partial):
                raise
            # A kept-alive connection the server closed (KEEP_ALIVE_SECONDS) as the request
            # went out, before any answer: sent again on a new one, as browsers do; counted.
            self.resent += 1
            writer.close()
            connection[:] = await asyncio.open_connection(self.host, self.port)
            reader, writer = connection
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while size := int((await reader.readline()).strip(), 16):
                parts.append(await reader.readexactly(size))
                await reader.readline()
            await reader.readline()
            body = b"".join(parts)
        else:
            body = b""
        if headers.get("connection") == "close":
            writer.close()
            connection.clear()
        return status, headers, body

    async def bulk_all(self, connections: int) -> dict[str, Any]:
        queue: asyncio.Queue[Session] = asyncio.Queue()
        for session in self.sessions:
            queue.put_nowait(session)
        failures = 0

        async def worker() -> None:
            nonlocal failures
            connection: list[Any] = []
            while not queue.empty():
                session = queue.get_nowait()
                try:
                    status, headers, body = await self.exchange(
                        connection, self.bulk_request(session, None)
                    )
                    if status != 200:
                        raise RuntimeError(f"bulk answered {status}: {body[:200]!r}")
                    session.etag = headers["etag"]
                    (stream,) = json.loads(body)["eventStreams"]
                    session.stream_path = urlsplit(stream["url"]).path
                except Exception as error:
                    failures += 1
                    self.errors.append(repr(error))
                    if connection:
                        connection[1].close()
                    connection.clear()
            if connection:
                connection[1].close()

        await asyncio.gather(*(worker() for _ in range(connections)))
        return {"ok": len(self.sessions) - failures, "failed": failures}

    # ---- streams ------------------------------------------------------------------------

    async def open_all(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(OPEN_AT_ONCE)
        results = await asyncio.gather(*(self.open_one(s, gate) for s in self.sessions))
        return {"open": sum(results), "failed": len(results) - sum(results)}

    async def open_one(self, session: Session, gate: asyncio.Semaphore) -> bool:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(
                    f"GET {session.stream_path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    writer.close()
                    self.errors.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
                    return False
                while (await reader.readline()).strip() != b"":  # the chunk's size, `retry:`
                    pass
            except (OSError, asyncio.IncompleteReadError) as error:
                self.errors.append(repr(error))
                return False
        session.writer = writer
        session.task = asyncio.create_task(self.read_events(session, reader))
        return True

    async def read_events(self, session: Session, reader: asyncio.StreamReader) -> None:
        """Each `data:` line is a refetchEvaluation event (chunk-size lines are skipped)."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                if not line.startswith(b"data: "):
                    continue
                now = time.time()
                if session.received is None:
                    session.received = now
                    self.progress.set()
                    if self.refetch:
                        self.refetch_queue.put_nowait(session)
                    event = json.loads(line[6:])
                    session.pending_etag = event["etag"]

    async def refetch_worker(self) -> None:
        connection: list[Any] = []
        try:
            while True:
                session = await self.refetch_queue.get()
                try:
                    status, headers, _ = await self.exchange(
                        connection, self.bulk_request(session, session.pending_etag)
                    )
                    session.etag = headers.get("etag", session.etag)
                except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                    status = 0
                    self.errors.append(repr(error))
                    if connection:
                        connection[1].close()
                    connection.clear()
                session.refetch_status = status
                session.refetched = time.time()
                self.progress.set()
        finally:
            if connection:
                connection[1].close()

    def arm(self, refetch: bool) -> dict[str, Any]:
        for session in self.sessions:
            session.received = session.refetched = None
            session.refetch_status = 0
        self.errors.clear()
        self.resent = 0
        self.refetch = refetch
        for task in self.refetch_workers:
            task.cancel()
        self.refetch_workers = (
            [asyncio.create_task(self.refetch_worker()) for _ in range(self.refetch_connections)]
            if refetch
            else []
        )
        return {"armed": len(self.sessions)}

    async def collect(self, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        open_ = [s for s in self.sessions if s.task is not None]

        def done() -> bool:
            if self.refetch:
                return all(s.refetched is not None for s in open_)
            return all(s.received is not None for s in open_)

        while not done() and (left := deadline - time.monotonic()) > 0:
            self.progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.wait(), left)
        return {
            "received": [s.received for s in open_ if s.received is not None],
            "missing": sum(1 for s in open_ if s.received is None),
            "refetched": [s.refetched for s in open_ if s.refetched is not None],
            "refetch_statuses": [s.refetch_status for s in open_ if s.refetched is not None],
            "errors": self.errors[:5],
            "resent": self.resent,
        }

    def close_all(self) -> dict[str, Any]:
        closed = 0
        for session in self.sessions:
            if session.writer is not None:
                session.writer.close()
                closed += 1
            if session.task is not None:
                session.task.cancel()
            session.writer = session.task = None
        return {"closed": closed}


async def serve(sessions: list[Session], origin: str, refetch_connections: int) -> None:
    client = Client(sessions, origin, refetch_connections=refetch_connections)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        command = json.loads(line)
        client.port = command.get("port", client.port)
        match command["cmd"]:
            case "bulk":
                answer = await client.bulk_all(command.get("connections", 16))
            case "open":
                answer = await client.open_all()
            case "arm":
                answer = client.arm(command.get("refetch", False))
            case "collect":
                answer = await client.collect(command["within"])
            case "close":
                answer = client.close_all()
            case other:
                answer = {"error": f"unknown command {other}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="ascii") as lines:
        sessions = [Session(token, csrf) for token, csrf in (line.split() for line in lines)]
    uvloop.run(serve(sessions, sys.argv[2], int(sys.argv[3])))
