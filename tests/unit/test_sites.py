"""The site rule of the start-up warning: scheme + registrable domain by the Public Suffix List."""

from __future__ import annotations

import pytest

from api.platform.http.sites import cross_site_origins, cross_site_warning, site_of


@pytest.mark.parametrize(
    ("api", "front_end", "same_site"),
    [
        # subdomains of one registrable domain are one site, whatever the port
        ("https://api.zebra.associates", "https://app.zebra.associates", True),
        ("https://zebra.associates", "https://www.app.zebra.associates:8443", True),
        ("https://API.Zebra.Associates.", "https://app.zebra.associates", True),
        # different registrable domains are different sites
        ("https://api.marketedge.test", "https://app.zebra.test", False),
        ("https://api.marketedge.com", "https://marketedge.co", False),
        # co.uk-style public suffixes: the registrable domain is one label below them
        ("https://api.zebra.co.uk", "https://app.zebra.co.uk", True),
        ("https://api.zebra.co.uk", "https://app.lion.co.uk", False),
        ("https://api.zebra.com.au", "https://zebra.com.au", True),
        # private suffixes of the list: each tenant of github.io is its own site
        ("https://me.github.io", "https://you.github.io", False),
        # the scheme is part of the site (schemeful same-site)
        ("https://api.zebra.associates", "http://app.zebra.associates", False),
        # hosts without a registrable domain are their own site
        ("http://127.0.0.1:8000", "http://127.0.0.1:3000", True),
        ("http://127.0.0.1:8000", "http://app.localhost:3000", False),
        ("http://localhost:8000", "http://localhost:3000", True),
    ],
)
def test_same_site_is_scheme_and_registrable_domain(
    api: str, front_end: str, same_site: bool
) -> None:
    assert (site_of(api) == site_of(front_end)) is same_site
    assert cross_site_origins(api, (front_end,)) == (() if same_site else (front_end,))


def test_site_of_names_scheme_and_registrable_domain() -> None:
    assert str(site_of("https://a.b.zebra.co.uk:443/path")) == "https://zebra.co.uk"
    assert str(site_of("http://[::1]:8000")) == "http://::1"


def test_no_warning_when_every_front_end_shares_the_api_site() -> None:
    origins = ("https://app.zebra.associates", "https://admin.zebra.associates")
    assert cross_site_warning("https://api.zebra.associates", origins) is None
    assert cross_site_warning("https://api.zebra.associates", ()) is None


def test_the_warning_names_only_the_cross_site_front_ends_and_the_alternative() -> None:
    origins = ("https://app.marketedge.test", "https://app.zebra.test")
    warning = cross_site_warning("https://api.marketedge.test", origins)
    assert warning is not None
    assert "https://app.zebra.test" in warning
    assert "https://app.marketedge.test" not in warning
    assert "third-party cookie" in warning
    assert "https://api.zebra.test" in warning  # the same-site alternative
