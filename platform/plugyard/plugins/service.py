"""Plugins, versions and activation. Changes that affect serving produce a deployment."""

from __future__ import annotations

import asyncpg
import msgspec
import structlog

from plugyard.deployments.schemas import Deployment
from plugyard.deployments.service import DeploymentService, Publisher
from plugyard.errors import NotFound
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins import bundles, diff, previews, validation
from plugyard.plugins.repository import PluginRepository
from plugyard.plugins.schemas import (
    PluginCreate,
    PluginRow,
    Preview,
    Provenance,
    VersionCode,
    VersionCreate,
    VersionDiff,
    VersionRow,
)
from plugyard.tenants.schemas import TenantRow

log = structlog.get_logger(__name__)


class Published(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of an upload: the version, whether it is new, and the deployment if activated."""

    version: VersionRow
    created: bool
    deployment: Deployment | None


def found_plugin(plugin: PluginRow | None, name: str) -> PluginRow:
    """The plugin, or the 404 for a name that is not in the namespace.

    Raises:
        NotFound: `plugin` is None.
    """
    if plugin is None:
        raise NotFound(f"plugin {name!r} not found", slug="plugin-not-found")
    return plugin


class PluginService:
    """Plugins of a namespace."""

    def __init__(self, conn: asyncpg.Connection, publisher: Publisher) -> None:
        """Bind to a connection and a publisher."""
        self._conn = conn
        self._publisher = publisher
        self._repo = PluginRepository(conn)
        self._deployments = DeploymentService(conn, publisher)

    async def create(self, tenant: TenantRow, namespace: NamespaceRow, data: PluginCreate) -> PluginRow:
        """Create a plugin (it serves nothing until a version is active and a route points at it)."""
        plugin_id = await self._repo.insert(tenant.id, namespace.id, data.name, data.vars)
        log.info("plugin_created", tenant=tenant.slug, namespace=namespace.name, plugin=data.name)
        plugin = await self._repo.get(tenant.id, namespace.id, data.name)
        assert plugin is not None
        assert plugin.id == plugin_id
        return plugin

    async def get(self, tenant: TenantRow, namespace: NamespaceRow, name: str) -> PluginRow:
        """A plugin of the namespace.

        Raises:
            NotFound: no such plugin.
        """
        return found_plugin(await self._repo.get(tenant.id, namespace.id, name), name)

    async def page(
        self, tenant: TenantRow, namespace: NamespaceRow, *, after: str, limit: int
    ) -> list[PluginRow]:
        """A page of the namespace's plugins."""
        return await self._repo.page(tenant.id, namespace.id, after=after, limit=limit)

    async def set_vars(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        plugin: PluginRow,
        vars_: dict[str, str],
        *,
        actor: str,
    ) -> tuple[PluginRow, Deployment]:
        """Replace a plugin's variables; deploys without a new version."""
        async with self._conn.transaction():
            await self._repo.set_vars(tenant.id, plugin.id, vars_)
            deployment = await self._deployments.record(
                tenant, namespace, reason=f"vars of {plugin.name}", actor=actor
            )
        return await self.get(tenant, namespace, plugin.name), await self._deployments.push(deployment)

    async def delete(
        self, tenant: TenantRow, namespace: NamespaceRow, plugin: PluginRow, *, actor: str
    ) -> Deployment:
        """Delete a plugin, its versions and its routes; deploys the namespace without it."""
        async with self._conn.transaction():
            await self._repo.delete(tenant.id, plugin.id)
            deployment = await self._deployments.record(
                tenant, namespace, reason=f"deleted {plugin.name}", actor=actor
            )
        log.info("plugin_deleted", tenant=tenant.slug, namespace=namespace.name, plugin=plugin.name)
        return await self._deployments.push(deployment)

    async def publish(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        plugin: PluginRow,
        data: VersionCreate,
        *,
        actor: str,
        provenance: Provenance | None = None,
    ) -> Published:
        """Store a version (idempotent by content hash) and optionally make it active.

        `provenance` (a version rendered from a template) is stored with a new version only.
        A new bundle is first loaded by a gateway (plugins.validation); nothing is stored if the
        runtime rejects it (422) or no gateway can check it (503).
        """
        bundle = bundles.check(data, max_bytes=self._publisher.max_bundle_bytes)
        # A hash this tenant already had accepted is the same code: no second load (and no query).
        if (tenant.id, bundle.hash) not in validation.VALIDATED:
            if await self._repo.version_by_hash(tenant.id, plugin.id, bundle.hash) is None:
                # Outside the transaction: no row lock is held while a gateway loads the bundle.
                await validation.validate(self._publisher, bundle, [m.name for m in data.modules])
            validation.VALIDATED.add(tenant.id, bundle.hash)
        async with self._conn.transaction():
            await self._repo.lock(tenant.id, plugin.id)
            version = await self._repo.version_by_hash(tenant.id, plugin.id, bundle.hash)
            created = version is None
            if version is None:
                version = await self._repo.insert_version(
                    tenant.id,
                    plugin.id,
                    **msgspec.structs.asdict(bundle),
                    provenance=None if provenance is None else msgspec.to_builtins(provenance),
                )
            deployment = None
            if data.activate and plugin.active_version_id != version.id:
                await self._repo.set_active(tenant.id, plugin.id, version.id)
                deployment = await self._deployments.record(
                    tenant, namespace, reason=f"activated {plugin.name} v{version.number}", actor=actor
                )
        if created:
            log.info(
                "plugin_version_created",
                tenant=tenant.slug,
                namespace=namespace.name,
                plugin=plugin.name,
                version=version.number,
                hash=version.hash,
            )
        pushed = None if deployment is None else await self._deployments.push(deployment)
        return Published(version=version, created=created, deployment=pushed)

    async def activate(
        self, tenant: TenantRow, namespace: NamespaceRow, plugin: PluginRow, number: int, *, actor: str
    ) -> tuple[PluginRow, Deployment]:
        """Make an existing version active (a publish or a rollback); always deploys."""
        version = await self.version(tenant, plugin, number)
        async with self._conn.transaction():
            await self._repo.lock(tenant.id, plugin.id)
            await self._repo.set_active(tenant.id, plugin.id, version.id)
            deployment = await self._deployments.record(
                tenant, namespace, reason=f"activated {plugin.name} v{version.number}", actor=actor
            )
        log.info("plugin_version_activated", tenant=tenant.slug, plugin=plugin.name, version=number)
        return await self.get(tenant, namespace, plugin.name), await self._deployments.push(deployment)

    async def version(self, tenant: TenantRow, plugin: PluginRow, number: int) -> VersionRow:
        """One version by number.

        Raises:
            NotFound: no such version.
        """
        version = await self._repo.version_by_number(tenant.id, plugin.id, number)
        if version is None:
            raise NotFound(f"version {number} of plugin {plugin.name!r} not found", slug="version-not-found")
        return version

    async def versions(
        self, tenant: TenantRow, plugin: PluginRow, *, before: int, limit: int
    ) -> list[VersionRow]:
        """A page of versions, newest first."""
        return await self._repo.list_versions(tenant.id, plugin.id, before=before, limit=limit)

    async def _code(self, tenant: TenantRow, plugin: PluginRow, number: int) -> VersionCode:
        code = await self._repo.version_code(tenant.id, plugin.id, number)
        if code is None:
            raise NotFound(f"version {number} of plugin {plugin.name!r} not found", slug="version-not-found")
        return code

    async def diff(self, tenant: TenantRow, plugin: PluginRow, old: int, new: int) -> VersionDiff:
        """Compare two versions module by module (unified diffs for text modules).

        Raises:
            NotFound: either version does not exist.
        """
        before, after = await self._code(tenant, plugin, old), await self._code(tenant, plugin, new)

        def settings(code: VersionCode) -> dict[str, object]:
            return {
                "main_module": code.main_module,
                "compatibility_date": code.compatibility_date,
                "compatibility_flags": code.compatibility_flags,
                "limits": code.limits,
            }

        return VersionDiff(
            from_version=old,
            to_version=new,
            settings=diff.settings(settings(before), settings(after)),
            modules=diff.modules(before.modules, after.modules),
        )

    async def preview(
        self, tenant: TenantRow, namespace: NamespaceRow, plugin: PluginRow, number: int
    ) -> Preview:
        """A preview URL of any stored version (see plugins.previews).

        Raises:
            NotFound: no such version.
            Unavailable: the gateways could not register it.
        """
        code = await self._code(tenant, plugin, number)
        return await previews.issue(self._conn, self._publisher, tenant, namespace, plugin, number, code)
