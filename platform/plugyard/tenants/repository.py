"""SQL for tenants and API tokens. Every token query filters by tenant where one is known."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from plugyard.errors import Conflict
from plugyard.namespaces.repository import ROW_COLUMNS as _NAMESPACE_COLUMNS
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins.repository import PLUGIN_SELECT
from plugyard.plugins.schemas import PluginRow
from plugyard.tenants.schemas import LiveToken, TenantRow, TokenRow

_TENANT_COLUMNS = "id, slug, name, created_at"
_TOKEN_COLUMNS = "id, tenant_id, name, prefix, created_at, revoked_at, last_used_at"  # noqa: S105 - column names

_INSERT_TENANT = f"INSERT INTO tenants (slug, name) VALUES ($1, $2) RETURNING {_TENANT_COLUMNS}"
_GET_TENANT_BY_SLUG = f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE slug = $1"
_LIST_TENANTS = f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE slug > $1 ORDER BY slug LIMIT $2"
_INSERT_TOKEN = (
    "INSERT INTO api_tokens (tenant_id, name, prefix, token_hash) VALUES ($1, $2, $3, $4) "
    f"RETURNING {_TOKEN_COLUMNS}"
)
_LIST_TOKENS = f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE tenant_id = $1 ORDER BY created_at, id"
_FIND_TOKEN = f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
_REVOKE_TOKEN = (
    "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND tenant_id = $2 "
    f"RETURNING {_TOKEN_COLUMNS}"
)
# At most one write a minute per token: "last used" is shown to people, not billed.
_TOUCH_TOKEN = (
    "UPDATE api_tokens SET last_used_at = now() WHERE id = $1 "  # noqa: S105 - SQL
    "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
)
_ADMIN_TOKEN_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE tenant_id IS NULL AND revoked_at IS NULL)"  # noqa: S105 - SQL
)


# One round trip resolves an authenticated request: the live token with this digest, the tenant
# named in the path if that token may see it (an admin token sees every tenant), the namespace
# named in the path within that tenant, and the plugin named in the path within that namespace
# (with its active version). A part that is absent or not visible comes back as NULLs. Columns
# are split by position: 3 token columns, then the tenant's, the namespace's and the plugin's.
def _path_parts(namespace_param: str, plugin_param: str) -> str:
    return f"""
