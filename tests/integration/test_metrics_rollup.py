"""Rollup and retention on the real database: minute rows become hour rows, nothing double counts."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from plugyard.metrics.egress_service import EgressService
from plugyard.metrics.histogram import bucket_index
from plugyard.metrics.rollup import rollup_and_prune
from plugyard.metrics.schemas import N_BUCKETS, Batch
from plugyard.metrics.service import IngestService, MetricsService
from plugyard.settings import MetricsSettings
from plugyard.tenants.schemas import TenantRow

SETTINGS = MetricsSettings(minute_retention_s=86400, hour_retention_s=30 * 86400)


def _row(slug: str, minute: int, requests: int, ms: int) -> dict[str, object]:
    latency = [0] * N_BUCKETS
    latency[bucket_index(ms)] = requests
    return {
        "tenant": slug, "namespace": "prod", "plugin": "p", "version": "ab" * 32, "variant": "default",
        "minute": minute, "requests": requests, "s2xx": requests, "latency": latency, "outcomes": {"ok": requests},
    }  # fmt: skip


def _batch(rows: list[dict[str, object]], egress: list[dict[str, object]] | None = None) -> Batch:
    body = {
        "batch_id": str(uuid.uuid4()),
        "gateway": "t",
        "sealed_at": int(time.time() * 1000),
        "rows": rows,
        "logs": [],
        **({"egress": egress} if egress is not None else {}),
    }
    return msgspec.convert(body, Batch)


async def test_old_minutes_roll_up_into_hours_and_expired_hours_go(pool: asyncpg.Pool) -> None:
    slug = f"roll-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        tenant = TenantRow(**await conn.fetchrow(
            "INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id, slug, name, created_at", slug
        ))  # fmt: skip
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        old_hour = (now - timedelta(days=3)).replace(minute=0)
        ancient = int((now - timedelta(days=60)).timestamp())
        recent = int(now.timestamp())
        # Three minutes of an hour three days ago (two batches, one key repeated), one recent minute,
        # one minute 60 days ago (past the hour retention once rolled up).
        t0 = int(old_hour.timestamp())
        await IngestService(conn, SETTINGS).ingest(_batch([_row(slug, t0, 5, 3), _row(slug, t0 + 60, 7, 30)]))
        await IngestService(conn, SETTINGS).ingest(
            _batch([_row(slug, t0 + 60, 1, 300), _row(slug, recent, 2, 3)])
        )
        await IngestService(conn, SETTINGS).ingest(_batch([_row(slug, ancient, 9, 3)]))

        service = MetricsService(conn)
        window = {"start": old_hour - timedelta(hours=1), "end": now + timedelta(minutes=1),
                  "group_by": ("plugin",), "filters": (None, None, None, None)}  # fmt: skip
        before = await service.query(tenant, step="hour", **window)  # type: ignore[arg-type]
        assert before.totals.requests == 15

        assert await rollup_and_prune(conn, SETTINGS) is not None
        minutes = await conn.fetch("SELECT minute FROM metrics_minutes WHERE tenant_id = $1", tenant.id)
        assert [r["minute"] for r in minutes] == [datetime.fromtimestamp(recent, UTC)]
        hours = await conn.fetch(
            "SELECT hour, requests, latency FROM metrics_hours WHERE tenant_id = $1 ORDER BY hour", tenant.id
        )
        assert [(r["hour"], r["requests"]) for r in hours] == [
            (old_hour, 13)
        ]  # the 60-day-old hour is pruned
        expected = [0] * N_BUCKETS
        for count, ms in ((5, 3), (7, 30), (1, 300)):
            expected[bucket_index(ms)] += count
        assert list(hours[0]["latency"]) == expected

        after = await service.query(tenant, step="hour", **window)  # type: ignore[arg-type]
        assert after.totals.requests == before.totals.requests
        assert after.totals.latency_histogram == before.totals.latency_histogram
        # Running it again changes nothing.
        await rollup_and_prune(conn, SETTINGS)
        assert (await service.query(tenant, step="hour", **window)).totals == after.totals  # type: ignore[arg-type]


def _egress(slug: str, host: str, minute: int, allowed: int, blocked: int) -> dict[str, object]:
    return {"tenant": slug, "namespace": "prod", "host": host, "minute": minute, "allowed": allowed,
            "blocked": blocked}  # fmt: skip


async def test_egress_minutes_roll_up_into_hours_and_expired_hours_go(pool: asyncpg.Pool) -> None:
    slug = f"eroll-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        tenant = TenantRow(**await conn.fetchrow(
            "INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id, slug, name, created_at", slug
        ))  # fmt: skip
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        old_hour = (now - timedelta(days=3)).replace(minute=0)
        t0, recent = int(old_hour.timestamp()), int(now.timestamp())
        ancient = int((now - timedelta(days=60)).timestamp())
        ingest = IngestService(conn, SETTINGS).ingest
        # One key twice in a batch and again in the next: summed, never a second row.
        await ingest(_batch([], [_egress(slug, "a.test", t0, 2, 0), _egress(slug, "a.test", t0, 1, 1)]))
        await ingest(
            _batch([], [_egress(slug, "a.test", t0 + 60, 4, 0), _egress(slug, "b.test", recent, 0, 3)])
        )
        await ingest(_batch([], [_egress(slug, "a.test", ancient, 9, 9)]))
        window = {
            "start": old_hour - timedelta(hours=1),
            "end": now + timedelta(minutes=1),
            "namespace": None,
        }
        before = await EgressService(conn).query(tenant, step="hour", **window)  # type: ignore[arg-type]
        assert (before.totals.allowed, before.totals.blocked) == (7, 4)

        assert await rollup_and_prune(conn, SETTINGS) is not None
        minutes = await conn.fetch("SELECT host, minute FROM egress_minutes WHERE tenant_id = $1", tenant.id)
        assert [(r["host"], r["minute"]) for r in minutes] == [
            ("b.test", datetime.fromtimestamp(recent, UTC))
        ]
        hours = await conn.fetch(
            "SELECT host, hour, allowed, blocked FROM egress_hours WHERE tenant_id = $1", tenant.id
        )
        assert [tuple(r) for r in hours] == [("a.test", old_hour, 7, 1)]  # the 60-day-old hour is pruned
        after = await EgressService(conn).query(tenant, step="hour", **window)  # type: ignore[arg-type]
        assert after.totals == before.totals
        assert [(h.host, h.allowed, h.blocked) for h in after.series[0].hosts] == [
            ("a.test", 7, 1),
            ("b.test", 0, 3),
        ]
        # Running totals (for /metrics) are never pruned: the ancient minute still counts.
        total = await conn.fetchrow(
            "SELECT allowed, blocked FROM egress_totals WHERE tenant_id = $1", tenant.id
        )
        assert tuple(total) == (16, 13)
