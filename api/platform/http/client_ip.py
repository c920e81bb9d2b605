"""The client's IP: the socket peer, or X-Forwarded-For when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar.connection import ASGIConnection

from api.platform.config import Settings


def client_ip(connection: ASGIConnection[Any, Any, Any, Any], settings: Settings) -> str:
    peer = connection.client.host if connection.client else "unknown"
    if not settings.trusted_proxies:
        return peer
    hops = [peer]
    forwarded = connection.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()] + hops
    # Walk from the nearest hop back; the first address not a trusted proxy is the client.
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return hop
        if not any(address in network for network in settings.trusted_proxies):
            return hop
    return hops[0]
