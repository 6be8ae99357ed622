"""SQL for quarantines; tenant queries filter by tenant id."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from plugyard.quarantine.schemas import VersionRef

_RESOLVE = """
SELECT v.tenant_id, p.namespace_id, v.plugin_id, v.id AS version_id, v.number
FROM plugin_versions v
JOIN plugins p ON p.id = v.plugin_id
JOIN namespaces n ON n.id = p.namespace_id
JOIN tenants t ON t.id = v.tenant_id
WHERE t.slug = $1 AND n.name = $2 AND p.name = $3 AND v.hash = $4
"""
_INSERT = """
INSERT INTO quarantines (tenant_id, namespace_id, plugin_id, version_id, reason, reported_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (version_id) WHERE released_at IS NULL DO NOTHING
RETURNING id
"""
_OPEN_IN_NAMESPACE = """
SELECT p.name AS plugin, v.hash, q.reason
FROM quarantines q JOIN plugins p ON p.id = q.plugin_id JOIN plugin_versions v ON v.id = q.version_id
WHERE q.tenant_id = $1 AND q.namespace_id = $2 AND q.released_at IS NULL
"""
_LIST = """
SELECT n.name AS namespace, p.name AS plugin, v.number AS version, v.hash, q.reason, q.reported_by,
       q.created_at, q.released_at, q.released_by
FROM quarantines q
JOIN namespaces n ON n.id = q.namespace_id
JOIN plugins p ON p.id = q.plugin_id
JOIN plugin_versions v ON v.id = q.version_id
WHERE q.tenant_id = $1 AND ($2 OR q.released_at IS NULL) AND ($4::uuid IS NULL OR q.plugin_id = $4)
ORDER BY q.created_at DESC
LIMIT $3
"""
_RELEASE = """
UPDATE quarantines q SET released_at = now(), released_by = $4
FROM plugin_versions v
WHERE q.tenant_id = $1 AND q.plugin_id = $2 AND v.id = q.version_id AND v.number = $3
  AND v.tenant_id = $1 AND q.released_at IS NULL
RETURNING q.id
"""
_OPEN_REASON = """
SELECT q.reason FROM quarantines q
WHERE q.tenant_id = $1 AND q.version_id = $2 AND q.released_at IS NULL
"""


class QuarantineRepository:
    """Quarantine rows."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind to one connection."""
        self._conn = conn

    async def resolve(self, tenant: str, namespace: str, plugin: str, version: str) -> VersionRef | None:
        """The ids of a reported version (by names and content hash), or None."""
        row = await self._conn.fetchrow(_RESOLVE, tenant, namespace, plugin, version)
        return None if row is None else VersionRef(**row)

    async def insert(self, ref: VersionRef, reason: str, reported_by: str) -> bool:
        """Open a quarantine; False when one is already open for the version."""
        row = await self._conn.fetchrow(
            _INSERT, ref.tenant_id, ref.namespace_id, ref.plugin_id, ref.version_id, reason, reported_by
        )
        return row is not None

    async def open_in_namespace(self, tenant_id: UUID, namespace_id: UUID) -> dict[str, dict[str, str]]:
        """Open quarantines of a namespace: plugin name → {version hash: reason}."""
        out: dict[str, dict[str, str]] = {}
        for row in await self._conn.fetch(_OPEN_IN_NAMESPACE, tenant_id, namespace_id):
            out.setdefault(row["plugin"], {})[row["hash"]] = row["reason"]
        return out

    async def page(
        self, tenant_id: UUID, *, include_released: bool, limit: int, plugin_id: UUID | None = None
    ) -> list[dict[str, Any]]:
        """A tenant's quarantines, newest first."""
        return [dict(r) for r in await self._conn.fetch(_LIST, tenant_id, include_released, limit, plugin_id)]

    async def release(self, tenant_id: UUID, plugin_id: UUID, number: int, actor: str) -> bool:
        """Close the open quarantine of a version; False when there is none."""
        return await self._conn.fetchrow(_RELEASE, tenant_id, plugin_id, number, actor) is not None

    async def open_reason(self, tenant_id: UUID, version_id: UUID) -> str | None:
        """The reason of a version's open quarantine, or None."""
        reason: str | None = await self._conn.fetchval(_OPEN_REASON, tenant_id, version_id)
        return reason