LEFT JOIN LATERAL (
    SELECT {_NAMESPACE_COLUMNS} FROM namespaces WHERE tenant_id = t.id AND name = {namespace_param}
) n ON true
LEFT JOIN LATERAL (
    {PLUGIN_SELECT} WHERE p.tenant_id = t.id AND p.namespace_id = n.id AND p.name = {plugin_param}
) pl ON true
"""


# Call with the path's tenant slug, namespace name and plugin name (any may be NULL).
_RESOLVE_TOKEN = f"""
SELECT tok.id, tok.tenant_id, tok.last_used_at, t.*, n.*, pl.*
FROM api_tokens tok
LEFT JOIN LATERAL (
    SELECT {_TENANT_COLUMNS} FROM tenants WHERE slug = $2 AND (tok.tenant_id IS NULL OR id = tok.tenant_id)
) t ON true
{_path_parts("$3", "$4")}
WHERE tok.token_hash = $1 AND tok.revoked_at IS NULL
"""
# The same for the configured admin token (no token row): the tenant, namespace and plugin only.
_RESOLVE_TENANT = f"""
SELECT t.*, n.*, pl.*
FROM (SELECT {_TENANT_COLUMNS} FROM tenants WHERE slug = $1) t
{_path_parts("$2", "$3")}
"""
_TENANT_WIDTH = len(_TENANT_COLUMNS.split(","))
_NAMESPACE_WIDTH = len(_NAMESPACE_COLUMNS.split(","))


class TenantRepository:
    """Tenants and their tokens."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def insert(self, slug: str, name: str) -> TenantRow:
        """Insert a tenant; a taken slug is a Conflict."""
        try:
            row = await self._conn.fetchrow(_INSERT_TENANT, slug, name)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a tenant with slug {slug!r} already exists", slug="tenant-exists") from None
        return TenantRow(**row)

    async def get_by_slug(self, slug: str) -> TenantRow | None:
        """Fetch a tenant by slug."""
        row = await self._conn.fetchrow(_GET_TENANT_BY_SLUG, slug)
        return None if row is None else TenantRow(**row)

    async def page(self, *, after: str, limit: int) -> list[TenantRow]:
        """A page of tenants ordered by slug, after the given slug."""
        return [TenantRow(**row) for row in await self._conn.fetch(_LIST_TENANTS, after, limit)]

    async def insert_token(
        self, tenant_id: UUID | None, name: str, prefix: str, token_hash: bytes
    ) -> TokenRow:
        """Store a token's digest (tenant_id None: an admin token)."""
        return TokenRow(**await self._conn.fetchrow(_INSERT_TOKEN, tenant_id, name, prefix, token_hash))

    async def list_tokens(self, tenant_id: UUID) -> list[TokenRow]:
        """All tokens of one tenant, revoked ones included."""
        return [TokenRow(**row) for row in await self._conn.fetch(_LIST_TOKENS, tenant_id)]

    async def find_token(self, token_hash: bytes) -> TokenRow | None:
        """The live token with this digest, if any."""
        row = await self._conn.fetchrow(_FIND_TOKEN, token_hash)
        return None if row is None else TokenRow(**row)

    async def resolve_token(
        self, token_hash: bytes, tenant_slug: str | None, namespace_name: str | None, plugin_name: str | None
    ) -> tuple[LiveToken, PathRows] | None:
        """The live token with this digest and, in the same query, the tenant, namespace and plugin named.

        Returns:
            None for an unknown or revoked token; else the token, the tenant if the token may
            see it, the namespace within that tenant and the plugin within that namespace.
        """
        row = await self._conn.fetchrow(_RESOLVE_TOKEN, token_hash, tenant_slug, namespace_name, plugin_name)
        if row is None:
            return None
        token_id, tenant_id, last_used_at, *rest = row.values()
        parts = _path_rows(list(row.keys())[3:], rest)
        return LiveToken(id=token_id, tenant_id=tenant_id, last_used_at=last_used_at), parts

    async def resolve_tenant(
        self, tenant_slug: str, namespace_name: str | None, plugin_name: str | None
    ) -> PathRows:
        """A tenant by slug and, in the same query, its namespace and plugin by name (admin token)."""
        row = await self._conn.fetchrow(_RESOLVE_TENANT, tenant_slug, namespace_name, plugin_name)
        return (None, None, None) if row is None else _path_rows(list(row.keys()), list(row.values()))

    async def touch_token(self, token_id: UUID) -> None:
        """Note that a token was just used (at most once a minute)."""
        await self._conn.execute(_TOUCH_TOKEN, token_id)

    async def revoke_token(self, tenant_id: UUID, token_id: UUID) -> TokenRow | None:
        """Revoke a tenant's token (idempotent); None when it is not that tenant's."""
        row = await self._conn.fetchrow(_REVOKE_TOKEN, token_id, tenant_id)
        return None if row is None else TokenRow(**row)

    async def admin_token_exists(self) -> bool:
        """Whether a live admin token is stored."""
        return bool(await self._conn.fetchval(_ADMIN_TOKEN_EXISTS))


PathRows = tuple[TenantRow | None, NamespaceRow | None, PluginRow | None]


def _path_rows(keys: list[str], values: list[object]) -> PathRows:
    end_tenant, end_namespace = _TENANT_WIDTH, _TENANT_WIDTH + _NAMESPACE_WIDTH
    tenant_part = dict(zip(keys[:end_tenant], values[:end_tenant], strict=True))
    namespace_part = dict(zip(keys[end_tenant:end_namespace], values[end_tenant:end_namespace], strict=True))
    plugin_part = dict(zip(keys[end_namespace:], values[end_namespace:], strict=True))
    tenant = None if tenant_part["id"] is None else TenantRow(**tenant_part)  # type: ignore[arg-type]
    namespace = None if namespace_part["id"] is None else NamespaceRow(**namespace_part)  # type: ignore[arg-type]
    plugin = None if plugin_part["id"] is None else PluginRow(**plugin_part)  # type: ignore[arg-type]
    return tenant, namespace, plugin
