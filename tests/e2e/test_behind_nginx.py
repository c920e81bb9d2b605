"""The deployment shape: Debian's nginx in front of `python -m api.ops.serve`, with the limits
the README's deployment section asks of the proxy (issue 19 #6).

The server bounds headers, header time, body idle time, keep-alive and connections itself;
the proxy adds what only it can: it buffers whole request bodies before the app sees them,
caps connections per client address, and answers oversized or slow clients itself.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.deployment import Nginx
from tests.support.processes import AppProcess, free_port, start_app

pytestmark = [pytest.mark.e2e]

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    client_header_buffer_size 1k;
    large_client_header_buffers 4 16k;
    client_header_timeout 2s;
    client_body_timeout 2s;
    client_max_body_size 1m;
    keepalive_timeout 5s;
    send_timeout 10s;
    limit_conn_zone $binary_remote_addr zone=per_client:1m;
    limit_conn per_client 8;
    limit_conn_status 503;

    upstream api {{
        server 127.0.0.1:{app_port};
        keepalive 16;
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_request_buffering on;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


@pytest.fixture(name="app", scope="module")
def fx_app(database: str) -> Iterator[AppProcess]:
    app = start_app(database, {"TRUSTED_PROXIES": "127.0.0.1"})
    yield app
    app.stop()


@pytest.fixture(name="proxy", scope="module")
def fx_proxy(app: AppProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    prefix, port = tmp_path_factory.mktemp("nginx"), free_port()
    app_port = int(app.base_url.rsplit(":", 1)[1])
    nginx = Nginx(prefix, port, NGINX_CONF.format(prefix=prefix, app_port=app_port, port=port))
    yield nginx
    nginx.stop()


def read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    started = time.monotonic()
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic() - started


def test_requests_pass_through_to_the_app(proxy: Nginx) -> None:
    with httpx.Client(base_url=proxy.base_url, timeout=5) as client:
        for _ in range(3):
            response = client.get("/health/ready")
            assert response.status_code == 200
            assert response.headers["x-request-id"]
        assert client.get("/health", headers={"Cookie": "c=" + "v" * 8000}).status_code == 200


def test_the_proxy_refuses_a_32_megabyte_header_quickly(proxy: Nginx) -> None:
    sock = proxy.connect()
    request = b"GET /health HTTP/1.1\r\nHost: api.test\r\nX-Big: " + b"a" * (32 << 20)

    def send() -> None:
        with contextlib.suppress(OSError):  # it may stop reading once it has answered
            sock.sendall(request)

    sender = threading.Thread(target=send)
    sender.start()
    received, elapsed = read_until_closed(sock, within=10)
    sender.join()
    sock.close()
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert elapsed < 5


def test_the_proxy_closes_slow_headers_and_half_sent_bodies(proxy: Nginx) -> None:
    slow_headers = proxy.connect()
    slow_headers.sendall(b"GET /health HTTP/1.1\r\nHost: api.test\r\n")
    half_body = proxy.connect()
    half_body.sendall(
        b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: api.test\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    for sock in (slow_headers, half_body):
        _, elapsed = read_until_closed(sock, within=8)
        sock.close()
        assert elapsed < 4


def test_the_proxy_caps_connections_per_client(proxy: Nginx) -> None:
    held = []
    try:
        for _ in range(8):
            sock = proxy.connect()
            sock.sendall(
                b"POST /api/v1/auth/logout HTTP/1.1\r\nHost: api.test\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            held.append(sock)
        time.sleep(0.2)
        response = httpx.get(f"{proxy.base_url}/health", timeout=5)
        assert response.status_code == 503
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{proxy.base_url}/health", timeout=5).status_code == 200
