"""Guardrails: pause a running experiment whose variant is significantly worse than the control.

`check_guardrails` runs in the control plane's background loop (one replica at a time under an
advisory lock) every `PLUGYARD_GUARDRAIL_INTERVAL_S`, i.e. as metrics batches arrive. A trip
pauses the experiment through the normal state machine (a deployment pushed to the gateways,
an audit entry by actor `guardrail`) and is shown in the experiment and its results.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

from plugyard.deployments.service import Publisher
from plugyard.errors import Conflict
from plugyard.experiments import stats
from plugyard.experiments.repository import ExperimentRepository
from plugyard.experiments.results import LATENCY_BOUNDS_MS, ResultsService, Traffic
from plugyard.experiments.schemas import ExperimentRow
from plugyard.experiments.service import ExperimentService
from plugyard.namespaces.repository import NamespaceRepository
from plugyard.tenants.repository import TenantRepository

log = structlog.get_logger(__name__)

GUARDRAIL_LOCK_KEY = 0x706C7567_0005


def evaluate(guardrail: dict[str, Any], control: str, traffic: dict[str, Traffic]) -> dict[str, Any] | None:
    """The trip record if some variant is worse than the control beyond the margin, else None."""
    metric, margin = guardrail["metric"], float(guardrail["margin"])
    alpha, min_requests = float(guardrail.get("alpha", 0.01)), int(guardrail.get("min_requests", 100))
    c = traffic[control]
    if c.requests < min_requests:
        return None
    for name, t in traffic.items():
        if name == control or t.requests < min_requests:
            continue
        if metric == "error_rate":
            p = stats.worse_by_margin(c.errors, c.requests, t.errors, t.requests, margin)
            observed: dict[str, Any] = {"control": c.errors / c.requests, "variant": t.errors / t.requests}
        else:
            p95_c = stats.histogram_quantile(c.latency, LATENCY_BOUNDS_MS, 0.95) or 0.0
            p95_v = stats.histogram_quantile(t.latency, LATENCY_BOUNDS_MS, 0.95) or 0.0
            threshold = p95_c + margin
            slow_c = stats.share_above(c.latency, LATENCY_BOUNDS_MS, threshold)
            slow_v = stats.share_above(t.latency, LATENCY_BOUNDS_MS, threshold)
            p = (
                1.0
                if p95_v <= threshold
                else stats.worse_by_margin(slow_c, c.requests, slow_v, t.requests, 0.0)
            )
            observed = {"control": p95_c, "variant": p95_v}
        if p < alpha:
            return {
                "metric": metric,
                "variant": name,
                "margin": margin,
                "observed": observed,
                "requests": {"control": c.requests, "variant": t.requests},
                "p_value": p,
                "alpha": alpha,
            }
    return None


async def _check_one(conn: asyncpg.Connection, publisher: Publisher, row: ExperimentRow) -> bool:
    tenant_slug, namespace_name = await ExperimentRepository(conn).scope(row.tenant_id, row.namespace_id)
    tenant = await TenantRepository(conn).get_by_slug(tenant_slug)
    namespace = await NamespaceRepository(conn).get(row.tenant_id, namespace_name)
    assert tenant is not None
    assert namespace is not None
    service = ExperimentService(conn, publisher)
    variants = await service.variants(tenant, row)
    traffic = await ResultsService(conn).traffic(tenant, namespace, row, variants)
    assert row.guardrail is not None
    trip = evaluate(row.guardrail, variants[0].name, traffic)
    if trip is None:
        return False
    reason = (
        f"guardrail tripped: {trip['metric']} of variant {trip['variant']} worse than control by more than "
        f"{trip['margin']} (p = {trip['p_value']:.2g})"
    )
    await service.transition(tenant, namespace, row, "pause", actor="guardrail", reason=reason, trip=trip)
    log.warning(
        "experiment_guardrail_tripped", tenant=tenant.slug, experiment=row.key, **{"variant": trip["variant"]}
    )
    return True


async def check_guardrails(conn: asyncpg.Connection, publisher: Publisher) -> int:
    """Check every running experiment with a guardrail; returns how many were paused."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", GUARDRAIL_LOCK_KEY):
        return 0
    try:
        tripped = 0
        for row in await ExperimentRepository(conn).guarded():
            try:
                tripped += await _check_one(conn, publisher, row)
            except Conflict:
                continue  # someone paused or stopped it meanwhile
            except Exception:  # one broken experiment must not stop the others' checks
                log.exception("experiment_guardrail_check_failed", experiment=row.key)
        return tripped
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", GUARDRAIL_LOCK_KEY)
