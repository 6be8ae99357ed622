"""Metrics: ingest gateway batches once, answer tenant queries, roll up and prune."""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import structlog

from plugyard import signing
from plugyard.errors import Conflict, InvalidInput, NotFound, Unauthorized, Unavailable
from plugyard.metrics import exposition
from plugyard.metrics.compaction import Compactor
from plugyard.metrics.delta_repository import DeltaRepository
from plugyard.metrics.egress_repository import EgressRepository
from plugyard.metrics.histogram import OUTCOME_COLUMNS, Accumulator
from plugyard.metrics.repository import MetricsRepository
from plugyard.metrics.schemas import (
    HEX_PATTERN,
    LATENCY_BUCKETS_MS,
    Batch,
    Dimension,
    IngestResult,
    LogEntry,
    MetricRow,
    MetricsAnswer,
    Point,
    Series,
    Step,
    UsageDay,
)
from plugyard.namespaces.schemas import NamespaceRow
from plugyard.settings import MetricsSettings
from plugyard.tenants.schemas import TenantRow

log = structlog.get_logger(__name__)

# Advisory lock key (0x706C7567 = "plug"; 0x4D.. = metrics, apart from the other features' keys).
INGEST_LOCK_KEY = 0x706C7567_4D02
MAX_POINTS = 10080
_STEPS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}
_BATCH = msgspec.json.Decoder(Batch)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX = re.compile(HEX_PATTERN)


def _utc(ms_or_s: float) -> datetime:
    return datetime.fromtimestamp(ms_or_s, UTC)


def decode_batch(secret: str, headers: Mapping[str, str], path: str, body: bytes) -> Batch:
    """Verify a batch's signature and decode it.

    Raises:
        Unauthorized: unsigned, bad signature or stale timestamp (problem slug says which).
        InvalidInput: the body is not a valid batch (the field is named).
    """
    if not secret:
        raise Unauthorized("the control plane has no gateway secret", slug="unsigned")
    failure = signing.verify(secret, dict(headers), method="POST", path=path, body=body)
    if failure is not None:
        exposition.INGEST_BATCHES.inc(result="refused")
        raise Unauthorized("the batch signature does not verify", slug=failure)
    try:
        batch = _BATCH.decode(body)
    except msgspec.ValidationError as exc:
        exposition.INGEST_BATCHES.inc(result="invalid")
        field = str(exc).rpartition("at `")[2].rstrip("`") if "at `" in str(exc) else "body"
        raise InvalidInput(str(exc), field=field, slug="invalid-batch") from None
    except msgspec.DecodeError as exc:
        exposition.INGEST_BATCHES.inc(result="invalid")
        raise InvalidInput(str(exc), field="body", slug="invalid-batch") from None
    # Row versions are hex (HEX_PATTERN): a gateway's batch names few versions, so each
    # distinct one is matched once instead of once per row.
    bad = {v for v in {r.version for r in batch.rows} if _HEX.match(v) is None}
    if bad:
        exposition.INGEST_BATCHES.inc(result="invalid")
        at = next(i for i, r in enumerate(batch.rows) if r.version in bad)
        field = f"$.rows[{at}].version"
        raise InvalidInput(
            f"Expected `str` matching regex {HEX_PATTERN!r} - at `{field}`", field=field, slug="invalid-batch"
        )
    return batch


def check_fresh(batch: Batch, settings: MetricsSettings) -> float:
    """The batch's age in seconds, if it is still within the batch-id retention.

    Raises:
        Conflict: the batch was sealed longer ago than batch ids are kept (`batch-expired`).
    """
    age_s = time.time() - batch.sealed_at / 1000
    if age_s > settings.batch_retention_s:
        exposition.INGEST_BATCHES.inc(result="expired")
        raise Conflict(f"batch sealed {int(age_s)} s ago is past the retention", slug="batch-expired")
    return age_s


