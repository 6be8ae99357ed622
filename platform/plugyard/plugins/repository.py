"""SQL for plugins and versions; every query filters by tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from plugyard.errors import Conflict
from plugyard.plugins.schemas import PluginRow, VersionCode, VersionRow

# A plugin with its active version (also joined into the request's access query:
# tenants/repository.py `_RESOLVE_TOKEN`).
PLUGIN_SELECT = """
SELECT p.id, p.tenant_id, p.namespace_id, p.name, p.vars, p.active_version_id,
       v.number AS active_version, v.hash AS active_version_hash, p.created_at, p.updated_at
FROM plugins p LEFT JOIN plugin_versions v ON v.id = p.active_version_id
"""
_PLUGIN_SELECT = PLUGIN_SELECT
_GET = _PLUGIN_SELECT + "WHERE p.tenant_id = $1 AND p.namespace_id = $2 AND p.name = $3"
_LIST = (
    _PLUGIN_SELECT + "WHERE p.tenant_id = $1 AND p.namespace_id = $2 AND p.name > $3 ORDER BY p.name LIMIT $4"
)
_INSERT = "INSERT INTO plugins (tenant_id, namespace_id, name, vars) VALUES ($1, $2, $3, $4) RETURNING id"
_LOCK = "SELECT id FROM plugins WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
_SET_VARS = "UPDATE plugins SET vars = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2"
_SET_ACTIVE = "UPDATE plugins SET active_version_id = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2"
_DELETE = "DELETE FROM plugins WHERE tenant_id = $1 AND id = $2"

_VERSION_COLUMNS = (
    "id, plugin_id, number, hash, main_module, "
    "ARRAY(SELECT m->>'name' FROM jsonb_array_elements(modules) AS m) AS module_names, "
    "compatibility_date, compatibility_flags, size_bytes, created_at, provenance, limits"
)
# The number is the next one of the plugin: call with the plugin row locked (by an earlier
# statement, so this one's snapshot sees every version).
_INSERT_VERSION = f"""
INSERT INTO plugin_versions
    (tenant_id, plugin_id, number, hash, main_module, modules, compatibility_date, compatibility_flags,
     size_bytes, provenance, limits)
SELECT $1, $2, coalesce(max(number), 0) + 1, $3, $4, $5, $6, $7, $8, $9, $10
FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2
RETURNING {_VERSION_COLUMNS}
"""
_VERSION_BY_HASH = (
    f"SELECT {_VERSION_COLUMNS} FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2 AND hash = $3"
)
_VERSION_BY_NUMBER = (
    f"SELECT {_VERSION_COLUMNS} FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2 AND number = $3"
)
_VERSION_CODE = (
    "SELECT id, hash, main_module, modules, compatibility_date, compatibility_flags, limits "
    "FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2 AND number = $3"
)
_LIST_VERSIONS = (
    f"SELECT {_VERSION_COLUMNS} FROM plugin_versions WHERE tenant_id = $1 AND plugin_id = $2 AND number < $3 "
    "ORDER BY number DESC LIMIT $4"
)


class PluginRepository:
    """Plugins and versions of one tenant at a time."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def get(self, tenant_id: UUID, namespace_id: UUID, name: str) -> PluginRow | None:
        """A plugin by name with its active version."""
        row = await self._conn.fetchrow(_GET, tenant_id, namespace_id, name)
        return None if row is None else PluginRow(**row)

    async def page(self, tenant_id: UUID, namespace_id: UUID, *, after: str, limit: int) -> list[PluginRow]:
        """A page of a namespace's plugins ordered by name."""
        return [PluginRow(**r) for r in await self._conn.fetch(_LIST, tenant_id, namespace_id, after, limit)]

    async def insert(self, tenant_id: UUID, namespace_id: UUID, name: str, vars_: dict[str, str]) -> UUID:
        """Insert a plugin; a taken name is a Conflict."""
        try:
            plugin_id: UUID = await self._conn.fetchval(_INSERT, tenant_id, namespace_id, name, vars_)
        except asyncpg.UniqueViolationError:
            raise Conflict(
                f"plugin {name!r} already exists in this namespace", slug="plugin-exists"
            ) from None
        return plugin_id

    async def lock(self, tenant_id: UUID, plugin_id: UUID) -> None:
        """Lock a plugin row for the rest of the transaction."""
        await self._conn.execute(_LOCK, tenant_id, plugin_id)

    async def set_vars(self, tenant_id: UUID, plugin_id: UUID, vars_: dict[str, str]) -> None:
        """Replace a plugin's plain variables."""
        await self._conn.execute(_SET_VARS, tenant_id, plugin_id, vars_)

    async def set_active(self, tenant_id: UUID, plugin_id: UUID, version_id: UUID) -> None:
        """Make a version the plugin's active one."""
        await self._conn.execute(_SET_ACTIVE, tenant_id, plugin_id, version_id)

    async def delete(self, tenant_id: UUID, plugin_id: UUID) -> None:
        """Delete a plugin with its versions and routes."""
        await self._conn.execute(_DELETE, tenant_id, plugin_id)

    async def insert_version(self, tenant_id: UUID, plugin_id: UUID, **fields: Any) -> VersionRow:
        """Store a version with the plugin's next number (call with the plugin row locked)."""
        row = await self._conn.fetchrow(
            _INSERT_VERSION,
            tenant_id,
            plugin_id,
            fields["hash"],
            fields["main_module"],
            fields["modules"],
            fields["compatibility_date"],
            fields["compatibility_flags"],
            fields["size_bytes"],
            fields.get("provenance"),
            fields.get("limits"),
        )
        return VersionRow(**row)

    async def version_by_hash(self, tenant_id: UUID, plugin_id: UUID, hash_: str) -> VersionRow | None:
        """A version by content hash."""
        row = await self._conn.fetchrow(_VERSION_BY_HASH, tenant_id, plugin_id, hash_)
        return None if row is None else VersionRow(**row)

    async def version_by_number(self, tenant_id: UUID, plugin_id: UUID, number: int) -> VersionRow | None:
        """A version by number."""
        row = await self._conn.fetchrow(_VERSION_BY_NUMBER, tenant_id, plugin_id, number)
        return None if row is None else VersionRow(**row)

    async def version_code(self, tenant_id: UUID, plugin_id: UUID, number: int) -> VersionCode | None:
        """A version's modules and settings (diff, preview)."""
        row = await self._conn.fetchrow(_VERSION_CODE, tenant_id, plugin_id, number)
        return None if row is None else VersionCode(**row)

    async def list_versions(
        self, tenant_id: UUID, plugin_id: UUID, *, before: int, limit: int
    ) -> list[VersionRow]:
        """A page of versions, newest first, below the given number."""
        rows = await self._conn.fetch(_LIST_VERSIONS, tenant_id, plugin_id, before, limit)
        return [VersionRow(**r) for r in rows]
