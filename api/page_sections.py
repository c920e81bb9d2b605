"""Sections of the `/` page that come from the permission and flag domains."""

from __future__ import annotations

from api.auth.identity import Caller


async def extra_sections(caller: Caller) -> str:
    return ""
