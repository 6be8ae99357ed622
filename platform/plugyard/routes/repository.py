"""SQL for routes, including the cross-tenant host-claim lookup."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from plugyard.errors import Conflict
from plugyard.routes.patterns import RoutePattern
from plugyard.routes.schemas import RouteRow

# Host claims are checked under one transaction-level advisory lock so two tenants cannot claim
# overlapping hosts concurrently.
HOST_CLAIM_LOCK_KEY = 0x706C7567_0003

_SELECT = """
SELECT r.id, r.tenant_id, r.namespace_id, r.plugin_id, p.name AS plugin, r.pattern, r.host, r.host_suffix,
       r.wildcard, r.created_at
FROM routes r JOIN plugins p ON p.id = r.plugin_id
"""
_LIST = _SELECT + "WHERE r.tenant_id = $1 AND r.namespace_id = $2 ORDER BY r.pattern"
_PAGE = (
    _SELECT + "WHERE r.tenant_id = $1 AND r.namespace_id = $2 AND r.pattern > $3 ORDER BY r.pattern LIMIT $4"
)
_GET = _SELECT + "WHERE r.tenant_id = $1 AND r.namespace_id = $2 AND r.id = $3"
_INSERT = """
INSERT INTO routes (tenant_id, namespace_id, plugin_id, pattern, host, host_suffix, wildcard)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
"""
_DELETE = "DELETE FROM routes WHERE tenant_id = $1 AND namespace_id = $2 AND id = $3"
# Other tenants' routes whose host could overlap: same suffix or an ancestor (equality on the
# suffixes of ours), or a descendant (reverse-suffix prefix match, indexed).
_CLAIM_CANDIDATES = """
SELECT pattern, host, host_suffix, wildcard FROM routes
WHERE tenant_id <> $1
  AND (host_suffix = ANY($2::text[]) OR reverse(host_suffix) LIKE reverse($3) || '.%')
"""


class RouteRepository:
    """Routes of one tenant at a time, plus the host-claim lookup across tenants."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def in_namespace(self, tenant_id: UUID, namespace_id: UUID) -> list[RouteRow]:
        """All routes of a namespace."""
        return [RouteRow(**r) for r in await self._conn.fetch(_LIST, tenant_id, namespace_id)]

    async def page(self, tenant_id: UUID, namespace_id: UUID, *, after: str, limit: int) -> list[RouteRow]:
        """A page of a namespace's routes ordered by pattern, after the given pattern."""
        return [RouteRow(**r) for r in await self._conn.fetch(_PAGE, tenant_id, namespace_id, after, limit)]

    async def get(self, tenant_id: UUID, namespace_id: UUID, route_id: UUID) -> RouteRow | None:
        """One route."""
        row = await self._conn.fetchrow(_GET, tenant_id, namespace_id, route_id)
        return None if row is None else RouteRow(**row)

    async def lock_host_claims(self) -> None:
        """Serialise host claims until the transaction ends."""
        await self._conn.execute("SELECT pg_advisory_xact_lock($1)", HOST_CLAIM_LOCK_KEY)

    async def claim_candidates(self, tenant_id: UUID, parsed: RoutePattern) -> list[RoutePattern]:
        """Routes of other tenants whose host may overlap the given pattern's host."""
        labels = parsed.host_suffix.split(".")
        ancestors = [".".join(labels[i:]) for i in range(len(labels))]
        rows = await self._conn.fetch(_CLAIM_CANDIDATES, tenant_id, ancestors, parsed.host_suffix)
        return [
            RoutePattern(
                pattern=r["pattern"],
                host=r["host"],
                host_suffix=r["host_suffix"],
                wildcard=r["wildcard"],
                path="",
            )
            for r in rows
        ]

    async def insert(
        self, tenant_id: UUID, namespace_id: UUID, plugin_id: UUID, parsed: RoutePattern
    ) -> UUID:
        """Insert a route; a pattern already routed is a Conflict."""
        try:
            route_id: UUID = await self._conn.fetchval(
                _INSERT,
                tenant_id,
                namespace_id,
                plugin_id,
                parsed.pattern,
                parsed.host,
                parsed.host_suffix,
                parsed.wildcard,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"pattern {parsed.pattern!r} is already routed", slug="route-exists") from None
        return route_id

    async def delete(self, tenant_id: UUID, namespace_id: UUID, route_id: UUID) -> None:
        """Delete a route."""
        await self._conn.execute(_DELETE, tenant_id, namespace_id, route_id)