class IngestService:
    """Stores each batch at most once."""

    def __init__(
        self, conn: asyncpg.Connection, settings: MetricsSettings, compactor: Compactor | None = None
    ) -> None:
        """Bind to a connection; `compactor` is told what was appended (and wakes up)."""
        self._conn = conn
        self._repo = MetricsRepository(conn)
        self._settings = settings
        self._compactor = compactor

    async def ingest(self, batch: Batch) -> IngestResult:
        """Store a batch in one transaction: batch id, minute deltas, logs, egress.

        Raises:
            Conflict: the batch was sealed longer ago than batch ids are kept (`batch-expired`).
        """
        check_fresh(batch, self._settings)
        (result,) = await self.ingest_many([batch])
        return result

    async def ingest_many(self, batches: Sequence[Batch]) -> list[IngestResult]:
        """Store several batches in one transaction, each at most once (results in order).

        N batches cost one transaction, one claim statement and one COPY of each kind
        (`IngestQueue`). A batch id already held, or given twice, is a `duplicate` and adds
        nothing. Callers check freshness (`check_fresh`).
        """
        first: dict[UUID, Batch] = {}
        for batch in batches:
            first.setdefault(batch.batch_id, batch)
        async with self._conn.transaction():
            ids = await self._repo.claim_batches(
                [
                    (
                        b.batch_id,
                        b.gateway,
                        _utc(b.sealed_at / 1000),
                        len(b.rows),
                        len(b.logs),
                        sum(r.requests for r in b.rows),
                        b.dropped.requests,
                        b.dropped.logs,
                        b.dropped.batches,
                        b.dropped.egress,
                    )
                    for b in first.values()
                ]
            )
            claimed = [b for b in first.values() if b.batch_id in ids]
            if claimed:
                appended, table = await self._store(claimed)
        if claimed and self._compactor is not None:
            self._compactor.appended(appended, table)
        stored = {id(b) for b in claimed}
        results = [
            IngestResult(status="stored" if id(b) in stored else "duplicate", batch_id=b.batch_id)
            for b in batches
        ]
        for batch, result in zip(batches, results, strict=True):
            if result.status == "duplicate":
                exposition.INGEST_BATCHES.inc(result="duplicate")
                log.info("metrics_batch_replayed", batch_id=str(batch.batch_id), gateway=batch.gateway)
                continue
            exposition.INGEST_BATCHES.inc(result="stored")
            exposition.INGEST_EVENTS.inc(len(batch.rows) + len(batch.logs) + len(batch.egress))
            exposition.INGEST_LAG.observe(max(0.0, time.time() - batch.sealed_at / 1000))
            for kind in ("requests", "logs", "batches", "egress"):
                exposition.GATEWAY_DROPPED.inc(getattr(batch.dropped, kind), kind=kind)
            if any(msgspec.structs.astuple(batch.dropped)):
                log.warning(
                    "metrics_dropped_reported", gateway=batch.gateway, **msgspec.to_builtins(batch.dropped)
                )
        return results

    async def _store(self, batches: list[Batch]) -> tuple[int, int]:
        """Append claimed batches' minute deltas and logs, add egress (inside the transaction).

        Appends only: the minute rows, usage and log trim every batch would otherwise update
        are the compaction's (compaction.py), for many batches at once. Returns the rows
        appended and the delta table they went to.
        """
        slugs = {r.tenant for b in batches for r in b.rows} | {e.tenant for b in batches for e in b.logs}
        slugs |= {e.tenant for b in batches for e in b.egress}
        # The turn is read as late as possible: a pass that turns the ingest away from a table
        # waits for the appends that chose it before.
        tenants, table = await self._repo.tenant_ids_and_turn(sorted(slugs))
        deltas = _delta_records(batches, tenants)
        if deltas:
            await DeltaRepository(self._conn).append(table, deltas)
        logs = self._log_records(batches, tenants)
        if logs:
            await self._repo.copy_logs(logs)
        egress_minutes, egress_totals = _egress_records(batches, tenants)
        if egress_minutes:
            # Shared rows (a namespace's totals): one batch at a time from here to commit, so
            # concurrent batches queue on one lock instead of on row locks one row at a time.
            await self._repo.lock(INGEST_LOCK_KEY)
            await EgressRepository(self._conn).add(egress_minutes, egress_totals)
        return len(deltas) + len(logs), table

    @staticmethod
    def _log_records(batches: Sequence[Batch], tenants: dict[str, UUID]) -> list[tuple[Any, ...]]:
        """Log entries of known tenants in `LOG_COLUMNS` order, oldest first."""
        return [
            (
                tenant_id,
                e.namespace,
                e.plugin,
                e.version,
                _utc(e.at / 1000),
                e.kind,
                e.level,
                e.message,
                e.stack,
            )
            for e in sorted((e for batch in batches for e in batch.logs), key=lambda e: e.at)
            if (tenant_id := tenants.get(e.tenant)) is not None
        ]


_OUTCOME_NAMES = tuple(OUTCOME_COLUMNS)
_NO_OUTCOMES = (0,) * len(_OUTCOME_NAMES)


