"""Egress metrics: a tenant's outbound requests per namespace, allowed and blocked."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import asyncpg

from plugyard.metrics.egress_repository import EgressRepository
from plugyard.metrics.schemas import (
    MAX_EGRESS_HOSTS,
    OTHER_HOST,
    EgressAnswer,
    EgressCounts,
    EgressHost,
    EgressHostRow,
    EgressPoint,
    EgressSeries,
    Step,
)
from plugyard.metrics.service import step_range
from plugyard.tenants.schemas import TenantRow


def _hosts(rows: list[EgressHostRow]) -> list[EgressHost]:
    """The busiest `MAX_EGRESS_HOSTS` hosts (rows come busiest first); the rest summed as other."""
    kept = [EgressHost(host=r.host, allowed=r.allowed, blocked=r.blocked) for r in rows[:MAX_EGRESS_HOSTS]]
    rest = rows[MAX_EGRESS_HOSTS:]
    if not rest:
        return kept
    allowed, blocked = sum(r.allowed for r in rest), sum(r.blocked for r in rest)
    for i, host in enumerate(kept):
        if host.host == OTHER_HOST:
            kept[i] = EgressHost(
                host=OTHER_HOST, allowed=host.allowed + allowed, blocked=host.blocked + blocked
            )
            return kept
    return [*kept, EgressHost(host=OTHER_HOST, allowed=allowed, blocked=blocked)]


class EgressService:
    """Tenant-scoped reads of the egress counts."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind to a connection."""
        self._repo = EgressRepository(conn)

    async def query(
        self, tenant: TenantRow, *, start: datetime, end: datetime, step: Step, namespace: str | None
    ) -> EgressAnswer:
        """Allowed/blocked per namespace and step over [start, end), with the busiest hosts.

        Raises:
            InvalidInput: an empty range or too many points.
        """
        start, end = step_range(start, end, step)
        hourly = step == "hour"
        points = await self._repo.points(tenant.id, start, end, hourly=hourly, namespace=namespace)
        hosts = await self._repo.hosts(tenant.id, start, end, hourly=hourly, namespace=namespace)
        by_namespace: dict[str, list[EgressPoint]] = defaultdict(list)
        for p in points:
            by_namespace[p.namespace].append(EgressPoint(t=p.t, allowed=p.allowed, blocked=p.blocked))
        hosts_of: dict[str, list[EgressHostRow]] = defaultdict(list)
        for h in hosts:
            hosts_of[h.namespace].append(h)
        series = [
            EgressSeries(
                namespace=name,
                totals=EgressCounts(
                    allowed=sum(p.allowed for p in ns_points), blocked=sum(p.blocked for p in ns_points)
                ),
                points=ns_points,
                hosts=_hosts(hosts_of[name]),
            )
            for name, ns_points in sorted(by_namespace.items())
        ]
        return EgressAnswer(
            start=start,
            end=end,
            step=step,
            totals=EgressCounts(
                allowed=sum(s.totals.allowed for s in series), blocked=sum(s.totals.blocked for s in series)
            ),
            series=series,
        )
