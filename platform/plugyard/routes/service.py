"""Routes. A hostname belongs to one tenant: overlapping claims across tenants are refused."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import structlog

from plugyard.deployments.schemas import Deployment
from plugyard.deployments.service import DeploymentService, Publisher
from plugyard.errors import Conflict, InvalidInput, NotFound
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins.repository import PluginRepository
from plugyard.routes import patterns
from plugyard.routes.repository import RouteRepository
from plugyard.routes.schemas import RouteCreate, RouteRow
from plugyard.tenants.schemas import TenantRow

log = structlog.get_logger(__name__)


class RouteService:
    """Routes of a namespace."""

    def __init__(self, conn: asyncpg.Connection, publisher: Publisher) -> None:
        """Bind to a connection and a publisher."""
        self._conn = conn
        self._preview_domain = publisher.preview_domain
        self._repo = RouteRepository(conn)
        self._plugins = PluginRepository(conn)
        self._deployments = DeploymentService(conn, publisher)

    async def in_namespace(self, tenant: TenantRow, namespace: NamespaceRow) -> list[RouteRow]:
        """All routes of the namespace."""
        return await self._repo.in_namespace(tenant.id, namespace.id)

    async def page(
        self, tenant: TenantRow, namespace: NamespaceRow, *, after: str, limit: int
    ) -> list[RouteRow]:
        """A page of the namespace's routes ordered by pattern."""
        return await self._repo.page(tenant.id, namespace.id, after=after, limit=limit)

    async def create(
        self, tenant: TenantRow, namespace: NamespaceRow, data: RouteCreate, *, actor: str
    ) -> tuple[RouteRow, Deployment]:
        """Add a route and deploy.

        Raises:
            InvalidInput: a malformed pattern, or a host under the preview domain.
            NotFound: the plugin is not in this namespace.
            Conflict: the pattern exists, or another tenant routes an overlapping host.
        """
        try:
            parsed = patterns.parse(data.pattern)
        except patterns.PatternError as exc:
            raise InvalidInput(str(exc), field="pattern", slug="invalid-route-pattern") from None
        if patterns.under_domain(parsed, self._preview_domain):
            # The gateway answers every host below the preview domain as a preview, before routes.
            raise InvalidInput(
                f"host {parsed.host!r} is under the preview domain {self._preview_domain!r}: "
                "the gateway serves those hosts as previews, never through routes",
                field="pattern",
                slug="route-in-preview-domain",
                preview_domain=self._preview_domain,
            )
        plugin = await self._plugins.get(tenant.id, namespace.id, data.plugin)
        if plugin is None:
            raise NotFound(f"plugin {data.plugin!r} not found in this namespace", slug="plugin-not-found")
        async with self._conn.transaction():
            await self._repo.lock_host_claims()
            for other in await self._repo.claim_candidates(tenant.id, parsed):
                if patterns.hosts_overlap(parsed, other):
                    # Say that the host is taken without naming who holds it.
                    raise Conflict(
                        f"host {parsed.host!r} overlaps a host routed by another tenant",
                        slug="host-claimed",
                    )
            route_id = await self._repo.insert(tenant.id, namespace.id, plugin.id, parsed)
            deployment = await self._deployments.record(
                tenant, namespace, reason=f"route {parsed.pattern} -> {plugin.name}", actor=actor
            )
        log.info("route_created", tenant=tenant.slug, namespace=namespace.name, pattern=parsed.pattern)
        route = await self._repo.get(tenant.id, namespace.id, route_id)
        assert route is not None
        return route, await self._deployments.push(deployment)

    async def delete(
        self, tenant: TenantRow, namespace: NamespaceRow, route_id: UUID, *, actor: str
    ) -> Deployment:
        """Remove a route and deploy.

        Raises:
            NotFound: no such route in this namespace.
        """
        route = await self._repo.get(tenant.id, namespace.id, route_id)
        if route is None:
            raise NotFound(f"route {route_id} not found", slug="route-not-found")
        async with self._conn.transaction():
            await self._repo.delete(tenant.id, namespace.id, route_id)
            deployment = await self._deployments.record(
                tenant, namespace, reason=f"removed route {route.pattern}", actor=actor
            )
        log.info("route_deleted", tenant=tenant.slug, namespace=namespace.name, pattern=route.pattern)
        return await self._deployments.push(deployment)
