"""The `/schema` docs UI without a CDN: Swagger UI's files served by this app.

Litestar's OpenAPI UIs load their JavaScript and CSS from a CDN, so without internet
access they render a blank page. The `swagger-ui-bundle-v2` package ships Swagger UI's
`dist` folder; it is served under ASSETS_PATH and the plugin points there, so the page
loads nothing from elsewhere (the OpenAPI document is embedded in it).
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

ASSETS_PATH = "/schema-assets/swagger-ui"


def swagger_assets() -> Router:
    """Swagger UI's bundled files (JS, CSS, favicons), cached by browsers for a day."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[Path(str(swagger_ui_path))],
        name="swagger_ui_assets",
        cache_control=CacheControlHeader(max_age=86_400, public=True),
    )


def swagger_ui_plugin() -> SwaggerRenderPlugin:
    """Swagger UI at /schema (the first plugin is the default) and /schema/swagger."""
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        path="/swagger",
    )
