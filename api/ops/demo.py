"""Demo data for the development default (PRODUCT §8), loaded idempotently.

An organization tree (each organisation with a `plan` setting), users with different roles
(one super-admin), a dozen boolean flags with a user and a node override, and typed flags
(docs/FLAGS.md): a string flag with three variants, an integer flag with a rule on the
organisation's plan, a JSON flag with a rule on a segment, a float flag, a flag with a rule
on an OFREP context attribute, and a pending scheduled change. Users are tied to the
development provider's subjects, so typing the subject in its login form signs in as them.

It needs the database and `OIDC_ISSUER` (the issuer those users are keyed to), nothing else.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from api.platform.config import SettingsError, load_database_settings, load_oidc_issuer
from api.platform.db.sql import engine
from tables.flags import (
    FeatureFlag,
    FeatureFlagOverride,
    FeatureFlagRule,
    FeatureFlagSchedule,
    Segment,
)
from tables.hierarchy import HierarchyNode, UserHierarchyAssignment
from tables.users import User

PLANS = {"acme": "enterprise", "globex": "starter"}
TREE = {
    ("Acme Retail", "acme", ("acme.example",)): {
        ("London", "london"): [("Sales", "sales"), ("Analytics", "analytics")],
        ("Paris", "paris"): [("Sales", "sales"), ("Analytics", "analytics")],
    },
    ("Globex", "globex", ("globex.example",)): {
        ("Berlin", "berlin"): [("Research", "research"), ("Finance", "finance")],
        ("Madrid", "madrid"): [("Research", "research"), ("Finance", "finance")],
    },
}

# subject, e-mail, name, super-admin, role, node path (slugs)
USERS = [
    ("admin", "admin@marketedge.example", "Ada Admin", True, None, ()),
    ("alice", "alice@acme.example", "Alice Org-Admin", False, "org_admin", ("acme",)),
    ("lena", "lena@acme.example", "Lena Location-Manager", False, "location_manager",
     ("acme", "london")),
    ("dan", "dan@acme.example", "Dan Department-Lead", False, "department_lead",
     ("acme", "london", "sales")),
    ("uma", "uma@acme.example", "Uma User", False, "user", ("acme", "paris", "analytics")),
    ("vic", "vic@globex.example", "Vic Viewer", False, "viewer", ("globex",)),
]  # fmt: skip

FLAGS = [
    ("new-dashboard", "New dashboard", True, "100"),
    ("dark-mode", "Dark mode", True, "50"),
    ("export-csv", "CSV export", True, "100"),
    ("export-pdf", "PDF export", False, "100"),
    ("ai-insights", "AI insights", True, "10"),
    ("beta-reports", "Beta reports", True, "0"),
    ("realtime-sync", "Real-time sync", True, "25"),
    ("advanced-filters", "Advanced filters", True, "75"),
    ("team-sharing", "Team sharing", True, "100"),
    ("legacy-charts", "Legacy charts", False, "0"),
    ("custom-branding", "Custom branding", True, "0"),
    ("audit-export", "Audit export", True, "30"),
]

# key, name, type, variants, default (in the rollout), off, rollout %, split
TYPED_FLAGS: list[tuple[str, str, str, dict[str, Any], str, str, str, dict[str, int] | None]] = [
    ("checkout-button-color", "Checkout button colour", "string",
     {"blue": "#1f6feb", "green": "#2da44e", "orange": "#fb8500"}, "blue", "blue", "100",
     {"blue": 34, "green": 33, "orange": 33}),
    ("max-dashboard-widgets", "Widgets per dashboard", "integer",
     {"standard": 12, "extended": 24}, "standard", "standard", "100", None),
    ("chart-theme", "Chart theme", "object",
     {"classic": {"palette": "muted", "gridLines": True},
      "vivid": {"palette": "vivid", "gridLines": False, "accent": "#fb8500"}},
     "classic", "classic", "100", None),
    ("report-sample-rate", "Report sample rate", "float",
     {"sampled": 0.25, "full": 1.0}, "full", "sampled", "50", None),
    ("regional-pricing", "Regional pricing", "boolean",
     {"on": True, "off": False}, "on", "off", "0", None),
]  # fmt: skip

SEGMENTS = [
    ("acme-staff", "Acme staff", [
        {"attribute": "user.email_domain", "operator": "in", "values": ["acme.example"]}]),
]  # fmt: skip

# flag, rule name, position, segment, conditions, variant
RULES: list[tuple[str, str, int, str | None, list[dict[str, Any]], str]] = [
    ("max-dashboard-widgets", "enterprise-plan", 10, None,
     [{"attribute": "organization.settings.plan", "operator": "in", "values": ["enterprise"]}],
     "extended"),
    ("chart-theme", "acme-staff-try-vivid", 10, "acme-staff", [], "vivid"),
    ("regional-pricing", "eu-countries", 10, None,
     [{"attribute": "context.country", "operator": "in", "values": ["FR", "DE", "ES"]}], "on"),
]  # fmt: skip

PROVIDER_USERS = [
    {"sub": sub, "email": email, "email_verified": True, "name": name}
    for sub, email, name, *_ in USERS
]


async def _node(path: tuple[str, ...]) -> int:
    parent = await _node(path[:-1]) if len(path) > 1 else None
    node = await _find_node(path[-1], parent)
    assert node is not None, f"demo node {'/'.join(path)} is missing"
    return node


async def _find_node(slug: str, parent: int | None) -> int | None:
    under = (
        HierarchyNode.parent_id.is_null() if parent is None else HierarchyNode.parent_id == parent
    )
    row = (
        await HierarchyNode.select(HierarchyNode.id)
        .where(HierarchyNode.slug == slug, under)
        .first()
    )
    return None if row is None else int(row["id"])


async def _ensure_node(
    level: str, name: str, slug: str, parent: int | None, domains: tuple[str, ...]
) -> int:
    found = await _find_node(slug, parent)
    if found is not None:
        return found
    node = HierarchyNode(
        level=level, name=name, slug=slug, parent_id=parent, email_domains=list(domains)
    )
    rows = await HierarchyNode.insert(node).returning(HierarchyNode.id)
    return int(rows[0]["id"])


async def load_demo_data(issuer: str) -> None:
    async with engine().transaction():
        for (org_name, org_slug, domains), locations in TREE.items():
            org = await _ensure_node("organization", org_name, org_slug, None, domains)
            await HierarchyNode.update({HierarchyNode.settings: {"plan": PLANS[org_slug]}}).where(
                (HierarchyNode.id == org) & HierarchyNode.settings.is_null()
            )
            await HierarchyNode.update({HierarchyNode.managed_settings: ["plan"]}).where(
                HierarchyNode.id == org
            )  # the plan is an entitlement: only super-admins change it (PRODUCT §3.1)
            for (loc_name, loc_slug), departments in locations.items():
                loc = await _ensure_node("location", loc_name, loc_slug, org, ())
                for dep_name, dep_slug in departments:
                    await _ensure_node("department", dep_name, dep_slug, loc, ())
        users: dict[str, int] = {}
        for sub, email, name, super_admin, role, path in USERS:
            person = User(
                oidc_issuer=issuer,
                oidc_subject=sub,
                email=email,
                email_verified=True,  # the development provider says so (PROVIDER_USERS)
                name=name,
                is_super_admin=super_admin,
            )
            rows = await (
                User.insert(person)
                .on_conflict(
                    target=(User.oidc_issuer, User.oidc_subject),
                    action="DO UPDATE",
                    values=[User.email],
                )
                .returning(User.id)
            )
            users[sub] = int(rows[0]["id"])
            if role:
                assignment = UserHierarchyAssignment(
                    user_id=users[sub], node_id=await _node(path), role=role, is_primary=True
                )
                await UserHierarchyAssignment.insert(assignment).on_conflict(
                    target=(UserHierarchyAssignment.user_id, UserHierarchyAssignment.node_id),
                    action="DO NOTHING",
                )
        for key, name, enabled, rollout in FLAGS:
            flag = FeatureFlag(
                key=key,
                name=name,
                description=f"Demo flag: {name}",
                enabled=enabled,
                rollout_percentage=Decimal(rollout),
            )
            await FeatureFlag.insert(flag).on_conflict(target=FeatureFlag.key, action="DO NOTHING")
        overrides = [
            FeatureFlagOverride(
                flag_id=await _flag_id("beta-reports"),
                user_id=users["uma"],
                variant="on",
                reason="demo: Uma tries the beta",
            ),
            FeatureFlagOverride(
                flag_id=await _flag_id("ai-insights"),
                node_id=await _node(("globex",)),
                variant="on",
                reason="demo: Globex pilots AI insights",
            ),
        ]
        for override in overrides:
            await FeatureFlagOverride.insert(override).on_conflict(action="DO NOTHING")
        await _typed_flags(users["admin"])


async def _typed_flags(admin: int) -> None:
    for key, name, flag_type, variants, default, off, rollout, split in TYPED_FLAGS:
        flag = FeatureFlag(
            key=key,
            name=name,
            description=f"Demo {flag_type} flag: {name}",
            enabled=True,
            rollout_percentage=Decimal(rollout),
            flag_type=flag_type,
            variants=variants,
            default_variant=default,
            off_variant=off,
            rollout_split=split,
            created_by_id=admin,
        )
        await FeatureFlag.insert(flag).on_conflict(target=FeatureFlag.key, action="DO NOTHING")
    for key, name, conditions in SEGMENTS:
        segment = Segment(key=key, name=name, conditions=conditions, created_by_id=admin)
        await Segment.insert(segment).on_conflict(target=Segment.key, action="DO NOTHING")
    for flag_key, rule_name, position, segment_key, conditions, variant in RULES:
        segment_id = None
        if segment_key is not None:
            found = await Segment.select(Segment.id).where(Segment.key == segment_key).first()
            segment_id = None if found is None else int(found["id"])
        rule = FeatureFlagRule(
            flag_id=await _flag_id(flag_key),
            name=rule_name,
            position=position,
            segment_id=segment_id,
            conditions=conditions,
            variant=variant,
            created_by_id=admin,
        )
        await FeatureFlagRule.insert(rule).on_conflict(
            target=(FeatureFlagRule.flag_id, FeatureFlagRule.name), action="DO NOTHING"
        )
    export_pdf = await _flag_id("export-pdf")
    pending = FeatureFlagSchedule.exists().where(
        (FeatureFlagSchedule.flag_id == export_pdf) & (FeatureFlagSchedule.status == "pending")
    )
    if not await pending:
        schedule = FeatureFlagSchedule(
            flag_id=export_pdf,
            action="enable",
            run_at=datetime.now(UTC) + timedelta(days=7),
            note="demo: PDF export launches next week",
            created_by_id=admin,
        )
        await FeatureFlagSchedule.insert(schedule)


async def _flag_id(key: str) -> int:
    row = await FeatureFlag.select(FeatureFlag.id).where(FeatureFlag.key == key).first()
    assert row is not None, f"demo flag {key} is missing"
    return int(row["id"])


def main() -> None:
    try:
        load_database_settings()
        issuer = load_oidc_issuer()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        sys.exit(2)

    async def run() -> None:
        db = engine()
        await db.start_connection_pool(min_size=0, max_size=2)
        try:
            await load_demo_data(issuer)
        finally:
            await db.close_connection_pool()

    asyncio.run(run())
    print(json.dumps({"demo_users": [u[1] for u in USERS]}))


if __name__ == "__main__":
    main()
