"""SQL for egress counts (plugins' outbound requests); every tenant query filters by tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from plugyard.metrics.schemas import EgressHostRow, EgressPointRow, EgressTotalRow

# Rows are summed per key before they get here: one statement may not touch a row twice.
_ADD_MINUTES = """
INSERT INTO egress_minutes AS e (tenant_id, namespace, host, minute, allowed, blocked)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::bigint[])
ON CONFLICT (tenant_id, minute, namespace, host)
DO UPDATE SET allowed = e.allowed + excluded.allowed, blocked = e.blocked + excluded.blocked
"""
_ADD_TOTALS = """
INSERT INTO egress_totals AS e (tenant_id, namespace, allowed, blocked)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[])
ON CONFLICT (tenant_id, namespace)
DO UPDATE SET allowed = e.allowed + excluded.allowed, blocked = e.blocked + excluded.blocked
"""
# Minute rows, or hour rows plus minute rows truncated to the hour, in [$2, $3).
_RANGE_MINUTES = """
SELECT namespace, host, minute AS t, allowed, blocked FROM egress_minutes
WHERE tenant_id = $1 AND minute >= $2 AND minute < $3 AND ($4::text IS NULL OR namespace = $4)
"""
_RANGE_HOURS = """
SELECT namespace, host, hour AS t, allowed, blocked FROM egress_hours
WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 AND ($4::text IS NULL OR namespace = $4)
UNION ALL
SELECT namespace, host, date_trunc('hour', minute, 'UTC') AS t, allowed, blocked FROM egress_minutes
WHERE tenant_id = $1 AND minute >= $2 AND minute < $3 AND ($4::text IS NULL OR namespace = $4)
"""
_POINTS = """
SELECT namespace, t, sum(allowed)::bigint AS allowed, sum(blocked)::bigint AS blocked
FROM ({range}) r GROUP BY namespace, t ORDER BY namespace, t
"""
_HOSTS = """
SELECT namespace, host, sum(allowed)::bigint AS allowed, sum(blocked)::bigint AS blocked
FROM ({range}) r GROUP BY namespace, host
ORDER BY namespace, sum(allowed) + sum(blocked) DESC, host
"""
_POINTS_MINUTES = _POINTS.format(range=_RANGE_MINUTES)
_POINTS_HOURS = _POINTS.format(range=_RANGE_HOURS)
_HOSTS_MINUTES = _HOSTS.format(range=_RANGE_MINUTES)
_HOSTS_HOURS = _HOSTS.format(range=_RANGE_HOURS)
_ROLLUP = """
WITH moved AS (
  DELETE FROM egress_minutes WHERE minute < $1 RETURNING *
)
INSERT INTO egress_hours AS e (tenant_id, namespace, host, hour, allowed, blocked)
SELECT tenant_id, namespace, host, date_trunc('hour', minute, 'UTC'), sum(allowed)::bigint,
       sum(blocked)::bigint
FROM moved GROUP BY tenant_id, namespace, host, date_trunc('hour', minute, 'UTC')
ON CONFLICT (tenant_id, hour, namespace, host)
DO UPDATE SET allowed = e.allowed + excluded.allowed, blocked = e.blocked + excluded.blocked
"""
_PRUNE_HOURS = "DELETE FROM egress_hours WHERE hour < $1"
_TOTALS = """
SELECT t.slug AS tenant, e.namespace, e.allowed, e.blocked
FROM egress_totals e JOIN tenants t ON t.id = e.tenant_id ORDER BY t.slug, e.namespace
"""


class EgressRepository:
    """Egress minute, hour and total rows."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def add(
        self,
        minutes: Sequence[tuple[UUID, str, str, datetime, int, int]],
        totals: Sequence[tuple[UUID, str, int, int]],
    ) -> None:
        """Add (tenant_id, namespace, host, minute, allowed, blocked) rows and per-namespace totals."""
        if minutes:
            await self._conn.execute(_ADD_MINUTES, *map(list, zip(*minutes, strict=True)))
        if totals:
            await self._conn.execute(_ADD_TOTALS, *map(list, zip(*totals, strict=True)))

    async def points(
        self, tenant_id: UUID, start: datetime, end: datetime, *, hourly: bool, namespace: str | None
    ) -> list[EgressPointRow]:
        """Counts per namespace and step in [start, end), ordered by namespace and time."""
        query = _POINTS_HOURS if hourly else _POINTS_MINUTES
        return [EgressPointRow(**r) for r in await self._conn.fetch(query, tenant_id, start, end, namespace)]

    async def hosts(
        self, tenant_id: UUID, start: datetime, end: datetime, *, hourly: bool, namespace: str | None
    ) -> list[EgressHostRow]:
        """Counts per namespace and host over [start, end), busiest host first per namespace."""
        query = _HOSTS_HOURS if hourly else _HOSTS_MINUTES
        return [EgressHostRow(**r) for r in await self._conn.fetch(query, tenant_id, start, end, namespace)]

    async def rollup(self, before: datetime) -> None:
        """Move minute rows older than `before` into hour rows (one statement)."""
        await self._conn.execute(_ROLLUP, before)

    async def prune(self, hours_before: datetime) -> None:
        """Delete hour rows past their retention."""
        await self._conn.execute(_PRUNE_HOURS, hours_before)

    async def totals(self) -> list[EgressTotalRow]:
        """Running totals per (tenant slug, namespace), for /metrics."""
        return [EgressTotalRow(**r) for r in await self._conn.fetch(_TOTALS)]
