"""HTTP API: `GET /v1/gateways`, the configured gateways' health for operators (admin only)."""

from __future__ import annotations

from datetime import datetime

from litestar import Controller, Request, get
from litestar.datastructures import State

from plugyard.deps import CurrentPrincipal, DbConn, Gateways
from plugyard.gateway.schemas import GatewaysReport
from plugyard.gateway.service import GatewayStatusService


class GatewayController(Controller):
    """Gateway reachability, what each holds, and the reconciler's last pass."""

    path = "/v1/gateways"
    tags = ["gateways"]

    @get("/", summary="Gateway health (admin)")
    async def gateways(
        self,
        request: Request[object, object, State],
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> GatewaysReport:
        """Asks every configured gateway for its signed health now (2 s timeout each).

        `reachable` false means the gateway did not answer (or refused our signature: see
        `error`); `namespaces_behind` counts namespaces whose latest revision it lacks, which the
        reconciler re-pushes. `reconciler.last_pass` is set on the replica that leads.
        """
        state = request.app.state
        last_seen: dict[str, datetime] = state.setdefault("gateway_last_seen", {})
        service = GatewayStatusService(conn, publisher, last_seen)
        return await service.report(principal, state.get("reconciler"))
