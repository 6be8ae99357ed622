"""Portal pages: the tenant dashboard and creating a namespace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State

from plugyard.deps import DbConn, Gateways
from plugyard.errors import Conflict, InvalidInput
from plugyard.experiments.service import ExperimentService
from plugyard.metrics.service import MetricsService
from plugyard.namespaces.service import NamespaceService
from plugyard.plugins.service import PluginService
from plugyard.portal import figures, forms
from plugyard.portal.web import Editor, Viewer, redirect, render

PAGE = 200


async def overview(viewer: Any, conn: DbConn, publisher: Gateways) -> list[dict[str, Any]]:
    """Namespaces with their plugins (live versions) and live experiments."""
    tenant = viewer.tenant
    out = []
    for ns in await NamespaceService(conn).page(tenant, after="", limit=PAGE):
        plugins = await PluginService(conn, publisher).page(tenant, ns, after="", limit=PAGE)
        experiments = await ExperimentService(conn, publisher).page(tenant, ns, after="", limit=PAGE)
        out.append({"namespace": ns, "plugins": plugins, "experiments": experiments})
    return out


class DashboardPages(Controller):
    """The first page after sign-in."""

    path = "/t/{tenant:str}"
    include_in_schema = False

    @get("/")
    async def dashboard(self, viewer: Viewer, conn: DbConn, publisher: Gateways) -> Response[str]:
        """Namespaces, plugins, live versions, running experiments, last hour's traffic."""
        return await self._page(viewer, conn, publisher)

    async def _page(
        self,
        viewer: Any,
        conn: DbConn,
        publisher: Gateways,
        *,
        errors: dict[str, str] | None = None,
        status: int = 200,
        name: str = "",
    ) -> Response[str]:
        start, end, _ = figures.window(datetime.now(UTC), "1h")
        answer = await MetricsService(conn).query(
            viewer.tenant, start=start, end=end, step="minute", group_by=(), filters=(None, None, None, None)
        )
        return render(
            "dashboard.html",
            status=status,
            me=viewer,
            nav="dashboard",
            namespaces=await overview(viewer, conn, publisher),
            charts=figures.charts(answer, figures.REQUESTS_AND_ERRORS),
            totals=answer.totals,
            errors=errors or {},
            name=name,
        )

    @post("/namespaces")
    async def create_namespace(
        self, request: Request[Any, Any, State], editor: Editor, conn: DbConn, publisher: Gateways
    ) -> Response[Any]:
        """Create a namespace (editors and owners)."""
        name = str((await request.form()).get("name", ""))
        try:
            checked = forms.slug(name, "name", "namespace")
            await NamespaceService(conn).create(editor.tenant, checked)
        except (InvalidInput, Conflict) as exc:
            return await self._page(
                editor, conn, publisher, errors={"name": exc.detail}, status=exc.status, name=name
            )
        return redirect(f"/t/{editor.tenant.slug}/ns/{checked}")
