"""HTTP API: routes."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from plugyard.deployments.schemas import Deployment
from plugyard.deps import (
    CurrentNamespace,
    CurrentPrincipal,
    CurrentTenant,
    DbConn,
    Gateways,
    PageLimit,
)
from plugyard.routes.schemas import Route, RouteCreate, RouteCreated, RouteRow
from plugyard.routes.service import RouteService

AfterPattern = Annotated[str, QueryParameter(max_length=300, description="pattern to start after")]


def _route(row: RouteRow) -> Route:
    return Route(id=row.id, pattern=row.pattern, plugin=row.plugin, created_at=row.created_at)


class RouteController(Controller):
    """Routes of a namespace."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/routes"
    tags = ["routes"]

    @post("/", summary="Add a route")
    async def create(
        self,
        data: JSONBody[RouteCreate],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> RouteCreated:
        """Route requests matching the pattern to a plugin of this namespace; deploys."""
        row, deployment = await RouteService(conn, publisher).create(
            tenant_row, namespace_row, data, actor=principal.actor
        )
        return RouteCreated(route=_route(row), deployment=deployment)

    @get("/", summary="List routes")
    async def list_routes(
        self,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
        limit: PageLimit = 50,
        after: AfterPattern = "",
    ) -> list[Route]:
        """A page of the namespace's routes ordered by pattern."""
        rows = await RouteService(conn, publisher).page(tenant_row, namespace_row, after=after, limit=limit)
        return [_route(r) for r in rows]

    @delete("/{route_id:uuid}", summary="Remove a route", status_code=200)
    async def delete_route(
        self,
        route_id: FromPath[UUID],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> Deployment:
        """Remove a route; answers with the deployment that removed it."""
        return await RouteService(conn, publisher).delete(
            tenant_row, namespace_row, route_id, actor=principal.actor
        )
