"""Which origins share a *site* with the API, as browsers decide it for cookies.

A site is the scheme plus the registrable domain (eTLD+1) by the Public Suffix List, the rule
browsers use for `SameSite` and for blocking third-party cookies: `https://app.zebra.associates`
and `https://api.zebra.associates` are one site; `https://app.zebra.test` and
`https://api.marketedge.test` are two, and so are `http://` and `https://` of the same host.
The list comes from `publicsuffixlist`'s bundled copy, so nothing is fetched at start.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList


@dataclass(frozen=True, slots=True)
class Site:
    scheme: str
    registrable_domain: str
    """eTLD+1, or the whole host for an IP address, `localhost` or a bare public suffix."""

    def __str__(self) -> str:
        return f"{self.scheme}://{self.registrable_domain}"


@cache
def _suffix_list() -> PublicSuffixList:
    """Parsed once per process (~30 ms) from the copy shipped in the wheel."""
    return PublicSuffixList()


def site_of(url: str) -> Site:
    """The site of an origin or URL; the port never matters to it."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
    except ValueError:
        registrable = _suffix_list().privatesuffix(host) or host
    else:
        registrable = host
    return Site(scheme=parts.scheme.lower(), registrable_domain=registrable)


def cross_site_origins(public_url: str, origins: tuple[str, ...]) -> tuple[str, ...]:
    """The `origins` on another site than `public_url`, in their given order."""
    own = site_of(public_url)
    return tuple(origin for origin in origins if site_of(origin) != own)


def cross_site_warning(public_url: str, origins: tuple[str, ...]) -> str | None:
    """The operator's warning for front ends on another site, or `None` when all share it."""
    others = cross_site_origins(public_url, origins)
    if not others:
        return None
    return (
        f"FRONTEND_ORIGINS {', '.join(others)} "
        f"{'is' if len(others) == 1 else 'are'} on another site than PUBLIC_URL "
        f"{public_url} ({site_of(public_url)}): the session cookie is then a third-party "
        "cookie there, which Safari, Chrome's incognito mode and Chromium with its default "
        "third-party cookie blocking refuse to send and Firefox partitions, so requests from "
        "that front end arrive signed out. Put the API on the front end's site instead (e.g. "
        f"{_same_site_example(others[0])}) and keep SESSION_COOKIE_SAMESITE=lax; see the "
        "README's deployment section."
    )


def _same_site_example(origin: str) -> str:
    site = site_of(origin)
    return f"{site.scheme}://api.{site.registrable_domain}"
