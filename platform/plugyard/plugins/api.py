"""HTTP API: plugins, versions and the active version."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody

from plugyard.deployments.schemas import Deployment
from plugyard.deps import (
    LAST,
    AfterName,
    BeforeNumber,
    CurrentNamespace,
    CurrentPlugin,
    CurrentPrincipal,
    CurrentTenant,
    DbConn,
    Gateways,
    PageLimit,
)
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins.schemas import (
    ActiveVersionSet,
    Plugin,
    PluginChanged,
    PluginCreate,
    PluginRow,
    PluginUpdate,
    Provenance,
    Version,
    VersionCreate,
    VersionPublished,
    VersionRow,
)
from plugyard.plugins.service import PluginService
from plugyard.plugins.upload_limits import MAX_UPLOAD_BODY, bundle_size_guard

_PLUGIN = "/{plugin:str}"


def _plugin(row: PluginRow, namespace: NamespaceRow) -> Plugin:
    return Plugin(
        id=row.id,
        name=row.name,
        namespace=namespace.name,
        vars=row.vars,
        active_version=row.active_version,
        active_version_hash=row.active_version_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version(row: VersionRow) -> Version:
    return Version(
        number=row.number,
        hash=row.hash,
        main_module=row.main_module,
        modules=row.module_names,
        compatibility_date=row.compatibility_date,
        compatibility_flags=row.compatibility_flags,
        size_bytes=row.size_bytes,
        created_at=row.created_at,
        provenance=None if row.provenance is None else msgspec.convert(row.provenance, Provenance),
        limits=row.limits,
    )


class PluginController(Controller):
    """Plugins of a namespace and their versions."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/plugins"
    tags = ["plugins"]

    @post("/", summary="Create a plugin")
    async def create(
        self,
        data: JSONBody[PluginCreate],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> Plugin:
        """Create a plugin; it serves once a version is active and a route points at it."""
        row = await PluginService(conn, publisher).create(tenant_row, namespace_row, data)
        return _plugin(row, namespace_row)

    @get("/", summary="List plugins")
    async def list_plugins(
        self,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
        limit: PageLimit = 50,
        after: AfterName = "",
    ) -> list[Plugin]:
        """A page of plugins ordered by name."""
        rows = await PluginService(conn, publisher).page(tenant_row, namespace_row, after=after, limit=limit)
        return [_plugin(r, namespace_row) for r in rows]

    @get(_PLUGIN, summary="Get a plugin")
    async def get_plugin(
        self,
        plugin_row: CurrentPlugin,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> Plugin:
        """One plugin with its active version."""
        return _plugin(plugin_row, namespace_row)

    @patch(_PLUGIN, summary="Replace a plugin's variables")
    async def update(
        self,
        plugin_row: CurrentPlugin,
        data: JSONBody[PluginUpdate],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> PluginChanged:
        """Replace the plain variables the plugin sees in `env`; deploys without a new version."""
        service = PluginService(conn, publisher)
        row = plugin_row
        row, deployment = await service.set_vars(
            tenant_row, namespace_row, row, data.vars, actor=principal.actor
        )
        return PluginChanged(plugin=_plugin(row, namespace_row), deployment=deployment)

    @delete(_PLUGIN, summary="Delete a plugin", status_code=200)
    async def delete_plugin(
        self,
        plugin_row: CurrentPlugin,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> Deployment:
        """Delete a plugin with its versions and routes; answers with the deployment that removed it."""
        service = PluginService(conn, publisher)
        row = plugin_row
        return await service.delete(tenant_row, namespace_row, row, actor=principal.actor)

    @post(
        _PLUGIN + "/versions",
        summary="Upload a version",
        status_code=201,
        guards=[bundle_size_guard],
        request_max_body_size=MAX_UPLOAD_BODY,
    )
    async def publish(
        self,
        plugin_row: CurrentPlugin,
        data: JSONBody[VersionCreate],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[VersionPublished]:
        """Store a version (201; 200 when the same bundle exists already) and activate it if asked."""
        service = PluginService(conn, publisher)
        row = plugin_row
        published = await service.publish(tenant_row, namespace_row, row, data, actor=principal.actor)
        body = VersionPublished(
            version=_version(published.version), created=published.created, deployment=published.deployment
        )
        return Response(body, status_code=201 if published.created else 200)

    @get(_PLUGIN + "/versions", summary="List versions")
    async def list_versions(
        self,
        plugin_row: CurrentPlugin,
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
        limit: PageLimit = 50,
        before: BeforeNumber = LAST,
    ) -> list[Version]:
        """A page of versions, newest first."""
        service = PluginService(conn, publisher)
        row = plugin_row
        return [_version(v) for v in await service.versions(tenant_row, row, before=before, limit=limit)]

    @get(_PLUGIN + "/versions/{number:int}", summary="Get a version")
    async def get_version(
        self,
        plugin_row: CurrentPlugin,
        number: FromPath[int],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        publisher: Gateways,
    ) -> Version:
        """One version's metadata."""
        service = PluginService(conn, publisher)
        row = plugin_row
        return _version(await service.version(tenant_row, row, number))

    @put(_PLUGIN + "/active-version", summary="Activate a version (publish or roll back)")
    async def activate(
        self,
        plugin_row: CurrentPlugin,
        data: JSONBody[ActiveVersionSet],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
    ) -> PluginChanged:
        """Serve the given version from now on; any earlier version works (rollback)."""
        service = PluginService(conn, publisher)
        row = plugin_row
        row, deployment = await service.activate(
            tenant_row, namespace_row, row, data.version, actor=principal.actor
        )
        return PluginChanged(plugin=_plugin(row, namespace_row), deployment=deployment)
