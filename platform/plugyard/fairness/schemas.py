"""Per-tenant fairness: the cap on distinct live versions (docs/operations.md, "Fairness")."""

from __future__ import annotations

import msgspec


class LiveVersions(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/tenants/{tenant}/live-versions`: what counts against the tenant's cap."""

    live: int
    limit: int | None
    versions: list[LiveVersion]


class LiveVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One live version: active, or a variant of a running or paused experiment."""

    namespace: str
    plugin: str
    version: int
