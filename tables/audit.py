"""The append-only audit trail (PRODUCT §3). A trigger (migration 2) refuses UPDATE and DELETE."""

from piccolo.columns import JSONB, BigSerial, ForeignKey, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.readable import Readable
from piccolo.table import Table

from tables.users import User


class AuditLog(Table, tablename="audit_logs"):
    id = BigSerial(primary_key=True)
    occurred_at = Timestamptz(default=TimestamptzNow(), null=False, index=True)
    # SET NULL, never CASCADE: the record outlives the actor; actor_email keeps who it was.
    actor_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null, index=True)
    actor_email = Varchar(length=320, null=True, default=None)
    action = Varchar(length=100, null=False)
    resource_type = Varchar(length=100, null=False)
    resource_id = Varchar(length=200, null=False, default="")
    before = JSONB(null=True, default=None)
    after = JSONB(null=True, default=None)
    # Filled by a trigger on insert from before/after, so every writer's record reads alike.
    changes = Text(
        null=False, default="", help_text="What changed, before → after, one field a line."
    )
    request_id = Varchar(length=128, null=True, default=None)
    client_ip = Varchar(length=64, null=True, default=None)

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s #%s", columns=[cls.action, cls.resource_id])
