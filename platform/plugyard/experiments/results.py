"""Experiment results (docs/experiments.md, "Results") and the ingest of gateway reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import asyncpg
import msgspec
import structlog

from plugyard.experiments import stats
from plugyard.experiments.event_repository import EventRepository
from plugyard.experiments.schemas import ExperimentRow, VariantRow
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.tenants.schemas import TenantRow

log = structlog.get_logger(__name__)

INGEST_PATH = "/v1/ingest/experiments"
# Upper bounds (ms) of the gateway's latency histogram (loader_worker/src/metrics.js).
LATENCY_BOUNDS_MS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
VISITORS_METHOD = (
    "distinct 53-bit hashes of the visitor key per variant and phase, stored by the control plane: "
    "exact except for hash collisions (expected under 0.01 % at 10 million visitors)"
)
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class ReportRow(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What one gateway isolate saw of one variant since its previous report."""

    tenant: _Name
    namespace: _Name
    plugin: _Name
    experiment: _Name
    phase: Annotated[int, msgspec.Meta(ge=1)]
    variant: _Name
    visitors: Annotated[
        list[Annotated[int, msgspec.Meta(ge=0, le=2**53)]], msgspec.Meta(max_length=100_000)
    ] = []
    conversions: dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=64)], Annotated[int, msgspec.Meta(ge=0)]
    ] = {}


class Report(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of `POST /v1/ingest/experiments` (signed like a push; docs/gateway-protocol.md)."""

    batch_id: UUID
    rows: Annotated[list[ReportRow], msgspec.Meta(max_length=10_000)]


class ReportResult(msgspec.Struct, frozen=True, kw_only=True):
    """`stored` or `duplicate`."""

    status: str
    batch_id: UUID


class Traffic(msgspec.Struct, kw_only=True):
    """Summed request counters of one variant."""

    requests: int = 0
    errors: int = 0
    latency: list[int] = msgspec.field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))


class ResultsService:
    """Computes results from stored counters; stores gateway reports."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Bind to a connection."""
        self._conn = conn
        self._repo = EventRepository(conn)

    async def ingest(self, report: Report) -> ReportResult:
        """Store a report once (a replayed batch id changes nothing)."""
        async with self._conn.transaction():
            if not await self._repo.claim(report.batch_id):
                return ReportResult(status="duplicate", batch_id=report.batch_id)
            tenants = await self._repo.tenant_ids(sorted({r.tenant for r in report.rows}))
            for row in report.rows:
                tenant_id = tenants.get(row.tenant)
                if tenant_id is None:
                    continue  # a tenant deleted since: nothing to attribute
                scope = (row.namespace, row.plugin, row.experiment, row.phase, row.variant)
                if row.visitors:
                    await self._repo.add_visitors(tenant_id, scope, row.visitors)
                for event, count in sorted(row.conversions.items()):
                    await self._repo.add_conversions(tenant_id, scope, event, count)
        return ReportResult(status="stored", batch_id=report.batch_id)

    async def traffic(
        self, tenant: TenantRow, namespace: NamespaceRow, row: ExperimentRow, variants: list[VariantRow]
    ) -> dict[str, Traffic]:
        """Requests, errors (5xx) and latency histograms per variant in the current phase."""
        out = {v.name: Traffic() for v in variants}
        since = row.phase_started_at or datetime.now(UTC)
        for r in await self._repo.traffic(tenant.id, namespace.name, row.plugin, list(out), since):
            t = out[r["variant"]]
            t.requests += int(r["requests"])
            t.errors += int(r["s5xx"])
            t.latency = [a + int(b) for a, b in zip(t.latency, r["latency"], strict=True)]
        return out

    async def results(
        self,
        tenant: TenantRow,
        namespace: NamespaceRow,
        row: ExperimentRow,
        variants: list[VariantRow],
        *,
        event: str | None,
    ) -> stats.Results:
        """Per-variant figures, conversion statistics against the control and the SRM check."""
        traffic = await self.traffic(tenant, namespace, row, variants)
        visitors = await self._repo.visitors(tenant.id, namespace.name, row.plugin, row.key, row.phase)
        conversions: dict[str, dict[str, int]] = {}
        for r in await self._repo.conversions(tenant.id, namespace.name, row.plugin, row.key, row.phase):
            conversions.setdefault(r["event"], {})[r["variant"]] = int(r["count"])
        events = sorted(conversions)
        chosen = event if event is not None else (events[0] if events else None)
        counts = conversions.get(chosen, {}) if chosen else {}
        control = variants[0].name
        n_c, x_c = visitors.get(control, 0), counts.get(control, 0)
        out = []
        for v in variants:
            t = traffic[v.name]
            n, x = visitors.get(v.name, 0), counts.get(v.name, 0)
            out.append(
                stats.VariantResult(
                    name=v.name,
                    version=v.version,
                    weight=v.weight,
                    exposures=t.requests,
                    visitors=n,
                    errors=t.errors,
                    error_rate=0.0 if t.requests == 0 else t.errors / t.requests,
                    latency_p50_ms=stats.histogram_quantile(t.latency, LATENCY_BOUNDS_MS, 0.5),
                    latency_p95_ms=stats.histogram_quantile(t.latency, LATENCY_BOUNDS_MS, 0.95),
                    conversions=x,
                    conversion_rate=0.0 if n == 0 else x / n,
                    conversion_ci=stats.wilson(min(x, n), n),
                    vs_control=None if v.name == control else stats.compare(min(x_c, n_c), n_c, min(x, n), n),
                )
            )
        return stats.Results(
            key=row.key,
            state=row.state,
            phase=row.phase,
            since=None if row.phase_started_at is None else row.phase_started_at.isoformat(),
            event=chosen,
            events=events,
            variants=out,
            sample_ratio=stats.srm([visitors.get(v.name, 0) for v in variants], [v.weight for v in variants]),
            guardrail_trip=row.guardrail_trip,
            visitors_method=VISITORS_METHOD,
        )
