"""Append-only ingest on the real database: reads see deltas before compaction (in either delta
table), replays add nothing, the log quota holds before the trim, back-pressure compacts before
the backlog grows further, and a pass empties its table with TRUNCATE unless a reader or a late
append holds it (then DELETE, losing and doubling nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from plugyard.metrics.compaction import COMPACT_LOCK_KEY, Compactor
from plugyard.metrics.delta_repository import DELTA_TABLES
from plugyard.metrics.histogram import bucket_index
from plugyard.metrics.repository import MetricsRepository
from plugyard.metrics.schemas import N_BUCKETS, Batch, MetricsAnswer
from plugyard.metrics.service import IngestQueue, IngestService, MetricsService
from plugyard.settings import MetricsSettings
from plugyard.tenants.schemas import TenantRow

SETTINGS = MetricsSettings(log_lines_per_plugin=3)


def _row(slug: str, minute: int, requests: int, ms: int, **extra: object) -> dict[str, object]:
    latency = [0] * N_BUCKETS
    latency[bucket_index(ms)] = requests
    return {
        "tenant": slug, "namespace": "prod", "plugin": "p", "version": "ab" * 32, "variant": "default",
        "minute": minute, "requests": requests, "s2xx": requests, "latency": latency, "outcomes": {"ok": requests},
        **extra,
    }  # fmt: skip


def _batch(rows: list[dict[str, object]], logs: list[dict[str, object]] | None = None) -> Batch:
    body = {
        "batch_id": str(uuid.uuid4()),
        "gateway": "t",
        "sealed_at": int(time.time() * 1000),
        "rows": rows,
        "logs": logs or [],
    }
    return msgspec.convert(body, Batch)


async def _tenant(conn: asyncpg.Connection, prefix: str) -> TenantRow:
    slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return TenantRow(
        **await conn.fetchrow(
            "INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id, slug, name, created_at", slug
        )
    )


@contextlib.asynccontextmanager
async def _compaction_held(pool: asyncpg.Pool) -> AsyncIterator[None]:
    """No compaction pass runs meanwhile (of any process on this database, e.g. the session's)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", COMPACT_LOCK_KEY)
        yield


async def _deltas(conn: asyncpg.Connection, tenant: TenantRow) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM metrics_deltas WHERE tenant_id = $1", tenant.id))


async def _answers(conn: asyncpg.Connection, tenant: TenantRow, now: datetime) -> list[object]:
    service = MetricsService(conn)
    window = {"start": now - timedelta(hours=3), "end": now + timedelta(minutes=2),
              "group_by": ("version",), "filters": (None, None, None, None)}  # fmt: skip
    answers: list[MetricsAnswer] = [
        await service.query(tenant, step=step, **window)  # type: ignore[arg-type]
        for step in ("minute", "hour")
    ]
    usage = await service.usage(tenant, (now - timedelta(days=2)).date(), now.date())
    return [msgspec.to_builtins(a) for a in answers] + [msgspec.to_builtins(usage)]


async def test_reads_include_deltas_not_compacted_yet_and_compaction_changes_no_answer(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        tenant = await _tenant(conn, "compact")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        minute = int(now.timestamp())
        yesterday = int((now - timedelta(days=1)).timestamp())
        batch = _batch(
            [
                _row(tenant.slug, minute, 5, 3, s5xx=1),
                _row(tenant.slug, minute - 60, 7, 300),
                _row(tenant.slug, minute, 4, 30, version="cd" * 32),
                _row(tenant.slug, yesterday, 0, 3, version="ef" * 32),  # a day with no requests
            ]
        )
        async with _compaction_held(pool):
            assert (await IngestService(conn, SETTINGS).ingest(batch)).status == "stored"
            assert await _deltas(conn, tenant) == 4
            assert not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM metrics_minutes WHERE tenant_id = $1)", tenant.id
            )
            pending = await _answers(conn, tenant, now)
        minute_answer, hour_answer, usage = pending
        assert minute_answer["totals"]["requests"] == 16  # type: ignore[index]
        assert hour_answer["totals"]["requests"] == 16  # type: ignore[index]
        assert minute_answer["totals"]["s5xx"] == 1  # type: ignore[index]
        assert [(d["day"], d["requests"], d["errors"], d["versions"]) for d in usage] == [  # type: ignore[attr-defined]
            ((now - timedelta(days=1)).date().isoformat(), 0, 0, 0),
            (now.date().isoformat(), 16, 1, 2),
        ]

        await Compactor(SETTINGS).compact(conn)
        assert await _deltas(conn, tenant) == 0
        stored = await conn.fetchval(
            "SELECT sum(requests) FROM metrics_minutes WHERE tenant_id = $1", tenant.id
        )
        assert stored == 16
        assert await _answers(conn, tenant, now) == pending


