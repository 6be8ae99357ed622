"""Reading the audit log."""

from __future__ import annotations

import asyncpg

from plugyard.audit.repository import AuditRepository
from plugyard.audit.schemas import AuditEntry
from plugyard.tenants.schemas import TenantRow


class AuditService:
    """The audit log of a tenant."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind to a connection."""
        self._repo = AuditRepository(conn)

    async def page(
        self, tenant: TenantRow, *, subject: str | None, before: int, limit: int
    ) -> list[AuditEntry]:
        """A page of entries, newest first."""
        return await self._repo.page(tenant.id, subject=subject, before=before, limit=limit)
