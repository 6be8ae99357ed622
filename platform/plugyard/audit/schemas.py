"""The audit log: who did what, when, to which subject."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One audit-log entry (also the row shape)."""

    id: int
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    at: datetime