def _delta_records(batches: Sequence[Batch], tenants: dict[str, UUID]) -> list[tuple[Any, ...]]:
    """Aggregate rows of known tenants in `DELTA_COLUMNS` order, as they came (no merging).

    Per row only what COPY needs: the tenant's id, the minute as a datetime (one per minute),
    outcomes in column order and the histogram flattened (about 0.6 µs a row).
    """
    records: list[tuple[Any, ...]] = []
    append = records.append
    minutes: dict[int, datetime] = {}  # a batch's rows share a few minutes
    for batch in batches:
        for r in batch.rows:
            tenant_id = tenants.get(r.tenant)
            if tenant_id is None:  # deleted since; nothing to attribute it to
                continue
            minute = minutes.get(r.minute)
            if minute is None:
                minute = minutes[r.minute] = _utc(r.minute)
            o = r.outcomes
            outcomes = tuple(map(o.get, _OUTCOME_NAMES, _NO_OUTCOMES)) if o else _NO_OUTCOMES  # type: ignore[arg-type]
            append(
                (
                    tenant_id,
                    r.namespace,
                    r.plugin,
                    r.version,
                    r.variant,
                    minute,
                    r.requests,
                    r.s2xx,
                    r.s3xx,
                    r.s4xx,
                    r.s5xx,
                    r.failures,
                    *outcomes,
                    *r.latency,
                )
            )
    return records


def _egress_records(
    batches: Sequence[Batch], tenants: dict[str, UUID]
) -> tuple[list[tuple[UUID, str, str, datetime, int, int]], list[tuple[UUID, str, int, int]]]:
    """Egress rows summed per (tenant, namespace, host, minute), and per namespace; sorted."""
    minutes: dict[tuple[UUID, str, str, datetime], list[int]] = defaultdict(lambda: [0, 0])
    totals: dict[tuple[UUID, str], list[int]] = defaultdict(lambda: [0, 0])
    for e in (e for batch in batches for e in batch.egress):
        tenant_id = tenants.get(e.tenant)
        if tenant_id is None:  # deleted since
            continue
        minute = minutes[(tenant_id, e.namespace, e.host, _utc(e.minute))]
        total = totals[(tenant_id, e.namespace)]
        for held in (minute, total):
            held[0] += e.allowed
            held[1] += e.blocked
    return (
        sorted((*key, allowed, blocked) for key, (allowed, blocked) in minutes.items()),
        sorted((*key, allowed, blocked) for key, (allowed, blocked) in totals.items()),
    )


class IngestQueue:
    """Group commit for the ingest endpoint, one transaction for the batches waiting their turn.

    Batches that arrive while `writers` transactions are being written go together into the
    next one (`IngestService.ingest_many`): whoever gets a turn writes everything queued so far
    (at most `max_batches`), so N batches cost one commit (one WAL flush) and a few round trips
    instead of N. The ingest only appends (no shared row is updated, so the writers do not wait
    on each other's row locks). Each request still answers only after the transaction holding
    its batch commits. A failed group is retried one batch at a time, so one bad batch fails
    only its own request. Per process. With a `compactor`, a group waits for a compaction pass
    first when the process's backlog of appended rows is full (`Compactor.make_room`).
    """

    def __init__(
        self,
        settings: MetricsSettings,
        *,
        max_batches: int = 16,
        writers: int = 4,
        compactor: Compactor | None = None,
    ) -> None:
        """An empty queue."""
        self._settings = settings
        self._max = max_batches
        self._compactor = compactor
        self._waiting: list[tuple[Batch, asyncio.Future[IngestResult]]] = []
        self._turn = asyncio.Semaphore(writers)

    async def ingest(self, conn: asyncpg.Connection, batch: Batch) -> IngestResult:
        """Store a batch (with whatever else is queued) on `conn`; answers once it is committed.

        Raises:
            Conflict: the batch is past the retention (`batch-expired`).
        """
        check_fresh(batch, self._settings)
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, future))
        while True:
            async with self._turn:
                # Done, or taken into a group another writer is writing: wait for that one.
                if future.done() or all(f is not future for _, f in self._waiting):
                    break
                group = self._waiting[: self._max]
                del self._waiting[: len(group)]
                await self._write(conn, group)
        return await future

    async def _write(
        self, conn: asyncpg.Connection, group: list[tuple[Batch, asyncio.Future[IngestResult]]]
    ) -> None:
        service = IngestService(conn, self._settings, self._compactor)
        try:
            if self._compactor is not None:
                await self._compactor.make_room(conn)
            try:
                results = await service.ingest_many([batch for batch, _ in group])
            except Exception:
                if len(group) == 1:
                    raise
                for batch, future in group:  # one bad batch must not fail the others
                    try:
                        future.set_result((await service.ingest_many([batch]))[0])
                    except Exception as exc:  # handed to that batch's request
                        future.set_exception(exc)
                return
            for (_, future), result in zip(group, results, strict=True):
                future.set_result(result)
        except BaseException as exc:
            # This request failed or was cancelled: the others in its group must not wait forever
            # (nothing of the group was committed; their gateways send the batches again).
            for _, future in group:
                if not future.done():
                    future.set_exception(
                        exc
                        if isinstance(exc, Exception)
                        else Unavailable("the ingest transaction was interrupted", slug="ingest-interrupted")
                    )
            raise


