"""Versions from templates: render with checked parameters, then publish like any upload."""

from __future__ import annotations

import asyncpg
import structlog

from plugyard.deployments.service import Publisher
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.plugins.schemas import ModuleIn, Provenance, VersionCreate
from plugyard.plugins.service import PluginService, Published
from plugyard.templates.catalog import MODULE_NAME, Catalog
from plugyard.templates.schemas import TemplateInstantiate
from plugyard.tenants.schemas import TenantRow

log = structlog.get_logger(__name__)


class TemplateService:
    """Creates plugin versions from the catalog's templates."""

    def __init__(self, conn: asyncpg.Connection, publisher: Publisher, catalog: Catalog) -> None:
        """Bind to a connection, a publisher and the loaded catalog."""
        self._plugins = PluginService(conn, publisher)
        self._catalog = catalog

    async def publish(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        plugin_name: str,
        data: TemplateInstantiate,
        *,
        actor: str,
    ) -> Published:
        """Render the template with the parameters and store the result as a version.

        Content addressing, idempotency, activation, the deployment and the push are the
        normal upload's (`PluginService.publish`); the version also records its provenance.

        Raises:
            NotFound: no such plugin.
            InvalidInput: no such template (`template`) or a bad parameter (`parameters.<name>`).
        """
        plugin = await self._plugins.get(tenant, namespace, plugin_name)
        template = self._catalog.for_input(data.template)
        rendered = template.render(data.parameters)
        version = VersionCreate(
            modules=[ModuleIn(name=MODULE_NAME, content=rendered.source)], activate=data.activate
        )
        provenance = Provenance(
            template=template.name, template_hash=template.hash, parameters=rendered.parameters
        )
        published = await self._plugins.publish(
            tenant, namespace, plugin, version, actor=actor, provenance=provenance
        )
        log.info(
            "template_rendered",
            tenant=tenant.slug,
            namespace=namespace.name,
            plugin=plugin.name,
            template=template.name,
            template_hash=template.hash,
            version=published.version.number,
            created=published.created,
        )
        return published