async def test_a_replayed_batch_adds_nothing_before_or_after_compaction(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tenant = await _tenant(conn, "replay")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        batch = _batch([_row(tenant.slug, int(now.timestamp()), 9, 3)])
        compactor = Compactor(SETTINGS)
        assert (await IngestService(conn, SETTINGS, compactor).ingest(batch)).status == "stored"
        assert compactor.pending == 1
        await compactor.compact(conn)
        assert compactor.pending == 0
        once = await _answers(conn, tenant, now)

        assert (await IngestService(conn, SETTINGS, compactor).ingest(batch)).status == "duplicate"
        assert await _deltas(conn, tenant) == 0
        assert compactor.pending == 0
        await compactor.compact(conn)
        assert await _answers(conn, tenant, now) == once
        assert once[0]["totals"]["requests"] == 9  # type: ignore[index]


async def test_log_reads_keep_to_the_quota_before_the_compaction_trims(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tenant = await _tenant(conn, "logq")
        at = int(time.time() * 1000)
        logs = [
            {"tenant": tenant.slug, "namespace": "prod", "plugin": "p", "version": "ab" * 32,
             "at": at + i, "kind": "log", "level": "log", "message": f"line {i}"}
            for i in range(5)
        ]  # fmt: skip
        repo = MetricsRepository(conn)
        count = "SELECT count(*) FROM plugin_logs WHERE tenant_id = $1"
        async with _compaction_held(pool):
            await IngestService(conn, SETTINGS).ingest(_batch([], logs))
            assert await conn.fetchval(count, tenant.id) == 5  # not trimmed yet
            latest = await repo.logs(tenant.id, "prod", "p", after=None, limit=100, keep=3)
            following = await repo.logs(tenant.id, "prod", "p", after=0, limit=100, keep=3)
            two = await repo.logs(tenant.id, "prod", "p", after=None, limit=2, keep=3)
        assert [e.message for e in latest] == ["line 2", "line 3", "line 4"]
        assert following == latest
        assert [e.message for e in two] == ["line 3", "line 4"]

        await Compactor(SETTINGS).compact(conn)
        assert await conn.fetchval(count, tenant.id) == 3
        assert await repo.logs(tenant.id, "prod", "p", after=None, limit=100, keep=3) == latest


async def test_back_pressure_compacts_before_a_full_backlog_grows(pool: asyncpg.Pool) -> None:
    settings = MetricsSettings(max_pending_rows=3)
    compactor = Compactor(settings)
    queue = IngestQueue(settings, compactor=compactor)
    async with pool.acquire() as conn:
        tenant = await _tenant(conn, "backp")
        minute = int(datetime.now(UTC).timestamp()) // 60 * 60
        first = _batch([_row(tenant.slug, minute, 1, 3, plugin=f"p{i}") for i in range(3)])
        second = _batch([_row(tenant.slug, minute, 1, 3, plugin=f"q{i}") for i in range(2)])
        assert (await queue.ingest(conn, first)).status == "stored"
        assert compactor.pending == 3  # at the bound: the next group compacts first
        assert (await queue.ingest(conn, second)).status == "stored"
        assert compactor.pending == 2  # the first batch's rows were compacted before appending
        compacted = await conn.fetch(
            "SELECT plugin FROM metrics_minutes WHERE tenant_id = $1 ORDER BY plugin", tenant.id
        )
        assert [r["plugin"] for r in compacted][:3] == ["p0", "p1", "p2"]


async def _in_table(conn: asyncpg.Connection, table: int, tenant: TenantRow) -> int:
    sql = f"SELECT count(*) FROM {DELTA_TABLES[table]} WHERE tenant_id = $1"
    return int(await conn.fetchval(sql, tenant.id))


async def _filenode(conn: asyncpg.Connection, table: int) -> int:
    return int(await conn.fetchval("SELECT pg_relation_filenode($1::regclass)", DELTA_TABLES[table]))


async def test_reads_see_deltas_of_both_tables_and_passes_fold_and_truncate_each(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tenant = await _tenant(conn, "pair")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        minute = int(now.timestamp())
        async with _compaction_held(pool):  # no pass meanwhile, so the turn stays where it is set
            first = int(await conn.fetchval("SELECT active FROM metrics_delta_turn"))
            await IngestService(conn, SETTINGS).ingest(_batch([_row(tenant.slug, minute, 5, 3)]))
            await conn.execute("UPDATE metrics_delta_turn SET active = 1 - active")
            await IngestService(conn, SETTINGS).ingest(
                _batch([_row(tenant.slug, minute - 60, 7, 30, s5xx=2)])
            )
            assert await _in_table(conn, first, tenant) == 1
            assert await _in_table(conn, 1 - first, tenant) == 1
            pending = await _answers(conn, tenant, now)
        minute_answer, hour_answer, usage = pending
        assert minute_answer["totals"]["requests"] == 12  # type: ignore[index]
        assert hour_answer["totals"]["requests"] == 12  # type: ignore[index]
        assert minute_answer["totals"]["s5xx"] == 2  # type: ignore[index]
        assert [(d["requests"], d["errors"]) for d in usage] == [(12, 2)]  # type: ignore[attr-defined]

        nodes = [await _filenode(conn, t) for t in (0, 1)]
        compactor = Compactor(SETTINGS)
        await compactor.compact(conn)  # turns the ingest back to `first`, folds the other
        await compactor.compact(conn)  # and then `first`
        assert await _in_table(conn, 0, tenant) == await _in_table(conn, 1, tenant) == 0
        assert compactor.truncated == 2
        assert [await _filenode(conn, t) != nodes[t] for t in (0, 1)] == [True, True]  # TRUNCATE, not DELETE
        stored = await conn.fetchval(
            "SELECT sum(requests) FROM metrics_minutes WHERE tenant_id = $1", tenant.id
        )
        assert stored == 12
        assert await _answers(conn, tenant, now) == pending


async def test_a_pass_deletes_instead_when_a_reader_holds_the_table_and_stalls_no_ingest(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn, pool.acquire() as reader:
        tenant = await _tenant(conn, "held")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        minute = int(now.timestamp())
        compactor = Compactor(SETTINGS)
        async with _compaction_held(pool):
            table = int(await conn.fetchval("SELECT active FROM metrics_delta_turn"))
            await IngestService(conn, SETTINGS, compactor).ingest(_batch([_row(tenant.slug, minute, 4, 3)]))
        node = await _filenode(conn, table)
        async with reader.transaction():  # a long read: holds both delta tables until it ends
            assert (
                await reader.fetchval("SELECT count(*) FROM metrics_deltas WHERE tenant_id = $1", tenant.id)
                == 1
            )
            started = time.monotonic()
            moved = 0
            while moved == 0:  # another process's pass may take the turn first; then it folds
                await asyncio.wait_for(compactor.compact(conn), timeout=10)
                moved = await conn.fetchval(
                    "SELECT count(*) FROM metrics_minutes WHERE tenant_id = $1", tenant.id
                )
            # The ingest appends meanwhile without waiting for the reader or the pass.
            async with pool.acquire() as other:
                batch = _batch([_row(tenant.slug, minute, 3, 3)])
                result = await asyncio.wait_for(IngestService(other, SETTINGS).ingest(batch), timeout=5)
                assert result.status == "stored"
            assert time.monotonic() - started < 10
        assert await _filenode(conn, table) == node  # deleted, not truncated
        assert compactor.truncated < 2
        await compactor.drain(conn)
        await Compactor(SETTINGS).compact(conn)
        await Compactor(SETTINGS).compact(conn)  # both tables, whichever holds the second batch
        assert await _deltas(conn, tenant) == 0
        total = await conn.fetchval(
            "SELECT sum(requests) FROM metrics_minutes WHERE tenant_id = $1", tenant.id
        )
        assert total == 7


async def test_an_append_still_open_when_its_table_is_folded_is_kept_for_a_later_pass(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn, pool.acquire() as writer:
        tenant = await _tenant(conn, "late")
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        minute = int(now.timestamp())
        await IngestService(conn, SETTINGS).ingest(_batch([_row(tenant.slug, minute, 2, 3)]))
        open_append = writer.transaction()
        await open_append.start()
        try:
            # Chose its table before the passes below turn the ingest away from it.
            await IngestService(writer, SETTINGS).ingest(_batch([_row(tenant.slug, minute, 9, 3)]))
            for _ in range(2):  # each table once: the one holding the open append cannot be truncated
                await asyncio.wait_for(Compactor(SETTINGS).compact(conn), timeout=10)
            stored = await conn.fetchval(
                "SELECT sum(requests) FROM metrics_minutes WHERE tenant_id = $1", tenant.id
            )
            assert stored == 2
        finally:
            await open_append.commit()
        assert await _deltas(conn, tenant) == 1
        assert (await _answers(conn, tenant, now))[0]["totals"]["requests"] == 11  # type: ignore[index]
        for _ in range(2):
            await Compactor(SETTINGS).compact(conn)
        assert await _deltas(conn, tenant) == 0
        stored = await conn.fetchval(
            "SELECT sum(requests) FROM metrics_minutes WHERE tenant_id = $1", tenant.id
        )
        assert stored == 11
