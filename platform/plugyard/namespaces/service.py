"""Namespaces."""

from __future__ import annotations

import asyncpg
import msgspec
import structlog

from plugyard.deployments.schemas import Deployment
from plugyard.deployments.service import DeploymentService, Publisher
from plugyard.errors import NotFound
from plugyard.namespaces.repository import NamespaceRepository
from plugyard.namespaces.schemas import EgressPolicy, NamespaceRow
from plugyard.tenants.schemas import TenantRow

log = structlog.get_logger(__name__)


def found_namespace(namespace: NamespaceRow | None, name: str) -> NamespaceRow:
    """The namespace, or the 404 for a name that is not in the tenant.

    Raises:
        NotFound: `namespace` is None.
    """
    if namespace is None:
        raise NotFound(f"namespace {name!r} not found", slug="namespace-not-found")
    return namespace


class NamespaceService:
    """Creates and finds a tenant's namespaces."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind to a connection."""
        self._conn = conn
        self._repo = NamespaceRepository(conn)

    async def create(
        self,
        tenant: TenantRow,
        name: str,
        vars_: dict[str, str] | None = None,
        egress: EgressPolicy | None = None,
    ) -> NamespaceRow:
        """Create a namespace (egress: deny all unless a policy is given)."""
        policy = None if egress is None else msgspec.to_builtins(egress)
        namespace = await self._repo.insert(tenant.id, name, vars_, policy)
        log.info("namespace_created", tenant=tenant.slug, namespace=name)
        return namespace

    async def get(self, tenant: TenantRow, name: str) -> NamespaceRow:
        """A namespace of this tenant.

        Raises:
            NotFound: no such namespace in this tenant.
        """
        return found_namespace(await self._repo.get(tenant.id, name), name)

    async def page(self, tenant: TenantRow, *, after: str, limit: int) -> list[NamespaceRow]:
        """A page of the tenant's namespaces."""
        return await self._repo.page(tenant.id, after=after, limit=limit)

    async def set_vars(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        vars_: dict[str, str],
        *,
        actor: str,
        publisher: Publisher,
    ) -> tuple[NamespaceRow, Deployment]:
        """Replace the variables every plugin of the namespace sees; deploys without new versions."""
        deployments = DeploymentService(self._conn, publisher)
        async with self._conn.transaction():
            await self._repo.set_vars(tenant.id, namespace.id, vars_)
            deployment = await deployments.record(tenant, namespace, reason="namespace vars", actor=actor)
        log.info("namespace_vars_set", tenant=tenant.slug, namespace=namespace.name, names=sorted(vars_))
        return await self.get(tenant, namespace.name), await deployments.push(deployment)

    async def set_egress(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        egress: EgressPolicy,
        *,
        actor: str,
        publisher: Publisher,
    ) -> tuple[NamespaceRow, Deployment]:
        """Replace the namespace's egress policy; deploys it (live in running isolates at once)."""
        deployments = DeploymentService(self._conn, publisher)
        policy = msgspec.to_builtins(egress)
        async with self._conn.transaction():
            await self._repo.set_egress(tenant.id, namespace.id, policy)
            deployment = await deployments.record(tenant, namespace, reason="namespace egress", actor=actor)
        log.info(
            "namespace_egress_set",
            tenant=tenant.slug,
            namespace=namespace.name,
            hosts=len(egress.allow),
            methods=egress.methods,
        )
        return await self.get(tenant, namespace.name), await deployments.push(deployment)
