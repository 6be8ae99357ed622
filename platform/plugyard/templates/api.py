"""HTTP API: the template catalog and versions created from a template."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from plugyard.deps import CurrentNamespace, CurrentPrincipal, CurrentTenant, DbConn, Gateways
from plugyard.plugins.api import _version
from plugyard.plugins.schemas import VersionPublished
from plugyard.templates.catalog import Catalog, Template
from plugyard.templates.schemas import TemplateInfo, TemplateInstantiate
from plugyard.templates.service import TemplateService

TemplateCatalog = NamedDependency[Catalog]


def catalog_dependency(catalog: Catalog) -> Provide:
    """The `template_catalog` dependency: the catalog loaded when the app was built."""

    def provide_template_catalog() -> Catalog:
        return catalog

    return Provide(provide_template_catalog, sync_to_thread=False)


def _info(template: Template) -> TemplateInfo:
    manifest = template.manifest
    return TemplateInfo(
        name=template.name,
        title=manifest.title,
        description=manifest.description,
        hash=template.hash,
        parameters=manifest.parameters,
        example=manifest.example,
    )


class TemplateController(Controller):
    """The catalog of plugin templates (any authenticated caller may read it)."""

    path = "/v1/templates"
    tags = ["templates"]

    @get("/", summary="List templates")
    async def list_templates(
        self, principal: CurrentPrincipal, template_catalog: TemplateCatalog
    ) -> list[TemplateInfo]:
        """Every template with its parameter schema and example parameters, ordered by name."""
        return [_info(t) for t in template_catalog.all()]

    @get("/{name:str}", summary="Get a template")
    async def get_template(
        self, name: FromPath[str], principal: CurrentPrincipal, template_catalog: TemplateCatalog
    ) -> TemplateInfo:
        """One template with its parameter schema."""
        return _info(template_catalog.get(name))


class TemplateVersionController(Controller):
    """Versions of a plugin rendered from a template."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/plugins/{plugin:str}/versions/from-template"
    tags = ["plugins", "templates"]

    @post("/", summary="Create a version from a template", status_code=201)
    async def publish(
        self,
        plugin: FromPath[str],
        data: JSONBody[TemplateInstantiate],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        principal: CurrentPrincipal,
        conn: DbConn,
        publisher: Gateways,
        template_catalog: TemplateCatalog,
    ) -> Response[VersionPublished]:
        """Render a template with checked parameters and store it as a version, like an upload.

        201 when the rendered bundle is new, 200 when the same bundle exists already; the
        version records the template name, its hash and the parameters (defaults applied).
        """
        service = TemplateService(conn, publisher, template_catalog)
        published = await service.publish(tenant_row, namespace_row, plugin, data, actor=principal.actor)
        body = VersionPublished(
            version=_version(published.version), created=published.created, deployment=published.deployment
        )
        return Response(body, status_code=201 if published.created else 200)
