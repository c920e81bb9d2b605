"""`/schema` (PRODUCT §4) works without internet: the docs UI loads only this app's files."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest


class AssetLinks(HTMLParser):
    """Every <script src> and <link href> of a page, with what kind of file it should be."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.assets.append(("script", str(attributes["src"])))
        if tag == "link" and attributes.get("href"):
            self.assets.append((str(attributes.get("rel")), str(attributes["href"])))


EXPECTED_TYPE = {"script": "javascript", "stylesheet": "text/css", "icon": "image/png"}


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
async def test_the_docs_ui_loads_every_asset_from_this_app(
    client: httpx.AsyncClient, path: str
) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    links = AssetLinks()
    links.feed(page.text)
    kinds = {kind for kind, _ in links.assets}
    assert {"script", "stylesheet"} <= kinds
    for kind, url in links.assets:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert EXPECTED_TYPE[kind] in asset.headers["content-type"], (url, asset.headers)
    assert "https://" not in page.text.split("<body", 1)[0]


async def test_the_docs_ui_embeds_the_openapi_document(client: httpx.AsyncClient) -> None:
    page = (await client.get("/schema")).text
    assert "SwaggerUIBundle(" in page
    assert "/api/v1/features" in page
