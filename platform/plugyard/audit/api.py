"""HTTP API: a tenant's audit log."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter

from plugyard.audit.schemas import AuditEntry
from plugyard.audit.service import AuditService
from plugyard.deps import CurrentTenant, DbConn, PageLimit

_LAST = 2**63 - 1


class AuditController(Controller):
    """Who changed what, newest first."""

    path = "/v1/tenants/{tenant:str}/audit-log"
    tags = ["audit"]

    @get("/", summary="List audit-log entries")
    async def list_entries(
        self,
        tenant_row: CurrentTenant,
        conn: DbConn,
        limit: PageLimit = 50,
        before: Annotated[int, QueryParameter(ge=1, description="entry id to start below")] = _LAST,
        subject: Annotated[
            str | None, QueryParameter(max_length=300, description="only this subject")
        ] = None,
    ) -> list[AuditEntry]:
        """A page of entries, newest first (e.g. `subject=experiment:production/checkout`)."""
        return await AuditService(conn).page(tenant_row, subject=subject, before=before, limit=limit)
