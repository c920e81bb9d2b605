"""The promotion commands (`python -m api.flags.export`, `python -m api.flags.import`): the
same document and import as the HTTP API, for an operator or a CI job holding only
`DATABASE_URL`. Both act as `--actor EMAIL`, who must be an active super-admin: the import's
audit rows name them, with the document's hash."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from api.flags import promotion, queries
from api.flags.promotion import Importer
from api.platform.config import SettingsError, load_database_settings
from api.platform.db.sql import connection_pool
from api.platform.http.errors import AppError


class CommandError(Exception):
    """A refusal the command reports in one line (exit status 1)."""


async def _operator(email: str) -> Importer:
    row = await queries.active_super_admin_by_email(email.strip().lower())
    if row is None:
        raise CommandError(f"--actor {email!r} is not an active super-admin")
    return Importer(int(row["id"]), str(row["email"]))


async def export_command(actor: str, include_node_overrides: bool) -> bytes:
    async with connection_pool(max_size=2):
        await _operator(actor)
        document = await promotion.export_document(include_node_overrides=include_node_overrides)
    return promotion.canonical_json(document)


async def import_command(body: bytes, actor: str, *, apply: bool, prune: bool) -> str:
    async with connection_pool(max_size=2):
        importer = await _operator(actor)
        result = await promotion.import_document(
            body, importer, None, dry_run=not apply, prune=prune
        )
    return json.dumps(msgspec.to_builtins(result), indent=2, sort_keys=True)


def _run(work: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[int, Any]:
    try:
        load_database_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2, None
    try:
        return 0, asyncio.run(work())
    except CommandError as exc:
        print(str(exc), file=sys.stderr)
    except AppError as exc:
        print(
            json.dumps({"error": exc.code, "detail": exc.detail, "extra": exc.extra}),
            file=sys.stderr,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        print(f"database error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1, None


def export_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api.flags.export", description="Write the flags document to stdout."
    )
    parser.add_argument("--actor", required=True, help="an active super-admin's e-mail")
    parser.add_argument("--include-node-overrides", action="store_true")
    args = parser.parse_args(argv)
    status, body = _run(lambda: export_command(args.actor, args.include_node_overrides))
    if status == 0:
        sys.stdout.buffer.write(body)
    return status


def import_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m api.flags.import",
        description="Print what a flags document changes; --apply applies it.",
    )
    parser.add_argument("document", type=Path)
    parser.add_argument("--actor", required=True, help="an active super-admin's e-mail")
    parser.add_argument("--apply", action="store_true", help="write (default: a dry run)")
    parser.add_argument("--prune", action="store_true", help="archive flags it does not name")
    args = parser.parse_args(argv)
    try:
        body = args.document.read_bytes()
    except OSError as exc:
        print(f"cannot read {args.document}: {exc.strerror}", file=sys.stderr)
        return 2
    status, diff = _run(
        lambda: import_command(body, args.actor, apply=args.apply, prune=args.prune)
    )
    if status == 0:
        print(diff)
    return status
