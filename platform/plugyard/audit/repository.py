"""SQL for the audit log; every query filters by tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from plugyard.audit.schemas import AuditEntry

_COLUMNS = "id, actor, action, subject, details, at"
_INSERT = (
    "INSERT INTO audit_log (tenant_id, actor, action, subject, details) VALUES ($1, $2, $3, $4, $5) "
    f"RETURNING {_COLUMNS}"
)
_PAGE = (
    f"SELECT {_COLUMNS} FROM audit_log WHERE tenant_id = $1 AND id < $2 "
    "AND ($3::text IS NULL OR subject = $3) ORDER BY id DESC LIMIT $4"
)


class AuditRepository:
    """Audit entries of one tenant at a time."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind the repository to one connection."""
        self._conn = conn

    async def record(
        self, tenant_id: UUID, *, actor: str, action: str, subject: str, details: dict[str, Any]
    ) -> AuditEntry:
        """Append an entry (call inside the transaction that made the change)."""
        row = await self._conn.fetchrow(_INSERT, tenant_id, actor, action, subject, details)
        return AuditEntry(**row)

    async def page(
        self, tenant_id: UUID, *, subject: str | None, before: int, limit: int
    ) -> list[AuditEntry]:
        """A page of entries, newest first, optionally for one subject."""
        rows = await self._conn.fetch(_PAGE, tenant_id, before, subject, limit)
        return [AuditEntry(**r) for r in rows]
