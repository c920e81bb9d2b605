"""Demo data for the development default (PRODUCT §8), loaded idempotently.

An organization tree, users with different roles (one super-admin), a dozen flags with a
user and a node override. Users are tied to the development provider's subjects, so
typing the subject in its login form signs in as that person.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from api.db import engine
from api.settings import load_settings
from tables.flags import FeatureFlag, FeatureFlagOverride
from tables.hierarchy import HierarchyNode, UserHierarchyAssignment
from tables.users import User

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
                enabled=True,
                reason="demo: Uma tries the beta",
            ),
            FeatureFlagOverride(
                flag_id=await _flag_id("ai-insights"),
                node_id=await _node(("globex",)),
                enabled=True,
                reason="demo: Globex pilots AI insights",
            ),
        ]
        for override in overrides:
            await FeatureFlagOverride.insert(override).on_conflict(action="DO NOTHING")


async def _flag_id(key: str) -> int:
    row = await FeatureFlag.select(FeatureFlag.id).where(FeatureFlag.key == key).first()
    assert row is not None, f"demo flag {key} is missing"
    return int(row["id"])


def main() -> None:
    async def run() -> None:
        db = engine()
        await db.start_connection_pool(min_size=0, max_size=2)
        try:
            await load_demo_data(load_settings().oidc_issuer)
        finally:
            await db.close_connection_pool()

    asyncio.run(run())
    print(json.dumps({"demo_users": [u[1] for u in USERS]}))


if __name__ == "__main__":
    main()
