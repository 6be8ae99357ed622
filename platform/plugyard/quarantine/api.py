"""HTTP API: quarantine reports from gateway supervisors, and the tenant's view and release."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from plugyard import signing
from plugyard.deps import CurrentNamespace, CurrentPrincipal, CurrentTenant, DbConn, Gateways, PageLimit
from plugyard.errors import DomainError, InvalidInput
from plugyard.quarantine.schemas import PluginStatus, Quarantine, QuarantineReport, ReportResult
from plugyard.quarantine.service import QuarantineService

REPORT_PATH = "/v1/gateway/quarantines"


class Unauthenticated(DomainError):
    """A report that is not signed with the gateway secret."""

    status = 401
    slug = "unsigned"
    title = "Unauthenticated"


class GatewayQuarantineController(Controller):
    """Where a gateway supervisor reports a version that hung a process (HMAC-signed)."""

    path = REPORT_PATH
    tags = ["quarantine"]
    security = [{}]

    @post("/", summary="Report a version that hung a gateway process", status_code=200)
    async def report(
        self, request: Request[object, object, State], conn: DbConn, publisher: Gateways
    ) -> ReportResult:
        """Quarantine the version and deploy its namespace (idempotent)."""
        body = await request.body()
        secret = request.app.state.settings.gateway.secret
        failure = signing.verify(secret, dict(request.headers), method="POST", path=REPORT_PATH, body=body)
        if not secret or failure is not None:
            raise Unauthenticated(
                "the report is not signed with the gateway secret", slug=failure or "unsigned"
            )
        try:
            data = msgspec.json.decode(body, type=QuarantineReport)
        except msgspec.ValidationError as exc:
            raise InvalidInput(str(exc), field="body", slug="invalid-report") from None
        return await QuarantineService(conn, publisher).report(data)


class QuarantineController(Controller):
    """A tenant's quarantined versions."""

    path = "/v1/tenants/{tenant:str}"
    tags = ["quarantine"]

    @get("/quarantines", summary="List quarantined versions")
    async def list_quarantines(
        self,
        tenant_row: CurrentTenant,
        conn: DbConn,
        publisher: Gateways,
        limit: PageLimit = 50,
        released: Annotated[bool, QueryParameter(description="include released ones")] = False,
    ) -> list[Quarantine]:
        """Versions a gateway found hanging a process, newest first; not routed until released."""
        return await QuarantineService(conn, publisher).page(
            tenant_row, include_released=released, limit=limit
        )

    @get("/namespaces/{namespace:str}/plugins/{plugin:str}/status", summary="Is the active version served")
    async def plugin_status(
        self,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        plugin: FromPath[str],
        conn: DbConn,
        publisher: Gateways,
    ) -> PluginStatus:
        """`serving`, `quarantined` (with the reason) or `no-active-version`."""
        return await QuarantineService(conn, publisher).status(tenant_row, namespace_row, plugin)

    @post(
        "/namespaces/{namespace:str}/plugins/{plugin:str}/versions/{number:int}/release",
        summary="Release a quarantined version",
        status_code=200,
    )
    async def release(
        self,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        plugin: FromPath[str],
        number: FromPath[int],
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> PluginStatus:
        """Route the version again (deploys the namespace).

        Activating a new version also stops serving the quarantined one; the quarantine itself
        stays until released (a rollback to the version is still answered 503).
        """
        service = QuarantineService(conn, publisher)
        await service.release(tenant_row, namespace_row, plugin, number, actor=principal.actor)
        return await service.status(tenant_row, namespace_row, plugin)
