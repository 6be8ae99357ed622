"""What `GET /v1/gateways` answers: each configured gateway's health and the reconciler's view."""

from __future__ import annotations

from datetime import datetime

import msgspec

from plugyard.deployments.reconciler import PassReport


class GatewayStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One configured gateway as the control plane sees it right now.

    `reachable` is true when the gateway answered its signed health check (the same check as
    `plugyard_gateway_up` in /metrics); the counts are null when it did not.
    """

    url: str
    reachable: bool
    error: str | None = None
    last_seen: datetime | None = None
    namespaces_held: int | None = None
    # Namespaces whose latest revision the gateway does not hold yet (missing, behind, or held
    # for an older incarnation): the reconciler re-pushes these.
    namespaces_behind: int | None = None


class ReconcilerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """This process's reconciler: whether it leads, and what its last pass did (leader only)."""

    leader: bool
    last_pass: PassReport | None = None


class GatewaysReport(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v1/gateways`."""

    gateways: list[GatewayStatus]
    namespaces: int
    reconciler: ReconcilerStatus