def floor_time(t: datetime, step: timedelta) -> datetime:
    """The start of the step (minute, hour) that contains `t`, in UTC."""
    return _EPOCH + ((t - _EPOCH) // step) * step


def step_range(start: datetime, end: datetime, step: Step) -> tuple[datetime, datetime]:
    """[start, end) widened to whole steps.

    Raises:
        InvalidInput: an empty range or more than `MAX_POINTS` steps.
    """
    width = _STEPS[step]
    start, end = floor_time(start, width), floor_time(end + width - timedelta(microseconds=1), width)
    if end <= start:
        raise InvalidInput("`end` must be after `start`", field="end")
    if (end - start) / width > MAX_POINTS:
        raise InvalidInput(f"at most {MAX_POINTS} steps per query; use a larger step", field="start")
    return start, end


def _group(row: MetricRow, group_by: tuple[Dimension, ...]) -> tuple[str | None, ...]:
    return tuple(
        getattr(row, d) if d in group_by else None for d in ("namespace", "plugin", "version", "variant")
    )


class MetricsService:
    """Tenant-scoped reads: series, totals, usage and logs."""

    def __init__(self, conn: asyncpg.Connection, settings: MetricsSettings | None = None) -> None:
        """Bind to a connection; `settings` gives the log quota reads keep to (default's if None)."""
        self._repo = MetricsRepository(conn)
        self._log_lines = (settings or MetricsSettings()).log_lines_per_plugin

    async def query(
        self,
        tenant: TenantRow,
        *,
        start: datetime,
        end: datetime,
        step: Step,
        group_by: tuple[Dimension, ...],
        filters: tuple[str | None, str | None, str | None, str | None],
    ) -> MetricsAnswer:
        """Series per group over [start, end) at the step, with totals and latency percentiles.

        Raises:
            InvalidInput: an empty range or too many points.
        """
        start, end = step_range(start, end, step)
        rows = await self._repo.rows(tenant.id, start, end, hourly=step == "hour", filters=filters)
        overall = Accumulator()
        groups: dict[tuple[str | None, ...], dict[datetime, Accumulator]] = defaultdict(dict)
        for row in rows:
            overall.add(row)
            groups[_group(row, group_by)].setdefault(row.t, Accumulator()).add(row)
        series = []
        for key in sorted(groups, key=lambda k: tuple(v or "" for v in k)):
            points = groups[key]
            total = Accumulator()
            for acc in points.values():
                total.add_accumulator(acc)
            series.append(
                Series(
                    namespace=key[0],
                    plugin=key[1],
                    version=key[2],
                    variant=key[3],
                    totals=total.counters(),
                    points=[Point(t=t, counters=points[t].counters()) for t in sorted(points)],
                )
            )
        return MetricsAnswer(
            start=start,
            end=end,
            step=step,
            group_by=list(group_by),
            latency_buckets_ms=list(LATENCY_BUCKETS_MS),
            totals=overall.counters(),
            series=series,
        )

    async def usage(self, tenant: TenantRow, first: date, last: date) -> list[UsageDay]:
        """Requests, errors and distinct versions per UTC day in [first, last].

        Raises:
            InvalidInput: `last` before `first` or more than 366 days.
        """
        if last < first:
            raise InvalidInput("`to` must not be before `from`", field="to")
        if (last - first).days > 366:
            raise InvalidInput("at most 366 days per query", field="from")
        return await self._repo.usage(tenant.id, first, last)

    async def logs(
        self, tenant: TenantRow, namespace: NamespaceRow, plugin: str, *, after: int | None, limit: int
    ) -> list[LogEntry]:
        """A plugin's stored log lines and exceptions.

        Raises:
            NotFound: no such plugin in this namespace.
        """
        if not await self._repo.plugin_exists(tenant.id, namespace.id, plugin):
            raise NotFound(f"plugin {plugin!r} not found", slug="plugin-not-found")
        return await self._repo.logs(
            tenant.id, namespace.name, plugin, after=after, limit=limit, keep=self._log_lines
        )


async def platform_gauges(conn: asyncpg.Connection) -> list[str]:
    """Exposition lines for the database-backed gauges (gateways, open pushes)."""
    repo = MetricsRepository(conn)
    lines = exposition.database_gauges(await repo.gateways(), await repo.open_pushes())
    return lines + exposition.egress_lines(await EgressRepository(conn).totals())
