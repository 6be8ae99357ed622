"""The plugin page's rendering: versions, quarantined versions, secrets (shared by its controllers)."""

from __future__ import annotations

from typing import Any

from litestar import Response

from plugyard.deps import LAST, DbConn, Gateways
from plugyard.namespaces.service import NamespaceService
from plugyard.plugins.schemas import PluginRow
from plugyard.plugins.service import PluginService
from plugyard.portal.web import Caller, render
from plugyard.quarantine.schemas import Quarantine
from plugyard.quarantine.service import QuarantineService
from plugyard.tenants.schemas import TenantRow
from plugyard.vault.service import SecretService

VERSIONS_PAGE = 50

# Open quarantines of one plugin: a version that hung a gateway process; more at once than this
# would be shown newest first, and all of them through the API.
OPEN_QUARANTINES = 200


async def open_quarantines(
    conn: DbConn, publisher: Gateways, tenant: TenantRow, plugin: PluginRow
) -> list[Quarantine]:
    """The plugin's versions that are quarantined now, newest first."""
    return await QuarantineService(conn, publisher).page(
        tenant, include_released=False, limit=OPEN_QUARANTINES, plugin=plugin
    )


async def render_plugin(
    me: Caller,
    namespace: str,
    plugin: str,
    conn: DbConn,
    publisher: Gateways,
    catalog: Any,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
    uploaded: list[str] | None = None,
    flash: str | None = None,
) -> Response[str]:
    """The plugin page (also re-rendered with the errors of a refused form)."""
    ns = await NamespaceService(conn).get(me.tenant, namespace)
    service = PluginService(conn, publisher)
    row = await service.get(me.tenant, ns, plugin)
    versions = await service.versions(me.tenant, row, before=LAST, limit=VERSIONS_PAGE)
    return render(
        "plugin.html",
        status=status,
        me=me,
        nav="dashboard",
        ns=ns,
        plugin=row,
        versions=versions,
        templates=catalog.all(),
        errors=errors or {},
        values=values or {},
        uploaded=uploaded or [],
        flash=flash,
        vars_text="\n".join(f"{k}={v}" for k, v in sorted(row.vars.items())),
        quarantines=await open_quarantines(conn, publisher, me.tenant, row),
        secrets=await SecretService(conn, publisher).list(me.tenant, ns, row),
    )
