"""People who log in, keyed on their OpenID identity (issuer, subject) — never on e-mail (F5)."""

from piccolo.columns import Boolean, Integer, Serial, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.readable import Readable
from piccolo.constraints import Check, Unique
from piccolo.table import Table


class User(Table, tablename="users"):
    id = Serial(primary_key=True)
    oidc_issuer = Varchar(length=500, null=False)
    oidc_subject = Varchar(length=255, null=False)
    email = Varchar(length=320, null=True, default=None, unique=True)
    name = Varchar(length=200, null=False, default="")
    given_name = Varchar(length=200, null=False, default="")
    family_name = Varchar(length=200, null=False, default="")
    # Set at each login from the provider's word. Rows written before e-mails were stored
    # only when verified (issue 11) default to false, so a grant never trusts them.
    email_verified = Boolean(default=False, null=False)
    is_active = Boolean(default=True, null=False)
    is_super_admin = Boolean(default=False, null=False)
    last_login_at = Timestamptz(null=True, default=None)
    version = Integer(default=1, null=False)  # not moved by logins (last_login_at)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    updated_at = Timestamptz(default=TimestamptzNow(), null=False)

    users_identity_unique = Unique([oidc_issuer, oidc_subject])
    users_email_lower = Check("email = lower(email)")

    @classmethod
    def get_readable(cls) -> Readable:
        """How the admin names a person in lists and pickers, searchable by e-mail or name."""
        return Readable(template="%s %s", columns=[cls.email, cls.name])


class SuperAdminGrant(Table, tablename="super_admin_grants"):
    """A super-admin grant made by e-mail before that person's first login (PRODUCT §5).

    Linked to a user at a login whose e-mail is verified, then deleted.
    """

    id = Serial(primary_key=True)
    email = Varchar(length=320, null=False, unique=True)
    granted_by = Varchar(length=320, null=False, default="")
    created_at = Timestamptz(default=TimestamptzNow(), null=False)

    super_admin_grants_email_lower = Check("email = lower(email)")

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s", columns=[cls.email])
