"""HTTP API: a namespace's deployment history and push status."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath

from plugyard.deployments.schemas import Deployment
from plugyard.deployments.service import DeploymentService
from plugyard.deps import (
    LAST,
    BeforeNumber,
    CurrentNamespace,
    CurrentTenant,
    DbConn,
    Gateways,
    PageLimit,
)


class DeploymentController(Controller):
    """Deployments (revisions) of a namespace, each with its push records."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/deployments"
    tags = ["deployments"]

    @get("/", summary="List deployments")
    async def list_deployments(
        self,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
        limit: PageLimit = 50,
        before: BeforeNumber = LAST,
    ) -> list[Deployment]:
        """A page of deployments, newest first, with each gateway's push status."""
        return await DeploymentService(conn, publisher).page(
            tenant_row, namespace_row, before=before, limit=limit
        )

    @get("/{revision:int}", summary="Get a deployment")
    async def get_deployment(
        self,
        revision: FromPath[int],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> Deployment:
        """One revision with its state and push records."""
        return await DeploymentService(conn, publisher).get(tenant_row, namespace_row, revision)
