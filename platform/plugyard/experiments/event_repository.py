"""SQL for experiment traffic: ingest of gateway reports and the reads results need.

Ingest resolves tenants by slug (gateways know names, not ids); reads filter by tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from plugyard.metrics.delta_repository import PENDING_TRAFFIC

_CLAIM = "INSERT INTO experiment_batches (batch_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING batch_id"
_TENANTS = "SELECT slug, id FROM tenants WHERE slug = ANY($1::text[])"
_ADD_VISITORS = """
INSERT INTO experiment_visitors (tenant_id, namespace, plugin, experiment, phase, variant, visitor)
SELECT $1, $2, $3, $4, $5, $6, unnest($7::bigint[])
ON CONFLICT DO NOTHING
"""
_ADD_CONVERSIONS = """
INSERT INTO experiment_conversions (tenant_id, namespace, plugin, experiment, phase, variant, event, count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (tenant_id, namespace, plugin, experiment, phase, variant, event)
DO UPDATE SET count = experiment_conversions.count + excluded.count
"""
_VISITORS = """
SELECT variant, count(*) AS visitors FROM experiment_visitors
WHERE tenant_id = $1 AND namespace = $2 AND plugin = $3 AND experiment = $4 AND phase = $5
GROUP BY variant
"""
_CONVERSIONS = """
SELECT variant, event, count FROM experiment_conversions
WHERE tenant_id = $1 AND namespace = $2 AND plugin = $3 AND experiment = $4 AND phase = $5
"""
# Request counters per variant since the phase started (minute rows, plus hour rows once rolled up,
# plus deltas not compacted yet).
_TRAFFIC = """
SELECT variant, requests, s5xx, latency FROM metrics_minutes
WHERE tenant_id = $1 AND namespace = $2 AND plugin = $3 AND variant = ANY($4::text[])
  AND minute >= date_trunc('minute', $5::timestamptz)
UNION ALL
SELECT variant, requests, s5xx, latency FROM metrics_hours
WHERE tenant_id = $1 AND namespace = $2 AND plugin = $3 AND variant = ANY($4::text[])
  AND hour > date_trunc('hour', $5::timestamptz)
UNION ALL
"""
_TRAFFIC += PENDING_TRAFFIC  # minute deltas not compacted yet (metrics/delta_repository.py)


class EventRepository:
    """Experiment visitors, conversions and traffic counters."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def claim(self, batch_id: UUID) -> bool:
        """Record a batch id; False when it was stored before."""
        return await self._conn.fetchval(_CLAIM, batch_id) is not None

    async def tenant_ids(self, slugs: Sequence[str]) -> dict[str, UUID]:
        """Tenant ids by slug (unknown slugs are left out)."""
        return {r["slug"]: r["id"] for r in await self._conn.fetch(_TENANTS, list(slugs))}

    async def add_visitors(
        self, tenant_id: UUID, scope: tuple[str, str, str, int, str], visitors: list[int]
    ) -> None:
        """Add visitor hashes of one (namespace, plugin, experiment, phase, variant)."""
        await self._conn.execute(_ADD_VISITORS, tenant_id, *scope, visitors)

    async def add_conversions(
        self, tenant_id: UUID, scope: tuple[str, str, str, int, str], event: str, count: int
    ) -> None:
        """Add conversion events of one variant."""
        await self._conn.execute(_ADD_CONVERSIONS, tenant_id, *scope, event, count)

    async def visitors(
        self, tenant_id: UUID, namespace: str, plugin: str, experiment: str, phase: int
    ) -> dict[str, int]:
        """Distinct visitors per variant."""
        rows = await self._conn.fetch(_VISITORS, tenant_id, namespace, plugin, experiment, phase)
        return {r["variant"]: int(r["visitors"]) for r in rows}

    async def conversions(
        self, tenant_id: UUID, namespace: str, plugin: str, experiment: str, phase: int
    ) -> list[asyncpg.Record]:
        """(variant, event, count) rows."""
        return list(await self._conn.fetch(_CONVERSIONS, tenant_id, namespace, plugin, experiment, phase))

    async def traffic(
        self, tenant_id: UUID, namespace: str, plugin: str, variants: Sequence[str], since: datetime
    ) -> list[Any]:
        """(variant, requests, s5xx, latency) rows since a time."""
        return list(await self._conn.fetch(_TRAFFIC, tenant_id, namespace, plugin, list(variants), since))
