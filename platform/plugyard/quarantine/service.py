"""Quarantines: recorded when a gateway reports a hanging version, lifted by a release."""

from __future__ import annotations

import asyncpg
import msgspec
import structlog

from plugyard.deployments.service import DeploymentService, Publisher
from plugyard.errors import NotFound
from plugyard.namespaces.repository import NamespaceRepository
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins.repository import PluginRepository
from plugyard.plugins.schemas import PluginRow
from plugyard.quarantine.repository import QuarantineRepository
from plugyard.quarantine.schemas import PluginStatus, Quarantine, QuarantineReport, ReportResult
from plugyard.tenants.repository import TenantRepository
from plugyard.tenants.schemas import TenantRow

log = structlog.get_logger(__name__)


class QuarantineService:
    """Records, lists and releases quarantines; each change deploys the namespace."""

    def __init__(self, conn: asyncpg.Connection, publisher: Publisher) -> None:
        """Bind to a connection and the publisher that pushes deployments."""
        self._conn = conn
        self._repo = QuarantineRepository(conn)
        self._publisher = publisher

    async def report(self, data: QuarantineReport) -> ReportResult:
        """Record a gateway's report and deploy the namespace so every gateway stops routing it.

        Idempotent: a version already quarantined answers `held` and deploys nothing.
        """
        ref = await self._repo.resolve(data.tenant, data.namespace, data.plugin, data.version)
        if ref is None:
            log.warning("quarantine_report_unmatched", tenant=data.tenant, plugin=data.plugin)
            return ReportResult(status="unknown-version")
        tenant = await TenantRepository(self._conn).get_by_slug(data.tenant)
        namespace = await NamespaceRepository(self._conn).get(ref.tenant_id, data.namespace)
        if tenant is None or namespace is None:  # deleted between the two queries
            return ReportResult(status="unknown-version")
        deployments = DeploymentService(self._conn, self._publisher)
        async with self._conn.transaction():
            if not await self._repo.insert(ref, data.reason, data.gateway):
                return ReportResult(status="held")
            deployment = await deployments.record(tenant, namespace, reason="quarantine", actor="gateway")
        log.warning(
            "version_quarantined",
            tenant=data.tenant,
            namespace=data.namespace,
            plugin=data.plugin,
            version=ref.number,
            gateway=data.gateway,
        )
        pushed = await deployments.push(deployment)
        return ReportResult(status="recorded", revision=pushed.revision)

    async def page(
        self, tenant: TenantRow, *, include_released: bool, limit: int, plugin: PluginRow | None = None
    ) -> list[Quarantine]:
        """The tenant's quarantines (of one plugin if given), newest first (open ones only unless asked)."""
        rows = await self._repo.page(
            tenant.id,
            include_released=include_released,
            limit=limit,
            plugin_id=None if plugin is None else plugin.id,
        )
        return [
            msgspec.convert(
                {**row, "status": "released" if row["released_at"] else "quarantined"}, Quarantine
            )
            for row in rows
        ]

    async def release(
        self, tenant: TenantRow, namespace: NamespaceRow, plugin: str, number: int, *, actor: str
    ) -> int:
        """Lift a version's quarantine and deploy; returns the deployment's revision.

        Raises:
            NotFound: no such plugin, or the version is not quarantined.
        """
        row = await PluginRepository(self._conn).get(tenant.id, namespace.id, plugin)
        if row is None:
            raise NotFound(f"plugin {plugin!r} not found", slug="plugin-not-found")
        deployments = DeploymentService(self._conn, self._publisher)
        async with self._conn.transaction():
            if not await self._repo.release(tenant.id, row.id, number, actor):
                raise NotFound(f"version {number} of {plugin!r} is not quarantined", slug="not-quarantined")
            deployment = await deployments.record(
                tenant, namespace, reason=f"release quarantine of {plugin} v{number}", actor=actor
            )
        log.info(
            "quarantine_released", tenant=tenant.slug, namespace=namespace.name, plugin=plugin, version=number
        )
        return (await deployments.push(deployment)).revision

    async def status(self, tenant: TenantRow, namespace: NamespaceRow, plugin: str) -> PluginStatus:
        """Whether the plugin's active version is served or quarantined.

        Raises:
            NotFound: no such plugin.
        """
        row = await PluginRepository(self._conn).get(tenant.id, namespace.id, plugin)
        if row is None:
            raise NotFound(f"plugin {plugin!r} not found", slug="plugin-not-found")
        if row.active_version_id is None:
            return PluginStatus(status="no-active-version", version=None)
        reason = await self._repo.open_reason(tenant.id, row.active_version_id)
        if reason is None:
            return PluginStatus(status="serving", version=row.active_version)
        return PluginStatus(status="quarantined", version=row.active_version, reason=reason)
