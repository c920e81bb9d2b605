"""Grant or revoke super-admin by e-mail from the command line — audited, never raw SQL (F4).

    python -m api.auth.super_admins grant alice@example.com
    python -m api.auth.super_admins revoke alice@example.com

A grant goes only to a verified address: `users.email` holds nothing else (see
`api.auth.service`), so an account whose e-mail is unverified is never matched. A grant
for someone without such an account yet waits in `super_admin_grants` and is linked at a
login whose e-mail the provider has verified. Revoking takes effect on the next
request of every session (the session query reads the flag live). The writes are
`api.auth.service`'s; this module is the command around them.
"""

from __future__ import annotations

import asyncio
import getpass
import sys

from api.auth import queries, service
from api.auth.rules import grantable_email
from api.auth.service import Grant
from api.platform.db.sql import connection_pool
from api.platform.http.errors import InvalidInput

USAGE = "usage: python -m api.auth.super_admins {grant|revoke|list} [EMAIL]"
GRANTED = {
    Grant.granted: "{} is now a super-admin",
    Grant.already: "{} already is a super-admin",
    Grant.pending: "{} will be a super-admin at their first login with a verified e-mail",
    Grant.already_pending: "{} already waits for their first login with a verified e-mail",
}


def _operator() -> str:
    return f"cli:{getpass.getuser()}"


async def grant(email: str) -> str:
    return GRANTED[await service.grant_super_admin(email, _operator())].format(email)


async def revoke(email: str) -> str:
    if await service.revoke_super_admin(email, _operator()):
        return f"{email} is no longer a super-admin"
    return f"{email} was not a super-admin"


async def listing() -> str:
    lines = await queries.super_admin_emails()
    lines += [f"{email} (pending first login)" for email in await queries.pending_grant_emails()]
    return "\n".join(lines) or "no super-admins"


async def _run(command: str, email: str | None) -> str:
    async with connection_pool(max_size=2):
        if command == "list":
            return await listing()
        assert email is not None
        return await (grant(email) if command == "grant" else revoke(email))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if (
        not args
        or args[0] not in ("grant", "revoke", "list")
        or (args[0] != "list" and len(args) != 2)
    ):
        print(USAGE, file=sys.stderr)
        return 2
    email = args[1].strip().lower() if len(args) == 2 else None
    try:
        if args[0] == "grant":
            email = grantable_email(args[1])
        elif email is not None and ("@" not in email or len(email) > 320):
            raise InvalidInput("not an e-mail address")  # a grant made before the rule, too
    except InvalidInput:
        print(f"not an e-mail address: {args[1]!r}", file=sys.stderr)
        return 2
    print(asyncio.run(_run(args[0], email)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
