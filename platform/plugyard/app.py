"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec
import structlog
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from plugyard import __version__, db, problems
from plugyard.audit.api import AuditController
from plugyard.body_limit import body_limit
from plugyard.deployments.api import DeploymentController
from plugyard.deployments.reconciler import Reconciler
from plugyard.deployments.service import Publisher
from plugyard.deps import (
    provide_access,
    provide_conn,
    provide_namespace_row,
    provide_plugin_row,
    provide_principal,
    provide_publisher,
    provide_tenant_row,
)
from plugyard.errors import Unavailable
from plugyard.experiments.api import ExperimentController, HoldoutController
from plugyard.experiments.ingest_api import ExperimentIngestController
from plugyard.experiments.tasks import experiments_lifespan
from plugyard.fairness.api import LiveVersionController
from plugyard.gateway.api import GatewayController
from plugyard.gateway.client import GatewayClient
from plugyard.metrics.api import (
    IngestController,
    LogController,
    MetricsController,
    count_requests,
    metrics_lifespan,
    prometheus,
)
from plugyard.middleware import request_logging
from plugyard.namespaces.api import NamespaceController
from plugyard.openapi import StrictStructSchemaPlugin
from plugyard.plugins.api import PluginController
from plugyard.plugins.bundle_api import BundleController
from plugyard.portal.router import portal_router, static_router
from plugyard.quarantine.api import GatewayQuarantineController, QuarantineController
from plugyard.ratelimit import rate_limit
from plugyard.routes.api import RouteController
from plugyard.settings import Settings
from plugyard.templates.api import TemplateController, TemplateVersionController, catalog_dependency
from plugyard.templates.catalog import load_catalog
from plugyard.tenants.api import TenantController
from plugyard.tenants.service import LastUsedClock, digest
from plugyard.vault.api import NamespaceSecretController, PluginSecretController

log = structlog.get_logger(__name__)

# Uploads are bounded far below this by the bundle rules; this stops oversized bodies early.
MAX_REQUEST_BODY = 12 * 1024 * 1024


class Health(msgspec.Struct, frozen=True):
    """Liveness and database reachability."""

    status: str
    version: str


@get("/healthz", tags=["health"], summary="Health")
async def healthz(state: State) -> Health:
    """Answers 200 when the database answers, 503 otherwise."""
    try:
        async with state.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
    except db.UNAVAILABLE_ERRORS as exc:
        raise Unavailable("the database is unreachable", slug="database-unavailable") from exc
    return Health(status="ok", version=__version__)


def create_app(settings: Settings, *, pool: db.Pool | None = None) -> Litestar:
    """Build the control-plane app.

    Args:
        settings: the settings tree (see `plugyard.settings.from_env`).
        pool: an open asyncpg pool to use (tests pass theirs); when None the app opens and
            closes its own.

    Returns:
        The Litestar application.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        own_pool = pool is None
        app.state.pool = await db.create_pool(settings.database) if own_pool else pool
        client = GatewayClient(settings.gateway.secret, timeout_s=settings.gateway.push_timeout_s)
        app.state.publisher = Publisher.from_settings(client, settings)
        app.state.admin_digest = digest(settings.admin_token) if settings.admin_token else None
        app.state.token_last_used = LastUsedClock()
        retry_task = None
        # The reconciler (deployments/reconciler.py) re-pushes failed pushes and gateway drift;
        # one replica leads at a time, every replica serves the API.
        reconciler = Reconciler(
            app.state.pool,
            app.state.publisher,
            settings.database.url,
            interval_s=settings.gateway.retry_interval_s,
        )
        app.state.reconciler = reconciler
        try:
            if settings.retry_pushes and settings.gateway.urls:
                retry_task = asyncio.create_task(reconciler.run())
            log.info("control_plane_started", gateways=list(settings.gateway.urls))
            yield
        finally:
            if retry_task is not None:
                retry_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retry_task
            await reconciler.close()
            await client.aclose()
            if own_pool:
                await app.state.pool.close()

    return Litestar(
        route_handlers=[
            healthz,
            TenantController,
            NamespaceController,
            PluginController,
            BundleController,
            NamespaceSecretController,
            PluginSecretController,
            RouteController,
            TemplateController,
            TemplateVersionController,
            DeploymentController,
            ExperimentController,
            HoldoutController,
            ExperimentIngestController,
            AuditController,
            IngestController,
            GatewayQuarantineController,
            GatewayController,
            LiveVersionController,
            QuarantineController,
            MetricsController,
            LogController,
            prometheus,
            # The tenant portal (docs/portal.md): session cookies + CSRF; /v1 keeps bearer tokens.
            portal_router(settings.portal),
            static_router(),
        ],
        dependencies={
            "conn": Provide(provide_conn),
            "access": Provide(provide_access),
            "principal": Provide(provide_principal),
            "tenant_row": Provide(provide_tenant_row),
            "namespace_row": Provide(provide_namespace_row),
            "plugin_row": Provide(provide_plugin_row),
            "publisher": Provide(provide_publisher, sync_to_thread=False),
            "template_catalog": catalog_dependency(load_catalog()),
        },
        lifespan=[lifespan, metrics_lifespan(settings), experiments_lifespan(settings)],
        plugins=[problems.plugin(), StrictStructSchemaPlugin()],
        exception_handlers=problems.handlers(),
        middleware=[
            DefineMiddleware(request_logging),
            # 413 from Content-Length before routing, for bodyless endpoints too (body_limit.py).
            DefineMiddleware(body_limit, max_bytes=MAX_REQUEST_BODY),
            DefineMiddleware(count_requests),
            # 429 per bearer token / client address before routing (ratelimit.py, docs/api.md).
            DefineMiddleware(rate_limit, settings=settings.rate_limit),
        ],
        request_max_body_size=MAX_REQUEST_BODY,
        openapi_config=OpenAPIConfig(
            title="Plugyard control plane",
            version=__version__,
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", description="API token")
                }
            ),
            security=[{"bearer": []}],
        ),
        debug=False,
    )
