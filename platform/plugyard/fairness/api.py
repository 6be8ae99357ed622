"""HTTP API: a tenant's live versions against its cap."""

from __future__ import annotations

from litestar import Controller, get

from plugyard.deps import CurrentTenant, DbConn, Gateways
from plugyard.fairness.repository import LiveVersionRepository
from plugyard.fairness.schemas import LiveVersions


class LiveVersionController(Controller):
    """`GET /v1/tenants/{tenant}/live-versions`."""

    path = "/v1/tenants/{tenant:str}/live-versions"
    tags = ["fairness"]

    @get("/", summary="Live versions and the tenant's cap")
    async def live_versions(
        self, tenant_row: CurrentTenant, conn: DbConn, publisher: Gateways
    ) -> LiveVersions:
        """Active versions and running experiments' variants (what gateways may load), and the cap.

        A change that would take the tenant past `limit` answers `409 live-version-cap`.
        """
        versions = await LiveVersionRepository(conn).list(tenant_row.id)
        return LiveVersions(live=len(versions), limit=publisher.max_live_versions, versions=versions)
