"""HTTP API: tenants and their API tokens."""

from __future__ import annotations

from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from plugyard.deps import (
    AfterName,
    CurrentPrincipal,
    CurrentTenant,
    DbConn,
    PageLimit,
)
from plugyard.tenants.schemas import (
    Tenant,
    TenantCreate,
    TenantRow,
    Token,
    TokenCreate,
    TokenCreated,
)
from plugyard.tenants.service import TenantService


def _tenant(row: TenantRow) -> Tenant:
    return Tenant(**msgspec.structs.asdict(row))


class TenantController(Controller):
    """Tenants (admin) and tokens (admin or the tenant itself)."""

    path = "/v1/tenants"
    tags = ["tenants"]

    @post("/", summary="Create a tenant (admin)")
    async def create(self, data: JSONBody[TenantCreate], principal: CurrentPrincipal, conn: DbConn) -> Tenant:
        """Create a tenant. Only an admin token may."""
        return _tenant(await TenantService(conn).create_tenant(principal, data))

    @get("/", summary="List tenants (admin)")
    async def list_tenants(
        self,
        principal: CurrentPrincipal,
        conn: DbConn,
        limit: PageLimit = 50,
        after: AfterName = "",
    ) -> list[Tenant]:
        """A page of tenants ordered by slug."""
        rows = await TenantService(conn).list_tenants(principal, after=after, limit=limit)
        return [_tenant(r) for r in rows]

    @get("/{tenant:str}", summary="Get a tenant")
    async def get_tenant(self, tenant_row: CurrentTenant) -> Tenant:
        """A tenant the caller may see."""
        return _tenant(tenant_row)

    @post("/{tenant:str}/tokens", summary="Create an API token")
    async def create_token(
        self,
        request: Request[object, object, State],
        data: JSONBody[TokenCreate],
        tenant_row: CurrentTenant,
        principal: CurrentPrincipal,
        conn: DbConn,
    ) -> TokenCreated:
        """Create a token scoped to this tenant. The token is in this answer and never again."""
        return await TenantService(conn).create_token(tenant_row, data.name, actor=principal.actor)

    @get("/{tenant:str}/tokens", summary="List API tokens")
    async def list_tokens(self, tenant_row: CurrentTenant, conn: DbConn) -> list[Token]:
        """Token metadata (never the secrets)."""
        rows = await TenantService(conn).list_tokens(tenant_row)
        return [
            Token(
                id=r.id,
                name=r.name,
                prefix=r.prefix,
                created_at=r.created_at,
                revoked_at=r.revoked_at,
                last_used_at=r.last_used_at,
            )
            for r in rows
        ]

    @delete("/{tenant:str}/tokens/{token_id:uuid}", summary="Revoke an API token", status_code=204)
    async def revoke_token(
        self, token_id: FromPath[UUID], tenant_row: CurrentTenant, principal: CurrentPrincipal, conn: DbConn
    ) -> None:
        """Revoke a token; it stops working on the next request."""
        await TenantService(conn).revoke_token(tenant_row, token_id, actor=principal.actor)
