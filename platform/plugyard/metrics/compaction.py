"""Compaction: folds the ingest's minute deltas into minute rows and usage; trims plugin logs.

The ingest only appends (deltas COPYed in the batch's transaction, docs/metrics.md "Storage"),
to one of two delta tables: the shared rows every batch adds to (a busy plugin's minute row, a
tenant's day) are updated here, once per pass for all the batches appended meanwhile. A pass
turns the ingest to the other table, then folds the one it left and empties it (TRUNCATE, or
DELETE when a reader holds it) in one transaction, so a crash loses nothing: the deltas go in
the transaction that adds them. One pass at a time across replicas (advisory lock). Reads add
the not-yet-compacted deltas of both tables, so nothing here changes an answer, only where the
numbers are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg
import structlog

from plugyard.metrics.delta_repository import DeltaRepository
from plugyard.settings import MetricsSettings

log = structlog.get_logger(__name__)

# 0x706C7567 = "plug"; 0x4D.. = metrics (0x4D01 rollup, 0x4D02 ingest), apart from other features.
COMPACT_LOCK_KEY = 0x706C7567_4D03


class Compactor:
    """Compaction passes of one process, and the back-pressure its ingest is held to.

    `appended` counts the deltas and log entries this process committed, per delta table, since
    the pass that took that table started; past `settings.max_pending_rows`, `make_room` makes
    the ingest run a pass itself before it appends more, so the backlog stays bounded even if
    `run` (the background loop) falls behind or is not running.
    """

    def __init__(self, settings: MetricsSettings) -> None:
        """No backlog yet."""
        self._settings = settings
        self._pending = [0, 0]  # per delta table
        self._log_mark = 0
        self.truncated = 0  # passes that emptied their table with TRUNCATE (the rest: DELETE)
        self._wake = asyncio.Event()
        self._turn = asyncio.Lock()

    @property
    def pending(self) -> int:
        """Rows this process appended that no finished pass has taken yet (an upper bound)."""
        return sum(self._pending)

    def appended(self, rows: int, table: int) -> None:
        """Note rows committed by the ingest into delta table `table`; wakes the loop."""
        if rows:
            self._pending[table] += rows
            self._wake.set()

    async def compact(self, conn: asyncpg.Connection) -> int:
        """One pass: turn the ingest to the other delta table, fold the one it left.

        Everything appended to that table so far (by any process) is moved; `conn` must not be
        in a transaction (the turn commits on its own). Returns the deltas moved.
        """
        repo = DeltaRepository(conn)
        async with self._turn:
            started = time.perf_counter()
            await repo.turn(COMPACT_LOCK_KEY)
            async with conn.transaction():
                await repo.lock(COMPACT_LOCK_KEY)
                # Normally the table just turned away from; another replica's pass may have
                # turned it again meanwhile: whichever the ingest does not append to now.
                table = await repo.idle_table()
                mark = await repo.log_mark()
                # Counted rows were committed before the pass locks or reads the table, so it
                # moves them all.
                taken = self._pending[table]
                moved, truncated = await repo.compact(table)
                await repo.trim_logs_since(self._log_mark, self._settings.log_lines_per_plugin)
            self._pending[table] -= taken
            self._log_mark = mark
            self.truncated += truncated
        if moved:
            log.debug(
                "metrics_compacted",
                deltas=moved,
                truncated=truncated,
                ms=round(1000 * (time.perf_counter() - started), 1),
            )
        return moved

    async def make_room(self, conn: asyncpg.Connection) -> None:
        """Back-pressure: run a pass on `conn` first when this process's backlog is full."""
        if self.pending >= self._settings.max_pending_rows:
            await self.compact(conn)

    async def drain(self, conn: asyncpg.Connection) -> None:
        """Compact until nothing this process appended is left (tests, benchmarks, shutdown)."""
        while True:
            await self.compact(conn)
            if not self.pending:
                return

    async def run(self, pool: asyncpg.Pool) -> None:
        """Compact after appends and every `compact_interval_s` anyway, until cancelled.

        After appends at most every `compact_min_interval_s`; the periodic pass takes what
        other processes left behind (a replica that stopped).
        """
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.compact_interval_s)
            self._wake.clear()
            try:
                async with pool.acquire() as conn:
                    await self.compact(conn)
            except Exception:  # the loop must survive a database outage
                log.exception("metrics_compaction_failed")
            await asyncio.sleep(self._settings.compact_min_interval_s)
