"""Portal pages: a namespace with its plugins, routes (and the live route checker), egress, vars, secrets."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from plugyard.deps import DbConn, Gateways
from plugyard.errors import DomainError
from plugyard.namespaces.service import NamespaceService
from plugyard.plugins.schemas import PluginCreate
from plugyard.plugins.service import PluginService
from plugyard.portal import egress_form, forms, route_check
from plugyard.portal.web import Caller, Editor, Viewer, redirect, render
from plugyard.routes import patterns
from plugyard.routes.schemas import RouteCreate
from plugyard.routes.service import RouteService
from plugyard.vault.service import SecretService

PAGE = 200


class NamespacePages(Controller):
    """One namespace: everything that decides what its hosts serve."""

    path = "/t/{tenant:str}/ns/{namespace:str}"
    include_in_schema = False

    async def _page(
        self,
        me: Caller,
        namespace: str,
        conn: DbConn,
        publisher: Gateways,
        *,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
        status: int = 200,
        check_url: str = "",
        flash: str | None = None,
    ) -> Response[str]:
        tenant = me.tenant
        ns = await NamespaceService(conn).get(tenant, namespace)
        plugins = await PluginService(conn, publisher).page(tenant, ns, after="", limit=PAGE)
        routes = await RouteService(conn, publisher).in_namespace(tenant, ns)
        secrets = await SecretService(conn, publisher).list(tenant, ns, None)
        check = None
        if check_url:
            try:
                check = route_check.which(check_url, [(r.pattern, r.plugin) for r in routes])
            except ValueError as exc:
                errors = {**(errors or {}), "url": str(exc)}
        return render(
            "namespace.html",
            status=status,
            me=me,
            nav="dashboard",
            ns=ns,
            plugins=plugins,
            routes=routes,
            secrets=secrets,
            vars_text="\n".join(f"{k}={v}" for k, v in sorted(ns.vars.items())),
            egress_text=egress_form.hosts_text(ns.egress),
            egress_methods=egress_form.METHODS,
            errors=errors or {},
            values=values or {},
            check=check,
            check_url=check_url,
            flash=flash,
        )

    @get("/")
    async def namespace(
        self,
        namespace: FromPath[str],
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
        url: Annotated[str, QueryParameter(max_length=2000)] = "",
    ) -> Response[str]:
        """The namespace page (with `?url=` it also says which plugin serves that URL)."""
        return await self._page(viewer, namespace, conn, publisher, check_url=url)

    @get("/routes/check")
    async def check(
        self,
        namespace: FromPath[str],
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
        url: Annotated[str, QueryParameter(max_length=2000)] = "",
        pattern: Annotated[str, QueryParameter(max_length=400)] = "",
    ) -> Response[str]:
        """The live checker's fragment: is a pattern valid, which plugin serves a URL."""
        ns = await NamespaceService(conn).get(viewer.tenant, namespace)
        routes = await RouteService(conn, publisher).in_namespace(viewer.tenant, ns)
        context: dict[str, Any] = {
            "pattern": pattern,
            "pattern_error": None,
            "parsed": None,
            "check": None,
            "url_error": None,
        }
        if pattern:
            try:
                context["parsed"] = patterns.parse(pattern)
            except patterns.PatternError as exc:
                context["pattern_error"] = str(exc)
        if url:
            try:
                context["check"] = route_check.which(url, [(r.pattern, r.plugin) for r in routes])
            except ValueError as exc:
                context["url_error"] = str(exc)
        return render("fragments/route_check.html", **context)

    @post("/plugins")
    async def create_plugin(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Create a plugin, then go to its page to upload code."""
        form = await request.form()
        name = str(form.get("plugin_name", ""))
        try:
            ns = await NamespaceService(conn).get(editor.tenant, namespace)
            data = PluginCreate(name=forms.slug(name, "plugin_name", "plugin"))
            await PluginService(conn, publisher).create(editor.tenant, ns, data)
        except DomainError as exc:
            if exc.status == 404:
                raise
            return await self._page(
                editor,
                namespace,
                conn,
                publisher,
                errors={"plugin_name": exc.detail},
                values={"plugin_name": name},
                status=exc.status,
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}/p/{data.name}")

    @post("/routes")
    async def create_route(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Add a route (deploys)."""
        form = await request.form()
        values = {"pattern": str(form.get("pattern", "")).strip(), "plugin": str(form.get("plugin", ""))}
        try:
            ns = await NamespaceService(conn).get(editor.tenant, namespace)
            data = forms.convert(values, RouteCreate)
            await RouteService(conn, publisher).create(editor.tenant, ns, data, actor=editor.actor)
        except DomainError as exc:
            if exc.status == 404 and exc.slug != "plugin-not-found":
                raise
            field = "plugin" if exc.slug == "plugin-not-found" else "pattern"
            return await self._page(
                editor,
                namespace,
                conn,
                publisher,
                errors={field: exc.detail},
                values=values,
                status=exc.status,
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}#routes")

    @post("/routes/{route_id:uuid}/delete")
    async def delete_route(
        self,
        namespace: FromPath[str],
        route_id: FromPath[UUID],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Remove a route (deploys)."""
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        await RouteService(conn, publisher).delete(editor.tenant, ns, route_id, actor=editor.actor)
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}#routes")

    @post("/egress")
    async def set_egress(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Replace the egress allowlist (deploys; running isolates follow at once)."""
        form = await request.form()
        text = str(form.get("allow", ""))
        methods = [str(m) for m in form.getall("methods")] if "methods" in form else []
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        try:
            policy = egress_form.policy(text, methods)
            await NamespaceService(conn).set_egress(
                editor.tenant, ns, policy, actor=editor.actor, publisher=publisher
            )
        except DomainError as exc:
            field = "methods" if forms.errors_of(exc).get("methods") else "allow"
            return await self._page(
                editor,
                namespace,
                conn,
                publisher,
                errors={field: exc.detail},
                values={"allow": text, "methods": ",".join(methods)},
                status=exc.status,
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}#egress")

    @post("/vars")
    async def set_vars(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Replace the namespace's variables (deploys)."""
        text = str((await request.form()).get("vars", ""))
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        try:
            pairs = forms.pairs(text, "vars")
            await NamespaceService(conn).set_vars(
                editor.tenant, ns, pairs, actor=editor.actor, publisher=publisher
            )
        except DomainError as exc:
            return await self._page(
                editor,
                namespace,
                conn,
                publisher,
                errors={"vars": exc.detail},
                values={"vars": text},
                status=exc.status,
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}#vars")

    @post("/secrets")
    async def set_secret(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Store a secret (write-only; deploys)."""
        form = await request.form()
        name = str(form.get("secret_name", "")).strip()
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        try:
            await SecretService(conn, publisher).set(
                editor.tenant, ns, None, name, str(form.get("secret_value", "")), actor=editor.actor
            )
        except DomainError as exc:
            field = "secret_name" if exc.status == 422 else "secret_value"
            return await self._page(
                editor,
                namespace,
                conn,
                publisher,
                errors={field: exc.detail},
                values={"secret_name": name},
                status=exc.status,
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}#secrets")

    @post("/secrets/{name:str}/delete")
    async def delete_secret(
        self, namespace: FromPath[str], name: FromPath[str], editor: Editor, conn: DbConn, publisher: Gateways
    ) -> Response[Any]:
        """Remove a secret (deploys)."""
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        await SecretService(conn, publisher).delete(editor.tenant, ns, None, name, actor=editor.actor)
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}#secrets")
