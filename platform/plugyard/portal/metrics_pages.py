"""Portal pages: metrics charts with a time-range picker, and a plugin's live log tail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from plugyard.deps import DbConn, Gateways
from plugyard.metrics.service import MetricsService
from plugyard.namespaces.service import NamespaceService
from plugyard.plugins.service import PluginService
from plugyard.portal import figures
from plugyard.portal.web import Viewer, render

GROUPS: dict[str, tuple[str, ...]] = {
    "none": (),
    "plugin": ("namespace", "plugin"),
    "variant": ("plugin", "variant"),
}
LOG_LINES = 100


class MetricsPages(Controller):
    """Charts by plugin or variant; logs that follow live."""

    path = "/t/{tenant:str}"
    include_in_schema = False

    @get("/metrics")
    async def metrics(
        self,
        viewer: Viewer,
        conn: DbConn,
        publisher: Gateways,
        range_: Annotated[str, QueryParameter(name="range", max_length=8)] = "1h",
        by: Annotated[str, QueryParameter(max_length=10)] = "plugin",
        namespace: Annotated[str, QueryParameter(max_length=63)] = "",
        plugin: Annotated[str, QueryParameter(max_length=63)] = "",
    ) -> Response[str]:
        """Requests, errors and p95 latency over the chosen range, one line per plugin or variant."""
        range_ = range_ if range_ in figures.RANGES else "1h"
        by = by if by in GROUPS else "plugin"
        start, end, step = figures.window(datetime.now(UTC), range_)
        answer = await MetricsService(conn).query(
            viewer.tenant,
            start=start,
            end=end,
            step="hour" if step == "hour" else "minute",
            group_by=GROUPS[by],  # type: ignore[arg-type]
            filters=(namespace or None, plugin or None, None, None),
        )
        namespaces = await NamespaceService(conn).page(viewer.tenant, after="", limit=200)
        plugins: list[tuple[str, str]] = []
        for ns in namespaces:
            plugins += [
                (ns.name, p.name)
                for p in await PluginService(conn, publisher).page(viewer.tenant, ns, after="", limit=200)
            ]
        return render(
            "metrics.html",
            me=viewer,
            nav="metrics",
            answer=answer,
            charts=figures.charts(answer, {**figures.REQUESTS_AND_ERRORS, **figures.LATENCY}),
            ranges=figures.RANGE_LABELS,
            range=range_,
            by=by,
            namespace=namespace,
            plugin=plugin,
            namespaces=namespaces,
            plugins=plugins,
            series_name=figures.series_name,
        )

    @get("/ns/{namespace:str}/p/{plugin:str}/logs")
    async def logs(
        self,
        namespace: FromPath[str],
        plugin: FromPath[str],
        viewer: Viewer,
        conn: DbConn,
        request: Request[object, object, State],
        after: Annotated[int, QueryParameter(ge=0)] = 0,
        fragment: Annotated[bool, QueryParameter()] = False,
    ) -> Response[str]:
        """The latest log lines and exceptions; `?after=ID` gives only newer ones (the live tail)."""
        ns = await NamespaceService(conn).get(viewer.tenant, namespace)
        entries = await MetricsService(conn, request.app.state.settings.metrics).logs(
            viewer.tenant, ns, plugin, after=after or None, limit=LOG_LINES
        )
        entries = sorted(entries, key=lambda e: e.id)
        if after or fragment:
            return render("fragments/log_lines.html", entries=entries)
        return render(
            "logs.html",
            me=viewer,
            nav="metrics",
            ns=ns,
            plugin=plugin,
            entries=entries,
            after=max((e.id for e in entries), default=0),
        )
