"""Bulk seeding of the control-plane database with COPY (section 6b).

Tenant i gets a token, namespace `prod`, plugins a/b/c each with one active version, three
routes and one deployment with its push record: the same shape the API would create.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import asyncpg

from plugyard.routes.patterns import parse

CODE = "export default { fetch() { return new Response('seeded') } };\n"
_SET_ACTIVE = """
UPDATE plugins p SET active_version_id = v.vid
FROM unnest($1::uuid[], $2::uuid[]) AS v(pid, vid) WHERE p.id = v.pid
"""
MODULES = [{"name": "index.js", "type": "js", "content": CODE}]
_MODULES_JSON = json.dumps(MODULES)


def slug(i: int) -> str:
    """Seeded tenant number i."""
    return f"s{i:05d}"


def token(i: int) -> str:
    """The plaintext API token of seeded tenant i."""
    return f"pyd_benchseed_{i:05d}_" + "x" * 20


def _patterns(i: int) -> list[tuple[str, str]]:
    t = slug(i)
    return [(f"a.{t}.seed.test/*", "a"), (f"{t}.seed.test/api/*", "b"), (f"*.w.{t}.seed.test/*", "c")]


async def seed(conn: asyncpg.Connection, start: int, stop: int, gateway: str) -> None:
    """Insert tenants [start, stop) with COPY, then VACUUM (ANALYZE).

    Vacuumed here rather than by autovacuum in the middle of the timed requests: a bulk insert
    of 10x the rows triggers it (PostgreSQL's insert threshold), and the endpoint timed first
    after seeding paid for it.

    `conn` must be a plain asyncpg connection (jsonb as text): COPY uses the binary format.
    """
    rows: dict[str, list[tuple[Any, ...]]] = {
        k: [] for k in ("tenants", "api_tokens", "namespaces", "plugins", "plugin_versions", "routes")
    }
    deployments: list[tuple[Any, ...]] = []
    push_rows: list[tuple[Any, ...]] = []
    active: list[tuple[uuid.UUID, uuid.UUID]] = []
    for i in range(start, stop):
        tid, nid = uuid.uuid4(), uuid.uuid4()
        rows["tenants"].append((tid, slug(i), f"Seeded {i}"))
        digest = hashlib.sha256(token(i).encode()).digest()
        rows["api_tokens"].append((uuid.uuid4(), tid, "seed", token(i)[:10], digest))
        rows["namespaces"].append((nid, tid, "prod"))
        plugin_ids = {}
        for name in "abc":
            pid, vid = uuid.uuid4(), uuid.uuid4()
            plugin_ids[name] = pid
            rows["plugins"].append((pid, tid, nid, name, "{}"))
            vhash = hashlib.sha256(f"{i}/{name}".encode()).hexdigest()
            rows["plugin_versions"].append(
                (vid, tid, pid, 1, vhash, "index.js", _MODULES_JSON, "2025-11-01", [], len(CODE))
            )
            active.append((pid, vid))
        for pattern, plugin in _patterns(i):
            parsed = parse(pattern)
            rows["routes"].append(
                (
                    uuid.uuid4(),
                    tid,
                    nid,
                    plugin_ids[plugin],
                    parsed.pattern,
                    parsed.host,
                    parsed.host_suffix,
                    parsed.wildcard,
                )
            )
        did = uuid.uuid4()
        deployments.append((did, tid, nid, 1, "seeded", "bench", '{"routes": [], "plugins": {}}'))
        push_rows.append((did, gateway, "succeeded", 1))
    columns = {
        "tenants": ["id", "slug", "name"],
        "api_tokens": ["id", "tenant_id", "name", "prefix", "token_hash"],
        "namespaces": ["id", "tenant_id", "name"],
        "plugins": ["id", "tenant_id", "namespace_id", "name", "vars"],
        "plugin_versions": [
            "id",
            "tenant_id",
            "plugin_id",
            "number",
            "hash",
            "main_module",
            "modules",
            "compatibility_date",
            "compatibility_flags",
            "size_bytes",
        ],
        "routes": [
            "id",
            "tenant_id",
            "namespace_id",
            "plugin_id",
            "pattern",
            "host",
            "host_suffix",
            "wildcard",
        ],
    }
    async with conn.transaction():
        for table, records in rows.items():
            await conn.copy_records_to_table(table, records=records, columns=columns[table])
        await conn.execute(_SET_ACTIVE, [a[0] for a in active], [a[1] for a in active])
        await conn.copy_records_to_table(
            "deployments",
            records=deployments,
            columns=["id", "tenant_id", "namespace_id", "revision", "reason", "actor", "state"],
        )
        await conn.copy_records_to_table(
            "pushes", records=push_rows, columns=["deployment_id", "gateway", "status", "attempts"]
        )
    await conn.execute("VACUUM (ANALYZE)")
