"""SQL for experiments, their variants and namespace holdouts; every query filters by tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from plugyard.errors import Conflict
from plugyard.experiments.schemas import ExperimentRow, VariantRow

_COLUMNS = """
e.id, e.tenant_id, e.namespace_id, e.plugin_id, p.name AS plugin, e.key, e.state, e.phase, e.seed,
e.coverage, e.sticky_source, e.sticky_name, e.exclusion_group, e.exclusion_start, e.exclusion_end,
e.guardrail, e.winner, e.status_reason, e.guardrail_trip, e.phase_started_at, e.created_at, e.updated_at
"""
_FROM = " FROM experiments e JOIN plugins p ON p.id = e.plugin_id "
_GET = f"SELECT {_COLUMNS}{_FROM}WHERE e.tenant_id = $1 AND e.namespace_id = $2 AND e.key = $3"
_LOCK = f"SELECT {_COLUMNS}{_FROM}WHERE e.tenant_id = $1 AND e.id = $2 FOR UPDATE OF e"
_PAGE = (
    f"SELECT {_COLUMNS}{_FROM}WHERE e.tenant_id = $1 AND e.namespace_id = $2 AND e.key > $3 "
    "ORDER BY e.key LIMIT $4"
)
_LIVE = (
    f"SELECT {_COLUMNS}{_FROM}WHERE e.tenant_id = $1 AND e.namespace_id = $2 "
    "AND e.state IN ('running', 'paused') ORDER BY p.name"
)
# Internal (the guardrail checker runs for every tenant): running experiments with a guardrail.
_GUARDED = f"SELECT {_COLUMNS}{_FROM}WHERE e.state = 'running' AND e.guardrail IS NOT NULL ORDER BY e.id"
_INSERT = """
INSERT INTO experiments (tenant_id, namespace_id, plugin_id, key, state, seed, coverage, sticky_source,
                         sticky_name, exclusion_group, exclusion_start, exclusion_end, guardrail)
