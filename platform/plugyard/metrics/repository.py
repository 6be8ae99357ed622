"""SQL for metrics, usage and plugin logs; every tenant query filters by tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from plugyard.metrics.delta_repository import PENDING_MINUTES
from plugyard.metrics.schemas import N_BUCKETS, GatewayRow, LogEntry, MetricRow, UsageDay

_KEY = "namespace, plugin, version, variant"
_SUMS = (
    "requests, s2xx, s3xx, s4xx, s5xx, failures, outcome_ok, outcome_exception, outcome_exceeded_cpu, "
    "outcome_exceeded_memory, outcome_canceled, outcome_other"
)
_SUM_NAMES = tuple(_SUMS.split(", "))
_ADD = ", ".join(f"{c} = m.{c} + excluded.{c}" for c in _SUM_NAMES)
# Element by element, spelled out: an `unnest ... WITH ORDINALITY` subquery per row cost about a
# third of the upsert (docs/benchmarks.md, "Profiling notes: ingest").
_ADD_LATENCY = (
    "latency = ARRAY["
    + ", ".join(f"m.latency[{i}] + excluded.latency[{i}]" for i in range(1, N_BUCKETS + 1))
    + "]"
)

_CLAIM_BATCHES = """
INSERT INTO metrics_batches
    (batch_id, gateway, sealed_at, rows, logs, requests, dropped_requests, dropped_logs, dropped_batches,
     dropped_egress)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int[], $5::int[], $6::bigint[],
                     $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
ON CONFLICT (batch_id) DO NOTHING
RETURNING batch_id
"""
_TENANT_IDS = "SELECT slug, id FROM tenants WHERE slug = ANY($1::text[])"
# The same and the delta table the ingest appends to now (delta_repository.py): one row with
# null slug when no tenant matches.
_TENANT_IDS_AND_TURN = """
SELECT d.active, t.slug, t.id FROM metrics_delta_turn d LEFT JOIN tenants t ON t.slug = ANY($1::text[])
"""
LOG_COLUMNS = ("tenant_id", "namespace", "plugin", "version", "at", "kind", "level", "message", "stack")
_FILTER = (
    "tenant_id = $1 AND ($4::text IS NULL OR namespace = $4) AND ($5::text IS NULL OR plugin = $5) "
    "AND ($6::text IS NULL OR version LIKE $6 || '%') AND ($7::text IS NULL OR variant = $7)"
)
# Compacted minute rows plus the deltas not compacted yet (delta_repository.py): a key may
# come twice, the service sums rows per group and step.
_MINUTES = f"""
SELECT {_KEY}, minute AS t, {_SUMS}, latency FROM metrics_minutes
WHERE {_FILTER} AND minute >= $2 AND minute < $3
UNION ALL
SELECT {_KEY}, minute AS t, {_SUMS}, latency FROM ({PENDING_MINUTES}) p
"""
_HOURS = f"""
SELECT {_KEY}, hour AS t, {_SUMS}, latency FROM metrics_hours
WHERE {_FILTER} AND hour >= $2 AND hour < $3
UNION ALL
SELECT {_KEY}, date_trunc('hour', minute, 'UTC') AS t, {_SUMS}, latency FROM metrics_minutes
WHERE {_FILTER} AND minute >= $2 AND minute < $3
UNION ALL
SELECT {_KEY}, date_trunc('hour', minute, 'UTC') AS t, {_SUMS}, latency FROM ({PENDING_MINUTES}) p
"""
# Compacted usage plus the deltas not compacted yet, summed per day the same way the
# compaction will (a day with only zero-request rows counts, as it does once compacted).
_USAGE = """
WITH pending AS (
  SELECT (minute AT TIME ZONE 'UTC')::date AS day, requests, s5xx, namespace, plugin, version
  FROM metrics_deltas
  WHERE tenant_id = $1 AND minute >= ($2::date)::timestamp AT TIME ZONE 'UTC'
    AND minute < ($3::date + 1)::timestamp AT TIME ZONE 'UTC'
), days AS (
  SELECT day, requests, errors FROM usage_days WHERE tenant_id = $1 AND day >= $2 AND day <= $3
  UNION ALL
  SELECT day, requests, s5xx FROM pending
), versions AS (
  SELECT day, namespace, plugin, version FROM usage_day_versions
  WHERE tenant_id = $1 AND day >= $2 AND day <= $3
  UNION
  SELECT day, namespace, plugin, version FROM pending WHERE requests > 0
)
SELECT d.day, sum(d.requests)::bigint AS requests, sum(d.errors)::bigint AS errors,
       (SELECT count(*) FROM versions v WHERE v.day = d.day) AS versions
