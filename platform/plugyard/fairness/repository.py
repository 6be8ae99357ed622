"""SQL: a tenant's live versions (filtered by tenant id)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from plugyard.fairness.schemas import LiveVersion

# Live = what a gateway may load for the tenant: active versions and the variants of running or
# paused experiments. Every other version is never routed, so never loaded.
_LIVE = """
SELECT DISTINCT n.name AS namespace, p.name AS plugin, v.number AS version
FROM plugin_versions v
JOIN plugins p ON p.id = v.plugin_id
JOIN namespaces n ON n.id = p.namespace_id
WHERE v.tenant_id = $1 AND v.id IN (
    SELECT active_version_id FROM plugins WHERE tenant_id = $1 AND active_version_id IS NOT NULL
    UNION
    SELECT ev.version_id FROM experiment_variants ev JOIN experiments e ON e.id = ev.experiment_id
    WHERE e.tenant_id = $1 AND ev.tenant_id = $1 AND e.state IN ('running', 'paused')
)
ORDER BY 1, 2, 3
"""
_COUNT = f"SELECT count(*) FROM ({_LIVE}) live"


class LiveVersionRepository:
    """Counts and lists a tenant's live versions."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind to one connection."""
        self._conn = conn

    async def count(self, tenant_id: UUID) -> int:
        """How many distinct versions of the tenant are live."""
        value: int = await self._conn.fetchval(_COUNT, tenant_id)
        return value

    async def list(self, tenant_id: UUID) -> list[LiveVersion]:
        """The tenant's live versions."""
        return [LiveVersion(**row) for row in await self._conn.fetch(_LIVE, tenant_id)]
