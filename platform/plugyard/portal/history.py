"""Portal pages: deployment history with push status, and the audit log."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get
from litestar.params import QueryParameter

from plugyard.audit.service import AuditService
from plugyard.deployments.service import DeploymentService
from plugyard.deps import LAST, DbConn, Gateways
from plugyard.namespaces.service import NamespaceService
from plugyard.portal.web import Viewer, render

PAGE = 50


class HistoryPages(Controller):
    """What changed, when, by whom, and whether every gateway got it."""

    path = "/t/{tenant:str}"
    include_in_schema = False

    @get("/deployments")
    async def deployments(
        self,
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
        namespace: Annotated[str, QueryParameter(max_length=63)] = "",
        before: Annotated[int, QueryParameter(ge=1)] = LAST,
    ) -> Response[str]:
        """Deployments of one namespace (the first by default), newest first."""
        namespaces = await NamespaceService(conn).page(viewer.tenant, after="", limit=200)
        chosen = next((n for n in namespaces if n.name == namespace), namespaces[0] if namespaces else None)
        rows = (
            []
            if chosen is None
            else await DeploymentService(conn, publisher).page(
                viewer.tenant, chosen, before=before, limit=PAGE
            )
        )
        return render(
            "deployments.html",
            me=viewer,
            nav="deployments",
            namespaces=namespaces,
            chosen=chosen,
            deployments=rows,
            page=PAGE,
        )

    @get("/audit")
    async def audit(
        self, viewer: Viewer, conn: DbConn, before: Annotated[int, QueryParameter(ge=1)] = LAST
    ) -> Response[str]:
        """The audit log, newest first."""
        entries = await AuditService(conn).page(viewer.tenant, subject=None, before=before, limit=PAGE)
        return render("audit.html", me=viewer, nav="audit", entries=entries, page=PAGE)
