"""The production server process bounds headers, slow clients and connections (issue 19 #6).

Real `python -m api.ops.serve` processes, raw sockets: what an attacker sends, byte by byte.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.processes import AppProcess, start_app

pytestmark = [pytest.mark.e2e]

LIMITS = {
    "MAX_HEADER_BYTES": "16384",
    "HEADER_TIMEOUT_SECONDS": "1",
    "BODY_TIMEOUT_SECONDS": "1",
    "KEEP_ALIVE_SECONDS": "1",
    "MAX_CONNECTIONS": "4",
}


@pytest.fixture(name="server", scope="module")
def fx_server(database: str) -> Iterator[AppProcess]:
    app = start_app(database, LIMITS)
    yield app
    app.stop()


def connect(server: AppProcess) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and the seconds that took."""
    started = time.monotonic()
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic() - started


def read_response(sock: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def get(path: str = "/health", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: api.test\r\n" + extra + b"\r\n"


def test_a_32_megabyte_header_is_refused_with_431_and_the_connection_closed(
    server: AppProcess,
) -> None:
    sock = connect(server)
    request = b"GET /health HTTP/1.1\r\nHost: api.test\r\nX-Big: " + b"a" * (32 << 20)

    def send() -> None:
        with contextlib.suppress(OSError):  # it may stop reading once it has answered
            sock.sendall(request)

    sender = threading.Thread(target=send)
    started = time.monotonic()
    sender.start()
    received, _ = read_until_closed(sock, within=10)
    elapsed = time.monotonic() - started
    sender.join()
    sock.close()
    assert received.startswith(b"HTTP/1.1 431 "), received[:200]
    assert b"request_header_fields_too_large" in received
    assert elapsed < 5


def test_headers_trickled_a_byte_at_a_time_get_408_after_the_header_timeout(
    server: AppProcess,
) -> None:
    sock = connect(server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: api.test\r\n")
    started = time.monotonic()
    received = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < 6:
        try:
            sock.sendall(b"X")
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    elapsed = time.monotonic() - started
    sock.close()
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert elapsed < 4


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    server: AppProcess,
) -> None:
    sock = connect(server)
    received, elapsed = read_until_closed(sock, within=5)
    sock.close()
    assert received == b""
    assert 0.8 < elapsed < 3


def test_a_half_sent_body_is_answered_408_after_the_body_timeout(server: AppProcess) -> None:
    sock = connect(server)
    sock.sendall(
        b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: api.test\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a": '
    )
    received, elapsed = read_until_closed(sock, within=6)
    sock.close()
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]
    assert elapsed < 4


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_time(
    server: AppProcess,
) -> None:
    sock = connect(server)
    sock.sendall(get())
    assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    received, elapsed = read_until_closed(sock, within=5)
    sock.close()
    assert received == b""
    assert 0.8 < elapsed < 3


def test_beyond_the_connection_cap_requests_get_503_with_retry_after(server: AppProcess) -> None:
    held = [connect(server) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(get())
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        extra = connect(server)
        extra.sendall(get())
        received, _ = read_until_closed(extra, within=5)
        extra.close()
        assert received.startswith(b"HTTP/1.1 503 "), received[:200]
        assert b"\r\nretry-after: 1\r\n" in received.lower()
        assert b'"error":"overloaded"' in received
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    again = connect(server)
    again.sendall(get())
    assert read_response(again).startswith(b"HTTP/1.1 200 ")
    again.close()


def test_ordinary_requests_are_unaffected(server: AppProcess) -> None:
    """Keep-alive requests in a row, pipelined ones, a browser-sized cookie and a request
    that arrives in small pieces within the time allowed all get their answers."""
    sock = connect(server)
    cookie = b"Cookie: " + b"; ".join(b"c%d=%s" % (i, b"v" * 900) for i in range(12)) + b"\r\n"
    for _ in range(3):
        sock.sendall(get(extra=cookie))
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    sock.sendall(get() + get("/health/ready"))
    assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    for piece in (b"GET /health HT", b"TP/1.1\r\nHost: api", b".test\r\n", b"\r\n"):
        sock.sendall(piece)
        time.sleep(0.1)
    assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    sock.close()
