"""Portal pages: a plugin's quarantined versions (banner, release) and its own secrets (write-only)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath

from plugyard.deps import DbConn, Gateways
from plugyard.errors import DomainError, NotFound
from plugyard.namespaces.service import NamespaceService
from plugyard.plugins.service import PluginService
from plugyard.portal.plugin_view import open_quarantines, render_plugin
from plugyard.portal.web import Editor, Templates, Viewer, redirect, render
from plugyard.quarantine.service import QuarantineService
from plugyard.vault.service import SecretService


class PluginSafetyPages(Controller):
    """Releasing a quarantined version, and the secrets only this plugin sees."""

    path = "/t/{tenant:str}/ns/{namespace:str}/p/{plugin:str}"
    include_in_schema = False

    @get("/v/{number:int}/release")
    async def confirm_release(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        number: FromPath[int],
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[str]:
        """Ask before routing traffic to a version that hung a gateway process."""
        ns = await NamespaceService(conn).get(viewer.tenant, namespace)
        row = await PluginService(conn, publisher).get(viewer.tenant, ns, plugin)
        quarantine = next(
            (q for q in await open_quarantines(conn, publisher, viewer.tenant, row) if q.version == number),
            None,
        )
        if quarantine is None:
            raise NotFound(f"version {number} of {plugin!r} is not quarantined", slug="not-quarantined")
        return render("release.html", me=viewer, nav="dashboard", ns=ns, plugin=row, quarantine=quarantine)

    @post("/v/{number:int}/release")
    async def release(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        number: FromPath[int],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Lift the quarantine (the API's release: deploys the namespace)."""
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        revision = await QuarantineService(conn, publisher).release(
            editor.tenant, ns, plugin, number, actor=editor.actor
        )
        return redirect(
            f"/t/{editor.tenant.slug}/ns/{namespace}/p/{plugin}/?released={number}&revision={revision}"
        )

    @post("/secrets")
    async def set_secret(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        plugin: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
        template_catalog: Templates,
    ) -> Response[Any]:
        """Store a secret of this plugin only (write-only; wins over a namespace secret; deploys)."""
        form = await request.form()
        name = str(form.get("secret_name", "")).strip()
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        row = await PluginService(conn, publisher).get(editor.tenant, ns, plugin)
        try:
            await SecretService(conn, publisher).set(
                editor.tenant, ns, row, name, str(form.get("secret_value", "")), actor=editor.actor
            )
        except DomainError as exc:
            field = "secret_name" if exc.status == 422 else "secret_value"
            return await render_plugin(
                editor,
                namespace,
                plugin,
                conn,
                publisher,
                template_catalog,
                errors={field: exc.detail},
                values={"secret_name": name},
                status=exc.status,
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}/p/{plugin}/#secrets")

    @post("/secrets/{name:str}/delete")
    async def delete_secret(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        name: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Remove one of the plugin's secrets (deploys)."""
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        row = await PluginService(conn, publisher).get(editor.tenant, ns, plugin)
        await SecretService(conn, publisher).delete(editor.tenant, ns, row, name, actor=editor.actor)
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}/p/{plugin}/#secrets")
