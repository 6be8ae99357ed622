"""Quarantined plugin versions (docs/operations.md, "Quarantine")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

_NAME = msgspec.Meta(min_length=1, max_length=128)


class QuarantineReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of the signed `POST /v1/gateway/quarantines` a gateway supervisor sends."""

    tenant: Annotated[str, _NAME]
    namespace: Annotated[str, _NAME]
    plugin: Annotated[str, _NAME]
    version: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    gateway: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ReportResult(msgspec.Struct, frozen=True, kw_only=True):
    """Answer to a report: `recorded` (new), `held` (already open) or `unknown-version`."""

    status: Literal["recorded", "held", "unknown-version"]
    revision: int | None = None


class Quarantine(msgspec.Struct, frozen=True, kw_only=True):
    """A quarantine as the API shows it."""

    status: Literal["quarantined", "released"]
    namespace: str
    plugin: str
    version: int
    hash: str
    reason: str
    reported_by: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None


class PluginStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Whether a plugin's active version is served (`GET .../plugins/{plugin}/status`)."""

    status: Literal["serving", "quarantined", "no-active-version"]
    version: int | None
    reason: str | None = None


class VersionRef(msgspec.Struct, frozen=True, kw_only=True):
    """The ids a report resolves to."""

    tenant_id: UUID
    namespace_id: UUID
    plugin_id: UUID
    version_id: UUID
    number: int
