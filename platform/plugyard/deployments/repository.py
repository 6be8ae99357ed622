"""SQL for deployments and pushes."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from plugyard.deployments.schemas import BundleRow, DeploymentRow, Push

_COLUMNS = "id, tenant_id, namespace_id, revision, reason, actor, state, created_at"
_NEXT_REVISION = (
    "SELECT coalesce(max(revision), 0) + 1 FROM deployments WHERE namespace_id = $1 AND tenant_id = $2"
)
_INSERT = (
    "INSERT INTO deployments (tenant_id, namespace_id, revision, reason, actor, state) "
    f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}"
)
# The next revision, the deployment and its pending pushes in one statement. Call with the
# namespace row locked (by an earlier statement, so this one's snapshot sees every revision).
_INSERT_NEXT = f"""
WITH d AS (
    INSERT INTO deployments (tenant_id, namespace_id, revision, reason, actor, state)
    SELECT $1, $2, coalesce(max(revision), 0) + 1, $3, $4, $5
    FROM deployments WHERE namespace_id = $2 AND tenant_id = $1
    RETURNING {_COLUMNS}
), p AS (
    INSERT INTO pushes (deployment_id, gateway, status) SELECT d.id, g, 'pending' FROM d, unnest($6::text[]) g
)
SELECT {_COLUMNS} FROM d
"""
_GET = f"SELECT {_COLUMNS} FROM deployments WHERE tenant_id = $1 AND namespace_id = $2 AND revision = $3"
_GET_BY_ID = f"SELECT {_COLUMNS} FROM deployments WHERE id = $1"
_LIST = (
    f"SELECT {_COLUMNS} FROM deployments WHERE tenant_id = $1 AND namespace_id = $2 AND revision < $3 "
    "ORDER BY revision DESC LIMIT $4"
)
_PLUGINS_STATE = """
SELECT p.id, p.name, p.vars, v.id AS version_id, v.hash, v.limits
FROM plugins p LEFT JOIN plugin_versions v ON v.id = p.active_version_id AND v.tenant_id = p.tenant_id
WHERE p.tenant_id = $1 AND p.namespace_id = $2
ORDER BY p.name
"""
_ROUTES_STATE = """
SELECT r.pattern, p.name AS plugin
FROM routes r JOIN plugins p ON p.id = r.plugin_id
WHERE r.tenant_id = $1 AND r.namespace_id = $2
ORDER BY r.pattern
"""
_BUNDLES = (
    "SELECT id, hash, main_module, modules, compatibility_date, compatibility_flags "
    "FROM plugin_versions WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
)
_INSERT_PUSHES = (
    "INSERT INTO pushes (deployment_id, gateway, status) SELECT $1, unnest($2::text[]), 'pending'"
)
_PUSHES = (
    "SELECT gateway, status, attempts, last_error, updated_at FROM pushes WHERE deployment_id = $1 "
    "ORDER BY gateway"
)
_PUSHES_OF_MANY = (
    "SELECT deployment_id, gateway, status, attempts, last_error, updated_at FROM pushes "
    "WHERE deployment_id = ANY($1::uuid[]) ORDER BY deployment_id, gateway"
)
# Record several outcomes of one deployment and read all its pushes back, in one statement (the
# rows not updated are read from the statement's snapshot, which the update does not change).
_RECORD_AND_READ = """
WITH u AS (
    UPDATE pushes p SET status = o.status, attempts = p.attempts + 1, last_error = o.error, updated_at = now()
    FROM unnest($2::text[], $3::text[], $4::text[]) AS o(gateway, status, error)
    WHERE p.deployment_id = $1 AND p.gateway = o.gateway
    RETURNING p.gateway, p.status, p.attempts, p.last_error, p.updated_at
)
SELECT gateway, status, attempts, last_error, updated_at FROM u
UNION ALL
SELECT gateway, status, attempts, last_error, updated_at FROM pushes
WHERE deployment_id = $1 AND gateway <> ALL($2::text[])
ORDER BY gateway
"""
_RECORD_PUSH = (
    "UPDATE pushes SET status = $3, attempts = attempts + 1, last_error = $4, updated_at = now() "
    "WHERE deployment_id = $1 AND gateway = $2"
)
_OPEN_PUSHES = """
SELECT p.deployment_id, p.gateway,
       d.revision = (SELECT max(revision) FROM deployments WHERE namespace_id = d.namespace_id) AS latest
