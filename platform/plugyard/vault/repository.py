"""SQL for secrets; every query filters by tenant. Rows are never updated except `replaced_at`."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from plugyard.vault.schemas import SealedRow, SecretRow

_COLUMNS = "id, namespace_id, plugin_id, name, created_at"
_CURRENT = (
    f"SELECT {_COLUMNS} FROM secrets WHERE tenant_id = $1 AND namespace_id = $2 "
    "AND plugin_id IS NOT DISTINCT FROM $3 AND replaced_at IS NULL ORDER BY name"
)
_NAMESPACE_CURRENT = (
    f"SELECT {_COLUMNS} FROM secrets WHERE tenant_id = $1 AND namespace_id = $2 AND replaced_at IS NULL "
    "ORDER BY name"
)
_REPLACE = (
    "UPDATE secrets SET replaced_at = now() WHERE tenant_id = $1 AND namespace_id = $2 "
    "AND plugin_id IS NOT DISTINCT FROM $3 AND name = $4 AND replaced_at IS NULL RETURNING id"
)
_INSERT = (
    "INSERT INTO secrets (tenant_id, namespace_id, plugin_id, name, key_id, ciphertext) "
    f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}"
)
_SEALED = (
    "SELECT id, tenant_id, namespace_id, plugin_id, name, key_id, ciphertext FROM secrets "
    "WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
)
_ANY = "SELECT EXISTS (SELECT 1 FROM secrets WHERE replaced_at IS NULL)"


class VaultRepository:
    """Secrets of one tenant at a time."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def current(self, tenant_id: UUID, namespace_id: UUID, plugin_id: UUID | None) -> list[SecretRow]:
        """The current secrets of one scope (plugin_id None: the namespace's own)."""
        rows = await self._conn.fetch(_CURRENT, tenant_id, namespace_id, plugin_id)
        return [SecretRow(**r) for r in rows]

    async def namespace_current(self, tenant_id: UUID, namespace_id: UUID) -> list[SecretRow]:
        """The current secrets of a namespace and of all its plugins."""
        rows = await self._conn.fetch(_NAMESPACE_CURRENT, tenant_id, namespace_id)
        return [SecretRow(**r) for r in rows]

    async def replace(self, tenant_id: UUID, namespace_id: UUID, plugin_id: UUID | None, name: str) -> bool:
        """Mark the current value of a name replaced; False when there was none."""
        return await self._conn.fetchval(_REPLACE, tenant_id, namespace_id, plugin_id, name) is not None

    async def insert(
        self,
        tenant_id: UUID,
        namespace_id: UUID,
        plugin_id: UUID | None,
        name: str,
        *,
        key_id: str,
        ciphertext: bytes,
    ) -> SecretRow:
        """Store a sealed value as the current one of its name (replace the old one first)."""
        row = await self._conn.fetchrow(_INSERT, tenant_id, namespace_id, plugin_id, name, key_id, ciphertext)
        return SecretRow(**row)

    async def sealed(self, tenant_id: UUID, ids: Sequence[UUID]) -> list[SealedRow]:
        """Sealed values by row id (current or replaced) of one tenant."""
        return [SealedRow(**r) for r in await self._conn.fetch(_SEALED, tenant_id, list(ids))]

    async def any_current(self) -> bool:
        """Whether any secret is stored at all (startup check, all tenants)."""
        return bool(await self._conn.fetchval(_ANY))