VALUES ($1, $2, $3, $4, 'draft', $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING id
"""
_INSERT_VARIANTS = """
INSERT INTO experiment_variants (experiment_id, tenant_id, position, name, version_id, weight)
SELECT $1, $2, v.position, v.name, v.version_id, v.weight
FROM unnest($3::int[], $4::text[], $5::uuid[], $6::float8[]) AS v(position, name, version_id, weight)
"""
_VARIANTS = """
SELECT ev.position, ev.name, ev.version_id, pv.number AS version, pv.hash AS version_hash, pv.limits,
       ev.weight
FROM experiment_variants ev JOIN plugin_versions pv ON pv.id = ev.version_id
WHERE ev.tenant_id = $1 AND ev.experiment_id = $2
ORDER BY ev.position
"""
_SET_WEIGHT = (
    "UPDATE experiment_variants SET weight = $4 WHERE tenant_id = $1 AND experiment_id = $2 AND name = $3"
)
_UPDATE = """
UPDATE experiments SET state = $3, phase = $4, seed = $5, coverage = $6, guardrail = $7, winner = $8,
       status_reason = $9, guardrail_trip = $10, phase_started_at = $11, updated_at = now()
WHERE tenant_id = $1 AND id = $2
"""
_OVERLAPS = """
SELECT key FROM experiments
WHERE tenant_id = $1 AND namespace_id = $2 AND id <> $3 AND exclusion_group = $4
  AND state IN ('draft', 'running', 'paused') AND exclusion_start < $6 AND $5 < exclusion_end
ORDER BY key
"""
_SCOPE = """
SELECT t.slug AS tenant, n.name AS namespace FROM namespaces n JOIN tenants t ON t.id = n.tenant_id
WHERE t.id = $1 AND n.id = $2
"""
_HOLDOUT = "SELECT share FROM experiment_holdouts WHERE tenant_id = $1 AND namespace_id = $2"
_SET_HOLDOUT = """
INSERT INTO experiment_holdouts (namespace_id, tenant_id, share) VALUES ($2, $1, $3)
ON CONFLICT (namespace_id) DO UPDATE SET share = excluded.share, updated_at = now()
WHERE experiment_holdouts.tenant_id = $1
"""


class ExperimentRepository:
    """Experiments of one tenant at a time."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def insert(self, tenant_id: UUID, namespace_id: UUID, plugin_id: UUID, **f: Any) -> UUID:
        """Insert a draft (seed = key); a taken key is a Conflict."""
        try:
            experiment_id: UUID = await self._conn.fetchval(
                _INSERT,
                tenant_id,
                namespace_id,
                plugin_id,
                f["key"],
                f["coverage"],
                f["sticky_source"],
                f["sticky_name"],
                f["exclusion_group"],
                f["exclusion_start"],
                f["exclusion_end"],
                f["guardrail"],
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"experiment {f['key']!r} already exists in this namespace", slug="experiment-exists"
            ) from None
        return experiment_id

    async def insert_variants(
        self, tenant_id: UUID, experiment_id: UUID, variants: Sequence[tuple[str, UUID, float]]
    ) -> None:
        """Store the variants in order (position 0 is the control)."""
        await self._conn.execute(
            _INSERT_VARIANTS,
            experiment_id,
            tenant_id,
            list(range(len(variants))),
            [v[0] for v in variants],
            [v[1] for v in variants],
            [v[2] for v in variants],
        )

    async def get(self, tenant_id: UUID, namespace_id: UUID, key: str) -> ExperimentRow | None:
        """An experiment by key."""
        row = await self._conn.fetchrow(_GET, tenant_id, namespace_id, key)
        return None if row is None else ExperimentRow(**row)

    async def lock(self, tenant_id: UUID, experiment_id: UUID) -> ExperimentRow:
        """Re-read and lock an experiment for the rest of the transaction."""
        return ExperimentRow(**await self._conn.fetchrow(_LOCK, tenant_id, experiment_id))

    async def page(
        self, tenant_id: UUID, namespace_id: UUID, *, after: str, limit: int
    ) -> list[ExperimentRow]:
        """A page of a namespace's experiments ordered by key."""
        rows = await self._conn.fetch(_PAGE, tenant_id, namespace_id, after, limit)
        return [ExperimentRow(**r) for r in rows]

    async def live(self, tenant_id: UUID, namespace_id: UUID) -> list[ExperimentRow]:
        """Running and paused experiments of a namespace (what a deployment carries)."""
        return [ExperimentRow(**r) for r in await self._conn.fetch(_LIVE, tenant_id, namespace_id)]

    async def guarded(self) -> list[ExperimentRow]:
        """Running experiments with a guardrail, across tenants (the checker loop only)."""
        return [ExperimentRow(**r) for r in await self._conn.fetch(_GUARDED)]

    async def variants(self, tenant_id: UUID, experiment_id: UUID) -> list[VariantRow]:
        """An experiment's variants in order, with their versions."""
        return [VariantRow(**r) for r in await self._conn.fetch(_VARIANTS, tenant_id, experiment_id)]

    async def set_weights(self, tenant_id: UUID, experiment_id: UUID, weights: dict[str, float]) -> None:
        """Replace variant weights (already normalised)."""
        for name, weight in weights.items():
            await self._conn.execute(_SET_WEIGHT, tenant_id, experiment_id, name, weight)

    async def update(self, row: ExperimentRow) -> None:
        """Write back the mutable fields of an experiment; a second live one on the plugin is a Conflict."""
        try:
            await self._conn.execute(
                _UPDATE,
                row.tenant_id,
                row.id,
                row.state,
                row.phase,
                row.seed,
                row.coverage,
                row.guardrail,
                row.winner,
                row.status_reason,
                row.guardrail_trip,
                row.phase_started_at,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"plugin {row.plugin!r} already has a running or paused experiment",
                slug="experiment-already-running",
            ) from None

    async def overlapping(
        self,
        tenant_id: UUID,
        namespace_id: UUID,
        experiment_id: UUID | None,
        group: str,
        start: float,
        end: float,
    ) -> list[str]:
        """Keys of other unstopped experiments claiming an overlapping range of the group."""
        rows = await self._conn.fetch(
            _OVERLAPS, tenant_id, namespace_id, experiment_id or UUID(int=0), group, start, end
        )
        return [r["key"] for r in rows]

    async def scope(self, tenant_id: UUID, namespace_id: UUID) -> tuple[str, str]:
        """Tenant slug and namespace name of an experiment's namespace."""
        row = await self._conn.fetchrow(_SCOPE, tenant_id, namespace_id)
        return row["tenant"], row["namespace"]

    async def holdout(self, tenant_id: UUID, namespace_id: UUID) -> float:
        """The namespace's holdout share (0 when never set)."""
        share = await self._conn.fetchval(_HOLDOUT, tenant_id, namespace_id)
        return 0.0 if share is None else float(share)

    async def set_holdout(self, tenant_id: UUID, namespace_id: UUID, share: float) -> None:
        """Set the namespace's holdout share."""
        await self._conn.execute(_SET_HOLDOUT, tenant_id, namespace_id, share)
