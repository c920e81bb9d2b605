"""The application under test plus a bare Litestar JSON endpoint, served by one process.

The bare endpoint is the yardstick: the same server, interpreter, event loop and HTTP
parser, with none of our code, so the ratio measures what our code costs.
"""

from __future__ import annotations

from litestar import Litestar, get
from litestar.types import ASGIApp, Receive, Scope, Send

from api.app import create_app


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, str]:
    return {"status": "ok"}


def create_bench_app() -> ASGIApp:
    app = create_app()
    yardstick = Litestar([bare], openapi_config=None, logging_config=None)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/bare":
            await yardstick(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
