"""HTTP API: metrics ingest (gateways), tenant queries, usage, plugin logs and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import httpx
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.params import FromPath, QueryParameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from plugyard import signing
from plugyard.deps import CurrentNamespace, CurrentTenant, DbConn, Gateways
from plugyard.errors import InvalidInput
from plugyard.metrics import exposition
from plugyard.metrics.compaction import Compactor
from plugyard.metrics.egress_service import EgressService
from plugyard.metrics.rollup import rollup_loop
from plugyard.metrics.schemas import (
    INGEST_PATH,
    Dimension,
    EgressAnswer,
    IngestResult,
    LogEntry,
    MetricsAnswer,
    Step,
    UsageDay,
)
from plugyard.metrics.service import (
    IngestQueue,
    MetricsService,
    decode_batch,
    platform_gauges,
)
from plugyard.settings import Settings

_DIMENSIONS: tuple[Dimension, ...] = ("namespace", "plugin", "version", "variant")

OptionalName = Annotated[str | None, QueryParameter(min_length=1, max_length=128)]
RangeStart = Annotated[
    datetime | None, QueryParameter(name="from", description="range start (default: 1 hour ago)")
]
RangeEnd = Annotated[datetime | None, QueryParameter(name="to", description="range end (default: now)")]
StepParam = Annotated[Step, QueryParameter(description="minute or hour")]


class IngestController(Controller):
    """Where gateways deliver metrics batches (HMAC-signed, no bearer token)."""

    path = INGEST_PATH
    tags = ["metrics"]
    security = [{}]

    @post("/", summary="Ingest a gateway metrics batch", status_code=200, include_in_schema=True)
    async def ingest(self, request: Request[object, object, State], conn: DbConn) -> IngestResult:
        """Store a batch once; a batch id already held answers `duplicate` and changes nothing."""
        body = await request.body()
        settings = request.app.state.settings
        batch = decode_batch(settings.gateway.secret, dict(request.headers), request.url.path, body)
        # Group commit with the batches of other requests waiting their turn (IngestQueue).
        queue: IngestQueue = request.app.state.ingest_queue
        return await queue.ingest(conn, batch)


def _group_by(value: str) -> tuple[Dimension, ...]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in parts if p not in _DIMENSIONS]
    if unknown:
        raise InvalidInput(f"unknown dimension(s) {unknown}; use {', '.join(_DIMENSIONS)}", field="group_by")
    return tuple(d for d in _DIMENSIONS if d in parts)


class MetricsController(Controller):
    """A tenant's request metrics and usage."""

    path = "/v1/tenants/{tenant:str}"
    tags = ["metrics"]

    @get("/metrics", summary="Query metrics")
    async def query(
        self,
        tenant_row: CurrentTenant,
        conn: DbConn,
        start: RangeStart = None,
        end: RangeEnd = None,
        step: StepParam = "minute",
        group_by: Annotated[
            str,
            QueryParameter(max_length=64, description="comma list of namespace, plugin, version, variant"),
        ] = "namespace,plugin,version,variant",
        namespace: OptionalName = None,
        plugin: OptionalName = None,
        version: Annotated[
            str | None, QueryParameter(pattern=r"^[0-9a-f]{1,64}$", description="version hash or prefix")
        ] = None,
        variant: OptionalName = None,
    ) -> MetricsAnswer:
        """Time series and totals per group, with latency p50/p95/p99 from the histograms."""
        start_at, end_at = _range(start, end)
        return await MetricsService(conn).query(
            tenant_row,
            start=start_at,
            end=end_at,
            step=step,
            group_by=_group_by(group_by),
            filters=(namespace, plugin, version, variant),
        )

    @get("/metrics/egress", summary="Query egress metrics")
    async def egress(
        self,
        tenant_row: CurrentTenant,
        conn: DbConn,
        start: RangeStart = None,
        end: RangeEnd = None,
        step: StepParam = "minute",
        namespace: OptionalName = None,
    ) -> EgressAnswer:
        """Plugins' outbound requests per namespace: allowed and blocked per step, busiest hosts."""
        start_at, end_at = _range(start, end)
        return await EgressService(conn).query(
            tenant_row, start=start_at, end=end_at, step=step, namespace=namespace
        )

    @get("/usage", summary="Usage per day")
    async def usage(
        self,
        tenant_row: CurrentTenant,
        conn: DbConn,
        first: Annotated[date | None, QueryParameter(name="from", description="first UTC day")] = None,
        last: Annotated[
            date | None, QueryParameter(name="to", description="last UTC day (default today)")
        ] = None,
    ) -> list[UsageDay]:
        """Requests, errors (5xx) and distinct plugin versions loaded, per UTC day."""
        last_day = last or datetime.now(UTC).date()
        first_day = first or last_day - timedelta(days=30)
        return await MetricsService(conn).usage(tenant_row, first_day, last_day)


