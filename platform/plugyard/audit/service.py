"""Reading the audit log."""

from __future__ import annotations

from typing import Any

import asyncpg

from plugyard.audit.repository import AuditRepository
from plugyard.audit.schemas import AuditEntry
from plugyard.tenants.schemas import TenantRow


class AuditService:
    """The audit log of a tenant: read it, and append to it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind to a connection."""
        self._repo = AuditRepository(conn)

    async def page(
        self, tenant: TenantRow, *, subject: str | None, before: int, limit: int
    ) -> list[AuditEntry]:
        """A page of entries, newest first."""
        return await self._repo.page(tenant.id, subject=subject, before=before, limit=limit)

    async def record(
        self, tenant: TenantRow, *, actor: str, action: str, subject: str, details: dict[str, Any]
    ) -> AuditEntry:
        """Append an entry; call it inside the transaction that made the change.

        Args:
            tenant: whose log.
            actor: who did it (`user:<email>`, `cli`, a token description).
            action: a dotted past-tense name, e.g. `token.revoked`.
            subject: what it was done to, e.g. `member:ana@example.com`.
            details: small non-secret facts (never a token or a secret value).
        """
        return await self._repo.record(
            tenant.id, actor=actor, action=action, subject=subject, details=details
        )
