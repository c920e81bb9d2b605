"""Feature flags and their per-user / per-node overrides (PRODUCT §3, §3.2)."""

from decimal import Decimal

from piccolo.columns import (
    Boolean,
    ForeignKey,
    Integer,
    Numeric,
    OnDelete,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.readable import Readable
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from tables.hierarchy import HierarchyNode
from tables.users import User

FLAG_KEY_PATTERN = "^[a-z0-9]+([-_.][a-z0-9]+)*$"


class FeatureFlag(Table, tablename="feature_flags"):
    id = Serial(primary_key=True)
    key = Varchar(length=100, null=False, unique=True)
    name = Varchar(length=200, null=False)
    description = Text(null=False, default="")
    enabled = Boolean(default=False, null=False)
    rollout_percentage = Numeric(digits=(5, 2), null=False, default=Decimal("0"))
    archived = Boolean(default=False, null=False)
    version = Integer(default=1, null=False)
    created_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    updated_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    updated_at = Timestamptz(default=TimestamptzNow(), null=False)

    feature_flags_key_format = Check(f"key ~ '{FLAG_KEY_PATTERN}'")
    feature_flags_rollout_range = Check("rollout_percentage >= 0 AND rollout_percentage <= 100")
    feature_flags_version_positive = Check("version >= 1")

    @classmethod
    def get_readable(cls) -> Readable:
        """Pickers find a flag by typing part of its key."""
        return Readable(template="%s", columns=[cls.key])


class FeatureFlagOverride(Table, tablename="feature_flag_overrides"):
    id = Serial(primary_key=True)
    flag_id = ForeignKey(FeatureFlag, null=False, on_delete=OnDelete.restrict, index=True)
    user_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.cascade, index=True)
    node_id = ForeignKey(
        HierarchyNode,
        null=True,
        default=None,
        on_delete=OnDelete.restrict,
        index=True,
    )
    enabled = Boolean(null=False)
    reason = Text(null=False, default="")
    expires_at = Timestamptz(null=True, default=None)
    created_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)

    flag_overrides_one_target = Check("(user_id IS NULL) <> (node_id IS NULL)")
    # NULLs are distinct, so each constraint only bites on rows of its own target kind.
    flag_overrides_user_unique = Unique([flag_id, user_id])
    flag_overrides_node_unique = Unique([flag_id, node_id])

    @classmethod
    def get_readable(cls) -> Readable:
        """Exactly one of user and node is set; the other formats as an empty string."""
        return Readable(
            template="%s for %s%s",
            columns=[cls.flag_id.key, cls.user_id.email, cls.node_id.full_name],
        )
