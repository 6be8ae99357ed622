"""The rollup/prune task: minute rows into hour rows, then retention (one replica at a time)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from plugyard.metrics.compaction import COMPACT_LOCK_KEY
from plugyard.metrics.delta_repository import DeltaRepository
from plugyard.metrics.egress_repository import EgressRepository
from plugyard.metrics.repository import MetricsRepository
from plugyard.metrics.service import floor_time
from plugyard.settings import MetricsSettings

log = structlog.get_logger(__name__)

# 0x706C7567 = "plug"; 0x4D.. = metrics, apart from the other features' advisory lock keys.
ROLLUP_LOCK_KEY = 0x706C7567_4D01
_HOUR = timedelta(hours=1)


async def rollup_and_prune(conn: asyncpg.Connection, settings: MetricsSettings) -> int | None:
    """Move old minute rows into hour rows and prune; one replica at a time (advisory lock).

    Returns:
        Hour rows written, or None when another process holds the lock.
    """
    repo = MetricsRepository(conn)
    egress = EgressRepository(conn)
    now = datetime.now(UTC)
    async with conn.transaction():
        if not await repo.try_lock(ROLLUP_LOCK_KEY):
            return None
        # Deltas not compacted yet are folded in first, and no compaction pass runs meanwhile
        # (its upserts and this move would touch the same minute rows).
        deltas = DeltaRepository(conn)
        await deltas.lock(COMPACT_LOCK_KEY)
        await deltas.compact_all()
        # Whole hours only, so an hour is never split between the two tables for long.
        before = floor_time(now - timedelta(seconds=settings.minute_retention_s), _HOUR)
        written = await repo.rollup(before)
        await egress.rollup(before)
        hours_before = now - timedelta(seconds=settings.hour_retention_s)
        await repo.prune(hours_before, now - timedelta(seconds=settings.batch_retention_s))
        await egress.prune(hours_before)
    if written:
        log.info("metrics_rolled_up", before=before.isoformat(), hour_rows=written)
    return written


async def rollup_loop(pool: asyncpg.Pool, settings: MetricsSettings) -> None:
    """Run `rollup_and_prune` every `rollup_interval_s` until cancelled."""
    while True:
        try:
            async with pool.acquire() as conn:
                await rollup_and_prune(conn, settings)
        except Exception:  # the loop must survive a database outage
            log.exception("metrics_rollup_failed")
        await asyncio.sleep(settings.rollup_interval_s)
