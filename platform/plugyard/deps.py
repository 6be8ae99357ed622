"""Request-scoped dependencies shared by the feature APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import Parameter, QueryParameter, SkipValidation

from plugyard.db import Connection
from plugyard.deployments.service import Publisher
from plugyard.fields import Slug
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.namespaces.service import NamespaceService, found_namespace
from plugyard.plugins.schemas import PluginRow
from plugyard.plugins.service import PluginService, found_plugin
from plugyard.tenants.schemas import Access, Principal, TenantRow
from plugyard.tenants.service import TenantService, visible_tenant

# Values our own providers return are not validated again where they are injected: Litestar
# would pass each one through msgspec and a type check per parameter (a Python-level
# `isinstance` for asyncpg's connection class), ~9 % of an authenticated GET's instructions
# (docs/benchmarks.md, "Profiling notes: control plane, third pass").
DbConn = NamedDependency[SkipValidation[Connection]]
RequestAccess = NamedDependency[SkipValidation[Access]]
CurrentPrincipal = NamedDependency[SkipValidation[Principal]]
CurrentTenant = NamedDependency[SkipValidation[TenantRow]]
CurrentNamespace = NamedDependency[SkipValidation[NamespaceRow]]
CurrentPlugin = NamedDependency[SkipValidation[PluginRow]]
Gateways = NamedDependency[SkipValidation[Publisher]]
PageLimit = Annotated[int, QueryParameter(ge=1, le=200, description="page size (at most 200)")]
AfterName = Annotated[str, QueryParameter(max_length=63, description="name or slug to start after")]
BeforeNumber = Annotated[int, QueryParameter(ge=1, description="number to start below (newest first)")]
LAST = 2**31 - 1

# The request dependencies form one chain: publisher → conn → access → principal → tenant_row →
# namespace_row → plugin_row. Litestar resolves dependencies of the same depth concurrently, in an anyio task
# group per request; these cannot overlap anyway (one connection runs one query at a time), and
# the task group cost a quarter of the CPU of an authenticated GET (docs/benchmarks.md,
# "Control-plane performance pass"). Hence the extra parameters below that the bodies ignore.


# Providers take `request` rather than `state`: Litestar hands dependencies the state as a plain
# dict and builds a new `State` around it for every provider that asks for one.


async def provide_conn(
    request: Request[object, object, State], publisher: Gateways
) -> AsyncIterator[Connection]:
    """One pooled connection for the whole request.

    Released without asyncpg's session reset query (db.PooledConnection): request code keeps
    its state inside transactions, which asyncpg still rolls back if one is left open.
    `publisher` only orders the dependencies (see above).
    """
    async with request.app.state.pool.acquire() as conn:
        mark = getattr(conn, "mark_request_scoped", None)
        if mark is not None:
            mark()
        yield conn


async def provide_access(request: Request[object, object, State], conn: DbConn) -> Access:
    """The caller and the path's tenant, namespace and plugin, resolved in one query (401 otherwise).

    The four dependencies below read it, so a request makes one round trip for all of them.
    """
    state = request.app.state
    service = TenantService(conn, admin_token_digest=state.admin_digest, last_used=state.token_last_used)
    params = request.path_params
    tenant, namespace, plugin = params.get("tenant"), params.get("namespace"), params.get("plugin")
    has_tenant = isinstance(tenant, str)
    has_namespace = has_tenant and isinstance(namespace, str)
    # The raw ASGI header list (names are lower case): `request.headers` would build a
    # case-insensitive multidict of every header for this one lookup.
    authorization = next((v for k, v in request.scope["headers"] if k == b"authorization"), None)
    return await service.resolve(
        None if authorization is None else authorization.decode("latin-1"),
        tenant=tenant if has_tenant else None,
        namespace=namespace if has_namespace else None,
        plugin=plugin if has_namespace and isinstance(plugin, str) else None,
    )


async def provide_principal(access: RequestAccess) -> Principal:
    """The authenticated caller (401 problem otherwise)."""
    return access.principal


async def provide_tenant_row(
    tenant: Annotated[Slug, Parameter(description="tenant slug")],
    principal: CurrentPrincipal,
    access: RequestAccess,
    conn: DbConn,
) -> TenantRow:
    """The tenant named in the path, if `principal` may see it (404 otherwise)."""
    if access.tenant_slug == tenant:
        return visible_tenant(access.tenant, tenant)
    return await TenantService(conn).tenant_for(principal, tenant)


async def provide_namespace_row(
    namespace: Annotated[Slug, Parameter(description="namespace name")],
    tenant_row: CurrentTenant,
    access: RequestAccess,
    conn: DbConn,
) -> NamespaceRow:
    """The namespace named in the path within the caller's tenant."""
    if access.namespace_name == namespace and access.tenant == tenant_row:
        return found_namespace(access.namespace, namespace)
    return await NamespaceService(conn).get(tenant_row, namespace)


async def provide_plugin_row(
    plugin: Annotated[str, Parameter(description="plugin name")],
    namespace_row: CurrentNamespace,
    tenant_row: CurrentTenant,
    access: RequestAccess,
    conn: DbConn,
    publisher: Gateways,
) -> PluginRow:
    """The plugin named in the path within the namespace, with its active version (404 otherwise).

    Read at the start of the request; handlers that change it lock it in their transaction.
    """
    if access.plugin_name == plugin and access.namespace == namespace_row:
        return found_plugin(access.plugin, plugin)
    return await PluginService(conn, publisher).get(tenant_row, namespace_row, plugin)


def provide_publisher(request: Request[object, object, State]) -> Publisher:
    """The gateways and their signed client."""
    publisher: Publisher = request.app.state.publisher
    return publisher