FROM days d GROUP BY d.day ORDER BY d.day
"""
_PLUGIN_EXISTS = "SELECT 1 FROM plugins WHERE tenant_id = $1 AND namespace_id = $2 AND name = $3"
_LOG_SELECT = "SELECT id, at, version, kind, level, message, stack FROM plugin_logs "
# The compaction trims each plugin to its newest $6 entries after the fact, so a read keeps to
# them itself: above the id of the ($6+1)th newest (no cutoff while the plugin holds fewer).
_LOG_CUTOFF = """
coalesce((SELECT x.id FROM plugin_logs x WHERE x.tenant_id = $1 AND x.namespace = $2 AND x.plugin = $3
          ORDER BY x.id DESC OFFSET $6 LIMIT 1), 0)
"""
_LOGS_AFTER = (
    _LOG_SELECT + "WHERE tenant_id = $1 AND namespace = $2 AND plugin = $3 AND id > $4 "
    f"AND id > {_LOG_CUTOFF} ORDER BY id LIMIT $5"
)
_LOGS_LATEST = (
    _LOG_SELECT
    + "WHERE tenant_id = $1 AND namespace = $2 AND plugin = $3 "
    + "ORDER BY id DESC LIMIT least($4::bigint, $5::bigint)"
)

_LATENCY_SUM = """
lat AS (
  SELECT tenant_id, namespace, plugin, version, variant, hour, u.i, sum(u.v)::bigint AS v
  FROM moved, unnest(latency) WITH ORDINALITY AS u(v, i)
  GROUP BY tenant_id, namespace, plugin, version, variant, hour, u.i
), lat_arr AS (
  SELECT tenant_id, namespace, plugin, version, variant, hour, array_agg(v ORDER BY i) AS latency
  FROM lat GROUP BY tenant_id, namespace, plugin, version, variant, hour
)"""
_ROLLUP = f"""
WITH deleted AS (
  DELETE FROM metrics_minutes WHERE minute < $1 RETURNING *
), moved AS (
  SELECT *, date_trunc('hour', minute, 'UTC') AS hour FROM deleted
), sums AS (
  SELECT tenant_id, {_KEY}, hour, {", ".join(f"sum({c})::bigint AS {c}" for c in _SUM_NAMES)}
  FROM moved GROUP BY tenant_id, {_KEY}, hour
), {_LATENCY_SUM}
INSERT INTO metrics_hours AS m (tenant_id, {_KEY}, hour, {_SUMS}, latency)
SELECT s.tenant_id, s.namespace, s.plugin, s.version, s.variant, s.hour,
       {", ".join(f"s.{c}" for c in _SUM_NAMES)}, l.latency
FROM sums s JOIN lat_arr l USING (tenant_id, namespace, plugin, version, variant, hour)
ON CONFLICT (tenant_id, hour, {_KEY}) DO UPDATE SET {_ADD}, {_ADD_LATENCY}
"""
_PRUNE_HOURS = "DELETE FROM metrics_hours WHERE hour < $1"
_PRUNE_BATCHES = "DELETE FROM metrics_batches WHERE received_at < $1"
_TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
_LOCK = "SELECT pg_advisory_xact_lock($1)"
_GATEWAYS = """
SELECT gateway, max(received_at) AS last_received_at, sum(dropped_requests)::bigint AS dropped_requests,
       sum(dropped_logs)::bigint AS dropped_logs, sum(dropped_batches)::bigint AS dropped_batches,
       sum(dropped_egress)::bigint AS dropped_egress