FROM pushes p JOIN deployments d ON d.id = p.deployment_id
WHERE (p.status = 'pending' AND p.updated_at < now() - make_interval(secs => $1))
   OR (p.status = 'failed'
       AND (p.gateway = ANY($5::text[])
            OR p.updated_at < now() - make_interval(secs => least(power(2, p.attempts - 1) * $3, $4))))
ORDER BY p.updated_at
LIMIT $2
"""
# The desired state: each namespace's latest deployment (the reconciler; all tenants, by design).
_LATEST_PER_NAMESPACE = f"""
SELECT DISTINCT ON (d.namespace_id) {", ".join("d." + c for c in _COLUMNS.split(", "))},
       t.slug AS tenant_slug, n.name AS namespace_name
FROM deployments d JOIN namespaces n ON n.id = d.namespace_id JOIN tenants t ON t.id = d.tenant_id
ORDER BY d.namespace_id, d.revision DESC
"""
_INSERT_MISSING_PUSHES = """
INSERT INTO pushes (deployment_id, gateway, status) SELECT $1, unnest($2::text[]), 'pending'
ON CONFLICT DO NOTHING
"""
_NAMES = """
SELECT t.slug AS tenant, n.name AS namespace FROM namespaces n JOIN tenants t ON t.id = n.tenant_id
WHERE n.id = $1
"""


class DeploymentRepository:
    """Deployments, the state they snapshot, and push bookkeeping."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def plugins_state(self, tenant_id: UUID, namespace_id: UUID) -> list[asyncpg.Record]:
        """Each plugin of the namespace with its active version's id and hash."""
        return list(await self._conn.fetch(_PLUGINS_STATE, tenant_id, namespace_id))

    async def routes_state(self, tenant_id: UUID, namespace_id: UUID) -> list[asyncpg.Record]:
        """Each route of the namespace with its plugin's name."""
        return list(await self._conn.fetch(_ROUTES_STATE, tenant_id, namespace_id))

    async def next_revision(self, tenant_id: UUID, namespace_id: UUID) -> int:
        """The next revision number (call with the namespace row locked)."""
        return int(await self._conn.fetchval(_NEXT_REVISION, namespace_id, tenant_id))

    async def insert(
        self, tenant_id: UUID, namespace_id: UUID, revision: int, reason: str, actor: str, state: object
    ) -> DeploymentRow:
        """Store a deployment."""
        row = await self._conn.fetchrow(_INSERT, tenant_id, namespace_id, revision, reason, actor, state)
        return DeploymentRow(**row)

    async def insert_pushes(self, deployment_id: UUID, gateways: Sequence[str]) -> None:
        """Record one pending push per gateway."""
        await self._conn.execute(_INSERT_PUSHES, deployment_id, list(gateways))

    async def insert_next(
        self,
        tenant_id: UUID,
        namespace_id: UUID,
        reason: str,
        actor: str,
        state: object,
        gateways: Sequence[str],
    ) -> DeploymentRow:
        """Store the next revision with one pending push per gateway (namespace row locked)."""
        row = await self._conn.fetchrow(
            _INSERT_NEXT, tenant_id, namespace_id, reason, actor, state, list(gateways)
        )
        return DeploymentRow(**row)

    async def get(self, tenant_id: UUID, namespace_id: UUID, revision: int) -> DeploymentRow | None:
        """One deployment by revision."""
        row = await self._conn.fetchrow(_GET, tenant_id, namespace_id, revision)
        return None if row is None else DeploymentRow(**row)

    async def get_by_id(self, deployment_id: UUID) -> DeploymentRow:
        """One deployment by id (internal: the retry loop)."""
        return DeploymentRow(**await self._conn.fetchrow(_GET_BY_ID, deployment_id))

    async def page(
        self, tenant_id: UUID, namespace_id: UUID, *, before: int, limit: int
    ) -> list[DeploymentRow]:
        """A page of deployments, newest first, below the given revision."""
        rows = await self._conn.fetch(_LIST, tenant_id, namespace_id, before, limit)
        return [DeploymentRow(**row) for row in rows]

    async def bundles(self, tenant_id: UUID, version_ids: Sequence[UUID]) -> list[BundleRow]:
        """The code of the given versions of one tenant."""
        rows = await self._conn.fetch(_BUNDLES, tenant_id, list(version_ids))
        return [BundleRow(**row) for row in rows]

    async def pushes(self, deployment_id: UUID) -> list[Push]:
        """The push records of one deployment."""
        return [Push(**row) for row in await self._conn.fetch(_PUSHES, deployment_id)]

    async def pushes_of(self, deployment_ids: Sequence[UUID]) -> dict[UUID, list[Push]]:
        """The push records of several deployments (one query for a page)."""
        found: dict[UUID, list[Push]] = {d: [] for d in deployment_ids}
        for row in await self._conn.fetch(_PUSHES_OF_MANY, list(deployment_ids)):
            found[row["deployment_id"]].append(
                Push(
                    gateway=row["gateway"],
                    status=row["status"],
                    attempts=row["attempts"],
                    last_error=row["last_error"],
                    updated_at=row["updated_at"],
                )
            )
        return found

    async def record_pushes(
        self, deployment_id: UUID, outcomes: Sequence[tuple[str, str, str | None]]
    ) -> list[Push]:
        """Record (gateway, status, error) outcomes of one deployment; returns all its pushes."""
        gateways = [gateway for gateway, _, _ in outcomes]
        statuses = [status for _, status, _ in outcomes]
        errors = [error for _, _, error in outcomes]
        rows = await self._conn.fetch(_RECORD_AND_READ, deployment_id, gateways, statuses, errors)
        return [Push(**row) for row in rows]

    async def record_push(self, deployment_id: UUID, gateway: str, status: str, error: str | None) -> None:
        """Record the outcome of one push attempt."""
        await self._conn.execute(_RECORD_PUSH, deployment_id, gateway, status, error)

    async def open_pushes(
        self,
        *,
        pending_after_s: float,
        backoff_s: float,
        max_backoff_s: float,
        limit: int,
        recovered: Sequence[str] = (),
    ) -> list[asyncpg.Record]:
        """Pushes to retry, oldest first.

        Pending ones once they are older than `pending_after_s` (the request that recorded them
        may still be pushing); failed ones after an exponential backoff per attempt, or at once
        when their gateway is in `recovered` (it failed health checks and answers again).
        """
        return list(
            await self._conn.fetch(
                _OPEN_PUSHES, pending_after_s, limit, backoff_s, max_backoff_s, list(recovered)
            )
        )

    async def latest_per_namespace(self) -> list[asyncpg.Record]:
        """Each namespace's latest deployment with `tenant_slug` and `namespace_name` (reconciler)."""
        return list(await self._conn.fetch(_LATEST_PER_NAMESPACE))

    async def ensure_pushes(self, deployment_id: UUID, gateways: Sequence[str]) -> None:
        """Push rows for gateways added to the settings after the deployment was recorded."""
        await self._conn.execute(_INSERT_MISSING_PUSHES, deployment_id, list(gateways))

    async def names(self, namespace_id: UUID) -> tuple[str, str]:
        """Tenant slug and namespace name of a namespace."""
        row = await self._conn.fetchrow(_NAMES, namespace_id)
        return row["tenant"], row["namespace"]