class LogController(Controller):
    """A plugin's latest console lines and exceptions."""

    path = "/v1/tenants/{tenant:str}/namespaces/{namespace:str}/plugins/{plugin:str}/logs"
    tags = ["metrics"]

    @get("/", summary="Plugin logs")
    async def logs(
        self,
        plugin: FromPath[str],
        tenant_row: CurrentTenant,
        namespace_row: CurrentNamespace,
        conn: DbConn,
        request: Request[object, object, State],
        after: Annotated[
            int | None, QueryParameter(ge=0, description="only entries with a larger id")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000, description="at most this many")] = 100,
    ) -> list[LogEntry]:
        """Oldest first: the latest `limit` entries, or those after the `after` id (to follow)."""
        service = MetricsService(conn, request.app.state.settings.metrics)
        return await service.logs(tenant_row, namespace_row, plugin, after=after, limit=limit)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """The query range: `end` defaults to now, `start` to an hour before `end`."""
    end_at = _aware(end) if end else datetime.now(UTC)
    return (_aware(start) if start else end_at - timedelta(hours=1)), end_at


async def _gateway_health(secret: str, url: str) -> tuple[str, dict[str, object] | None]:
    path = "/_plugyard/health"
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            response = await http.get(url + path, headers=signing.sign(secret, method="GET", path=path))
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return url, None
    return url, body if isinstance(body, dict) else None


def _gateway_lines(results: list[tuple[str, dict[str, object] | None]]) -> list[str]:
    lines = [
        "# HELP plugyard_gateway_up 1 when a configured gateway answered its signed health check.",
        "# TYPE plugyard_gateway_up gauge",
    ]
    lines += [
        f"plugyard_gateway_up{exposition.labels({'gateway': url})} {int(body is not None)}"
        for url, body in results
    ]
    lines += [
        "# HELP plugyard_gateway_pending_batches Metrics batches a gateway holds until acknowledged.",
        "# TYPE plugyard_gateway_pending_batches gauge",
    ]
    for url, body in results:
        metrics = body.get("metrics") if body else None
        if isinstance(metrics, dict) and isinstance(metrics.get("pending_batches"), int):
            pending = metrics["pending_batches"]
            lines.append(f"plugyard_gateway_pending_batches{exposition.labels({'gateway': url})} {pending}")
    return lines


@get("/metrics", tags=["metrics"], summary="Prometheus metrics", include_in_schema=False, security=[{}])
async def prometheus(
    request: Request[object, object, State], conn: DbConn, publisher: Gateways
) -> Response[str]:
    """The platform's own metrics (no per-tenant labels) in the Prometheus text format."""
    secret = request.app.state.settings.gateway.secret
    health = await asyncio.gather(*(_gateway_health(secret, url) for url in publisher.gateways))
    lines = exposition.process_lines() + await platform_gauges(conn) + _gateway_lines(list(health))
    return Response(exposition.render(lines), media_type=exposition.CONTENT_TYPE)


def count_requests(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: counts answered HTTP requests by method and status class."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            exposition.HTTP_REQUESTS.inc(method=scope["method"], status=f"{status // 100}xx")

    return middleware


def metrics_lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A lifespan (after the one that opens the pool): exposes the settings, runs the rollup task."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.settings = settings
        compactor = Compactor(settings.metrics)
        app.state.compactor = compactor
        app.state.ingest_queue = IngestQueue(settings.metrics, compactor=compactor)
        tasks = [asyncio.create_task(compactor.run(app.state.pool))]
        if settings.metrics.rollup:
            tasks.append(asyncio.create_task(rollup_loop(app.state.pool, settings.metrics)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return lifespan
