"""Portal pages: a plugin version from a template, through a form generated from its manifest."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from plugyard.deps import DbConn, Gateways
from plugyard.errors import DomainError
from plugyard.namespaces.service import NamespaceService
from plugyard.plugins.service import PluginService
from plugyard.portal import forms, template_form
from plugyard.portal.web import Caller, Editor, Templates, Viewer, redirect, render
from plugyard.templates.catalog import Template
from plugyard.templates.schemas import TemplateInstantiate
from plugyard.templates.service import TemplateService


def _errors(exc: DomainError) -> dict[str, str]:
    """Errors by parameter name (`parameters.<name>...` → `<name>`), the rest under `form`."""
    out: dict[str, str] = {}
    for field, message in forms.errors_of(exc).items():
        if field.startswith("parameters."):
            name = field.removeprefix("parameters.").split(".")[0].split("[")[0]
            detail = field.removeprefix(f"parameters.{name}")
            out[name] = f"{detail.lstrip('.')}: {message}" if detail else message
        else:
            out["form"] = message if exc.status == 422 and field != "form" else exc.detail
    return out


class TemplatePages(Controller):
    """The template form of one plugin."""

    path = "/t/{tenant:str}/ns/{namespace:str}/p/{plugin:str}/template"
    include_in_schema = False

    async def _form(
        self,
        me: Caller,
        namespace: str,
        plugin: str,
        template: Template,
        conn: DbConn,
        publisher: Gateways,
        *,
        given: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status: int = 200,
        activate: bool = False,
    ) -> Response[str]:
        ns = await NamespaceService(conn).get(me.tenant, namespace)
        row = await PluginService(conn, publisher).get(me.tenant, ns, plugin)
        return render(
            "template_form.html",
            status=status,
            me=me,
            nav="dashboard",
            ns=ns,
            plugin=row,
            template=template,
            fields=template_form.fields(template.manifest.parameters, given),
            errors=errors or {},
            activate=activate,
        )

    @get("/")
    async def form(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
        template_catalog: Templates,
        name: Annotated[str, QueryParameter(max_length=63)],
    ) -> Response[str]:
        """The form generated from the template's parameters, filled with the defaults."""
        return await self._form(viewer, namespace, plugin, template_catalog.get(name), conn, publisher)

    @post("/")
    async def publish(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        plugin: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
        template_catalog: Templates,
    ) -> Response[Any]:
        """Render the template with the form's values and store the result as a version."""
        form = await request.form()
        template = template_catalog.get(str(form.get("template", "")))
        given = {k: str(v) for k, v in form.items() if isinstance(v, str)}
        activate = bool(form.get("activate"))
        try:
            parameters = template_form.values(template.manifest.parameters, given)
            ns = await NamespaceService(conn).get(editor.tenant, namespace)
            published = await TemplateService(conn, publisher, template_catalog).publish(
                editor.tenant,
                ns,
                plugin,
                TemplateInstantiate(template=template.name, parameters=parameters, activate=activate),
                actor=editor.actor,
            )
        except DomainError as exc:
            if exc.status == 404:
                raise
            return await self._form(
                editor,
                namespace,
                plugin,
                template,
                conn,
                publisher,
                given=given,
                errors=_errors(exc),
                status=exc.status,
                activate=activate,
            )
        state = "new" if published.created else "same"
        return redirect(
            f"/t/{editor.tenant.slug}/ns/{namespace}/p/{plugin}/v/{published.version.number}?stored={state}"
        )
