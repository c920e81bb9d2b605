"""Feature flags: typed variants, overrides, targeting rules and segments, scheduled changes
and usage counts (PRODUCT §3.2, issue 14; semantics in docs/FLAGS.md)."""

from decimal import Decimal

from piccolo.columns import (
    JSONB,
    BigInt,
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

from tables.enums import FlagType, ScheduleAction, ScheduleStatus, sql_in
from tables.hierarchy import HierarchyNode
from tables.users import User

FLAG_KEY_PATTERN = "^[a-z0-9]+([-_.][a-z0-9]+)*$"
VARIANT_PATTERN = "^[A-Za-z0-9]+([-_.][A-Za-z0-9]+)*$"
BOOLEAN_VARIANTS = {"on": True, "off": False}


class FeatureFlag(Table, tablename="feature_flags"):
    id = Serial(primary_key=True)
    key = Varchar(length=100, null=False, unique=True)
    name = Varchar(length=200, null=False)
    description = Text(null=False, default="")
    enabled = Boolean(default=False, null=False)
    rollout_percentage = Numeric(digits=(5, 2), null=False, default=Decimal("0"))
    flag_type = Varchar(length=20, choices=FlagType, null=False, default=FlagType.boolean)
    variants = JSONB(
        null=False,
        default=BOOLEAN_VARIANTS,
        help_text='Variant names and their values, e.g. {"control": "blue", "treatment": "green"}.',
    )
    default_variant = Varchar(
        length=100, null=False, default="on", help_text="Served to users in the rollout."
    )
    off_variant = Varchar(
        length=100,
        null=False,
        default="off",
        help_text="Served when the flag is off, and to users outside the rollout.",
    )
    rollout_split = JSONB(
        null=True,
        default=None,
        help_text='Optional weights splitting the rollout, e.g. {"control": 50, "treatment": 50}.',
    )
    # Kept by a trigger: when rollout_percentage last changed (stale-flag candidates).
    rollout_changed_at = Timestamptz(default=TimestamptzNow(), null=False)
    archived = Boolean(default=False, null=False)
    version = Integer(default=1, null=False)
    created_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    updated_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    updated_at = Timestamptz(default=TimestamptzNow(), null=False)

    feature_flags_key_format = Check(f"key ~ '{FLAG_KEY_PATTERN}'")
    feature_flags_rollout_range = Check("rollout_percentage >= 0 AND rollout_percentage <= 100")
    feature_flags_version_positive = Check("version >= 1")
    feature_flags_type_valid = Check(sql_in("flag_type", FlagType))
    feature_flags_variants_object = Check("jsonb_typeof(variants) = 'object'")
    feature_flags_default_variant_known = Check("variants ? default_variant")
    feature_flags_off_variant_known = Check("variants ? off_variant")

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
    variant = Varchar(
        length=100, null=False, default="", help_text="The variant this target is served."
    )
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


class Segment(Table, tablename="segments"):
    """A named set of conditions that any flag's rules can share."""

    id = Serial(primary_key=True)
    key = Varchar(length=100, null=False, unique=True)
    name = Varchar(length=200, null=False)
    description = Text(null=False, default="")
    conditions = JSONB(
        null=False,
        default=[],
        help_text='All must hold, e.g. [{"attribute": "user.email_domain", "operator": "in",'
        ' "values": ["acme.com"]}].',
    )
    created_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    updated_at = Timestamptz(default=TimestamptzNow(), null=False)
    version = Integer(
        default=1, null=False, help_text="Bumped by the database on every real change."
    )

    segments_key_format = Check(f"key ~ '{FLAG_KEY_PATTERN}'")
    segments_conditions_list = Check("jsonb_typeof(conditions) = 'array'")

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s", columns=[cls.key])


class FeatureFlagRule(Table, tablename="feature_flag_rules"):
    """One targeting rule of a flag: evaluated in `position` order, first match wins."""

    id = Serial(primary_key=True)
    flag_id = ForeignKey(FeatureFlag, null=False, on_delete=OnDelete.restrict, index=True)
    position = Integer(null=False, default=0, help_text="Rules run from low to high.")
    name = Varchar(length=100, null=False, help_text="Named in the evaluation's metadata.")
    segment_id = ForeignKey(
        Segment,
        null=True,
        default=None,
        on_delete=OnDelete.restrict,
        index=True,
        help_text="Optional: the segment's conditions must hold too.",
    )
    conditions = JSONB(
        null=False,
        default=[],
        help_text='All must hold, e.g. [{"attribute": "organization.settings.plan",'
        ' "operator": "in", "values": ["enterprise"]}].',
    )
    variant = Varchar(
        length=100, null=True, default=None, help_text="Served on a match (or give a split)."
    )
    split = JSONB(
        null=True,
        default=None,
        help_text='Weights served on a match, e.g. {"control": 50, "treatment": 50}.',
    )
    created_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    updated_at = Timestamptz(default=TimestamptzNow(), null=False)
    version = Integer(
        default=1, null=False, help_text="Bumped by the database on every real change."
    )

    flag_rules_name_unique = Unique([flag_id, name])
    flag_rules_variant_or_split = Check("(variant IS NULL) <> (split IS NULL)")
    flag_rules_conditions_list = Check("jsonb_typeof(conditions) = 'array'")

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s: %s", columns=[cls.flag_id.key, cls.name])


class FeatureFlagSchedule(Table, tablename="feature_flag_schedules"):
    """A change to a flag that the scheduler applies once, at `run_at`, as its author."""

    id = Serial(primary_key=True)
    flag_id = ForeignKey(FeatureFlag, null=False, on_delete=OnDelete.restrict, index=True)
    action = Varchar(length=30, choices=ScheduleAction, null=False)
    rollout_percentage = Numeric(
        digits=(5, 2), null=True, default=None, help_text="For set_rollout."
    )
    variant = Varchar(length=100, null=True, default=None, help_text="For set_default_variant.")
    run_at = Timestamptz(null=False, index=True)
    status = Varchar(length=20, choices=ScheduleStatus, null=False, default=ScheduleStatus.pending)
    note = Text(null=False, default="")
    outcome = Text(null=False, default="", help_text="Why a change failed, when it did.")
    applied_at = Timestamptz(null=True, default=None)
    created_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    updated_at = Timestamptz(default=TimestamptzNow(), null=False)

    flag_schedules_action_valid = Check(sql_in("action", ScheduleAction))
    flag_schedules_status_valid = Check(sql_in("status", ScheduleStatus))
    flag_schedules_argument = Check(
        "(action = 'set_rollout') = (rollout_percentage IS NOT NULL)"
        " AND (action = 'set_default_variant') = (variant IS NOT NULL)"
    )
    flag_schedules_rollout_range = Check(
        "rollout_percentage IS NULL OR (rollout_percentage >= 0 AND rollout_percentage <= 100)"
    )

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s: %s at %s", columns=[cls.flag_id.key, cls.action, cls.run_at])


class FeatureFlagUsage(Table, tablename="feature_flag_usage"):
    """Evaluations of a flag per hour and variant; written in batches, never per evaluation."""

    id = Serial(primary_key=True)
    flag_id = ForeignKey(FeatureFlag, null=False, on_delete=OnDelete.cascade)
    hour = Timestamptz(null=False)
    variant = Varchar(length=100, null=False)
    evaluations = BigInt(null=False, default=0)
    last_evaluated_at = Timestamptz(null=False)

    flag_usage_one_row = Unique([flag_id, hour, variant])
    flag_usage_count_positive = Check("evaluations >= 0")

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(template="%s %s", columns=[cls.flag_id.key, cls.variant])
