"""SQL for namespaces; every query filters by tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from plugyard.errors import Conflict
from plugyard.namespaces.schemas import DENY_ALL, NamespaceRow

_COLUMNS = "id, tenant_id, name, vars, egress, created_at"
# The columns of a NamespaceRow, also selected by the one-query request resolution
# (tenants.repository.resolve): keep NamespaceRow, this list and that query in step.
ROW_COLUMNS = _COLUMNS
_INSERT = (
    "INSERT INTO namespaces (tenant_id, name, vars, egress) VALUES ($1, $2, $3, $4) RETURNING " + _COLUMNS
)
_SET_VARS = "UPDATE namespaces SET vars = $3 WHERE tenant_id = $1 AND id = $2"
_SET_EGRESS = "UPDATE namespaces SET egress = $3 WHERE tenant_id = $1 AND id = $2"
_GET = f"SELECT {_COLUMNS} FROM namespaces WHERE tenant_id = $1 AND name = $2"
_LOCK = f"SELECT {_COLUMNS} FROM namespaces WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
_LIST = f"SELECT {_COLUMNS} FROM namespaces WHERE tenant_id = $1 AND name > $2 ORDER BY name LIMIT $3"


class NamespaceRepository:
    """Namespaces of one tenant at a time."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def insert(
        self,
        tenant_id: UUID,
        name: str,
        vars_: dict[str, str] | None = None,
        egress: dict[str, Any] | None = None,
    ) -> NamespaceRow:
        """Insert a namespace; a taken name is a Conflict."""
        try:
            row = await self._conn.fetchrow(_INSERT, tenant_id, name, vars_ or {}, egress or DENY_ALL)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"namespace {name!r} already exists", slug="namespace-exists") from None
        return NamespaceRow(**row)

    async def get(self, tenant_id: UUID, name: str) -> NamespaceRow | None:
        """Fetch a namespace by name."""
        row = await self._conn.fetchrow(_GET, tenant_id, name)
        return None if row is None else NamespaceRow(**row)

    async def lock(self, tenant_id: UUID, namespace_id: UUID) -> NamespaceRow:
        """Lock a namespace row for the rest of the transaction (serialises its deployments)."""
        return NamespaceRow(**await self._conn.fetchrow(_LOCK, tenant_id, namespace_id))

    async def set_vars(self, tenant_id: UUID, namespace_id: UUID, vars_: dict[str, str]) -> None:
        """Replace a namespace's plain variables."""
        await self._conn.execute(_SET_VARS, tenant_id, namespace_id, vars_)

    async def set_egress(self, tenant_id: UUID, namespace_id: UUID, egress: dict[str, Any]) -> None:
        """Replace a namespace's egress policy."""
        await self._conn.execute(_SET_EGRESS, tenant_id, namespace_id, egress)

    async def page(self, tenant_id: UUID, *, after: str, limit: int) -> list[NamespaceRow]:
        """A page of a tenant's namespaces ordered by name."""
        return [NamespaceRow(**row) for row in await self._conn.fetch(_LIST, tenant_id, after, limit)]
