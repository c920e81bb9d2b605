"""Grant or revoke super-admin by e-mail from the command line — audited, never raw SQL (F4).

    python -m api.auth.super_admins grant alice@example.com
    python -m api.auth.super_admins revoke alice@example.com

A grant goes only to a verified address: `users.email` holds nothing else (see
`api.auth.provisioning`), so an account whose e-mail is unverified is never matched. A grant
for someone without such an account yet waits in `super_admin_grants` and is linked at a
login whose e-mail the provider has verified. Revoking takes effect on the next
request of every session (the session query reads the flag live).
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from datetime import UTC, datetime

from api.platform.db.audit import record_audit
from api.platform.db.sql import engine
from tables.users import SuperAdminGrant, User

USAGE = "usage: python -m api.auth.super_admins {grant|revoke|list} [EMAIL]"


async def _audit(action: str, email: str, user_id: int | None, before: bool, after: bool) -> None:
    await record_audit(
        action=action,
        resource_type="user" if user_id else "super_admin_grant",
        resource_id=user_id or email,
        actor=None,
        before={"is_super_admin": before, "email": email},
        after={"is_super_admin": after, "email": email, "by": f"cli:{getpass.getuser()}"},
    )


async def grant(email: str) -> str:
    async with engine().transaction():
        user = (
            await User.select(User.id, User.is_super_admin)
            .where((User.email == email) & (User.email_verified.eq(True)))
            .lock_rows()
            .first()
        )
        if user is not None:
            await User.update(
                {User.is_super_admin: True, User.updated_at: datetime.now(UTC)}
            ).where(User.id == user["id"])
            await _audit("super_admin.granted", email, user["id"], user["is_super_admin"], True)
    if user is not None:
        return f"{email} is now a super-admin"
    async with engine().transaction():
        await SuperAdminGrant.insert(
            SuperAdminGrant(email=email, granted_by=f"cli:{getpass.getuser()}")
        ).on_conflict(target=SuperAdminGrant.email, action="DO NOTHING")
        await _audit("super_admin.granted_pending", email, None, False, True)
    return f"{email} will be a super-admin at their first login with a verified e-mail"


async def revoke(email: str) -> str:
    async with engine().transaction():
        pending = (
            await SuperAdminGrant.delete()
            .where(SuperAdminGrant.email == email)
            .returning(SuperAdminGrant.id)
        )
        rows = (
            await User.update({User.is_super_admin: False, User.updated_at: datetime.now(UTC)})
            .where(User.email == email, User.is_super_admin.eq(True))
            .returning(User.id)
        )
        if rows or pending:
            await _audit("super_admin.revoked", email, rows[0]["id"] if rows else None, True, False)
    if not rows and not pending:
        return f"{email} was not a super-admin"
    return f"{email} is no longer a super-admin"


async def listing() -> str:
    users = await User.select(User.email).where(User.is_super_admin.eq(True)).order_by(User.email)
    pending = await SuperAdminGrant.select(SuperAdminGrant.email).order_by(SuperAdminGrant.email)
    lines = [f"{row['email']}" for row in users]
    lines += [f"{row['email']} (pending first login)" for row in pending]
    return "\n".join(lines) or "no super-admins"


async def _run(command: str, email: str | None) -> str:
    db = engine()
    await db.start_connection_pool(min_size=0, max_size=2)
    try:
        if command == "list":
            return await listing()
        assert email is not None
        return await (grant(email) if command == "grant" else revoke(email))
    finally:
        await db.close_connection_pool()


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
    if email is not None and ("@" not in email or len(email) > 320):
        print(f"not an e-mail address: {args[1]!r}", file=sys.stderr)
        return 2
    print(asyncio.run(_run(args[0], email)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
