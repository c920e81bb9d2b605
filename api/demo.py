"""Demo data for the development default (PRODUCT §8), loaded idempotently.

An organization tree, users with different roles (one super-admin), a dozen flags with a
user and a node override. Users are tied to the development provider's subjects, so
typing the subject in its login form signs in as that person.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from api.db import engine, fetch
from api.settings import load_settings

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
    rows = await fetch(
        "SELECT id FROM organization_hierarchy WHERE slug = $1 AND cardinality(path) = $2"
        " AND ($3::int IS NULL OR parent_id = $3)",
        path[-1],
        len(path),
        await _node(path[:-1]) if len(path) > 1 else None,
    )
    return int(rows[0]["id"])


async def _ensure_node(
    level: str, name: str, slug: str, parent: int | None, domains: tuple[str, ...]
) -> int:
    rows = await fetch(
        "SELECT id FROM organization_hierarchy"
        " WHERE slug = $1 AND parent_id IS NOT DISTINCT FROM $2",
        slug,
        parent,
    )
    if rows:
        return int(rows[0]["id"])
    rows = await fetch(
        "INSERT INTO organization_hierarchy (level, name, slug, parent_id, email_domains)"
        " VALUES ($1, $2, $3, $4, $5::varchar[]) RETURNING id",
        level,
        name,
        slug,
        parent,
        list(domains),
    )
    return int(rows[0]["id"])


async def load_demo_data(issuer: str) -> None:
    async with engine().transaction():
        for (org_name, org_slug, domains), locations in TREE.items():
            org = await _ensure_node("organization", org_name, org_slug, None, domains)
            for (loc_name, loc_slug), departments in locations.items():
                loc = await _ensure_node("location", loc_name, loc_slug, org, ())
                for dep_name, dep_slug in departments:
                    await _ensure_node("department", dep_name, dep_slug, loc, ())
        for sub, email, name, super_admin, role, path in USERS:
            rows = await fetch(
                "INSERT INTO users (oidc_issuer, oidc_subject, email, name, is_super_admin)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (oidc_issuer, oidc_subject)"
                " DO UPDATE SET email = EXCLUDED.email RETURNING id",
                issuer,
                sub,
                email,
                name,
                super_admin,
            )
            if role:
                await fetch(
                    "INSERT INTO user_hierarchy_assignments (user_id, node_id, role, is_primary)"
                    " VALUES ($1, $2, $3, true) ON CONFLICT (user_id, node_id) DO NOTHING",
                    rows[0]["id"],
                    await _node(path),
                    role,
                )
        for key, name, enabled, rollout in FLAGS:
            await fetch(
                "INSERT INTO feature_flags (key, name, description, enabled, rollout_percentage)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
                key,
                name,
                f"Demo flag: {name}",
                enabled,
                Decimal(rollout),
            )
        await fetch(
            "INSERT INTO feature_flag_overrides (flag_id, user_id, enabled, reason)"
            " SELECT f.id, u.id, true, 'demo: Uma tries the beta' FROM feature_flags f, users u"
            " WHERE f.key = 'beta-reports' AND u.oidc_subject = 'uma' AND u.oidc_issuer = $1"
            " ON CONFLICT DO NOTHING",
            issuer,
        )
        await fetch(
            "INSERT INTO feature_flag_overrides (flag_id, node_id, enabled, reason)"
            " SELECT f.id, n.id, true, 'demo: Globex pilots AI insights' FROM feature_flags f,"
            " organization_hierarchy n WHERE f.key = 'ai-insights' AND n.slug = 'globex'"
            " AND n.parent_id IS NULL ON CONFLICT DO NOTHING",
        )


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
