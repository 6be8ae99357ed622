"""Portal pages: a plugin, its versions (provenance, diff, preview, activation) and uploads."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.params import FromPath, QueryParameter

from plugyard.deps import LAST, DbConn, Gateways
from plugyard.errors import DomainError
from plugyard.namespaces.service import NamespaceService
from plugyard.plugins.service import PluginService
from plugyard.plugins.upload_limits import MAX_UPLOAD_BODY
from plugyard.portal import diffview, forms, uploads
from plugyard.portal.plugin_view import VERSIONS_PAGE, render_plugin
from plugyard.portal.web import Caller, Editor, Templates, Viewer, redirect, render


def upload_errors(exc: DomainError, names: list[str]) -> dict[str, str]:
    """Errors keyed by module name where the runtime named one (`modules[i]` or `module`)."""
    errors = forms.errors_of(exc)
    out: dict[str, str] = {}
    for field, message in errors.items():
        module = exc.extra.get("module")
        if field.startswith("modules[") and field[8:-1].isdigit() and int(field[8:-1]) < len(names):
            out["module:" + names[int(field[8:-1])]] = message
        elif isinstance(module, str) and module:
            out["module:" + module] = message
        else:
            out["upload"] = message
    if exc.status != 422:
        out = {"upload": exc.detail}
    return out


class PluginPages(Controller):
    """One plugin."""

    path = "/t/{tenant:str}/ns/{namespace:str}/p/{plugin:str}"
    include_in_schema = False

    @get("/")
    async def plugin_page(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
        template_catalog: Templates,
        activated: Annotated[int, QueryParameter(ge=0)] = 0,
        revision: Annotated[int, QueryParameter(ge=0)] = 0,
        released: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> Response[str]:
        """Versions with provenance, quarantines, the upload form, the template picker, secrets."""
        flash = f"Version {activated} is live (deployment revision {revision})." if activated else None
        if released:
            flash = f"Version {released} is released from quarantine (deployment revision {revision})."
        return await render_plugin(viewer, namespace, plugin, conn, publisher, template_catalog, flash=flash)

    @post("/upload", request_max_body_size=MAX_UPLOAD_BODY)
    async def upload(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        plugin: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
        template_catalog: Templates,
    ) -> Response[Any]:
        """Store the uploaded files as a version; the sandbox's refusal is shown next to the module."""
        form = await request.form()
        parts = [f for f in form.getall("files") if isinstance(f, UploadFile) and f.filename]
        paths = [str(p) for p in form.getall("paths")] if "paths" in form else []
        names = paths if len(paths) == len(parts) else [f.filename for f in parts]
        files = [(name, await part.read()) for name, part in zip(names, parts, strict=True)]
        module_names: list[str] = uploads.module_names(names) if names else []
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        service = PluginService(conn, publisher)
        row = await service.get(editor.tenant, ns, plugin)
        try:
            version, module_names = uploads.version(files, activate=bool(form.get("activate")))
            published = await service.publish(editor.tenant, ns, row, version, actor=editor.actor)
        except DomainError as exc:
            return await render_plugin(
                editor,
                namespace,
                plugin,
                conn,
                publisher,
                template_catalog,
                errors=upload_errors(exc, module_names),
                status=exc.status,
                uploaded=module_names,
            )
        state = "new" if published.created else "same"
        return redirect(f"{request.url.path.rsplit('/', 1)[0]}/v/{published.version.number}?stored={state}")

    @get("/v/{number:int}")
    async def version_page(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        number: FromPath[int],
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
        stored: Annotated[str, QueryParameter(max_length=8)] = "",
    ) -> Response[str]:
        """One version: modules, settings, provenance, preview and activation."""
        return await self._version(viewer, namespace, plugin, number, conn, publisher, stored=stored)

    async def _version(
        self,
        me: Caller,
        namespace: str,
        plugin: str,
        number: int,
        conn: DbConn,
        publisher: Gateways,
        *,
        stored: str = "",
        preview: Any = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response[str]:
        ns = await NamespaceService(conn).get(me.tenant, namespace)
        service = PluginService(conn, publisher)
        row = await service.get(me.tenant, ns, plugin)
        version = await service.version(me.tenant, row, number)
        flash = {
            "new": f"Version {number} stored. It serves nothing until you activate it.",
            "same": f"This code is already stored as version {number}; nothing new was stored.",
        }.get(stored)
        return render(
            "version.html",
            status=status,
            me=me,
            nav="dashboard",
            ns=ns,
            plugin=row,
            version=version,
            flash=flash,
            preview=preview,
            error=error,
        )

    @post("/v/{number:int}/preview")
    async def preview(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        number: FromPath[int],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[str]:
        """Issue a preview URL of this version (a capability: shown here, never stored in a URL we log)."""
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        service = PluginService(conn, publisher)
        row = await service.get(editor.tenant, ns, plugin)
        try:
            issued = await service.preview(editor.tenant, ns, row, number)
        except DomainError as exc:
            if exc.status == 404:
                raise
            return await self._version(
                editor, namespace, plugin, number, conn, publisher, error=exc.detail, status=exc.status
            )
        return await self._version(editor, namespace, plugin, number, conn, publisher, preview=issued)

    @get("/v/{number:int}/activate")
    async def confirm_activate(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        number: FromPath[int],
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[str]:
        """Ask before switching live traffic to this version."""
        ns = await NamespaceService(conn).get(viewer.tenant, namespace)
        service = PluginService(conn, publisher)
        row = await service.get(viewer.tenant, ns, plugin)
        version = await service.version(viewer.tenant, row, number)
        return render("activate.html", me=viewer, nav="dashboard", ns=ns, plugin=row, version=version)

    @post("/v/{number:int}/activate")
    async def activate(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        number: FromPath[int],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
    ) -> Response[Any]:
        """Serve this version from now on (publish or roll back); deploys."""
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        service = PluginService(conn, publisher)
        row = await service.get(editor.tenant, ns, plugin)
        _, deployment = await service.activate(editor.tenant, ns, row, number, actor=editor.actor)
        return redirect(
            f"/t/{editor.tenant.slug}/ns/{namespace}/p/{plugin}/?activated={number}"
            f"&revision={deployment.revision}"
        )

    @get("/diff")
    async def diff(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
        from_: Annotated[int, QueryParameter(name="from", ge=1)],
        to: Annotated[int, QueryParameter(ge=1)],
    ) -> Response[str]:
        """Two versions side by side, module by module."""
        ns = await NamespaceService(conn).get(viewer.tenant, namespace)
        service = PluginService(conn, publisher)
        row = await service.get(viewer.tenant, ns, plugin)
        compared = await service.diff(viewer.tenant, row, from_, to)
        modules = [(m, diffview.side_by_side(m.diff)) for m in compared.modules]
        versions = await service.versions(viewer.tenant, row, before=LAST, limit=VERSIONS_PAGE)
        return render(
            "diff.html",
            me=viewer,
            nav="dashboard",
            ns=ns,
            plugin=row,
            diff=compared,
            modules=modules,
            versions=versions,
        )

    @post("/vars")
    async def set_vars(
        self,
        request: Request[Any, Any, State],
        namespace: FromPath[str],
        plugin: FromPath[str],
        editor: Editor,
        conn: DbConn,
        publisher: Gateways,
        template_catalog: Templates,
    ) -> Response[Any]:
        """Replace the plugin's variables (deploys without a new version)."""
        text = str((await request.form()).get("vars", ""))
        ns = await NamespaceService(conn).get(editor.tenant, namespace)
        service = PluginService(conn, publisher)
        row = await service.get(editor.tenant, ns, plugin)
        try:
            await service.set_vars(editor.tenant, ns, row, forms.pairs(text, "vars"), actor=editor.actor)
        except DomainError as exc:
            return await render_plugin(
                editor,
                namespace,
                plugin,
                conn,
                publisher,
                template_catalog,
                errors={"vars": exc.detail},
                values={"vars": text},
                status=exc.status,
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{namespace}/p/{plugin}/#vars")
