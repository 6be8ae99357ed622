"""HTTP API: namespaces and their variables."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, patch, post, put
from litestar.params import JSONBody

from plugyard.deps import (
    AfterName,
    CurrentNamespace,
    CurrentPrincipal,
    CurrentTenant,
    DbConn,
    Gateways,
    PageLimit,
)
from plugyard.namespaces.schemas import (
    EgressPolicy,
    Namespace,
    NamespaceChanged,
    NamespaceCreate,
    NamespaceRow,
    NamespaceUpdate,
)
from plugyard.namespaces.service import NamespaceService


def _namespace(row: NamespaceRow) -> Namespace:
    return Namespace(
        id=row.id,
        name=row.name,
        vars=row.vars,
        egress=msgspec.convert(row.egress, EgressPolicy),
        created_at=row.created_at,
    )


class NamespaceController(Controller):
    """A tenant's dispatch namespaces."""

    path = "/v1/tenants/{tenant:str}/namespaces"
    tags = ["namespaces"]

    @post("/", summary="Create a namespace")
    async def create(
        self, data: JSONBody[NamespaceCreate], tenant_row: CurrentTenant, conn: DbConn
    ) -> Namespace:
        """Create a namespace in the tenant."""
        return _namespace(await NamespaceService(conn).create(tenant_row, data.name, data.vars, data.egress))

    @get("/", summary="List namespaces")
    async def list_namespaces(
        self,
        tenant_row: CurrentTenant,
        conn: DbConn,
        limit: PageLimit = 50,
        after: AfterName = "",
    ) -> list[Namespace]:
        """A page of namespaces ordered by name."""
        rows = await NamespaceService(conn).page(tenant_row, after=after, limit=limit)
        return [_namespace(r) for r in rows]

    @get("/{namespace:str}", summary="Get a namespace")
    async def get_namespace(self, namespace_row: CurrentNamespace) -> Namespace:
        """One namespace."""
        return _namespace(namespace_row)

    @patch("/{namespace:str}", summary="Replace a namespace's variables")
    async def update(
        self,
        data: JSONBody[NamespaceUpdate],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> NamespaceChanged:
        """Replace the plain variables every plugin of the namespace sees in `env`.

        A plugin's own variable of the same name wins. Deploys the namespace without new versions.
        """
        row, deployment = await NamespaceService(conn).set_vars(
            tenant_row, namespace_row, data.vars, actor=principal.actor, publisher=publisher
        )
        return NamespaceChanged(namespace=_namespace(row), deployment=deployment)

    @put("/{namespace:str}/egress", summary="Replace a namespace's egress policy")
    async def set_egress(
        self,
        data: JSONBody[EgressPolicy],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> NamespaceChanged:
        """Set where the namespace's plugins may send requests.

        `{"allow": []}` denies everything (the default); hosts are exact or `*.suffix`, with an
        optional `:port`; `methods` (null: any) restricts the HTTP methods. Deploys the namespace;
        running isolates apply the new policy on their next outbound request.
        """
        row, deployment = await NamespaceService(conn).set_egress(
            tenant_row, namespace_row, data, actor=principal.actor, publisher=publisher
        )
        return NamespaceChanged(namespace=_namespace(row), deployment=deployment)
