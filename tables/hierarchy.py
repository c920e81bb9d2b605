"""The organisation tree, role assignments and permission overrides (PRODUCT §3, §3.1).

Each node stores `path`: the ids of its ancestors from the root down to itself. "All
ancestors of X" is X's own row (one primary-key lookup); "all descendants of X" is
`path @> ARRAY[X]` on a GIN index. Triggers (migration 2) fill `path` on insert, rewrite
the subtree on a move and refuse cycles, so no writer can leave it inconsistent.
"""

from piccolo.columns import (
    JSONB,
    Array,
    Boolean,
    ForeignKey,
    Integer,
    OnDelete,
    Serial,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.indexes import IndexMethod
from piccolo.columns.readable import Readable
from piccolo.constraints import Check, Unique
from piccolo.table import Table

from tables.enums import NodeLevel, Permission, Role, sql_in
from tables.users import User

SLUG_PATTERN = "^[a-z0-9]+(-[a-z0-9]+)*$"


class HierarchyNode(Table, tablename="organization_hierarchy"):
    id = Serial(primary_key=True)
    parent_id: ForeignKey["HierarchyNode"] = ForeignKey(
        "self",
        null=True,
        default=None,
        on_delete=OnDelete.restrict,
        index=True,
    )
    level = Varchar(length=20, choices=NodeLevel, null=False)
    name = Varchar(length=200, null=False)
    # Kept by the path trigger, like `path`: what people read wherever a node is named.
    full_name = Varchar(
        length=700,
        null=False,
        default="",
        help_text="Set from the names of the node and its ancestors, e.g. Acme / Paris.",
    )
    slug = Varchar(length=100, null=False)
    path = Array(Integer(), null=False, default=list, index=True, index_method=IndexMethod.gin)
    is_active = Boolean(default=True, null=False)
    settings = JSONB(null=True, default=None)
    email_domains = Array(
        Varchar(length=255), null=False, default=list, index=True, index_method=IndexMethod.gin
    )
    # Settings keys only super-admins change (PRODUCT §3.1, issue 19): targeting may trust them.
    managed_settings = Array(Varchar(length=100), null=False, default=list)
    version = Integer(default=1, null=False)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    updated_at = Timestamptz(default=TimestamptzNow(), null=False)

    hierarchy_slug_unique_among_siblings = Unique([parent_id, slug], nulls_distinct=False)
    hierarchy_level_valid = Check(sql_in("level", NodeLevel))
    hierarchy_level_depth = Check(
        "(level = 'organization' AND parent_id IS NULL AND cardinality(path) = 1)"
        " OR (level = 'location' AND parent_id IS NOT NULL AND cardinality(path) = 2)"
        " OR (level = 'department' AND parent_id IS NOT NULL AND cardinality(path) = 3)"
    )
    hierarchy_slug_format = Check(f"slug ~ '{SLUG_PATTERN}'")
    hierarchy_domains_only_on_organizations = Check(
        "level = 'organization' OR cardinality(email_domains) = 0"
    )
    hierarchy_managed_settings_only_on_organizations = Check(
        "level = 'organization' OR cardinality(managed_settings) = 0"
    )
    hierarchy_settings_object = Check("settings IS NULL OR jsonb_typeof(settings) = 'object'")
    # Twice the API's 16 KiB of compact JSON: Postgres prints jsonb with spaces.
    hierarchy_settings_size = Check("settings IS NULL OR octet_length(settings::text) <= 32768")
    hierarchy_version_positive = Check("version >= 1")

    @classmethod
    def get_readable(cls) -> Readable:
        """The node with its ancestors, e.g. "Acme Retail / Paris / Analytics"."""
        return Readable(template="%s", columns=[cls.full_name])


class UserHierarchyAssignment(Table, tablename="user_hierarchy_assignments"):
    id = Serial(primary_key=True)
    user_id = ForeignKey(User, null=False, on_delete=OnDelete.cascade)
    node_id = ForeignKey(HierarchyNode, null=False, on_delete=OnDelete.restrict, index=True)
    role = Varchar(length=30, choices=Role, null=False)
    is_primary = Boolean(default=False, null=False)
    is_active = Boolean(default=True, null=False)
    granted_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    # The permission overrides the grantor's authority rested on: revoking one ends this.
    derived_from = Array(
        Integer(), null=False, default=list, index=True, index_method=IndexMethod.gin
    )
    version = Integer(default=1, null=False)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    updated_at = Timestamptz(default=TimestamptzNow(), null=False)

    assignments_user_node_unique = Unique([user_id, node_id])
    assignments_role_valid = Check(sql_in("role", Role))

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(
            template="%s: %s at %s", columns=[cls.user_id.email, cls.role, cls.node_id.full_name]
        )


class HierarchyPermissionOverride(Table, tablename="hierarchy_permission_overrides"):
    id = Serial(primary_key=True)
    user_id = ForeignKey(User, null=False, on_delete=OnDelete.cascade)
    node_id = ForeignKey(HierarchyNode, null=False, on_delete=OnDelete.restrict, index=True)
    permission = Varchar(length=30, choices=Permission, null=False)
    granted = Boolean(null=False)
    reason = Text(null=False, default="")
    granted_by_id = ForeignKey(User, null=True, default=None, on_delete=OnDelete.set_null)
    expires_at = Timestamptz(null=True, default=None)
    # The overrides the grantor's authority rested on: revoking one ends this, and this
    # never outlives a temporary one (PRODUCT §3.1).
    derived_from = Array(
        Integer(), null=False, default=list, index=True, index_method=IndexMethod.gin
    )
    version = Integer(default=1, null=False)
    created_at = Timestamptz(default=TimestamptzNow(), null=False)
    updated_at = Timestamptz(default=TimestamptzNow(), null=False)

    permission_overrides_unique = Unique([user_id, node_id, permission])
    permission_overrides_permission_valid = Check(sql_in("permission", Permission))

    @classmethod
    def get_readable(cls) -> Readable:
        return Readable(
            template="%s: %s at %s",
            columns=[cls.user_id.email, cls.permission, cls.node_id.full_name],
        )