FROM metrics_batches GROUP BY gateway ORDER BY gateway
"""
_OPEN_PUSHES = (
    "SELECT status, count(*) AS n FROM pushes WHERE status IN ('pending', 'failed') GROUP BY status"
)


class MetricsRepository:
    """Metrics rows, usage and logs."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def claim_batches(self, batches: Sequence[tuple[Any, ...]]) -> set[UUID]:
        """Record batch ids (distinct; `_CLAIM_BATCHES` column order); returns those not held yet."""
        if not batches:
            return set()
        columns = [list(c) for c in zip(*batches, strict=True)]
        return {r["batch_id"] for r in await self._conn.fetch(_CLAIM_BATCHES, *columns)}

    async def tenant_ids(self, slugs: Sequence[str]) -> dict[str, UUID]:
        """Tenant ids by slug (unknown slugs are absent)."""
        return {row["slug"]: row["id"] for row in await self._conn.fetch(_TENANT_IDS, list(slugs))}

    async def tenant_ids_and_turn(self, slugs: Sequence[str]) -> tuple[dict[str, UUID], int]:
        """Tenant ids by slug (unknown slugs are absent) and the delta table appended to now."""
        rows = await self._conn.fetch(_TENANT_IDS_AND_TURN, list(slugs))
        return {r["slug"]: r["id"] for r in rows if r["slug"] is not None}, int(rows[0]["active"])

    async def lock(self, key: int) -> None:
        """Wait for a transaction-scoped advisory lock."""
        await self._conn.execute(_LOCK, key)

    async def copy_logs(self, records: Sequence[tuple[Any, ...]]) -> None:
        """COPY log entries (in `LOG_COLUMNS` order)."""
        await self._conn.copy_records_to_table("plugin_logs", records=records, columns=LOG_COLUMNS)

    async def rows(
        self, tenant_id: UUID, start: datetime, end: datetime, *, hourly: bool, filters: Sequence[str | None]
    ) -> list[MetricRow]:
        """Minute rows, or hour rows plus minute rows truncated to the hour, in [start, end)."""
        query = _HOURS if hourly else _MINUTES
        return [MetricRow(**r) for r in await self._conn.fetch(query, tenant_id, start, end, *filters)]

    async def usage(self, tenant_id: UUID, first: date, last: date) -> list[UsageDay]:
        """Usage per day in [first, last]."""
        return [UsageDay(**r) for r in await self._conn.fetch(_USAGE, tenant_id, first, last)]

    async def plugin_exists(self, tenant_id: UUID, namespace_id: UUID, plugin: str) -> bool:
        """Whether the namespace has a plugin of this name."""
        return await self._conn.fetchval(_PLUGIN_EXISTS, tenant_id, namespace_id, plugin) is not None

    async def logs(
        self, tenant_id: UUID, namespace: str, plugin: str, *, after: int | None, limit: int, keep: int
    ) -> list[LogEntry]:
        """Entries after an id (oldest first), or the latest `limit` (returned oldest first).

        Only the newest `keep` entries of the plugin count, trimmed yet or not.
        """
        if after is None:
            rows = await self._conn.fetch(_LOGS_LATEST, tenant_id, namespace, plugin, limit, keep)
            rows = list(reversed(rows))
        else:
            rows = await self._conn.fetch(_LOGS_AFTER, tenant_id, namespace, plugin, after, limit, keep)
        return [LogEntry(**r) for r in rows]

    async def try_lock(self, key: int) -> bool:
        """Take a transaction-scoped advisory lock if free (one rollup at a time)."""
        return bool(await self._conn.fetchval(_TRY_LOCK, key))

    async def rollup(self, before: datetime) -> int:
        """Move minute rows older than `before` into hour rows; returns the minute rows moved."""
        status = await self._conn.execute(_ROLLUP, before)
        return int(status.split()[-1])

    async def prune(self, hours_before: datetime, batches_before: datetime) -> None:
        """Delete hour rows and batch ids past their retention."""
        await self._conn.execute(_PRUNE_HOURS, hours_before)
        await self._conn.execute(_PRUNE_BATCHES, batches_before)

    async def gateways(self) -> list[GatewayRow]:
        """Per-gateway ingest facts over the retained batch ids."""
        return [GatewayRow(**r) for r in await self._conn.fetch(_GATEWAYS)]

    async def open_pushes(self) -> dict[str, int]:
        """Pending and failed push counts."""
        return {r["status"]: r["n"] for r in await self._conn.fetch(_OPEN_PUSHES)}
