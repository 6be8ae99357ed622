"""EXPLAIN ANALYZE of the control plane's own list and lookup queries, with a verdict each.

The SQL is imported from the repositories (their module constants), so the plans are those of
the code as it is; a constant that has been renamed is reported, not guessed.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from typing import Any

import asyncpg

from bench import seed

BIG_TABLES = {
    "tenants",
    "api_tokens",
    "namespaces",
    "plugins",
    "plugin_versions",
    "routes",
    "deployments",
    "pushes",
}


def _walk(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += _walk(child)
    return nodes


def verdict_of(plan: dict[str, Any]) -> str:
    """`index (names)` or `SEQ SCAN on table` for one JSON plan."""
    nodes = _walk(plan)
    seq = sorted({n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"} & BIG_TABLES)
    indexes = sorted({n["Index Name"] for n in nodes if "Index Name" in n})
    if seq:
        return "SEQ SCAN on " + ", ".join(seq) + (f" (indexes: {', '.join(indexes)})" if indexes else "")
    return "index: " + ", ".join(indexes) if indexes else "no table scan"


async def _ids(conn: asyncpg.Connection, i: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT t.id AS tenant_id, n.id AS namespace_id, p.id AS plugin_id, d.id AS deployment_id
           FROM tenants t JOIN namespaces n ON n.tenant_id = t.id
           JOIN plugins p ON p.namespace_id = n.id AND p.name = 'a'
           JOIN deployments d ON d.namespace_id = n.id WHERE t.slug = $1 LIMIT 1""",
        seed.slug(i),
    )
    return dict(row)


def _queries(ids: dict[str, Any], i: int) -> list[tuple[str, str, str, tuple[Any, ...]]]:
    t, n, p = ids["tenant_id"], ids["namespace_id"], ids["plugin_id"]
    suffix = f"w.{seed.slug(i)}.seed.test"
    labels = suffix.split(".")
    ancestors = [".".join(labels[k:]) for k in range(len(labels))]
    digest = hashlib.sha256(seed.token(i).encode()).digest()
    return [
        (
            "token + tenant + namespace + plugin (every request, one query)",
            "tenants.repository",
            "_RESOLVE_TOKEN",
            (digest, seed.slug(i), "prod", "a"),
        ),
        ("list tenants (page)", "tenants.repository", "_LIST_TENANTS", (seed.slug(i), 50)),
        ("list namespaces (page)", "namespaces.repository", "_LIST", (t, "", 50)),
        ("list plugins (page)", "plugins.repository", "_LIST", (t, n, "", 50)),
        ("get plugin", "plugins.repository", "_GET", (t, n, "a")),
        ("list versions (page)", "plugins.repository", "_LIST_VERSIONS", (t, p, 2**31 - 1, 50)),
        ("list routes (page)", "routes.repository", "_PAGE", (t, n, "", 50)),
        ("route host-claim check", "routes.repository", "_CLAIM_CANDIDATES", (t, ancestors, suffix)),
        ("list deployments (page)", "deployments.repository", "_LIST", (t, n, 2**31 - 1, 50)),
        ("pushes of a deployment", "deployments.repository", "_PUSHES", (ids["deployment_id"],)),
        (
            "pushes of a page of deployments",
            "deployments.repository",
            "_PUSHES_OF_MANY",
            ([ids["deployment_id"]],),
        ),
        ("next revision", "deployments.repository", "_NEXT_REVISION", (n, t)),
    ]


async def explain_all(conn: asyncpg.Connection, i: int) -> list[tuple[str, str, float]]:
    """(query, verdict, execution ms) for every list/lookup query, for seeded tenant i."""
    out = []
    for label, module, name, args in _queries(await _ids(conn, i), i):
        sql = getattr(importlib.import_module(f"plugyard.{module}"), name, None)
        if not isinstance(sql, str):
            out.append((label, f"query constant {module}.{name} not found", float("nan")))
            continue
        try:
            raw = await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, TypeError) as exc:
            out.append((label, f"could not EXPLAIN: {type(exc).__name__}: {exc}"[:120], float("nan")))
            continue
        doc = json.loads(raw) if isinstance(raw, str) else raw
        out.append((label, verdict_of(doc[0]["Plan"]), float(doc[0]["Execution Time"])))
    return out
